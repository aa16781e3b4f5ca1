package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage/store"
)

// fixture names what a scenario needs of the sample data: the first
// course, its first module and that module's first group, a student of it.
type fixture struct {
	course            int64
	c                 string // the course id as a flag value
	module, group     string
	idnumber, student string
}

func (h *harness) fixture() fixture {
	h.t.Helper()
	var f fixture
	f.course = h.seed.courseIDs[h.data.Courses[0].ShortName]
	f.c = fmt.Sprint(f.course)
	for _, m := range h.data.Mappings {
		if m.CourseShortName == h.data.Courses[0].ShortName {
			f.module = m.ModuleCode
			break
		}
	}
	for _, g := range h.data.ModuleGroups {
		if g[0] == f.module {
			f.group = g[1]
			break
		}
	}
	f.idnumber = "cmis:" + f.module + ":" + f.group
	for _, m := range h.data.Members {
		if m[0] == f.module && m[1] == f.group {
			f.student = m[2]
		}
	}
	return f
}

// moodleGroup returns the simulator's group with an idnumber in a course.
func (h *harness) moodleGroup(course int64, idnumber string) moodlesim.Group {
	h.t.Helper()
	for _, g := range h.sim.State().Groups {
		if int64(g.CourseID) == course && g.IDNumber == idnumber {
			return g
		}
	}
	h.t.Fatalf("no group %s in course %d", idnumber, course)
	return moodlesim.Group{}
}

// userID is the Moodle user of a CMIS id.
func (h *harness) userID(cmisid string) int {
	for id, idn := range h.userIDN {
		if idn == cmisid {
			return int(id)
		}
	}
	h.t.Fatalf("no user %s", cmisid)
	return 0
}

// normalise replaces what changes from one test run to the next (run ids,
// times of today, ports) so that the output can be compared with a golden
// file.
func normalise(s string) string {
	s = regexp.MustCompile(`\d{8}-\d{6}-[0-9a-f]{6}`).ReplaceAllString(s, "RUNID")
	for _, d := range []time.Time{time.Now(), time.Now().Add(-24 * time.Hour), time.Now().UTC(), time.Now().UTC().Add(-24 * time.Hour)} {
		s = regexp.MustCompile(d.Format("2006-01-02")+` \d{2}:\d{2}(:\d{2})?`).ReplaceAllString(s, "TIME")
	}
	return regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(s, "127.0.0.1:PORT")
}

// TestExplainVerdicts runs explain through the command line on a scenario
// for each verdict, and compares its output with a golden file
// (testdata/explain/NAME.golden; -update rewrites them).
func TestExplainVerdicts(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		unenrolled int
		// setup prepares the scenario and returns explain's arguments.
		setup func(h *harness, f fixture) []string
		codes []string
	}{
		{"in-step", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			return []string{"--course", f.c}
		}, []string{"in-step"}},
		{"in-step-user", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			return []string{"--course", f.c, "--user", f.student}
		}, []string{"in-step"}},
		{"in-step-group", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			return []string{"--course", f.c, "--group", f.group}
		}, []string{"in-step"}},
		{"no-extract", 0, func(h *harness, f fixture) []string {
			return []string{"--course", f.c}
		}, []string{"no-extract"}},
		{"no-mapping", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			return []string{"--course", fmt.Sprint(h.sim.AddCourse(moodlesim.Course{ShortName: "EMPTY1", FullName: "A course nobody mapped"}))}
		}, []string{"no-mapping"}},
		{"mapping-rmv", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			h.mustRun(exitOK, "map", "set", "--course", f.c, "--module", f.module, "--group-import", "RMV")
			h.mustRun(exitOK, "stage")
			return []string{"--course", f.c}
		}, []string{"mapping-rmv", "pending"}},
		{"mapping-not-understood", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			if _, err := h.st.DB().Exec(`UPDATE mapped_modules SET mapping_action = 'yes please' WHERE moodle_id = ? AND modulecode = ?`, f.course, f.module); err != nil {
				h.t.Fatal(err)
			}
			h.mustRun(exitPartial, "stage")
			return []string{"--course", f.c}
		}, []string{"mapping-not-understood", "held"}},
		{"module-empty", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "map", "add", "--course", f.c, "--module", "NEXT2027", "--force", "--offline")
			h.mustRun(exitOK, "run")
			return []string{"--course", f.c}
		}, []string{"module-empty"}},
		{"not-staged", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			mapped := map[string]bool{}
			for _, m := range h.data.Mappings {
				if m.CourseShortName == h.data.Courses[0].ShortName {
					mapped[m.ModuleCode] = true
				}
			}
			var other string
			for _, m := range h.data.Mappings {
				if !mapped[m.ModuleCode] {
					other = m.ModuleCode
				}
			}
			h.enrolModule(f.course, other)
			h.mustRun(exitOK, "map", "add", "--course", f.c, "--module", other)
			return []string{"--course", f.c}
		}, []string{"not-staged"}},
		{"refused-rows", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			if _, err := h.source.Exec(`UPDATE CMIS_MOODLE_V_GROUP_MEMBER SET STUDENT_ID = ' ' WHERE MODULE_CODE = ? AND GROUP_CODE = ? AND STUDENT_ID = ?`, f.module, f.group, f.student); err != nil {
				h.t.Fatal(err)
			}
			h.mustRun(exitPartial, "run")
			return []string{"--course", f.c, "--group", f.group}
		}, []string{"refused-rows", "held"}},
		{"not-enrolled", 1, func(h *harness, f fixture) []string {
			// Waiting for enrolment is not failing: exit 0.
			h.mustRun(exitOK, "run")
			// The load step records since when a member waits (schema 005);
			// a fixed date here, as it would after nine nightly runs.
			since := time.Date(2026, 11, 20, 2, 15, 0, 0, time.Local)
			if _, err := h.st.DB().Exec(`UPDATE cmis_groupmembers SET waiting_since = ?, waiting_runs = 9 WHERE cmisid = ?`, since.UTC(), h.data.Members[0][2]); err != nil {
				h.t.Fatal(err)
			}
			return []string{"--course", f.c, "--user", h.data.Members[0][2]}
		}, []string{"not-enrolled"}},
		{"not-enrolled-course", 1, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			return []string{"--course", f.c}
		}, []string{"not-enrolled"}},
		{"parked", 0, func(h *harness, f fixture) []string {
			h.env["CMISSYNC_LOAD_PARK_AFTER"] = "1"
			h.mustRun(exitOK, "extract")
			h.mustRun(exitOK, "stage")
			if _, err := h.st.DB().Exec(`UPDATE cmis_groups_course SET name = 'G<1>' WHERE courseid = ? AND idnumber = ?`, f.course, f.idnumber); err != nil {
				h.t.Fatal(err)
			}
			h.mustRun(exitPartial, "load")
			return []string{"--course", f.c, "--group", f.group}
		}, []string{"parked"}},
		{"deleted-by-hand", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			if err := h.sim.DeleteGroup(h.moodleGroup(f.course, f.idnumber).ID); err != nil {
				h.t.Fatal(err)
			}
			return []string{"--course", f.c, "--group", f.idnumber}
		}, []string{"deleted-by-hand"}},
		{"renamed-by-hand", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			if err := h.sim.RenameGroup(h.moodleGroup(f.course, f.idnumber).ID, "Renamed by a teacher"); err != nil {
				h.t.Fatal(err)
			}
			return []string{"--course", f.c, "--group", f.group}
		}, []string{"renamed-by-hand"}},
		{"moved-out-of-grouping", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			g := h.moodleGroup(f.course, f.idnumber)
			var grouping int
			for _, gg := range h.sim.State().Groupings {
				if int64(gg.CourseID) == f.course && gg.IDNumber == "cmis:"+f.module {
					grouping = gg.ID
				}
			}
			if err := h.mc.UnassignGrouping(ctx, []moodle.Pair{{A: int64(grouping), B: int64(g.ID)}}); err != nil {
				h.t.Fatal(err)
			}
			return []string{"--course", f.c, "--group", fmt.Sprint(g.ID)}
		}, []string{"moved-out-of-grouping"}},
		{"member-removed-by-hand", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			if err := h.sim.RemoveMember(h.moodleGroup(f.course, f.idnumber).ID, h.userID(f.student)); err != nil {
				h.t.Fatal(err)
			}
			return []string{"--course", f.c, "--user", f.student}
		}, []string{"member-removed-by-hand"}},
		{"held", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			h.env["CMISSYNC_GUARD_MAX_DELETE_COUNT"] = "1"
			if _, err := h.source.Exec(`DELETE FROM CMIS_MOODLE_V_GROUP_MEMBER WHERE MODULE_CODE = ? AND GROUP_CODE = ?`, f.module, f.group); err != nil {
				h.t.Fatal(err)
			}
			h.mustRun(exitHeld, "run")
			return []string{"--course", f.c}
		}, []string{"held"}},
		{"not-in-cmis", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			return []string{"--course", f.c, "--user", "99999999"}
		}, []string{"not-in-cmis"}},
		{"group-unknown", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			return []string{"--course", f.c, "--group", "NOSUCHGROUP"}
		}, []string{"group-unknown"}},
		{"course-deleted", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			if err := h.sim.DeleteCourse(int(f.course)); err != nil {
				h.t.Fatal(err)
			}
			return []string{"--course", f.c}
		}, []string{"course-deleted"}},
		{"site-mismatch", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			other := moodlesim.New(moodlesim.Options{Token: testToken, SiteName: "Production Moodle"})
			url, err := other.Start("127.0.0.1:0")
			if err != nil {
				h.t.Fatal(err)
			}
			h.t.Cleanup(func() { other.Close() })
			h.env["CMISSYNC_MOODLE_URL"] = url
			return []string{"--course", f.c}
		}, []string{"site-mismatch"}},
		{"moodle-unavailable", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			h.env["CMISSYNC_MOODLE_TOKEN"] = "expired-token"
			return []string{"--course", f.c}
		}, []string{"moodle-unavailable"}},
		{"offline", 0, func(h *harness, f fixture) []string {
			h.mustRun(exitOK, "run")
			if err := h.sim.DeleteGroup(h.moodleGroup(f.course, f.idnumber).ID); err != nil {
				h.t.Fatal(err)
			}
			return []string{"--course", f.c, "--offline"}
		}, []string{"in-step-offline"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, store.EngineSQLite, tc.unenrolled)
			// One request at a time: Moodle ids and the audit trail's order
			// are then the same every time.
			h.env["CMISSYNC_LOAD_CONCURRENCY"] = "1"
			args := append([]string{"explain"}, tc.setup(h, h.fixture())...)
			code, out, errs := h.cmd(args...)
			if code != exitOK {
				t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errs)
			}
			if strings.Contains(out, testToken) {
				t.Fatal("explain printed the token")
			}
			golden := filepath.Join("testdata", "explain", tc.name+".golden")
			got := normalise(out)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%v: output differs from %s (go test ./cmd/cmissync -run ExplainVerdicts -update rewrites it)\n--- got:\n%s", args, golden, got)
			}

			code, out, errs = h.cmd(append(args, "--json")...)
			var js []explanation
			if err := json.Unmarshal([]byte(out), &js); code != exitOK || err != nil || len(js) != 1 {
				t.Fatalf("%v --json: exit %d, %v\n%s\n%s", args, code, err, out, errs)
			}
			var codes []string
			for _, v := range js[0].Verdicts {
				codes = append(codes, v.Code)
			}
			if fmt.Sprint(dedupe(codes)) != fmt.Sprint(tc.codes) {
				t.Errorf("verdicts %v, want %v", codes, tc.codes)
			}
		})
	}
}

func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}

func TestExplainSeveralCoursesAndUsage(t *testing.T) {
	h := newHarness(t, store.EngineMySQL, 0)
	h.mustRun(exitOK, "run")
	var ids []string
	for _, c := range h.data.Courses {
		ids = append(ids, fmt.Sprint(h.seed.courseIDs[c.ShortName]))
	}
	out := h.mustRun(exitOK, "explain", "--course", strings.Join(ids, ","))
	if n := strings.Count(out, "\nVerdict\n"); n != len(ids) {
		t.Fatalf("explain of %d courses printed %d verdicts:\n%s", len(ids), n, out)
	}
	var js []explanation
	if err := json.Unmarshal([]byte(h.mustRun(exitOK, "explain", "--course", strings.Join(ids, ","), "--json")), &js); err != nil || len(js) != len(ids) {
		t.Fatalf("explain --json of %d courses: %d, %v", len(ids), len(js), err)
	}
	for _, e := range js {
		if len(e.Verdicts) != 1 || e.Verdicts[0].Code != "in-step" || len(e.Staged.Groups) == 0 || !e.Moodle.Read {
			t.Errorf("course %d: %+v", e.Course, e.Verdicts)
		}
	}
	// --user may be the Moodle user id: explain follows its CMIS id.
	f := h.fixture()
	uid := h.userID(f.student)
	js = nil
	if err := json.Unmarshal([]byte(h.mustRun(exitOK, "explain", "--course", f.c, "--user", fmt.Sprint(uid), "--json")), &js); err != nil || len(js) != 1 {
		t.Fatalf("explain --user MOODLEID: %v", err)
	}
	if e := js[0]; e.User != fmt.Sprintf("%s (Moodle user %d)", f.student, uid) || len(e.Staged.Members) == 0 || e.Verdicts[0].Code != "in-step" || len(e.CMIS[0].Person) == 0 {
		t.Fatalf("explain --user %d: user %q, %d members, %+v", uid, e.User, len(e.Staged.Members), e.Verdicts)
	}
	// check reads the match field of every course asked for.
	code, out, _ := h.cmd("check", "--course", strings.Join(ids, ","))
	if code != exitOK || strings.Count(out, "ok    user match field") != len(ids) {
		t.Fatalf("check --course %v: exit %d\n%s", ids, code, out)
	}
	if code, _, errs := h.cmd("explain"); code != exitUsage || !strings.Contains(errs, "--course is required") {
		t.Fatalf("explain without --course: exit %d %s", code, errs)
	}
}
