package load_test

import (
	"context"
	"testing"

	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage/store"
)

// Creates and assignments are recorded as their calls come back, side by
// side where staging allows it (MariaDB): every staged group and grouping
// must still hold the Moodle id of the object made for it, its audit entry
// the same id, and Moodle every assignment staging records.
func TestCreatesRecordedSideBySideKeepTheirIDs(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		const groups = 60
		// 20 variables a call: 3 groups a create call, 6 assignments an
		// assign call, 8 calls at once.
		f := newFixture(t, engine, groups, 1, moodlesim.Options{MaxInputVars: 20})
		res := f.loadWith(load.Options{Concurrency: 8})
		if res.GroupsCreated != groups || res.GroupingsCreated != 1 || res.Assigned != groups {
			t.Fatalf("load: %+v", res.Map())
		}
		ctx := context.Background()
		state := f.sim.State()
		moodleGroup := map[int64]moodlesim.Group{}
		for _, g := range state.Groups {
			moodleGroup[int64(g.ID)] = g
		}
		if len(state.Groupings) != 1 {
			t.Fatalf("%d groupings in Moodle", len(state.Groupings))
		}
		grouping := state.Groupings[0]
		inGrouping := map[int64]bool{}
		for _, id := range grouping.Groups {
			inGrouping[int64(id)] = true
		}
		var groupingID int64
		var groupingIDNumber string
		if err := f.st.DB().QueryRowContext(ctx, `SELECT moodlegroupingid, idnumber FROM cmis_groupings`).Scan(&groupingID, &groupingIDNumber); err != nil {
			t.Fatal(err)
		}
		if groupingID != int64(grouping.ID) || groupingIDNumber != grouping.IDNumber {
			t.Fatalf("staged grouping %d %q, Moodle's %d %q", groupingID, groupingIDNumber, grouping.ID, grouping.IDNumber)
		}
		rows, err := f.st.DB().QueryContext(ctx, `SELECT moodlegroupid, idnumber, assigned FROM cmis_groups_course`)
		if err != nil {
			t.Fatal(err)
		}
		staged := map[string]int64{}
		for rows.Next() {
			var id int64
			var idnumber string
			var assigned bool
			if err := rows.Scan(&id, &idnumber, &assigned); err != nil {
				t.Fatal(err)
			}
			if g, ok := moodleGroup[id]; !ok || g.IDNumber != idnumber {
				t.Errorf("staged group %q holds Moodle id %d, which is %+v", idnumber, id, g)
			}
			if !assigned || !inGrouping[id] {
				t.Errorf("group %q (%d): staged assigned %v, in Moodle's grouping %v", idnumber, id, assigned, inGrouping[id])
			}
			staged[idnumber] = id
		}
		rows.Close()
		if len(staged) != groups {
			t.Fatalf("%d staged groups, want %d", len(staged), groups)
		}
		audit, err := f.st.FindAudit(ctx, store.AuditQuery{Courses: []int64{int64(f.course)}})
		if err != nil {
			t.Fatal(err)
		}
		created := 0
		for _, a := range audit {
			if a.Object == "group" && a.Action == "create" {
				created++
				if staged[a.IDNumber] != a.MoodleID {
					t.Errorf("audit: group %q created as %d, staged %d", a.IDNumber, a.MoodleID, staged[a.IDNumber])
				}
			}
		}
		if created != groups {
			t.Fatalf("%d audit entries of groups created, want %d", created, groups)
		}
	})
}
