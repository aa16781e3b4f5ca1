package stage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// deleteReasons maps "course/idnumber" of every staged group flagged
// todelete to its delete reason.
func deleteReasons(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, g := range stagedGroups(t, st) {
		if g.ToDelete {
			out[k] = g.DeleteReason
		}
	}
	return out
}

func setMappingRaw(t *testing.T, st *store.Store, course int64, module, groupImport, action string) {
	t.Helper()
	if _, err := st.DB().ExecContext(context.Background(), `UPDATE mapped_modules SET group_import = ?, mapping_action = ? WHERE moodle_id = ? AND modulecode = ?`,
		groupImport, action, course, module); err != nil {
		t.Fatal(err)
	}
}

// TestStageFlagsDeletionsWithTheirReason: the load step decides from the
// reason whether a deletion has evidence; a mapping row that is not
// understood, or that disappeared, is never an explicit request.
func TestStageFlagsDeletionsWithTheirReason(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := storetest.Open(t, engine)
			writeDump(t, st, baseDump)
			for _, m := range []store.Mapping{{CourseID: 2, ModuleCode: "COMP1001"}, {CourseID: 3, ModuleCode: "MATH1001"}, {CourseID: 4, ModuleCode: "HIST2002"}, {CourseID: 5, ModuleCode: "COMP1001"}} {
				if err := st.UpsertMapping(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			// Values in any case and with spaces are the values they spell.
			setMappingRaw(t, st, 5, "COMP1001", "add", "Add")
			res := runStage(t, st)
			if res.Groups.Add != 6 || len(res.BadMappings) != 0 {
				t.Fatalf("first stage: %+v", res)
			}
			pretendLoaded(t, st)

			less := baseDump
			less.groups = baseDump.groups[1:] // COMP1001 SEM01 leaves CMIS
			writeDump(t, st, less)
			setMappingRaw(t, st, 3, "MATH1001", "RMV", "ADD")
			setMappingRaw(t, st, 4, "HIST2002", "ADX", "ADD")
			if _, err := st.DB().ExecContext(ctx, `DELETE FROM mapped_modules WHERE moodle_id = 5`); err != nil {
				t.Fatal(err)
			}
			res = runStage(t, st)
			if len(res.BadMappings) != 1 || res.BadMappings[0].CourseID != 4 || res.BadMappings[0].Reason != `group_import "ADX" is not ADD or RMV` {
				t.Fatalf("bad mappings = %+v", res.BadMappings)
			}
			want := map[string]string{
				"cmis:COMP1001:SEM01@2": store.ReasonCMIS,
				"cmis:MATH1001:SEM01@3": store.ReasonRMV,
				"cmis:HIST2002:LAB01@4": store.ReasonBadMapping,
				"cmis:COMP1001:SEM01@5": store.ReasonUnmapped,
				"cmis:COMP1001:SEM02@5": store.ReasonUnmapped,
			}
			got := deleteReasons(t, st)
			if len(got) != len(want) {
				t.Fatalf("flagged %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: reason %q, want %q", k, got[k], v)
				}
			}
			runStage(t, st)
			if again := deleteReasons(t, st); len(again) != len(got) {
				t.Fatalf("a second stage changed the flags: %v", again)
			}
			// The mapping comes back as RMV: the reason follows it.
			if err := st.UpsertMapping(ctx, store.Mapping{CourseID: 5, ModuleCode: "COMP1001", GroupImport: store.ActionRemove, MappingAction: store.ActionRemove}); err != nil {
				t.Fatal(err)
			}
			runStage(t, st)
			if got := deleteReasons(t, st); got["cmis:COMP1001:SEM02@5"] != store.ReasonRMV {
				t.Fatalf("after RMV: %v", got)
			}
		})
	}
}

// TestEmptyMappingsHoldWhileCmissyncOwnsGroups: an emptied mapped_modules
// is no request to remove everything.
func TestEmptyMappingsHoldWhileCmissyncOwnsGroups(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := storetest.Open(t, engine)
			writeDump(t, st, baseDump)
			// Nothing owned yet: an empty table is simply nothing to do.
			if _, err := stage.Run(ctx, st, stage.Options{}, quietLog()); err != nil {
				t.Fatalf("empty mappings with nothing owned: %v", err)
			}
			if err := st.UpsertMapping(ctx, store.Mapping{CourseID: 2, ModuleCode: "COMP1001"}); err != nil {
				t.Fatal(err)
			}
			runStage(t, st)
			pretendLoaded(t, st)
			if _, err := st.DB().ExecContext(ctx, `DELETE FROM mapped_modules`); err != nil {
				t.Fatal(err)
			}
			_, err := stage.Run(ctx, st, stage.Options{}, quietLog())
			var he *stage.HoldError
			if !errors.As(err, &he) {
				t.Fatalf("stage with emptied mappings: %v, want a hold", err)
			}
			if len(deleteReasons(t, st)) != 0 {
				t.Fatal("a held stage flagged deletions")
			}
			res, err := stage.Run(ctx, st, stage.Options{ApproveDeletes: true}, quietLog())
			if err != nil || res.Groups.Delete != 2 {
				t.Fatalf("approved: %+v, %v", res, err)
			}
			for k, v := range deleteReasons(t, st) {
				if v != store.ReasonUnmapped {
					t.Errorf("%s flagged %q, want %q", k, v, store.ReasonUnmapped)
				}
			}
		})
	}
}

// TestIDNumbersAreInjective: codes holding ":" no longer collide, and a
// group staged under the old form is renamed to the new one.
func TestIDNumbersAreInjective(t *testing.T) {
	if a, b := stage.GroupIDNumber("A:B", "C"), stage.GroupIDNumber("A", "B:C"); a == b {
		t.Fatalf("both pairs give %q", a)
	}
	if a, b := stage.GroupIDNumber("A%3AB", "C"), stage.GroupIDNumber("A:B", "C"); a == b {
		t.Fatalf("escaping is ambiguous: %q", a)
	}
	if got := stage.GroupIDNumber("COMP1001", "SEM01"); got != "cmis:COMP1001:SEM01" {
		t.Fatalf("plain codes changed idnumber: %q", got)
	}
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := storetest.Open(t, engine)
			writeDump(t, st, dump{groups: [][]string{{"A:B", "C", "", ""}, {"A", "B:C", "", ""}}})
			if err := st.UpsertMapping(ctx, store.Mapping{CourseID: 2, ModuleCode: "A:B"}); err != nil {
				t.Fatal(err)
			}
			if err := st.UpsertMapping(ctx, store.Mapping{CourseID: 2, ModuleCode: "A"}); err != nil {
				t.Fatal(err)
			}
			runStage(t, st)
			pretendLoaded(t, st)
			groups := stagedGroups(t, st)
			if len(groups) != 2 {
				t.Fatalf("staged %d groups, want 2: %v", len(groups), groups)
			}
			// A site staged by an older version holds the legacy form.
			if _, err := st.DB().ExecContext(ctx, `UPDATE cmis_groups_course SET idnumber = ? WHERE modulecode = 'A:B'`, stage.LegacyGroupIDNumber("A:B", "C")); err != nil {
				t.Fatal(err)
			}
			res := runStage(t, st)
			if res.Groups.Rename != 1 {
				t.Fatalf("legacy idnumber: %+v", res)
			}
			g := stagedGroups(t, st)[stage.GroupIDNumber("A:B", "C")+"@2"]
			if !g.ToRename || g.MoodleID == 0 {
				t.Fatalf("legacy group not flagged to update Moodle: %+v", g)
			}
		})
	}
}
