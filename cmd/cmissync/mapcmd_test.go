package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage/store"
)

// groupsIn lists the idnumbers of the groups of a course in Moodle.
func (h *harness) groupsIn(course int64) []string {
	h.t.Helper()
	var out []string
	for _, g := range h.sim.State().Groups {
		if int64(g.CourseID) == course {
			out = append(out, g.IDNumber)
		}
	}
	return out
}

// enrolModule enrols every student and tutor CMIS lists in a module in a
// course.
func (h *harness) enrolModule(course int64, module string) {
	h.t.Helper()
	byIDN := map[string]int64{}
	for id, idn := range h.userIDN {
		byIDN[idn] = id
	}
	for _, m := range append(append([][]string{}, h.data.Members...), h.data.Tutors...) {
		if m[0] == module {
			if err := h.sim.Enrol(int(course), int(byIDN[m[2]])); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

func TestMapCommands(t *testing.T) {
	h := newHarness(t, store.EngineSQLite, 0)
	module := h.data.ModuleGroups[0][0]
	cid := int64(h.sim.AddCourse(moodlesim.Course{ShortName: "NEW101", FullName: "A new course"}))
	h.enrolModule(cid, module)
	course := fmt.Sprint(cid)

	// Before any extract the module cannot be checked: a warning.
	out := h.mustRun(exitOK, "map", "add", "--course", course, "--module", module)
	if !strings.Contains(out, "no extract has run yet") || !strings.Contains(out, "mapped "+module) {
		t.Fatalf("map add before an extract:\n%s", out)
	}
	h.mustRun(exitOK, "map", "rm", "--course", course, "--module", module)
	h.mustRun(exitOK, "extract")

	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--course", course, "--module", "NOPE1234"}, "no groups in the last extract"},
		{[]string{"--course", course, "--module", strings.ToLower(module)}, "did you mean " + module},
		{[]string{"--course", "999999", "--module", module}, "does not exist in Moodle"},
		{[]string{"--module", module}, "--course is required"},
		{[]string{"--course", course}, "--module is required"},
	} {
		code, out, errs := h.cmd(append([]string{"map", "add"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errs, tc.says) {
			t.Errorf("map add %v: exit %d, want 2 saying %q\n%s\n%s", tc.args, code, tc.says, out, errs)
		}
	}
	if maps, _ := h.st.Mappings(context.Background(), cid); len(maps) != 0 {
		t.Fatalf("refused adds left mappings: %+v", maps)
	}
	// --offline skips Moodle; --force maps a module CMIS does not list yet.
	h.mustRun(exitOK, "map", "add", "--course", "999999", "--module", module, "--offline")
	if out := h.mustRun(exitOK, "map", "add", "--course", course, "--module", "NEXT2027", "--force"); !strings.Contains(out, "NEXT2027: no groups in the last extract") {
		t.Fatalf("map add --force:\n%s", out)
	}

	out = h.mustRun(exitOK, "map", "add", "--course", course, "--module", module)
	if !strings.Contains(out, "A new course (NEW101)") || !strings.Contains(out, module+": creates its grouping and 3 groups") {
		t.Fatalf("map add:\n%s", out)
	}
	out = h.mustRun(exitOK, "map", "list", "--course", course)
	if !strings.Contains(out, module) || !strings.Contains(out, "active") || !strings.Contains(out, "2 mappings") {
		t.Fatalf("map list:\n%s", out)
	}
	var rows []mappingView
	if err := json.Unmarshal([]byte(h.mustRun(exitOK, "map", "list", "--json", "--module", module)), &rows); err != nil || len(rows) < 3 {
		t.Fatalf("map list --json: %v %+v", err, rows)
	}
	h.mustRun(exitOK, "run")
	if got := h.groupsIn(cid); len(got) != 3 {
		t.Fatalf("after map add and a run, course %d has groups %v", cid, got)
	}

	// rm of a mapping cmissync made groups for: RMV, and the next run
	// removes them, past the mass-change guard (an explicit request).
	h.env["CMISSYNC_GUARD_MAX_DELETE_COUNT"] = "1"
	out = h.mustRun(exitOK, "map", "rm", "--course", course, "--module", module)
	if !strings.Contains(out, "set to RMV") || !strings.Contains(out, "removes the 3 groups cmissync made") {
		t.Fatalf("map rm:\n%s", out)
	}
	h.mustRun(exitOK, "run")
	if got := h.groupsIn(cid); len(got) != 0 {
		t.Fatalf("after map rm and a run, course %d still has %v", cid, got)
	}
	// rm of one nothing was made for deletes the row.
	if out := h.mustRun(exitOK, "map", "rm", "--course", "999999", "--module", module); !strings.Contains(out, "deleted") {
		t.Fatalf("map rm of an unused mapping:\n%s", out)
	}
	if code, _, errs := h.cmd("map", "rm", "--course", "999999", "--module", module); code != exitUsage || !strings.Contains(errs, "no mapping") {
		t.Fatalf("map rm of no mapping: exit %d %s", code, errs)
	}

	// set fixes a row stage does not understand.
	if _, err := h.st.DB().Exec(`UPDATE mapped_modules SET group_import = 'yes' WHERE moodle_id = ? AND modulecode = ?`, cid, module); err != nil {
		t.Fatal(err)
	}
	if out := h.mustRun(exitOK, "map", "list", "--course", course); !strings.Contains(out, "not-understood") {
		t.Fatalf("map list of a garbled row:\n%s", out)
	}
	if code, _, errs := h.cmd("map", "set", "--course", course, "--module", module, "--mapping-action", "add"); code != exitUsage || !strings.Contains(errs, "give both") {
		t.Fatalf("map set of one value of a garbled row: exit %d %s", code, errs)
	}
	if code, _, errs := h.cmd("map", "set", "--course", course, "--module", module, "--group-import", "maybe"); code != exitUsage || !strings.Contains(errs, "want ADD or RMV") {
		t.Fatalf("map set to a bad value: exit %d %s", code, errs)
	}
	out = h.mustRun(exitOK, "map", "set", "--course", course, "--module", module, "--group-import", "add", "--mapping-action", "ADD")
	if !strings.Contains(out, "group_import ADD, mapping_action ADD") {
		t.Fatalf("map set:\n%s", out)
	}
	h.mustRun(exitOK, "run")
	if got := h.groupsIn(cid); len(got) != 3 {
		t.Fatalf("after map set ADD and a run, course %d has %v", cid, got)
	}

	// A course outside stage.courses may be mapped; it is said.
	h.env["CMISSYNC_STAGE_COURSES"] = fmt.Sprint(h.seed.courseIDs[h.data.Courses[0].ShortName])
	if out := h.mustRun(exitOK, "map", "add", "--course", course, "--module", "LATER1", "--force", "--offline"); !strings.Contains(out, "not in stage.courses") {
		t.Fatalf("map add outside stage.courses:\n%s", out)
	}
}

func TestForgetThenTheNextRunFindsEverything(t *testing.T) {
	for _, engine := range []string{store.EngineSQLite, store.EngineMySQL} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine, 0)
			_, handmade := h.actual()
			h.mustRun(exitOK, "run")
			cid := h.seed.courseIDs[h.data.Courses[0].ShortName]
			course := fmt.Sprint(cid)
			before, err := h.st.StagedCourse(context.Background(), cid)
			if err != nil || len(before.Groups) == 0 {
				t.Fatalf("staged before: %+v %v", before, err)
			}

			// Without --yes nothing is forgotten.
			code, out, errs := h.cmd("forget", "--course", course)
			if code != exitUsage || !strings.Contains(errs, "--yes") || !strings.Contains(out, fmt.Sprintf("%d groups", len(before.Groups))) {
				t.Fatalf("forget without --yes: exit %d\n%s\n%s", code, out, errs)
			}
			h.sim.ResetCalls()
			out = h.mustRun(exitOK, "forget", "--course", course, "--yes")
			if !strings.Contains(out, "forgotten") || writes(h.sim) != 0 || len(h.sim.Calls()) != 0 {
				t.Fatalf("forget: %v calls\n%s", h.sim.Calls(), out)
			}
			if after, _ := h.st.StagedCourse(context.Background(), cid); len(after.Groups)+len(after.Members)+len(after.Groupings) != 0 {
				t.Fatalf("forget left staged rows: %+v", after)
			}
			if out := h.mustRun(exitOK, "audit", "--course", course, "--limit", "1"); !strings.Contains(out, "forget") {
				t.Fatalf("the audit trail does not show the forget:\n%s", out)
			}

			// The next run finds every group by idnumber: nothing is written.
			h.mustRun(exitOK, "run")
			if n := writes(h.sim); n != 0 {
				t.Fatalf("the run after forget made %d writes: %v", n, h.sim.Calls())
			}
			h.assertMoodleMatchesCMIS(handmade)
			again, _ := h.st.StagedCourse(context.Background(), cid)
			owned := 0
			for _, m := range again.Members {
				if m.Owned && m.MoodleUserID != 0 {
					owned++
				}
			}
			if len(again.Groups) != len(before.Groups) || owned == 0 {
				t.Fatalf("after the run: %d groups (want %d), %d owned members", len(again.Groups), len(before.Groups), owned)
			}
			// Ownership came back from the audit trail: a student CMIS drops
			// is removed.
			var m []string
			for _, mem := range h.data.Members {
				for _, mp := range h.data.Mappings {
					if mp.CourseShortName == h.data.Courses[0].ShortName && mp.ModuleCode == mem[0] {
						m = mem
					}
				}
			}
			if _, err := h.source.Exec(`DELETE FROM CMIS_MOODLE_V_GROUP_MEMBER WHERE MODULE_CODE = ? AND GROUP_CODE = ? AND STUDENT_ID = ?`, m[0], m[1], m[2]); err != nil {
				t.Fatal(err)
			}
			h.mustRun(exitOK, "run")
			h.assertMoodleMatchesCMIS(handmade)
		})
	}
}
