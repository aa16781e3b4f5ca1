package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/cmissync/cmissync/stage/store"
)

// The audit trail reads the same whichever way it was written: a row per
// entry (before migration 008, or where the engine cannot name the ids of
// a multi-row INSERT) or a run of alike member entries as one row and its
// members.
func TestContractAuditMembers(t *testing.T) {
	for _, compact := range []bool{true, false} {
		t.Run(fmt.Sprintf("compact=%v", compact), func(t *testing.T) {
			eachEngine(t, func(t *testing.T, st *store.Store) {
				store.SetCompactAudit(st, compact)
				testAuditMembers(t, st, compact)
			})
		})
	}
}

func testAuditMembers(t *testing.T, st *store.Store, compact bool) {
	ctx := context.Background()
	member := func(group, action string, user int64) store.AuditEntry {
		return store.AuditEntry{RunID: "r1", CourseID: 7, Object: "member", IDNumber: group, Name: "Group " + group, Action: action,
			MoodleID: 70, UserID: user, CMISID: fmt.Sprintf("s%d", user), Detail: "in CMIS"}
	}
	// A pre-008 row, written as the old store did.
	if _, err := st.DB().Exec(`INSERT INTO cmissync_audit (run_id, courseid, object, idnumber, name, action, moodle_id, userid, cmisid, detail)
VALUES ('r0', 7, 'member', 'A', 'Group A', 'add', 70, 9, 's9', 'old')`); err != nil {
		t.Fatal(err)
	}
	entries := []store.AuditEntry{
		member("A", "add", 1), member("A", "add", 2), member("A", "add", 3),
		member("B", "add", 4),
		member("A", "remove", 1),
		member("A", "add", 1), member("A", "add", 5),
		{RunID: "r1", CourseID: 7, Object: "group", IDNumber: "A", Name: "Group A", Action: "create", MoodleID: 70},
	}
	if err := st.RecordAudit(ctx, entries); err != nil {
		t.Fatal(err)
	}
	var rows, memberRows int
	if err := st.DB().QueryRow(`SELECT COUNT(*) FROM cmissync_audit`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := st.DB().QueryRow(`SELECT COUNT(*) FROM cmissync_audit_members`).Scan(&memberRows); err != nil {
		t.Fatal(err)
	}
	// Compact: the old row; A's adds 1-3; B's 4; A's removal; A's adds
	// 1 and 5; the create: 6 rows, and 5 members in cmissync_audit_members.
	wantRows, wantMembers := 6, 5
	if !compact {
		wantRows, wantMembers = 9, 0
	}
	if rows != wantRows || memberRows != wantMembers {
		t.Errorf("%d audit rows and %d member rows, want %d and %d", rows, memberRows, wantRows, wantMembers)
	}

	got, err := st.Audit(ctx, 7, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("Audit = %d entries, want %d: %+v", len(got), len(entries), got)
	}
	for i := range entries {
		if got[i] != entries[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], entries[i])
		}
	}
	if all, err := st.Audit(ctx, 0, ""); err != nil || len(all) != len(entries)+1 || all[0].Detail != "old" || all[0].UserID != 9 {
		t.Errorf("Audit(all) = %d entries (%v), first %+v; want %d, the old row first", len(all), err, all[0], len(entries)+1)
	}

	// Ownership from the trail: the last entry of each member counts.
	added, err := st.AddedByAudit(ctx, 7, []store.AuditMember{{IDNumber: "A", UserID: 1}, {IDNumber: "A", UserID: 2}, {IDNumber: "A", UserID: 9},
		{IDNumber: "B", UserID: 4}, {IDNumber: "B", UserID: 1}, {IDNumber: "A", UserID: 4}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.AuditMember]bool{{IDNumber: "A", UserID: 1}: true, {IDNumber: "A", UserID: 2}: true, {IDNumber: "A", UserID: 9}: true, {IDNumber: "B", UserID: 4}: true}
	if len(added) != len(want) {
		t.Errorf("AddedByAudit = %v, want %v", added, want)
	}
	for k := range want {
		if !added[k] {
			t.Errorf("AddedByAudit lacks %+v: %v", k, added)
		}
	}
	// After the removal and before the add again, user 1 of A was not
	// cmissync's: the trail of a removal alone says so.
	if err := st.RecordAudit(ctx, []store.AuditEntry{member("A", "remove", 5), member("A", "remove", 2)}); err != nil {
		t.Fatal(err)
	}
	if added, err := st.AddedByAudit(ctx, 7, []store.AuditMember{{IDNumber: "A", UserID: 5}, {IDNumber: "A", UserID: 2}, {IDNumber: "A", UserID: 3}}); err != nil ||
		len(added) != 1 || !added[store.AuditMember{IDNumber: "A", UserID: 3}] {
		t.Errorf("after removals, AddedByAudit = %v, %v; want A/3 only", added, err)
	}

	// FindAudit: by person (CMIS id or Moodle user), by group, the newest
	// few.
	for _, tc := range []struct {
		q    store.AuditQuery
		want []string // action/user of each entry
	}{
		{store.AuditQuery{User: "s1"}, []string{"add/1", "remove/1", "add/1"}},
		{store.AuditQuery{User: "4"}, []string{"add/4"}},
		{store.AuditQuery{User: "9"}, []string{"add/9"}},
		{store.AuditQuery{IDNumber: "B"}, []string{"add/4"}},
		{store.AuditQuery{RunID: "r1", Limit: 4}, []string{"add/5", "create/0", "remove/5", "remove/2"}},
		{store.AuditQuery{Courses: []int64{7}, Limit: 3}, []string{"create/0", "remove/5", "remove/2"}},
		{store.AuditQuery{Courses: []int64{8}}, nil},
	} {
		recs, err := st.FindAudit(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var gotq []string
		for _, r := range recs {
			gotq = append(gotq, fmt.Sprintf("%s/%d", r.Action, r.UserID))
			if r.Created.IsZero() {
				t.Errorf("FindAudit(%+v): entry without its time", tc.q)
			}
		}
		if fmt.Sprint(gotq) != fmt.Sprint(tc.want) {
			t.Errorf("FindAudit(%+v) = %v, want %v", tc.q, gotq, tc.want)
		}
	}
}

// Writers at once (MariaDB runs their transactions side by side) each get
// their members under their own rows, with more rows and members than one
// statement takes.
func TestContractAuditConcurrentWriters(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		const writers, groups, perGroup = 4, 600, 3
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var entries []store.AuditEntry
				for g := range groups {
					for k := range perGroup {
						entries = append(entries, store.AuditEntry{RunID: fmt.Sprintf("w%d", w), CourseID: int64(w + 1), Object: "member",
							IDNumber: fmt.Sprintf("g%d", g), Action: "add", UserID: int64(g*10 + k), CMISID: fmt.Sprintf("w%d-g%d-%d", w, g, k)})
					}
				}
				errs <- st.RecordAudit(ctx, entries)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for w := range writers {
			got, err := st.Audit(ctx, int64(w+1), "")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != groups*perGroup {
				t.Fatalf("writer %d: %d entries, want %d", w, len(got), groups*perGroup)
			}
			for i, e := range got {
				g, k := i/perGroup, i%perGroup
				if e.RunID != fmt.Sprintf("w%d", w) || e.IDNumber != fmt.Sprintf("g%d", g) || e.UserID != int64(g*10+k) || e.CMISID != fmt.Sprintf("w%d-g%d-%d", w, g, k) {
					t.Fatalf("writer %d, entry %d = %+v", w, i, e)
				}
			}
		}
	})
}
