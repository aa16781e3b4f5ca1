package store_test

// The store contract suite: one set of tests, each run on SQLite and on
// MariaDB, that says what every exported method of the staging store does.
// Tests go through the exported API only (DB() is used to set up states no
// method makes, such as a table that refuses writes), so that they hold
// whatever the store's internals become. The files contract_*_test.go hold
// the rest of the suite; dump_test.go, commit_test.go, inspect_test.go and
// lock_test.go hold older tests of the same contract.

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// eachEngine runs a test on every engine, each on a fresh, migrated store.
func eachEngine(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Helper()
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			fn(t, storetest.Open(t, engine))
		})
	}
}

// eachDSN runs a test on every engine with a fresh database, not opened
// nor migrated: the engine and its DSN, for tests that open it themselves.
func eachDSN(t *testing.T, fn func(t *testing.T, engine, dsn string)) {
	t.Helper()
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			eng, dsn := storetest.DSN(t, engine)
			fn(t, eng, dsn)
		})
	}
}

// collect reads a cursor to its end.
func collect[T any](t *testing.T, c *store.Cursor[T], err error) []T {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []T
	for c.Next() {
		out = append(out, c.Value())
	}
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// staged is everything staged, read through the streaming cursors.
type staged struct {
	groupings []store.GroupingRow
	groups    []store.GroupRow
	members   []store.MemberRow
}

func readStaged(t *testing.T, st *store.Store, f store.Filter) staged {
	t.Helper()
	ctx := context.Background()
	var s staged
	c1, err := st.StagedGroupings(ctx, f)
	s.groupings = collect(t, c1, err)
	c2, err := st.StagedGroups(ctx, f)
	s.groups = collect(t, c2, err)
	c3, err := st.StagedMembers(ctx, f)
	s.members = collect(t, c3, err)
	return s
}

func (s staged) grouping(t *testing.T, course int64, module string) store.GroupingRow {
	t.Helper()
	for _, g := range s.groupings {
		if g.CourseID == course && g.ModuleCode == module {
			return g
		}
	}
	t.Fatalf("no staged grouping %d/%s", course, module)
	return store.GroupingRow{}
}

func (s staged) group(t *testing.T, course int64, module, group string) store.GroupRow {
	t.Helper()
	for _, g := range s.groups {
		if g.CourseID == course && g.ModuleCode == module && g.GroupCode == group {
			return g
		}
	}
	t.Fatalf("no staged group %d/%s/%s", course, module, group)
	return store.GroupRow{}
}

func (s staged) member(t *testing.T, course int64, group, cmisid string) store.MemberRow {
	t.Helper()
	for _, m := range s.members {
		if m.CourseID == course && m.GroupCode == group && m.CMISID == cmisid {
			return m
		}
	}
	t.Fatalf("no staged member %d/%s/%s", course, group, cmisid)
	return store.MemberRow{}
}

// keys renders the staged rows' keys, in cursor order, e.g.
// "1/M1 | 1/M1/G1 1/M1/G2 | 1/G1/student/s1".
func (s staged) keys() string {
	var a, b, c []string
	for _, g := range s.groupings {
		a = append(a, fmt.Sprintf("%d/%s", g.CourseID, g.ModuleCode))
	}
	for _, g := range s.groups {
		b = append(b, fmt.Sprintf("%d/%s/%s", g.CourseID, g.ModuleCode, g.GroupCode))
	}
	for _, m := range s.members {
		c = append(c, fmt.Sprintf("%d/%s/%s/%s", m.CourseID, m.GroupCode, m.Role, m.CMISID))
	}
	return strings.Join(a, " ") + " | " + strings.Join(b, " ") + " | " + strings.Join(c, " ")
}

// whole is a time in whole seconds, which both engines keep exactly.
func whole(year, month, day int) time.Time {
	return time.Date(year, time.Month(month), day, 2, 15, 0, 0, time.UTC)
}

// module is the CMIS module every seeded course takes its groups from.
const module = "M1"

func idnumber(group string) string {
	if group == "" {
		return "cmis:" + module
	}
	return "cmis:" + module + ":" + group
}

// seed stages, for each course, the grouping of module M1, groups G1 and G2,
// and members: in G1 students s1 and s2 and tutor t1, in G2 student s1. All
// rows are flagged toadd, as a first stage leaves them.
func seed(t *testing.T, st *store.Store, courses ...int64) {
	t.Helper()
	c := &store.StageChanges{}
	for _, course := range courses {
		c.NewGroupings = append(c.NewGroupings, store.GroupingRow{CourseID: course, ModuleCode: module, IDNumber: idnumber(""), Name: "Module 1"})
		for _, g := range []string{"G1", "G2"} {
			c.NewGroups = append(c.NewGroups, store.GroupRow{CourseID: course, ModuleCode: module, GroupCode: g, IDNumber: idnumber(g), Name: "Group " + g})
		}
		for _, m := range []struct{ group, role, id string }{
			{"G1", store.RoleStudent, "s1"}, {"G1", store.RoleStudent, "s2"}, {"G1", store.RoleTutor, "t1"}, {"G2", store.RoleStudent, "s1"},
		} {
			c.NewMembers = append(c.NewMembers, store.MemberRow{CourseID: course, ModuleCode: module, GroupCode: m.group, Role: m.role, CMISID: m.id})
		}
	}
	if err := st.ApplyStage(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

// audited renders a course's audit trail (all courses when 0) as
// "object:action" words, oldest first.
func audited(t *testing.T, st *store.Store, course int64) string {
	t.Helper()
	entries, err := st.Audit(context.Background(), course, "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Object+":"+e.Action)
	}
	return strings.Join(out, " ")
}

// wantAudit checks a course's audit trail (all courses when 0), as
// audited renders it.
func wantAudit(t *testing.T, st *store.Store, course int64, want string) {
	t.Helper()
	if got := audited(t, st, course); got != want {
		t.Errorf("audit %q, want %q", got, want)
	}
}

func audit(course int64, object, action string) store.AuditEntry {
	return store.AuditEntry{RunID: "run", CourseID: course, Object: object, Action: action}
}

// snapshot renders every row of the tables that the staging writes change,
// to tell whether a failed call left them as they were.
func snapshot(t *testing.T, st *store.Store) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{store.TableGroupings, store.TableGroups, store.TableMembers, "mapped_modules",
		"cmissync_enrolments", "cmissync_frozen_courses", "cmissync_audit", "cmissync_audit_members", "cmissync_meta"} {
		rows, err := st.DB().Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				parts = append(parts, fmt.Sprint(v))
			}
			lines = append(lines, strings.Join(parts, "|"))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		sort.Strings(lines)
		fmt.Fprintf(&b, "%s:\n%s\n", table, strings.Join(lines, "\n"))
	}
	return b.String()
}

func TestContractApplyStage(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := st.ApplyStage(ctx, &store.StageChanges{}); err != nil {
			t.Fatalf("an empty batch: %v", err)
		}
		seed(t, st, 2, 1)
		s := readStaged(t, st, store.Filter{})
		// Sorted by key whatever the insertion order, every row toadd.
		if got, want := s.keys(), "1/M1 2/M1 | 1/M1/G1 1/M1/G2 2/M1/G1 2/M1/G2 | "+
			"1/G1/student/s1 1/G1/student/s2 1/G1/tutor/t1 1/G2/student/s1 2/G1/student/s1 2/G1/student/s2 2/G1/tutor/t1 2/G2/student/s1"; got != want {
			t.Fatalf("staged after a first stage:\n%s\nwant\n%s", got, want)
		}
		for _, g := range s.groupings {
			if !g.ToAdd || g.ToDelete || g.ToRename || g.Parked || g.MoodleID != 0 || g.IDNumber != idnumber("") || g.Name != "Module 1" || g.ID == 0 {
				t.Errorf("new grouping %+v", g)
			}
		}
		for _, g := range s.groups {
			if !g.ToAdd || g.ToDelete || g.Assigned || g.MoodleID != 0 || g.IDNumber != idnumber(g.GroupCode) {
				t.Errorf("new group %+v", g)
			}
		}
		for _, m := range s.members {
			if !m.ToAdd || m.ToDelete || m.MoodleUserID != 0 || !m.WaitingSince.IsZero() || m.AbsentRuns != 0 {
				t.Errorf("new member %+v", m)
			}
		}

		g1 := s.group(t, 1, module, "G1")
		s1 := s.member(t, 1, "G1", "s1")
		s2 := s.member(t, 1, "G1", "s2")
		gg := s.grouping(t, 1, module)
		// Absences are counted once per extract: the same dump twice counts
		// one, a new dump one more.
		for i, c := range []struct {
			dump string
			runs int
		}{{"d1", 1}, {"d1", 1}, {"d2", 2}} {
			batch := &store.StageChanges{MarkDelete: map[string][]store.MarkDelete{
				store.TableGroups:  {{ID: g1.ID, Reason: store.ReasonCMIS, Dump: c.dump}},
				store.TableMembers: {{ID: s1.ID, Reason: store.ReasonRMV, Dump: c.dump}, {ID: s2.ID, Reason: store.ReasonUnmapped, Dump: c.dump}},
			}}
			if batch.Len() != 3 {
				t.Fatalf("Len = %d, want 3", batch.Len())
			}
			if err := st.ApplyStage(ctx, batch); err != nil {
				t.Fatal(err)
			}
			s = readStaged(t, st, store.Filter{Courses: []int64{1}})
			g := s.group(t, 1, module, "G1")
			if !g.ToDelete || g.DeleteReason != store.ReasonCMIS || g.AbsentRuns != c.runs || g.AbsentDump != c.dump {
				t.Fatalf("mark %d: group %+v, want todelete cmis absent %d from %s", i, g, c.runs, c.dump)
			}
			if m := s.member(t, 1, "G1", "s1"); !m.ToDelete || m.DeleteReason != store.ReasonRMV || m.AbsentRuns != c.runs {
				t.Fatalf("mark %d: member %+v", i, m)
			}
			if m := s.member(t, 1, "G1", "s2"); m.DeleteReason != store.ReasonUnmapped {
				t.Fatalf("mark %d: member %+v", i, m)
			}
		}
		if other := readStaged(t, st, store.Filter{Courses: []int64{2}}); other.group(t, 2, module, "G1").ToDelete {
			t.Fatal("marking course 1 flagged course 2")
		}

		// Unmark clears the flag, the reason and the absences; Drop deletes;
		// Rename sets the wanted name and idnumber.
		if err := st.ApplyStage(ctx, &store.StageChanges{
			Unmark: map[string][]int64{store.TableGroups: {g1.ID}, store.TableMembers: {s1.ID}},
			Drop:   map[string][]int64{store.TableMembers: {s2.ID}},
			Rename: map[string][]store.Rename{store.TableGroupings: {{ID: gg.ID, Name: "Module One", IDNumber: "cmis:M1b"}}},
		}); err != nil {
			t.Fatal(err)
		}
		s = readStaged(t, st, store.Filter{Courses: []int64{1}})
		if g := s.group(t, 1, module, "G1"); g.ToDelete || g.DeleteReason != "" || g.AbsentRuns != 0 || g.AbsentDump != "" {
			t.Errorf("unmarked group %+v", g)
		}
		if m := s.member(t, 1, "G1", "s1"); m.ToDelete || m.DeleteReason != "" || m.AbsentRuns != 0 {
			t.Errorf("unmarked member %+v", m)
		}
		if len(s.members) != 3 {
			t.Errorf("after dropping s2: %s", s.keys())
		}
		// A rename of a row not yet in Moodle needs no torename: the create
		// sends the new name.
		if g := s.grouping(t, 1, module); g.Name != "Module One" || g.IDNumber != "cmis:M1b" || g.ToRename {
			t.Errorf("renamed grouping still to add %+v", g)
		}
	})
}

// TestContractRenameFlag: a row in Moodle is flagged torename when its
// wanted name or idnumber differs from what cmissync last set, and not
// when it is the same; SetRenameFlag and RecordRenamed set and clear it.
func TestContractRenameFlag(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		seed(t, st, 1)
		s := readStaged(t, st, store.Filter{})
		g1, gg := s.group(t, 1, module, "G1"), s.grouping(t, 1, module)
		if err := st.RecordCreated(ctx, store.TableGroups, []store.Created{{RowID: g1.ID, MoodleID: 10, Name: "Group G1"}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordCreated(ctx, store.TableGroupings, []store.Created{{RowID: gg.ID, MoodleID: 20, Name: "Module 1"}}, nil); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name, idnumber string
			want           bool
		}{
			{"Group G1", idnumber("G1"), false},    // unchanged
			{"Group G1 new", idnumber("G1"), true}, // new name
			{"Group G1", idnumber("G1"), false},    // back to the name in Moodle
			{"GROUP g1", idnumber("G1"), true},     // only the case changes
			{"Gröup G1", idnumber("G1"), true},     // only an accent changes
			{"Group G1", "cmis:other", true},       // new idnumber only
		} {
			if err := st.ApplyStage(ctx, &store.StageChanges{Rename: map[string][]store.Rename{store.TableGroups: {{ID: g1.ID, Name: c.name, IDNumber: c.idnumber}}}}); err != nil {
				t.Fatal(err)
			}
			g := readStaged(t, st, store.Filter{}).group(t, 1, module, "G1")
			if g.ToRename != c.want || g.Name != c.name || g.IDNumber != c.idnumber || g.MoodleName != "Group G1" {
				t.Errorf("rename to %q %q: %+v, want torename %v", c.name, c.idnumber, g, c.want)
			}
		}
		if err := st.RecordRenamed(ctx, store.TableGroups, []store.Created{{RowID: g1.ID, Name: "Group G1"}}, []store.AuditEntry{audit(1, "group", "rename")}); err != nil {
			t.Fatal(err)
		}
		if g := readStaged(t, st, store.Filter{}).group(t, 1, module, "G1"); g.ToRename || g.MoodleName != "Group G1" {
			t.Errorf("after RecordRenamed: %+v", g)
		}
		if err := st.RecordRenamed(ctx, store.TableGroupings, []store.Created{{RowID: gg.ID, Name: "Renamed"}}, nil); err != nil {
			t.Fatal(err)
		}
		if g := readStaged(t, st, store.Filter{}).grouping(t, 1, module); g.MoodleName != "Renamed" {
			t.Errorf("grouping after RecordRenamed: %+v", g)
		}
		// The drift policy: restore our name (flag) or keep Moodle's.
		for _, c := range []struct {
			table  string
			id     int64
			rename bool
			name   string
		}{
			{store.TableGroups, g1.ID, true, "Teacher's name"},
			{store.TableGroups, g1.ID, false, "Teacher's name"},
			{store.TableGroupings, gg.ID, true, "Other"},
		} {
			if err := st.SetRenameFlag(ctx, c.table, c.id, c.rename, c.name); err != nil {
				t.Fatal(err)
			}
			s := readStaged(t, st, store.Filter{})
			var flag bool
			var name string
			if c.table == store.TableGroups {
				flag, name = s.group(t, 1, module, "G1").ToRename, s.group(t, 1, module, "G1").MoodleName
			} else {
				flag, name = s.grouping(t, 1, module).ToRename, s.grouping(t, 1, module).MoodleName
			}
			if flag != c.rename || name != c.name {
				t.Errorf("SetRenameFlag(%s, %v, %q): torename %v, moodlename %q", c.table, c.rename, c.name, flag, name)
			}
		}
		wantAudit(t, st, 1, "group:rename")
	})
}

func TestContractRecordCreatedAndAssigned(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		seed(t, st, 1, 2)
		if owns, err := st.OwnsAnything(ctx, store.Filter{}); err != nil || owns {
			t.Fatalf("OwnsAnything before any create = %v, %v", owns, err)
		}
		s := readStaged(t, st, store.Filter{})
		g1, g2, gg := s.group(t, 1, module, "G1"), s.group(t, 1, module, "G2"), s.grouping(t, 1, module)
		if _, err := st.RecordFailure(ctx, store.TableGroups, g1.ID, "first try failed", 0); err != nil {
			t.Fatal(err)
		}
		err := st.RecordCreated(ctx, store.TableGroups, []store.Created{{RowID: g1.ID, MoodleID: 101, Name: "Group G1"}, {RowID: g2.ID, MoodleID: 102, Name: "Hand made", Adopted: true}},
			[]store.AuditEntry{audit(1, "group", "create"), audit(1, "group", "adopt")})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.RecordAssigned(ctx, []int64{g1.ID, g2.ID}, []store.AuditEntry{audit(1, "group", "assign")}); err != nil {
			t.Fatal(err)
		}
		c, err := st.StagedCourse(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range c.Groups {
			want := map[string]struct {
				id      int64
				name    string
				adopted bool
			}{"G1": {101, "Group G1", false}, "G2": {102, "Hand made", true}}[g.GroupCode]
			if g.ToAdd || g.ToRename || g.MoodleID != want.id || g.MoodleName != want.name || g.Adopted != want.adopted || !g.Assigned || g.Attempts != 0 || g.LastError != "" {
				t.Errorf("created group %+v", g)
			}
		}
		if owns, _ := st.OwnsAnything(ctx, store.Filter{Courses: []int64{1}}); !owns {
			t.Error("OwnsAnything(1) after a group was created = false")
		}
		if owns, _ := st.OwnsAnything(ctx, store.Filter{Courses: []int64{2}}); owns {
			t.Error("OwnsAnything(2) = true: course 2 has nothing in Moodle")
		}

		// Recording a group created again (recreated) unassigns it; an
		// adopted flag stays once set.
		if err := st.RecordCreated(ctx, store.TableGroups, []store.Created{{RowID: g2.ID, MoodleID: 103, Name: "Group G2"}}, nil); err != nil {
			t.Fatal(err)
		}
		s = readStaged(t, st, store.Filter{Courses: []int64{1}})
		if g := s.group(t, 1, module, "G2"); g.Assigned || !g.Adopted || g.MoodleID != 103 {
			t.Errorf("recreated group %+v, want unassigned, still adopted, id 103", g)
		}
		// A created (or recreated) grouping unassigns every group of its
		// course and module, so they are assigned to it again, and no other.
		if err := st.RecordAssigned(ctx, []int64{g2.ID, s.group(t, 1, module, "G1").ID}, nil); err != nil {
			t.Fatal(err)
		}
		other := readStaged(t, st, store.Filter{Courses: []int64{2}}).group(t, 2, module, "G1")
		if err := st.RecordAssigned(ctx, []int64{other.ID}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordCreated(ctx, store.TableGroupings, []store.Created{{RowID: gg.ID, MoodleID: 201, Name: "Module 1"}}, []store.AuditEntry{audit(1, "grouping", "create")}); err != nil {
			t.Fatal(err)
		}
		s = readStaged(t, st, store.Filter{})
		if g := s.grouping(t, 1, module); g.ToAdd || g.MoodleID != 201 || g.MoodleName != "Module 1" || g.Adopted {
			t.Errorf("created grouping %+v", g)
		}
		for _, g := range s.groups {
			wantAssigned := g.ID == other.ID
			if g.Assigned != wantAssigned {
				t.Errorf("after the grouping of course 1 was created, group %d/%s assigned = %v", g.CourseID, g.GroupCode, g.Assigned)
			}
		}
		wantAudit(t, st, 1, "group:create group:adopt group:assign grouping:create")
		for _, fn := range []func() error{
			func() error { return st.RecordCreated(ctx, store.TableMembers, nil, nil) },
			func() error { return st.RecordRenamed(ctx, "nope", nil, nil) },
			func() error { return st.SetRenameFlag(ctx, store.TableMembers, 1, true, "") },
		} {
			if err := fn(); err == nil {
				t.Error("a write to a table without names was accepted")
			}
		}
	})
}

// TestContractMembersAddedAndKnownUsers: an intent records the Moodle user
// of a membership still to add; only memberships in Moodle make a known user.
func TestContractMembersAddedAndKnownUsers(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		seed(t, st, 1)
		s := readStaged(t, st, store.Filter{})
		s1, s2, t1, s1g2 := s.member(t, 1, "G1", "s1"), s.member(t, 1, "G1", "s2"), s.member(t, 1, "G1", "t1"), s.member(t, 1, "G2", "s1")
		if err := st.RecordIntent(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordIntent(ctx, []store.AddedMember{{ID: s1.ID, MoodleUserID: 501}, {ID: s2.ID, MoodleUserID: 502}}); err != nil {
			t.Fatal(err)
		}
		s = readStaged(t, st, store.Filter{})
		if m := s.member(t, 1, "G1", "s1"); !m.ToAdd || m.MoodleUserID != 501 {
			t.Errorf("member with an intent %+v, want still toadd as user 501", m)
		}
		if known, err := st.KnownUsers(ctx); err != nil || len(known) != 0 {
			t.Errorf("KnownUsers from intents only = %v, %v; want none", known, err)
		}
		if err := st.MarkWaiting(ctx, []int64{t1.ID}, whole(2026, 11, 1)); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordMembersAdded(ctx, nil, nil); err != nil {
			t.Fatal(err)
		}
		err := st.RecordMembersAdded(ctx, []store.AddedMember{{ID: s1.ID, MoodleUserID: 501, Owned: true}, {ID: t1.ID, MoodleUserID: 601, Owned: false}, {ID: s1g2.ID, MoodleUserID: 501, Owned: true}},
			[]store.AuditEntry{audit(1, "member", "add"), audit(1, "member", "add")})
		if err != nil {
			t.Fatal(err)
		}
		s = readStaged(t, st, store.Filter{})
		if m := s.member(t, 1, "G1", "s1"); m.ToAdd || !m.Owned || m.MoodleUserID != 501 {
			t.Errorf("added member %+v", m)
		}
		if m := s.member(t, 1, "G1", "t1"); m.ToAdd || m.Owned || m.MoodleUserID != 601 || !m.WaitingSince.IsZero() || m.WaitingRuns != 0 {
			t.Errorf("member found in Moodle %+v, want not owned and no longer waiting", m)
		}
		known, err := st.KnownUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(known) != "map[s1:501 t1:601]" {
			t.Errorf("KnownUsers = %v, want s1 and t1 (s2 is only intended)", known)
		}
		wantAudit(t, st, 1, "member:add member:add")
		// An intent never touches a membership already in Moodle.
		if err := st.RecordIntent(ctx, []store.AddedMember{{ID: s1.ID, MoodleUserID: 999}}); err != nil {
			t.Fatal(err)
		}
		if m := readStaged(t, st, store.Filter{}).member(t, 1, "G1", "s1"); m.MoodleUserID != 501 {
			t.Errorf("an intent changed a member in Moodle: %+v", m)
		}
	})
}

// TestContractRecordIntentDone: memberships whose intent is in Moodle are
// recorded as owned, with the intent's user, no longer toadd or waiting,
// with their audit rows; nothing else changes.
func TestContractRecordIntentDone(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		seed(t, st, 1)
		s := readStaged(t, st, store.Filter{})
		s1, s2, t1 := s.member(t, 1, "G1", "s1"), s.member(t, 1, "G1", "s2"), s.member(t, 1, "G1", "t1")
		if err := st.RecordIntentDone(ctx, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordIntent(ctx, []store.AddedMember{{ID: s1.ID, MoodleUserID: 501}, {ID: s2.ID, MoodleUserID: 502}, {ID: t1.ID, MoodleUserID: 601}}); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkWaiting(ctx, []int64{s1.ID}, whole(2026, 11, 1)); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordIntentDone(ctx, []int64{s1.ID, s2.ID}, []store.AuditEntry{audit(1, "member", "add"), audit(1, "member", "add")}); err != nil {
			t.Fatal(err)
		}
		s = readStaged(t, st, store.Filter{})
		for cmisid, uid := range map[string]int64{"s1": 501, "s2": 502} {
			if m := s.member(t, 1, "G1", cmisid); m.ToAdd || !m.Owned || m.MoodleUserID != uid || !m.WaitingSince.IsZero() || m.WaitingRuns != 0 {
				t.Errorf("recorded member %s: %+v, want owned as user %d, not toadd nor waiting", cmisid, m, uid)
			}
		}
		if m := s.member(t, 1, "G1", "t1"); !m.ToAdd || m.MoodleUserID != 601 {
			t.Errorf("member not recorded: %+v, want still toadd with its intent", m)
		}
		wantAudit(t, st, 1, "member:add member:add")
	})
}

// TestContractDrops checks what each Drop and Forget method deletes, and
// that it deletes nothing else.
func TestContractDrops(t *testing.T) {
	cases := []struct {
		name string
		do   func(ctx context.Context, st *store.Store, s staged, t *testing.T) error
		// want is what stays of course 1; course 2 must stay whole.
		want  string
		audit string
	}{
		{"DropMembers", func(ctx context.Context, st *store.Store, s staged, t *testing.T) error {
			return st.DropMembers(ctx, []int64{s.member(t, 1, "G1", "s1").ID, s.member(t, 1, "G1", "t1").ID}, []store.AuditEntry{audit(1, "member", "remove")})
		}, "1/M1 | 1/M1/G1 1/M1/G2 | 1/G1/student/s2 1/G2/student/s1", "member:remove"},
		{"DropGroups", func(ctx context.Context, st *store.Store, s staged, t *testing.T) error {
			if err := st.DropGroups(ctx, nil, nil); err != nil {
				return err
			}
			return st.DropGroups(ctx, []store.GroupRow{s.group(t, 1, module, "G1")}, []store.AuditEntry{audit(1, "group", "delete")})
		}, "1/M1 | 1/M1/G2 | 1/G2/student/s1", "group:delete"},
		{"DropGroups, several", func(ctx context.Context, st *store.Store, s staged, t *testing.T) error {
			return st.DropGroups(ctx, []store.GroupRow{s.group(t, 1, module, "G2"), s.group(t, 1, module, "G1")}, []store.AuditEntry{audit(1, "group", "delete")})
		}, "1/M1 |  | ", "group:delete"},
		{"DropGroupings", func(ctx context.Context, st *store.Store, s staged, t *testing.T) error {
			return st.DropGroupings(ctx, []int64{s.grouping(t, 1, module).ID}, []store.AuditEntry{audit(1, "grouping", "delete")})
		}, " | 1/M1/G1 1/M1/G2 | 1/G1/student/s1 1/G1/student/s2 1/G1/tutor/t1 1/G2/student/s1", "grouping:delete"},
		{"RetireCourse", func(ctx context.Context, st *store.Store, s staged, t *testing.T) error {
			return st.RetireCourse(ctx, 1, []store.AuditEntry{audit(1, "course", "retire")})
		}, " |  | ", "course:retire"},
		{"ForgetCourse", func(ctx context.Context, st *store.Store, s staged, t *testing.T) error {
			n, err := st.ForgetCourse(ctx, 1, store.AuditEntry{RunID: "run", Object: "course", Action: "forget"})
			if n != (store.ForgetCounts{Groupings: 1, Groups: 2, Members: 4}) {
				t.Errorf("ForgetCourse counts %+v", n)
			}
			return err
		}, " |  | ", "course:forget"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, st *store.Store) {
				ctx := context.Background()
				seed(t, st, 1, 2)
				for _, course := range []int64{1, 2} {
					if err := st.UpsertMapping(ctx, store.Mapping{CourseID: course, ModuleCode: module}); err != nil {
						t.Fatal(err)
					}
				}
				if err := st.RecordEnrolments(ctx, []store.Enrolment{{CourseID: 1, UserID: 7, CMISID: "s1", Role: store.RoleStudent, RoleID: 5, Status: store.EnrolmentActive}}, nil); err != nil {
					t.Fatal(err)
				}
				before2 := readStaged(t, st, store.Filter{Courses: []int64{2}}).keys()
				if err := c.do(ctx, st, readStaged(t, st, store.Filter{}), t); err != nil {
					t.Fatal(err)
				}
				if got := readStaged(t, st, store.Filter{Courses: []int64{1}}).keys(); got != c.want {
					t.Errorf("course 1 after %s:\n%q\nwant\n%q", c.name, got, c.want)
				}
				if got := readStaged(t, st, store.Filter{Courses: []int64{2}}).keys(); got != before2 {
					t.Errorf("course 2 changed: %s", got)
				}
				if got := audited(t, st, 0); got != c.audit {
					t.Errorf("audit %q, want %q", got, c.audit)
				}
				// Only retiring a course touches its mappings; none touches
				// the enrolments cmissync made.
				ms, err := st.Mappings(ctx, 0)
				if err != nil {
					t.Fatal(err)
				}
				want1 := store.ActionAdd
				if c.name == "RetireCourse" {
					want1 = store.ActionRemove
				}
				if len(ms) != 2 || ms[0].GroupImport != want1 || ms[0].MappingAction != want1 || ms[1].GroupImport != store.ActionAdd {
					t.Errorf("mappings after %s: %+v", c.name, ms)
				}
				if es, err := st.Enrolments(ctx, store.Filter{}); err != nil || len(es) != 1 {
					t.Errorf("enrolments after %s: %+v, %v", c.name, es, err)
				}
			})
		})
	}
}

// TestContractForgetGroup: a group deleted in Moodle by hand is flagged to
// be created again with the members cmissync owns; the members it found
// there, and those to be removed anyway, go. A group flagged for deletion
// that is gone already is done with.
func TestContractForgetGroup(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		seed(t, st, 1)
		s := readStaged(t, st, store.Filter{})
		g1, g2 := s.group(t, 1, module, "G1"), s.group(t, 1, module, "G2")
		if err := st.RecordCreated(ctx, store.TableGroups, []store.Created{{RowID: g1.ID, MoodleID: 11, Name: "Group G1"}, {RowID: g2.ID, MoodleID: 12, Name: "Group G2"}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordAssigned(ctx, []int64{g1.ID}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordMembersAdded(ctx, []store.AddedMember{
			{ID: s.member(t, 1, "G1", "s1").ID, MoodleUserID: 1, Owned: true},
			{ID: s.member(t, 1, "G1", "s2").ID, MoodleUserID: 2, Owned: true},
			{ID: s.member(t, 1, "G1", "t1").ID, MoodleUserID: 3, Owned: false},
			{ID: s.member(t, 1, "G2", "s1").ID, MoodleUserID: 1, Owned: true},
		}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.ApplyStage(ctx, &store.StageChanges{MarkDelete: map[string][]store.MarkDelete{
			store.TableMembers: {{ID: s.member(t, 1, "G1", "s2").ID, Reason: store.ReasonCMIS, Dump: "d"}},
			store.TableGroups:  {{ID: g2.ID, Reason: store.ReasonCMIS, Dump: "d"}},
		}}); err != nil {
			t.Fatal(err)
		}

		if err := st.ForgetGroup(ctx, g1.ID, []store.AuditEntry{audit(1, "group", "recreate")}); err != nil {
			t.Fatal(err)
		}
		s = readStaged(t, st, store.Filter{})
		if g := s.group(t, 1, module, "G1"); !g.ToAdd || g.MoodleID != 0 || g.MoodleName != "" || g.Assigned || g.ToRename {
			t.Errorf("forgotten group %+v, want toadd without a Moodle id", g)
		}
		if got := s.keys(); got != "1/M1 | 1/M1/G1 1/M1/G2 | 1/G1/student/s1 1/G2/student/s1" {
			t.Errorf("after forgetting G1: %s (the member to delete and the one not owned must go)", got)
		}
		if m := s.member(t, 1, "G1", "s1"); !m.ToAdd || !m.Owned || m.MoodleUserID != 0 {
			t.Errorf("requeued member %+v", m)
		}
		if m := s.member(t, 1, "G2", "s1"); m.ToAdd || m.MoodleUserID != 1 {
			t.Errorf("member of another group changed: %+v", m)
		}

		if err := st.ForgetGroup(ctx, g2.ID, []store.AuditEntry{audit(1, "group", "gone")}); err != nil {
			t.Fatal(err)
		}
		if got := readStaged(t, st, store.Filter{}).keys(); got != "1/M1 | 1/M1/G1 | 1/G1/student/s1" {
			t.Errorf("a group flagged for deletion and gone from Moodle, or one of its members, is still staged: %s", got)
		}
		// An unknown row is an error, and its audit entry is not written.
		if err := st.ForgetGroup(ctx, 99999, []store.AuditEntry{audit(1, "group", "unknown")}); err == nil {
			t.Error("ForgetGroup of an unknown row succeeded")
		}
		wantAudit(t, st, 1, "group:recreate group:gone")
	})
}

// TestContractParking: RecordFailure counts failures and parks an item after
// parkAfter of them; Park parks at once; Parked lists; Unpark counts and
// resets.
func TestContractParking(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		seed(t, st, 1, 2)
		s := readStaged(t, st, store.Filter{})
		for _, c := range []struct {
			table     string
			id        int64
			parkAfter int
			// parked after each failure
			want []bool
		}{
			{store.TableGroups, s.group(t, 1, module, "G1").ID, 3, []bool{false, false, true, true}},
			{store.TableGroupings, s.grouping(t, 1, module).ID, 1, []bool{true}},
			{store.TableMembers, s.member(t, 1, "G1", "s1").ID, 2, []bool{false, true}},
			{store.TableMembers, s.member(t, 2, "G1", "s1").ID, 0, []bool{false, false, false, false, false}},
		} {
			for i, want := range c.want {
				parked, err := st.RecordFailure(ctx, c.table, c.id, fmt.Sprintf("failure %d", i+1), c.parkAfter)
				if err != nil {
					t.Fatal(err)
				}
				if parked != want {
					t.Errorf("%s %d, park after %d: failure %d parked = %v, want %v", c.table, c.id, c.parkAfter, i+1, parked, want)
				}
			}
		}
		if _, err := st.RecordFailure(ctx, "cmis_groups_dump", 1, "x", 1); err == nil {
			t.Error("RecordFailure on a dump table accepted")
		}
		if err := st.Park(ctx, store.TableGroups, s.group(t, 2, module, "G2").ID, "drift: forget"); err != nil {
			t.Fatal(err)
		}
		if err := st.Park(ctx, "mapped_modules", 1, "x"); err == nil {
			t.Error("Park on mapped_modules accepted")
		}

		parked, err := st.Parked(ctx, store.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range parked {
			got = append(got, fmt.Sprintf("%d %s %s %s %s %d %s", p.CourseID, p.Table, p.IDNumber, p.Name, p.CMISID, p.Attempts, p.LastError))
		}
		want := []string{
			"1 cmis_groupings cmis:M1 Module 1  1 failure 1",
			"1 cmis_groupmembers cmis:M1:G1 student s1 2 failure 2",
			"1 cmis_groups_course cmis:M1:G1 Group G1  4 failure 4",
			"2 cmis_groups_course cmis:M1:G2 Group G2  0 drift: forget",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("Parked:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if p := readStaged(t, st, store.Filter{}); !p.group(t, 1, module, "G1").Parked || p.group(t, 1, module, "G2").Parked || p.member(t, 2, "G1", "s1").Parked {
			t.Error("Parked flags in the staged rows disagree with Parked")
		}
		if c, _ := st.StagedCourse(ctx, 2); c.Members[0].Attempts != 5 || c.Members[0].LastError != "failure 5" {
			t.Errorf("a failure that never parks: %+v", c.Members[0])
		}
		pending, err := st.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pending["cmis_groups_course.parked"] != 2 || pending["cmis_groupings.parked"] != 1 || pending["cmis_groupmembers.parked"] != 1 {
			t.Errorf("Pending parked counts %v", pending)
		}

		n, err := st.Unpark(ctx, store.Filter{Courses: []int64{2}})
		if err != nil || n != 1 {
			t.Fatalf("Unpark(2) = %d, %v; want 1", n, err)
		}
		if n, _ := st.Unpark(ctx, store.Filter{Courses: []int64{2}}); n != 0 {
			t.Errorf("second Unpark(2) = %d, want 0", n)
		}
		n, err = st.Unpark(ctx, store.Filter{})
		if err != nil || n != 3 {
			t.Fatalf("Unpark(all) = %d, %v; want 3", n, err)
		}
		if p, _ := st.Parked(ctx, store.Filter{}); len(p) != 0 {
			t.Errorf("still parked: %+v", p)
		}
		c, _ := st.StagedCourse(ctx, 1)
		for _, g := range c.Groups {
			if g.Parked || g.Attempts != 0 {
				t.Errorf("unparked group %+v, want attempts reset", g)
			}
		}
		if c.Groups[0].LastError != "failure 4" {
			t.Errorf("Unpark forgot the last error: %+v", c.Groups[0])
		}
		// A long message is kept cut, not refused.
		if _, err := st.RecordFailure(ctx, store.TableGroups, s.group(t, 1, module, "G1").ID, strings.Repeat("é", 1500), 0); err != nil {
			t.Fatalf("a long failure message: %v", err)
		}
		if c, _ := st.StagedCourse(ctx, 1); len([]rune(c.Groups[0].LastError)) != 1000 {
			t.Errorf("last error kept %d characters, want 1000", len([]rune(c.Groups[0].LastError)))
		}
	})
}

// TestContractPending counts the flags per table.
func TestContractPending(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		p, err := st.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 9 {
			t.Errorf("Pending on empty staging has %d entries, want 9: %v", len(p), p)
		}
		for k, v := range p {
			if v != 0 {
				t.Errorf("empty staging: %s = %d", k, v)
			}
		}
		seed(t, st, 1, 2)
		s := readStaged(t, st, store.Filter{})
		if err := st.RecordCreated(ctx, store.TableGroups, []store.Created{{RowID: s.group(t, 1, module, "G1").ID, MoodleID: 1, Name: "x"}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.ApplyStage(ctx, &store.StageChanges{MarkDelete: map[string][]store.MarkDelete{
			store.TableMembers: {{ID: s.member(t, 1, "G1", "s1").ID, Reason: store.ReasonCMIS}, {ID: s.member(t, 2, "G1", "s1").ID, Reason: store.ReasonCMIS}},
		}}); err != nil {
			t.Fatal(err)
		}
		p, err = st.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{
			"cmis_groupings.toadd": 2, "cmis_groupings.todelete": 0, "cmis_groupings.parked": 0,
			"cmis_groups_course.toadd": 3, "cmis_groups_course.todelete": 0, "cmis_groups_course.parked": 0,
			"cmis_groupmembers.toadd": 8, "cmis_groupmembers.todelete": 2, "cmis_groupmembers.parked": 0,
		}
		if fmt.Sprint(p) != fmt.Sprint(want) {
			t.Errorf("Pending = %v\nwant      %v", p, want)
		}
	})
}

// TestContractAuditTrail: what the trail returns by course and run, and
// what AddedByAudit and AdoptedByAudit read from it.
func TestContractAuditTrail(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := st.RecordAudit(ctx, nil); err != nil {
			t.Fatal(err)
		}
		member := func(run string, course int64, group string, user int64, action string) store.AuditEntry {
			return store.AuditEntry{RunID: run, CourseID: course, Object: "member", IDNumber: idnumber(group), Action: action, UserID: user, CMISID: fmt.Sprint("c", user)}
		}
		object := func(run string, course int64, obj string, id int64, action string) store.AuditEntry {
			return store.AuditEntry{RunID: run, CourseID: course, Object: obj, Action: action, MoodleID: id, Name: strings.Repeat("n", 300), Detail: strings.Repeat("d", 1200)}
		}
		entries := []store.AuditEntry{
			member("r1", 1, "G1", 7, "add"),
			member("r1", 1, "G1", 8, "add"),
			member("r1", 1, "G2", 7, "add"),
			member("r1", 2, "G1", 9, "add"),
			member("r2", 1, "G1", 8, "remove"),
			member("r2", 1, "G2", 7, "remove"),
			member("r3", 1, "G2", 7, "add"),
			object("r1", 1, "group", 40, "adopt"),
			object("r1", 1, "group", 41, "adopt"),
			object("r1", 1, "grouping", 42, "adopt"),
			object("r1", 2, "group", 43, "adopt"),
			object("r2", 1, "group", 41, "give-back"),
			object("r2", 1, "group", 44, "create"),
		}
		if err := st.RecordAudit(ctx, entries); err != nil {
			t.Fatal(err)
		}
		all, err := st.Audit(ctx, 0, "")
		if err != nil || len(all) != len(entries) {
			t.Fatalf("Audit(all) = %d entries, %v", len(all), err)
		}
		if all[0] != entries[0] {
			t.Errorf("first entry %+v, want %+v", all[0], entries[0])
		}
		if e := all[7]; len([]rune(e.Name)) != 254 || len([]rune(e.Detail)) != 1000 {
			t.Errorf("long name and detail kept %d and %d characters, want 254 and 1000", len([]rune(e.Name)), len([]rune(e.Detail)))
		}
		for _, c := range []struct {
			course int64
			run    string
			want   int
		}{{1, "", 11}, {2, "", 2}, {0, "r2", 4}, {1, "r1", 6}, {3, "", 0}} {
			if got, err := st.Audit(ctx, c.course, c.run); err != nil || len(got) != c.want {
				t.Errorf("Audit(%d, %q) = %d entries, %v; want %d", c.course, c.run, len(got), err, c.want)
			}
		}

		added, err := st.AddedByAudit(ctx, 1, []store.AuditMember{
			{idnumber("G1"), 7}, // added
			{idnumber("G1"), 8}, // added, then removed
			{idnumber("G2"), 7}, // added, removed, added again
			{idnumber("G1"), 9}, // added in course 2 only
			{idnumber("G3"), 7}, // never
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(added) != fmt.Sprintf("map[{%s 7}:true {%s 7}:true]", idnumber("G1"), idnumber("G2")) {
			t.Errorf("AddedByAudit = %v", added)
		}
		if added, err := st.AddedByAudit(ctx, 1, nil); err != nil || len(added) != 0 {
			t.Errorf("AddedByAudit(none) = %v, %v", added, err)
		}

		adopted, err := st.AdoptedByAudit(ctx, 1, "group", []int64{40, 41, 42, 43, 44, 45})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(adopted) != "map[40:true]" {
			t.Errorf("AdoptedByAudit(group) = %v, want only 40 (41 given back, 42 a grouping, 43 another course, 44 created)", adopted)
		}
		if adopted, _ := st.AdoptedByAudit(ctx, 1, "grouping", []int64{42}); fmt.Sprint(adopted) != "map[42:true]" {
			t.Errorf("AdoptedByAudit(grouping) = %v", adopted)
		}
		// Many ids at once.
		var many []int64
		for i := range 1200 {
			many = append(many, int64(1000+i))
		}
		many = append(many, 40)
		if adopted, err := st.AdoptedByAudit(ctx, 1, "group", many); err != nil || fmt.Sprint(adopted) != "map[40:true]" {
			t.Errorf("AdoptedByAudit(1201 ids) = %v, %v", adopted, err)
		}
	})
}

// TestContractAuditInSameTransaction: every write that records audit
// entries does so in one transaction with its staging change. When the
// audit trail refuses the entries, the change is rolled back; when the
// change fails, no entry is written.
func TestContractAuditInSameTransaction(t *testing.T) {
	type call func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error
	cases := []struct {
		name string
		do   call
	}{
		{"RecordCreated", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.RecordCreated(ctx, store.TableGroups, []store.Created{{RowID: s.group(t, 1, module, "G1").ID, MoodleID: 5, Name: "x"}}, a)
		}},
		{"RecordRenamed", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.RecordRenamed(ctx, store.TableGroupings, []store.Created{{RowID: s.grouping(t, 1, module).ID, Name: "x"}}, a)
		}},
		{"RecordAssigned", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.RecordAssigned(ctx, []int64{s.group(t, 1, module, "G1").ID}, a)
		}},
		{"RecordMembersAdded", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.RecordMembersAdded(ctx, []store.AddedMember{{ID: s.member(t, 1, "G1", "s1").ID, MoodleUserID: 3, Owned: true}}, a)
		}},
		{"DropMembers", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.DropMembers(ctx, []int64{s.member(t, 1, "G1", "s1").ID}, a)
		}},
		{"DropGroups", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.DropGroups(ctx, []store.GroupRow{s.group(t, 1, module, "G1")}, a)
		}},
		{"DropGroupings", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.DropGroupings(ctx, []int64{s.grouping(t, 1, module).ID}, a)
		}},
		{"ForgetGroup", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.ForgetGroup(ctx, s.group(t, 1, module, "G1").ID, a)
		}},
		{"RespectRemovals", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.RespectRemovals(ctx, []int64{s.member(t, 1, "G1", "s1").ID}, a)
		}},
		{"RetireCourse", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.RetireCourse(ctx, 1, a)
		}},
		{"ForgetCourse", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			_, err := st.ForgetCourse(ctx, 1, a[0])
			return err
		}},
		{"RecordEnrolments", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.RecordEnrolments(ctx, []store.Enrolment{{CourseID: 1, UserID: 8, CMISID: "s2", Role: store.RoleStudent, RoleID: 5, Status: store.EnrolmentActive}}, a)
		}},
		{"ForgetEnrolments", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.ForgetEnrolments(ctx, []store.Enrolment{{CourseID: 1}}, a)
		}},
		{"SetFrozen", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.SetFrozen(ctx, 1, "too many changes", a)
		}},
		{"RecordAudit", func(ctx context.Context, st *store.Store, s staged, t *testing.T, a []store.AuditEntry) error {
			return st.RecordAudit(ctx, a)
		}},
	}
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		seed(t, st, 1)
		if err := st.UpsertMapping(ctx, store.Mapping{CourseID: 1, ModuleCode: module}); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordEnrolments(ctx, []store.Enrolment{{CourseID: 1, UserID: 7, CMISID: "s1", Role: store.RoleStudent, RoleID: 5, Status: store.EnrolmentActive}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.SetFrozen(ctx, 1, "", nil); err != nil {
			t.Fatal(err)
		}
		entries := []store.AuditEntry{audit(1, "test", "change")}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				// The audit trail refuses every entry: nothing changes.
				s := readStaged(t, st, store.Filter{})
				before := snapshot(t, st)
				if _, err := st.DB().Exec("ALTER TABLE cmissync_audit RENAME TO cmissync_audit_away"); err != nil {
					t.Fatal(err)
				}
				err := c.do(ctx, st, s, t, entries)
				if _, rerr := st.DB().Exec("ALTER TABLE cmissync_audit_away RENAME TO cmissync_audit"); rerr != nil {
					t.Fatal(rerr)
				}
				if err == nil {
					t.Fatal("succeeded although its audit entries could not be written")
				}
				if after := snapshot(t, st); after != before {
					t.Errorf("a write whose audit entries failed changed staging:\nbefore\n%s\nafter\n%s", before, after)
				}
			})
		}
	})
}

// TestContractEnrolments: enrolments made, suspended and reactivated are
// kept one per (course, user, role); forgetting drops a user's or a whole
// course's.
func TestContractEnrolments(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := st.RecordEnrolments(ctx, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.ForgetEnrolments(ctx, nil, nil); err != nil {
			t.Fatal(err)
		}
		enrol := func(course, user, roleID int64, status string) store.Enrolment {
			role := store.RoleStudent
			if roleID == 3 {
				role = store.RoleTutor
			}
			return store.Enrolment{CourseID: course, UserID: user, CMISID: fmt.Sprint("c", user), Role: role, RoleID: roleID, Status: status}
		}
		render := func(f store.Filter) string {
			t.Helper()
			es, err := st.Enrolments(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, e := range es {
				out = append(out, fmt.Sprintf("%d/%d/%s/%s/%d/%s", e.CourseID, e.UserID, e.CMISID, e.Role, e.RoleID, e.Status))
			}
			return strings.Join(out, " ")
		}
		if err := st.RecordEnrolments(ctx, []store.Enrolment{
			enrol(2, 7, 5, store.EnrolmentActive), enrol(1, 8, 5, store.EnrolmentActive), enrol(1, 7, 5, store.EnrolmentActive), enrol(1, 7, 3, store.EnrolmentActive),
		}, []store.AuditEntry{audit(1, "enrolment", "enrol")}); err != nil {
			t.Fatal(err)
		}
		if got, want := render(store.Filter{}), "1/7/c7/tutor/3/active 1/7/c7/student/5/active 1/8/c8/student/5/active 2/7/c7/student/5/active"; got != want {
			t.Errorf("Enrolments = %s\nwant %s", got, want)
		}
		// Suspending replaces the record.
		if err := st.RecordEnrolments(ctx, []store.Enrolment{enrol(1, 8, 5, store.EnrolmentSuspended)}, []store.AuditEntry{audit(1, "enrolment", "suspend")}); err != nil {
			t.Fatal(err)
		}
		if got, want := render(store.Filter{Courses: []int64{1}}), "1/7/c7/tutor/3/active 1/7/c7/student/5/active 1/8/c8/student/5/suspended"; got != want {
			t.Errorf("Enrolments(1) after a suspension = %s\nwant %s", got, want)
		}
		// Forgetting a user drops all their roles in the course.
		if err := st.ForgetEnrolments(ctx, []store.Enrolment{{CourseID: 1, UserID: 7}}, []store.AuditEntry{audit(1, "enrolment", "unenrol")}); err != nil {
			t.Fatal(err)
		}
		if got, want := render(store.Filter{}), "1/8/c8/student/5/suspended 2/7/c7/student/5/active"; got != want {
			t.Errorf("after forgetting user 7 in course 1: %s\nwant %s", got, want)
		}
		// A course deleted in Moodle: every enrolment of it.
		if err := st.ForgetEnrolments(ctx, []store.Enrolment{{CourseID: 2}}, nil); err != nil {
			t.Fatal(err)
		}
		if got := render(store.Filter{}); got != "1/8/c8/student/5/suspended" {
			t.Errorf("after forgetting course 2: %s", got)
		}
		wantAudit(t, st, 1, "enrolment:enrol enrolment:suspend enrolment:unenrol")
	})
}

func TestContractFrozenCourses(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		frozen := func() string {
			t.Helper()
			f, err := st.FrozenCourses(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprint(f)
		}
		if got := frozen(); got != "map[]" {
			t.Fatalf("FrozenCourses on empty staging = %s", got)
		}
		steps := []struct {
			course int64
			reason string
			want   string
		}{
			{1, "mass change held", "map[1:mass change held]"},
			{2, "operator", "map[1:mass change held 2:operator]"},
			{1, "again, other reason", "map[1:again, other reason 2:operator]"},
			{1, "", "map[2:operator]"},
			{3, "", "map[2:operator]"}, // unfreezing a course not frozen
			{2, strings.Repeat("r", 300), "map[2:" + strings.Repeat("r", 255) + "]"},
		}
		for _, s := range steps {
			if err := st.SetFrozen(ctx, s.course, s.reason, []store.AuditEntry{audit(s.course, "course", "freeze")}); err != nil {
				t.Fatal(err)
			}
			if got := frozen(); got != s.want {
				t.Errorf("after SetFrozen(%d, %.20q): %s, want %s", s.course, s.reason, got, s.want)
			}
		}
		wantAudit(t, st, 1, "course:freeze course:freeze course:freeze")
	})
}

// TestContractWaiting: MarkWaiting keeps the first day and counts runs;
// RetryWaiting makes them due again in the filter's courses, counting every
// waiting member whatever its runs; RespectRemovals flags memberships.
func TestContractWaiting(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		seed(t, st, 1, 2)
		s := readStaged(t, st, store.Filter{})
		a, b, c := s.member(t, 1, "G1", "s1").ID, s.member(t, 1, "G1", "s2").ID, s.member(t, 2, "G1", "s1").ID
		first, second := whole(2026, 11, 1), whole(2026, 11, 2)
		if err := st.MarkWaiting(ctx, []int64{a, c}, first); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkWaiting(ctx, []int64{a, b}, second); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkWaiting(ctx, nil, second); err != nil {
			t.Fatal(err)
		}
		s = readStaged(t, st, store.Filter{})
		for _, w := range []struct {
			course int64
			id     string
			since  string
			runs   int
		}{{1, "s1", "2026-11-01", 2}, {1, "s2", "2026-11-02", 1}, {2, "s1", "2026-11-01", 1}, {1, "t1", "", 0}} {
			m := s.member(t, w.course, "G1", w.id)
			since := ""
			if !m.WaitingSince.IsZero() {
				since = m.WaitingSince.UTC().Format("2006-01-02")
			}
			if since != w.since || m.WaitingRuns != w.runs {
				t.Errorf("member %d/%s waiting since %q for %d runs, want %q for %d", w.course, w.id, since, m.WaitingRuns, w.since, w.runs)
			}
		}
		for _, r := range []struct {
			f    store.Filter
			want int64
		}{
			{store.Filter{Courses: []int64{1}}, 2},
			{store.Filter{Courses: []int64{1}}, 2}, // again: they are still waiting
			{store.Filter{Courses: []int64{3}}, 0},
			{store.Filter{}, 3},
		} {
			n, err := st.RetryWaiting(ctx, r.f)
			if err != nil {
				t.Fatal(err)
			}
			if n != r.want {
				t.Errorf("RetryWaiting(%v) = %d, want %d", r.f.Courses, n, r.want)
			}
		}
		s = readStaged(t, st, store.Filter{})
		if m := s.member(t, 1, "G1", "s1"); m.WaitingRuns != 0 || !m.WaitingSince.Equal(first) {
			t.Errorf("retried member %+v, want runs 0 and its first day kept", m)
		}

		if err := st.RespectRemovals(ctx, []int64{b}, []store.AuditEntry{audit(1, "member", "respect")}); err != nil {
			t.Fatal(err)
		}
		s = readStaged(t, st, store.Filter{})
		if !s.member(t, 1, "G1", "s2").RemovedInMoodle || s.member(t, 1, "G1", "s1").RemovedInMoodle {
			t.Error("RespectRemovals flagged the wrong members")
		}
		wantAudit(t, st, 1, "member:respect")
	})
}

// TestContractFilter runs every method that takes a Filter with filters of
// no course, one, several and an unknown one, and checks which courses
// come back.
func TestContractFilter(t *testing.T) {
	filters := []struct {
		f    store.Filter
		want []int64
	}{
		{store.Filter{}, []int64{1, 2, 3}},
		{store.Filter{Courses: []int64{2}}, []int64{2}},
		{store.Filter{Courses: []int64{3, 1}}, []int64{1, 3}},
		{store.Filter{Courses: []int64{99}}, nil},
	}
	// Each read returns the courses of its rows.
	reads := []struct {
		name string
		read func(t *testing.T, st *store.Store, f store.Filter) []int64
	}{
		{"StagedGroupings", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			return courses(readStaged(t, st, f).groupings, func(g store.GroupingRow) int64 { return g.CourseID })
		}},
		{"StagedGroups", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			return courses(readStaged(t, st, f).groups, func(g store.GroupRow) int64 { return g.CourseID })
		}},
		{"StagedMembers", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			return courses(readStaged(t, st, f).members, func(m store.MemberRow) int64 { return m.CourseID })
		}},
		{"DesiredGroupings", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			c, err := st.DesiredGroupings(context.Background(), f)
			return courses(collect(t, c, err), func(g store.GroupingRow) int64 { return g.CourseID })
		}},
		{"DesiredGroups", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			c, err := st.DesiredGroups(context.Background(), f)
			return courses(collect(t, c, err), func(g store.GroupRow) int64 { return g.CourseID })
		}},
		{"DesiredMembers", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			c, err := st.DesiredMembers(context.Background(), f)
			return courses(collect(t, c, err), func(m store.MemberRow) int64 { return m.CourseID })
		}},
		{"Parked", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			p, err := st.Parked(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			return courses(p, func(p store.ParkedItem) int64 { return p.CourseID })
		}},
		{"Enrolments", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			es, err := st.Enrolments(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			return courses(es, func(e store.Enrolment) int64 { return e.CourseID })
		}},
		{"MappingsWithDump", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			ms, err := st.MappingsWithDump(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			return courses(ms, func(m store.MappingInfo) int64 { return m.CourseID })
		}},
		{"OwnsAnything", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			// Only course 1 owns anything.
			owns, err := st.OwnsAnything(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Courses) == 0 || slices.Contains(f.Courses, 1) {
				if !owns {
					t.Error("owns nothing")
				}
			} else if owns {
				t.Error("owns something")
			}
			return nil
		}},
		{"FindAudit", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			a, err := st.FindAudit(context.Background(), store.AuditQuery{Courses: f.Courses})
			if err != nil {
				t.Fatal(err)
			}
			return courses(a, func(a store.AuditRecord) int64 { return a.CourseID })
		}},
		{"CourseRestErrors", func(t *testing.T, st *store.Store, f store.Filter) []int64 {
			es, err := st.CourseRestErrors(context.Background(), f.Courses, 0)
			if err != nil {
				t.Fatal(err)
			}
			return courses(es, func(e store.RestError) int64 { return e.CourseID })
		}},
	}
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		seed(t, st, 1, 2, 3)
		extractInto(t, st, "r1", map[store.DumpTable][][]string{
			store.ModuleGroups: {{module, "G1", "Module 1", "Group G1"}},
			store.GroupMembers: {{module, "G1", "s1"}},
		}, nil)
		s := readStaged(t, st, store.Filter{})
		for _, c := range []int64{1, 2, 3} {
			if err := st.UpsertMapping(ctx, store.Mapping{CourseID: c, ModuleCode: module}); err != nil {
				t.Fatal(err)
			}
			if err := st.Park(ctx, store.TableMembers, s.member(t, c, "G1", "s1").ID, "test"); err != nil {
				t.Fatal(err)
			}
			if err := st.MarkWaiting(ctx, []int64{s.member(t, c, "G1", "s2").ID}, whole(2026, 11, 1)); err != nil {
				t.Fatal(err)
			}
			if err := st.RecordEnrolments(ctx, []store.Enrolment{{CourseID: c, UserID: 1, CMISID: "s1", Role: store.RoleStudent, RoleID: 5, Status: store.EnrolmentActive}},
				[]store.AuditEntry{audit(c, "enrolment", "enrol")}); err != nil {
				t.Fatal(err)
			}
			if err := st.RecordRestErrors(ctx, []store.RestError{{RunID: "r1", Step: "load", CourseID: c, Function: "f", Message: "m"}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.RecordCreated(ctx, store.TableGroups, []store.Created{{RowID: s.group(t, 1, module, "G1").ID, MoodleID: 5, Name: "x"}}, nil); err != nil {
			t.Fatal(err)
		}
		for _, r := range reads {
			for _, f := range filters {
				got := r.read(t, st, f.f)
				if r.name == "OwnsAnything" {
					continue
				}
				if fmt.Sprint(got) != fmt.Sprint(f.want) {
					t.Errorf("%s(%v) returned courses %v, want %v", r.name, f.f.Courses, got, f.want)
				}
			}
		}
		// The writes that take a filter count only its courses.
		for _, w := range []struct {
			name string
			do   func(store.Filter) (int64, error)
		}{{"RetryWaiting", func(f store.Filter) (int64, error) { return st.RetryWaiting(ctx, f) }}, {"Unpark", func(f store.Filter) (int64, error) { return st.Unpark(ctx, f) }}} {
			for _, f := range []struct {
				f    store.Filter
				want int64
			}{{store.Filter{Courses: []int64{99}}, 0}, {store.Filter{Courses: []int64{3, 1}}, 2}, {store.Filter{}, 1}} {
				if w.name == "RetryWaiting" && len(f.f.Courses) == 0 {
					f.want = 3 // every member still waits
				}
				if n, err := w.do(f.f); err != nil || n != f.want {
					t.Errorf("%s(%v) = %d, %v; want %d", w.name, f.f.Courses, n, err, f.want)
				}
			}
		}
	})
}

// courses returns the distinct course ids of rows, sorted.
func courses[T any](rows []T, course func(T) int64) []int64 {
	var out []int64
	for _, r := range rows {
		if c := course(r); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// TestContractDesired: the desired rows are the dump's groups and members of
// the modules active mappings name, sorted as the stage step merges them.
func TestContractDesired(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, m := range []store.Mapping{
			{CourseID: 1, ModuleCode: "M1"}, {CourseID: 1, ModuleCode: "M2"}, {CourseID: 2, ModuleCode: "M1"},
			{CourseID: 3, ModuleCode: "M1", GroupImport: store.ActionRemove},
			{CourseID: 5, ModuleCode: "M1", MappingAction: store.ActionRemove},
			{CourseID: 6, ModuleCode: "M8"}, // a module without groups in the dump
		} {
			if err := st.UpsertMapping(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		// Actions written by hand in lower case count as stage validates
		// them.
		if _, err := st.DB().Exec(`INSERT INTO mapped_modules (moodle_id, modulecode, group_import, mapping_action) VALUES (4, 'M3', 'add', 'Add')`); err != nil {
			t.Fatal(err)
		}
		extractInto(t, st, "r1", map[store.DumpTable][][]string{
			store.ModuleGroups: {{"M1", "G2", "Module 1", "Group 2"}, {"M1", "G1", "Module 1", "Group 1"}, {"M2", "G1", "Module 2", "Group 1"}, {"M3", "G1", "Module 3", "G"}, {"M9", "G1", "Unmapped", "G"}},
			store.GroupMembers: {{"M1", "G1", "s2"}, {"M1", "G1", "s1"}, {"M1", "G2", "s3"}, {"M1", "G9", "s4"}, {"M3", "G1", "s5"}, {"M9", "G1", "s6"}},
			store.GroupTutors:  {{"M1", "G1", "t1"}},
		}, nil)
		c1, err := st.DesiredGroupings(ctx, store.Filter{})
		var got []string
		for _, g := range collect(t, c1, err) {
			got = append(got, fmt.Sprintf("%d/%s/%s", g.CourseID, g.ModuleCode, g.ModuleName))
		}
		if want := "1/M1/Module 1 1/M2/Module 2 2/M1/Module 1 4/M3/Module 3"; strings.Join(got, " ") != want {
			t.Errorf("DesiredGroupings = %s\nwant %s", strings.Join(got, " "), want)
		}
		c2, err := st.DesiredGroups(ctx, store.Filter{})
		got = nil
		for _, g := range collect(t, c2, err) {
			got = append(got, fmt.Sprintf("%d/%s/%s/%s/%s", g.CourseID, g.ModuleCode, g.GroupCode, g.ModuleName, g.GroupName))
		}
		if want := "1/M1/G1/Module 1/Group 1 1/M1/G2/Module 1/Group 2 1/M2/G1/Module 2/Group 1 2/M1/G1/Module 1/Group 1 2/M1/G2/Module 1/Group 2 4/M3/G1/Module 3/G"; strings.Join(got, " ") != want {
			t.Errorf("DesiredGroups = %s\nwant %s", strings.Join(got, " "), want)
		}
		// A member of a group missing from the groups dump (M1/G9) is not
		// desired.
		c3, err := st.DesiredMembers(ctx, store.Filter{})
		got = nil
		for _, m := range collect(t, c3, err) {
			got = append(got, fmt.Sprintf("%d/%s/%s/%s/%s", m.CourseID, m.ModuleCode, m.GroupCode, m.Role, m.CMISID))
		}
		want := "1/M1/G1/student/s1 1/M1/G1/student/s2 1/M1/G1/tutor/t1 1/M1/G2/student/s3 2/M1/G1/student/s1 2/M1/G1/student/s2 2/M1/G1/tutor/t1 2/M1/G2/student/s3 4/M3/G1/student/s5"
		if strings.Join(got, " ") != want {
			t.Errorf("DesiredMembers = %s\nwant %s", strings.Join(got, " "), want)
		}

		// StageAllMembers stages the same rows, flagged toadd, course by
		// course while none is staged; a dry run only counts them.
		stageAll := func(dry bool, wantN int64, wantFirst bool, courses ...int64) {
			t.Helper()
			n, first, err := st.StageAllMembers(ctx, store.Filter{Courses: courses}, dry)
			if err != nil || n != wantN || first != wantFirst {
				t.Fatalf("StageAllMembers(%v, dry %v) = %d, %v, %v; want %d, %v", courses, dry, n, first, err, wantN, wantFirst)
			}
		}
		stagedMembers := func() string {
			var out []string
			for _, m := range readStaged(t, st, store.Filter{}).members {
				if !m.ToAdd || m.ToDelete || m.MoodleUserID != 0 || m.WaitingRuns != 0 {
					t.Errorf("staged member %+v: want a new row flagged toadd alone", m)
				}
				out = append(out, fmt.Sprintf("%d/%s/%s/%s/%s", m.CourseID, m.ModuleCode, m.GroupCode, m.Role, m.CMISID))
			}
			return strings.Join(out, " ")
		}
		stageAll(true, 4, true, 2)
		if got := stagedMembers(); got != "" {
			t.Fatalf("a dry StageAllMembers staged %s", got)
		}
		stageAll(false, 4, true, 2)
		stageAll(false, 0, false, 2)
		stageAll(false, 0, false) // course 2 is staged: not a first stage
		stageAll(false, 5, true, 1, 4)
		if got := stagedMembers(); got != want {
			t.Errorf("after StageAllMembers, staged members = %s\nwant %s", got, want)
		}
		for _, c := range []struct {
			f    store.Filter
			want string
		}{{store.Filter{}, "[1 2 4]"}, {store.Filter{Courses: []int64{2, 3}}, "[2]"}} {
			if got, err := st.MemberCourses(ctx, c.f); err != nil || fmt.Sprint(got) != c.want {
				t.Errorf("MemberCourses(%v) = %v, %v; want %s", c.f.Courses, got, err, c.want)
			}
		}
	})
}

// TestContractMappings: UpsertMapping inserts, then updates in place;
// defaults are ADD; an action other than ADD or RMV is refused and changes
// nothing.
func TestContractMappings(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		render := func(course int64) string {
			t.Helper()
			ms, err := st.Mappings(ctx, course)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, m := range ms {
				if m.ID == 0 {
					t.Errorf("mapping without an id: %+v", m)
				}
				out = append(out, fmt.Sprintf("%d/%s/%s/%s", m.CourseID, m.ModuleCode, m.GroupImport, m.MappingAction))
			}
			return strings.Join(out, " ")
		}
		steps := []struct {
			m       store.Mapping
			wantErr bool
			want    string // all mappings after the step
		}{
			{store.Mapping{CourseID: 2, ModuleCode: "M1"}, false, "2/M1/ADD/ADD"},
			{store.Mapping{CourseID: 1, ModuleCode: "M2", MappingAction: store.ActionRemove}, false, "1/M2/ADD/RMV 2/M1/ADD/ADD"},
			{store.Mapping{CourseID: 2, ModuleCode: "M1", GroupImport: store.ActionRemove}, false, "1/M2/ADD/RMV 2/M1/RMV/ADD"},
			{store.Mapping{CourseID: 2, ModuleCode: "M1", GroupImport: store.ActionAdd, MappingAction: store.ActionRemove}, false, "1/M2/ADD/RMV 2/M1/ADD/RMV"},
			{store.Mapping{CourseID: 2, ModuleCode: "M1", GroupImport: "DEL"}, true, "1/M2/ADD/RMV 2/M1/ADD/RMV"},
			{store.Mapping{CourseID: 2, ModuleCode: "M1", MappingAction: "add"}, true, "1/M2/ADD/RMV 2/M1/ADD/RMV"},
			{store.Mapping{CourseID: 3, ModuleCode: "M1", GroupImport: "X"}, true, "1/M2/ADD/RMV 2/M1/ADD/RMV"},
		}
		for i, s := range steps {
			err := st.UpsertMapping(ctx, s.m)
			if (err != nil) != s.wantErr {
				t.Fatalf("step %d: UpsertMapping(%+v) = %v, want error %v", i, s.m, err, s.wantErr)
			}
			if got := render(0); got != s.want {
				t.Fatalf("step %d: mappings %s, want %s", i, got, s.want)
			}
		}
		if got := render(2); got != "2/M1/ADD/RMV" {
			t.Errorf("Mappings(2) = %s", got)
		}
		if got := render(7); got != "" {
			t.Errorf("Mappings(7) = %s", got)
		}
		ms, _ := st.Mappings(ctx, 2)
		if err := st.UpsertMapping(ctx, store.Mapping{CourseID: 2, ModuleCode: "M1"}); err != nil {
			t.Fatal(err)
		}
		if again, _ := st.Mappings(ctx, 2); again[0].ID != ms[0].ID {
			t.Errorf("an update changed the row id from %d to %d", ms[0].ID, again[0].ID)
		}
	})
}

// TestContractSortOrder: the desired and staged streams come sorted in Go's
// byte order of their keys on every engine, whatever the case, digits or
// accents of the codes: the stage step merge-joins them and compares keys
// in Go.
func TestContractSortOrder(t *testing.T) {
	codes := []string{"b", "B", "a", "A", "é", "e", "Z", "10", "9", "a-b", "a_b", "É"}
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := st.UpsertMapping(ctx, store.Mapping{CourseID: 1, ModuleCode: "M"}); err != nil {
			t.Fatal(err)
		}
		rows := map[store.DumpTable][][]string{}
		c := &store.StageChanges{}
		for _, code := range codes {
			rows[store.ModuleGroups] = append(rows[store.ModuleGroups], []string{"M", code, "", ""})
			rows[store.GroupMembers] = append(rows[store.GroupMembers], []string{"M", "a", code})
			rows[store.GroupTutors] = append(rows[store.GroupTutors], []string{"M", "a", code})
			c.NewGroups = append(c.NewGroups, store.GroupRow{CourseID: 1, ModuleCode: "M", GroupCode: code, IDNumber: "cmis:M:" + code, Name: code})
			c.NewMembers = append(c.NewMembers, store.MemberRow{CourseID: 1, ModuleCode: "M", GroupCode: "a", Role: store.RoleStudent, CMISID: code})
		}
		extractInto(t, st, "r1", rows, nil)
		if err := st.ApplyStage(ctx, c); err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(codes)
		sort.Strings(want)
		check := func(what string, got []string) {
			t.Helper()
			if !slices.Equal(got, want) {
				t.Errorf("%s in the order %q, want %q", what, got, want)
			}
		}
		dg, err := st.DesiredGroups(ctx, store.Filter{})
		check("DesiredGroups", keysOf(collect(t, dg, err), func(g store.GroupRow) string { return g.GroupCode }))
		dm, err := st.DesiredMembers(ctx, store.Filter{})
		var students, tutors []string
		for _, m := range collect(t, dm, err) {
			if m.Role == store.RoleStudent {
				students = append(students, m.CMISID)
			} else {
				tutors = append(tutors, m.CMISID)
			}
		}
		check("DesiredMembers (students)", students)
		check("DesiredMembers (tutors)", tutors)
		s := readStaged(t, st, store.Filter{})
		check("StagedGroups", keysOf(s.groups, func(g store.GroupRow) string { return g.GroupCode }))
		check("StagedMembers", keysOf(s.members, func(m store.MemberRow) string { return m.CMISID }))
		if groups, err := st.DumpGroups(ctx, "M"); err != nil || len(groups) != len(codes) {
			t.Errorf("DumpGroups = %d groups, %v; want every code apart", len(groups), err)
		}
	})
}

func keysOf[T any](rows []T, key func(T) string) []string {
	var out []string
	for _, r := range rows {
		out = append(out, key(r))
	}
	return out
}

// TestContractLargeBatches: batches larger than one statement takes (many
// rows to insert, many ids to update or delete) are written whole.
func TestContractLargeBatches(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		const n = 1234
		c := &store.StageChanges{}
		for i := range n {
			c.NewMembers = append(c.NewMembers, store.MemberRow{CourseID: 1, ModuleCode: module, GroupCode: "G1", Role: store.RoleStudent, CMISID: fmt.Sprintf("s%05d", i)})
		}
		if err := st.ApplyStage(ctx, c); err != nil {
			t.Fatal(err)
		}
		members := readStaged(t, st, store.Filter{}).members
		if len(members) != n {
			t.Fatalf("%d members staged, want %d", len(members), n)
		}
		var ids, marks []int64
		var md []store.MarkDelete
		for i, m := range members {
			ids = append(ids, m.ID)
			if i%10 != 0 {
				marks = append(marks, m.ID)
				md = append(md, store.MarkDelete{ID: m.ID, Reason: store.ReasonCMIS, Dump: "d1"})
			}
		}
		if err := st.ApplyStage(ctx, &store.StageChanges{MarkDelete: map[string][]store.MarkDelete{store.TableMembers: md}}); err != nil {
			t.Fatal(err)
		}
		if p, _ := st.Pending(ctx); p["cmis_groupmembers.todelete"] != int64(len(marks)) {
			t.Fatalf("todelete %d, want %d", p["cmis_groupmembers.todelete"], len(marks))
		}
		if err := st.MarkWaiting(ctx, ids, whole(2026, 11, 1)); err != nil {
			t.Fatal(err)
		}
		if n, err := st.RetryWaiting(ctx, store.Filter{}); err != nil || n != int64(len(ids)) {
			t.Fatalf("RetryWaiting = %d, %v; want %d", n, err, len(ids))
		}
		// The intent, then the record, of more members than one join
		// statement takes, one of them given twice (its last values
		// count), with as many audit rows.
		var intent, recorded []store.AddedMember
		var addAudit []store.AuditEntry
		for i, m := range members {
			intent = append(intent, store.AddedMember{ID: m.ID, MoodleUserID: int64(5000 + i)})
			recorded = append(recorded, store.AddedMember{ID: m.ID, MoodleUserID: int64(5000 + i), Owned: i%3 != 0})
			addAudit = append(addAudit, store.AuditEntry{RunID: "big", CourseID: 1, Object: "member", IDNumber: "g", UserID: int64(5000 + i), CMISID: m.CMISID, Action: "add", Detail: "tab\there"})
		}
		intent = append(intent, store.AddedMember{ID: members[0].ID, MoodleUserID: 4999})
		if err := st.RecordIntent(ctx, intent); err != nil {
			t.Fatal(err)
		}
		for i, m := range readStaged(t, st, store.Filter{}).members {
			want := int64(5000 + i)
			if i == 0 {
				want = 4999
			}
			if m.MoodleUserID != want || !m.ToAdd {
				t.Fatalf("after the intent, member %d: user %d, toadd %v; want %d, toadd", i, m.MoodleUserID, m.ToAdd, want)
			}
		}
		if err := st.RecordMembersAdded(ctx, recorded, addAudit); err != nil {
			t.Fatal(err)
		}
		for i, m := range readStaged(t, st, store.Filter{}).members {
			if m.MoodleUserID != int64(5000+i) || m.ToAdd || m.Owned != (i%3 != 0) {
				t.Fatalf("recorded member %d: %+v; want user %d, owned %v", i, m, 5000+i, i%3 != 0)
			}
		}
		if got, err := st.Audit(ctx, 1, "big"); err != nil || len(got) != n || got[n-1].Detail != "tab\there" || got[n-1].CMISID != members[n-1].CMISID {
			t.Fatalf("audit of the record: %d rows (%v), last %+v", len(got), err, got[len(got)-1])
		}
		var audit []store.AuditEntry
		var members2 []store.AuditMember
		for i := range marks {
			audit = append(audit, store.AuditEntry{RunID: "r", CourseID: 1, Object: "member", IDNumber: fmt.Sprintf("g%04d", i), UserID: int64(i), Action: "add"})
			members2 = append(members2, store.AuditMember{IDNumber: fmt.Sprintf("g%04d", i), UserID: int64(i)})
		}
		if err := st.DropMembers(ctx, marks, audit); err != nil {
			t.Fatal(err)
		}
		if left := readStaged(t, st, store.Filter{}).members; len(left) != n-len(marks) {
			t.Fatalf("%d members left, want %d", len(left), n-len(marks))
		}
		added, err := st.AddedByAudit(ctx, 1, members2)
		if err != nil || len(added) != len(members2) {
			t.Fatalf("AddedByAudit over %d groups = %d, %v", len(members2), len(added), err)
		}
		if got := len(audited(t, st, 1)); got == 0 {
			t.Fatal("no audit")
		}
		if err := st.ApplyStage(ctx, &store.StageChanges{Drop: map[string][]int64{store.TableMembers: ids}}); err != nil {
			t.Fatal(err)
		}
		if left := readStaged(t, st, store.Filter{}).members; len(left) != 0 {
			t.Fatalf("%d members left after dropping all", len(left))
		}

		// Groups created, more than one join statement takes.
		var groups []store.GroupRow
		for i := range n {
			groups = append(groups, store.GroupRow{CourseID: 2, ModuleCode: module, GroupCode: fmt.Sprintf("G%05d", i), IDNumber: fmt.Sprintf("cmis:M1:G%05d", i), Name: "G"})
		}
		if err := st.ApplyStage(ctx, &store.StageChanges{NewGroups: groups}); err != nil {
			t.Fatal(err)
		}
		var created []store.Created
		for i, g := range readStaged(t, st, store.Filter{}).groups {
			created = append(created, store.Created{RowID: g.ID, MoodleID: int64(9000 + i), Name: fmt.Sprintf("Group \t%d é", i), Adopted: i%2 == 0})
		}
		if err := st.RecordCreated(ctx, store.TableGroups, created, nil); err != nil {
			t.Fatal(err)
		}
		for i, g := range readStaged(t, st, store.Filter{}).groups {
			if g.MoodleID != int64(9000+i) || g.MoodleName != fmt.Sprintf("Group \t%d é", i) || g.Adopted != (i%2 == 0) || g.ToAdd {
				t.Fatalf("created group %d: %+v", i, g)
			}
		}
		// Renamed, more than one join statement takes: flagged where the
		// name (as bytes) or the idnumber changes.
		var renames []store.Rename
		want := map[int64]bool{}
		for i, g := range readStaged(t, st, store.Filter{}).groups {
			r := store.Rename{ID: g.ID, Name: g.MoodleName, IDNumber: g.IDNumber}
			switch i % 4 {
			case 1:
				r.Name = fmt.Sprintf("Group \t%d É", i)
			case 2:
				r.IDNumber += "b"
			}
			renames = append(renames, r)
			want[g.ID] = i%4 == 1 || i%4 == 2
		}
		if err := st.ApplyStage(ctx, &store.StageChanges{Rename: map[string][]store.Rename{store.TableGroups: renames}}); err != nil {
			t.Fatal(err)
		}
		for i, g := range readStaged(t, st, store.Filter{}).groups {
			if g.ToRename != want[g.ID] || g.Name != renames[i].Name || g.IDNumber != renames[i].IDNumber {
				t.Fatalf("renamed group %d: %+v, want %+v, torename %v", i, g, renames[i], want[g.ID])
			}
		}
	})
}

// TestContractParkedShowsTheGroupIDNumber: a parked membership is listed
// with its group's idnumber as stage made it, escapes included, not one
// rebuilt from the codes.
func TestContractParkedShowsTheGroupIDNumber(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c := &store.StageChanges{
			NewGroups:  []store.GroupRow{{CourseID: 7, ModuleCode: "M:1", GroupCode: "G%1", IDNumber: "cmis:M%3A1:G%251", Name: "Group"}},
			NewMembers: []store.MemberRow{{CourseID: 7, ModuleCode: "M:1", GroupCode: "G%1", Role: store.RoleStudent, CMISID: "s1"}},
		}
		if err := st.ApplyStage(ctx, c); err != nil {
			t.Fatal(err)
		}
		// A membership whose group row is gone keeps the plain codes.
		orphan := &store.StageChanges{NewMembers: []store.MemberRow{{CourseID: 7, ModuleCode: "M2", GroupCode: "G2", Role: store.RoleStudent, CMISID: "s2"}}}
		if err := st.ApplyStage(ctx, orphan); err != nil {
			t.Fatal(err)
		}
		for _, m := range readStaged(t, st, store.Filter{}).members {
			if err := st.Park(ctx, store.TableMembers, m.ID, "refused"); err != nil {
				t.Fatal(err)
			}
		}
		parked, err := st.Parked(ctx, store.Filter{Courses: []int64{7}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range parked {
			got = append(got, p.IDNumber+" "+p.CMISID)
		}
		if want := "cmis:M%3A1:G%251 s1, cmis:M2:G2 s2"; strings.Join(got, ", ") != want {
			t.Errorf("Parked idnumbers %q, want %q", strings.Join(got, ", "), want)
		}
	})
}
