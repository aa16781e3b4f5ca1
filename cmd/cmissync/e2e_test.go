package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/extract/sample"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// harness is a complete installation for end-to-end tests: a CMIS source
// (SQLite), a staging database of the engine under test, the Moodle
// simulator over HTTP, and a config file; commands run through execute, as
// from a shell.
type harness struct {
	t        *testing.T
	dir      string
	config   string
	env      map[string]string
	sim      *moodlesim.Server
	mc       *moodle.Client
	data     sample.Dataset
	source   *sql.DB
	st       *store.Store
	seed     demoSeed
	userIDN  map[int64]string // Moodle user id -> idnumber
	engine   string
	stagingD string
}

const testToken = "e2e-token-0123456789"

func newHarness(t *testing.T, engine string, unenrolled int) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, dir: t.TempDir(), engine: engine, data: sample.Generate(sample.Demo())}
	src, err := sql.Open("sqlite", filepath.Join(h.dir, "cmis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if err := sample.WriteSQL(ctx, src, h.data); err != nil {
		t.Fatal(err)
	}
	h.source = src

	h.sim = moodlesim.New(moodlesim.Options{Token: testToken, ShowIdnumber: true})
	url, err := h.sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.sim.Close() })
	if h.seed, err = seedDemoMoodle(h.sim, h.data, unenrolled); err != nil {
		t.Fatal(err)
	}
	h.userIDN = map[int64]string{}
	for _, u := range h.sim.State().Users {
		h.userIDN[int64(u.ID)] = u.IDNumber
	}
	if h.mc, err = moodle.New(moodle.Options{URL: url, Token: testToken}); err != nil {
		t.Fatal(err)
	}

	_, dsn := storetest.DSN(t, engine)
	h.stagingD = dsn
	h.config = filepath.Join(h.dir, "cmissync.toml")
	cfg := fmt.Sprintf(`[staging]
engine = %q
dsn = %q

[source]
type = "sql"
driver = "sqlite"
dsn = %q

[moodle]
url = %q
retry_wait = "5ms"

[email]
report_dir = %q

[log]
level = "warn"
`, engine, dsn, filepath.Join(h.dir, "cmis.db"), url, filepath.Join(h.dir, "reports"))
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h.env = map[string]string{"CMISSYNC_MOODLE_TOKEN": testToken}
	if code, out, errs := h.cmd("migrate"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s\n%s", code, out, errs)
	}
	if h.st, err = store.Open(ctx, engine, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.st.Close() })
	for _, m := range h.data.Mappings {
		if err := h.st.UpsertMapping(ctx, store.Mapping{CourseID: h.seed.courseIDs[m.CourseShortName], ModuleCode: m.ModuleCode}); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// cmd runs a cmissync command line and returns its exit code and output.
func (h *harness) cmd(args ...string) (int, string, string) {
	var out, errs bytes.Buffer
	env := func(k string) (string, bool) { v, ok := h.env[k]; return v, ok }
	code := execute(context.Background(), append(args, "--config", h.config), &out, &errs, env)
	return code, out.String(), errs.String()
}

func (h *harness) mustRun(want int, args ...string) string {
	h.t.Helper()
	code, out, errs := h.cmd(args...)
	if code != want {
		h.t.Fatalf("cmissync %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errs)
	}
	return out
}

// expected computes, from the CMIS source, the mappings and Moodle's
// enrolments, what every course must hold: one line per grouping and group.
func (h *harness) expected() map[int64][]string {
	h.t.Helper()
	ctx := context.Background()
	q := func(query string, args ...any) [][]string {
		return storetest.QueryStrings(h.t, h.source, query, args...)
	}
	state := h.sim.State()
	enrolled := map[[2]int64]bool{}
	for c, users := range state.Enrolments {
		for _, u := range users {
			enrolled[[2]int64{int64(c), int64(u)}] = true
		}
	}
	idnToUser := map[string]int64{}
	for id, idn := range h.userIDN {
		idnToUser[idn] = id
	}
	maps, err := h.st.Mappings(ctx, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[int64][]string{}
	for _, m := range maps {
		if m.GroupImport != store.ActionAdd || m.MappingAction != store.ActionAdd {
			continue
		}
		groups := q(`SELECT GROUP_CODE, MODULE_NAME FROM CMIS_MOODLE_V_MODULE_GROUP WHERE MODULE_CODE = ? ORDER BY GROUP_CODE`, m.ModuleCode)
		if len(groups) == 0 {
			continue
		}
		var gidn []string
		for _, g := range groups {
			gidn = append(gidn, "cmis:"+m.ModuleCode+":"+g[0])
		}
		out[m.CourseID] = append(out[m.CourseID], fmt.Sprintf("grouping cmis:%s %q groups=%v", m.ModuleCode, m.ModuleCode+" "+groups[0][1], gidn))
		for _, g := range groups {
			var members []string
			for _, r := range q(`SELECT STUDENT_ID FROM CMIS_MOODLE_V_GROUP_MEMBER WHERE MODULE_CODE = ? AND GROUP_CODE = ?
UNION SELECT STAFF_ID FROM CMIS_MOODLE_V_GROUP_TUTOR WHERE MODULE_CODE = ? AND GROUP_CODE = ?`, m.ModuleCode, g[0], m.ModuleCode, g[0]) {
				if enrolled[[2]int64{m.CourseID, idnToUser[r[0]]}] {
					members = append(members, r[0])
				}
			}
			sort.Strings(members)
			out[m.CourseID] = append(out[m.CourseID], fmt.Sprintf("group cmis:%s:%s %q members=%v", m.ModuleCode, g[0], m.ModuleCode+" "+g[0], members))
		}
	}
	for c := range out {
		sort.Strings(out[c])
	}
	return out
}

// actual reads what Moodle holds over its REST API: the cmissync-owned
// groupings and groups of every course, and separately the hand-made ones.
func (h *harness) actual() (owned map[int64][]string, handmade []string) {
	h.t.Helper()
	ctx := context.Background()
	owned = map[int64][]string{}
	for _, c := range h.sim.State().Courses {
		cid := int64(c.ID)
		groups, err := h.mc.CourseGroups(ctx, cid)
		if err != nil {
			h.t.Fatal(err)
		}
		var ids []int64
		idn := map[int64]string{}
		for _, g := range groups {
			ids = append(ids, g.ID)
			idn[g.ID] = g.IDNumber
		}
		members, err := h.mc.GroupMembers(ctx, ids)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, g := range groups {
			var ms []string
			for _, u := range members[g.ID] {
				ms = append(ms, h.userIDN[u])
			}
			sort.Strings(ms)
			line := fmt.Sprintf("group %s %q members=%v", g.IDNumber, g.Name, ms)
			if stage.IsOwnedIDNumber(g.IDNumber) {
				owned[cid] = append(owned[cid], line)
			} else {
				handmade = append(handmade, fmt.Sprintf("course %d %s", cid, line))
			}
		}
		gs, err := h.mc.CourseGroupings(ctx, cid)
		if err != nil {
			h.t.Fatal(err)
		}
		var gids []int64
		for _, g := range gs {
			gids = append(gids, g.ID)
		}
		if len(gids) > 0 {
			full, err := h.mc.Groupings(ctx, gids, true)
			if err != nil {
				h.t.Fatal(err)
			}
			for _, g := range full {
				var in []string
				for _, gr := range g.Groups {
					in = append(in, gr.IDNumber)
				}
				sort.Strings(in)
				owned[cid] = append(owned[cid], fmt.Sprintf("grouping %s %q groups=%v", g.IDNumber, g.Name, in))
			}
		}
		sort.Strings(owned[cid])
		if len(owned[cid]) == 0 {
			delete(owned, cid)
		}
	}
	sort.Strings(handmade)
	return owned, handmade
}

func (h *harness) assertMoodleMatchesCMIS(handmadeBefore []string) {
	h.t.Helper()
	got, handmade := h.actual()
	want := h.expected()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		h.t.Fatalf("Moodle does not match CMIS\n got: %v\nwant: %v", render(got), render(want))
	}
	if fmt.Sprint(handmade) != fmt.Sprint(handmadeBefore) {
		h.t.Fatalf("hand-made groups changed\n got: %v\nwant: %v", handmade, handmadeBefore)
	}
}

func render(m map[int64][]string) string {
	var b strings.Builder
	var keys []int64
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  course %d:\n    %s", k, strings.Join(m[k], "\n    "))
	}
	return b.String()
}

func writes(sim *moodlesim.Server) int { return writeCalls(sim.Calls()) }

func TestEndToEnd(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine, 0)
			_, handmade := h.actual()
			if len(handmade) != 1 {
				t.Fatalf("the seed should have one hand-made group, has %v", handmade)
			}

			// A dry run sends nothing.
			out := h.mustRun(exitOK, "run", "--dry-run")
			if writes(h.sim) != 0 || !strings.Contains(out, "would do") {
				t.Fatalf("dry run: %d writes, output:\n%s", writes(h.sim), out)
			}

			// First run: Moodle holds exactly what CMIS says.
			h.mustRun(exitOK, "run")
			h.assertMoodleMatchesCMIS(handmade)

			// Second run: no write calls at all.
			h.sim.ResetCalls()
			h.mustRun(exitOK, "run")
			if n := writes(h.sim); n != 0 {
				t.Fatalf("second run made %d write calls: %v", n, h.sim.Calls())
			}

			// A student leaves a group in CMIS: exactly that membership goes,
			// in every course taking the module.
			m := h.data.Members[3]
			if _, err := h.source.Exec(`DELETE FROM CMIS_MOODLE_V_GROUP_MEMBER WHERE MODULE_CODE = ? AND GROUP_CODE = ? AND STUDENT_ID = ?`, m[0], m[1], m[2]); err != nil {
				t.Fatal(err)
			}
			before, _ := h.actual()
			h.mustRun(exitOK, "run")
			h.assertMoodleMatchesCMIS(handmade)
			after, _ := h.actual()
			if removed := diffLines(before, after); removed != courseCount(h, m[0]) {
				t.Fatalf("removing one student changed %d group lines, want %d (one per course taking %s)", removed, courseCount(h, m[0]), m[0])
			}

			// group_import=RMV deletes exactly that mapping's groups and
			// grouping, and nothing else.
			mp := h.data.Mappings[0]
			cid := h.seed.courseIDs[mp.CourseShortName]
			if err := h.st.UpsertMapping(context.Background(), store.Mapping{CourseID: cid, ModuleCode: mp.ModuleCode, GroupImport: store.ActionRemove}); err != nil {
				t.Fatal(err)
			}
			h.mustRun(exitOK, "run")
			h.assertMoodleMatchesCMIS(handmade)
			got, _ := h.actual()
			for _, line := range got[cid] {
				if strings.Contains(line, "cmis:"+mp.ModuleCode) {
					t.Fatalf("after RMV course %d still has %s", cid, line)
				}
			}

			// And adding it back recreates everything.
			if err := h.st.UpsertMapping(context.Background(), store.Mapping{CourseID: cid, ModuleCode: mp.ModuleCode, GroupImport: store.ActionAdd}); err != nil {
				t.Fatal(err)
			}
			h.mustRun(exitOK, "run")
			h.assertMoodleMatchesCMIS(handmade)

			code, out, _ := h.cmd("status")
			if code != 0 || !strings.Contains(out, "Recent runs") || !strings.Contains(out, "load") {
				t.Fatalf("status: exit %d\n%s", code, out)
			}
		})
	}
}

// courseCount is the number of courses a module is mapped to.
func courseCount(h *harness, module string) int {
	n := 0
	for _, m := range h.data.Mappings {
		if m.ModuleCode == module {
			n++
		}
	}
	return n
}

// diffLines counts lines present in a but not in b.
func diffLines(a, b map[int64][]string) int {
	n := 0
	for c, lines := range a {
		in := map[string]bool{}
		for _, l := range b[c] {
			in[l] = true
		}
		for _, l := range lines {
			if !in[l] {
				n++
			}
		}
	}
	return n
}

func TestUnenrolledMembersAreReportedThenAdded(t *testing.T) {
	h := newHarness(t, store.EngineSQLite, 1)
	_, handmade := h.actual()
	// A student not enrolled waits: reported when first seen, not a
	// failure (exit 0), everyone else added.
	h.mustRun(exitOK, "run")
	h.assertMoodleMatchesCMIS(handmade) // expected() only counts enrolled users
	reports, _ := filepath.Glob(filepath.Join(h.dir, "reports", "*.eml"))
	if len(reports) != 1 {
		t.Fatalf("want one report kept on disk, have %v", reports)
	}
	raw, _ := os.ReadFile(reports[0])
	student := h.data.Members[0][2]
	if !bytes.Contains(raw, []byte("wait")) || !bytes.Contains(raw, []byte(student)) || bytes.Contains(raw, []byte(testToken)) {
		t.Fatalf("report lacks the waiting student or leaks the token:\n%s", raw)
	}
	// The next night, nobody new waits: no new report, still exit 0.
	os.RemoveAll(filepath.Join(h.dir, "reports"))
	h.mustRun(exitOK, "run")
	if again, _ := filepath.Glob(filepath.Join(h.dir, "reports", "*.eml")); len(again) != 0 {
		t.Fatalf("the same waiting list sent a report again: %v", again)
	}
	var waiting int
	if err := h.st.DB().QueryRow(`SELECT COUNT(*) FROM cmis_groupmembers WHERE waiting_since IS NOT NULL AND waiting_runs = 2`).Scan(&waiting); err != nil || waiting == 0 {
		t.Fatalf("waiting members not counted over runs: %d, %v", waiting, err)
	}
	// Enrol the student everywhere they are expected: the next run adds them.
	var uid int
	for id, idn := range h.userIDN {
		if idn == student {
			uid = int(id)
		}
	}
	for _, m := range h.data.Mappings {
		for _, mem := range h.data.Members {
			if mem[0] == m.ModuleCode && mem[2] == student {
				_ = h.sim.Enrol(int(h.seed.courseIDs[m.CourseShortName]), uid)
			}
		}
	}
	h.mustRun(exitOK, "run")
	h.assertMoodleMatchesCMIS(handmade)
}

func TestMassChangeGuardHoldsAnEmptiedSource(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine, 0)
			_, handmade := h.actual()
			h.mustRun(exitOK, "run")
			before, _ := h.actual()

			// CMIS returns no members (an outage, a broken export): the
			// extract is held, the previous dump kept, nothing staged.
			if _, err := h.source.Exec(`DELETE FROM CMIS_MOODLE_V_GROUP_MEMBER`); err != nil {
				t.Fatal(err)
			}
			h.sim.ResetCalls()
			if code, out, errs := h.cmd("run"); code != exitHeld || !strings.Contains(errs, "approve-shrink") {
				t.Fatalf("run after an emptied source: exit %d, want %d\n%s\n%s", code, exitHeld, out, errs)
			}
			if p, _ := h.st.Pending(context.Background()); p["cmis_groupmembers.todelete"] != 0 {
				t.Fatalf("a held extract reached stage: %v", p)
			}
			// Approving the small extract, the load is still held by the
			// mass-change guard before anything is sent.
			if code, out, errs := h.cmd("run", "--approve-shrink"); code != exitHeld || !strings.Contains(errs, "approve-deletes") {
				t.Fatalf("run --approve-shrink: exit %d, want %d\n%s\n%s", code, exitHeld, out, errs)
			}
			if n := writes(h.sim); n != 0 {
				t.Fatalf("held runs made %d write calls", n)
			}
			after, _ := h.actual()
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatal("Moodle changed while the guard held the run")
			}
			reports, _ := filepath.Glob(filepath.Join(h.dir, "reports", "*load*.eml"))
			found := false
			for _, r := range reports {
				raw, _ := os.ReadFile(r)
				found = found || (bytes.Contains(raw, []byte("mass-change guard")) && bytes.Contains(raw, []byte("memberships would be removed")))
			}
			if !found {
				t.Fatalf("no held-load report with the numbers among %v", reports)
			}
			// Dry run says it would be held.
			if _, out, _ := h.cmd("run", "--dry-run", "--approve-shrink"); !strings.Contains(out, "mass-change guard holds deletions back") {
				t.Fatalf("dry run does not mention the hold:\n%s", out)
			}

			// Approved, the removals go through; hand-made groups stay.
			h.mustRun(exitOK, "load", "--approve-deletes")
			h.assertMoodleMatchesCMIS(handmade)

			// The audit trail answers "what did cmissync do to course X?".
			cid := h.seed.courseIDs[h.data.Courses[0].ShortName]
			out := h.mustRun(exitOK, "audit", "--course", fmt.Sprint(cid))
			for _, action := range []string{"create", "assign", "add", "remove"} {
				if !strings.Contains(out, " "+action+" ") {
					t.Fatalf("audit of course %d lacks %q:\n%s", cid, action, out)
				}
			}
		})
	}
}

func TestPlanJSONCourseAllowListAndRetry(t *testing.T) {
	h := newHarness(t, store.EngineSQLite, 0)
	h.mustRun(exitOK, "extract")
	h.mustRun(exitOK, "stage")
	out := h.mustRun(exitOK, "plan", "--json")
	var plan struct {
		Courses []struct {
			CourseID     int64 `json:"courseid"`
			CreateGroups int   `json:"create_groups"`
			AddMembers   int   `json:"add_members"`
		} `json:"courses"`
		Totals struct {
			CreateGroupings int `json:"create_groupings"`
			CreateGroups    int `json:"create_groups"`
			AddMembers      int `json:"add_members"`
		} `json:"totals"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("plan --json is not JSON: %v\n%s", err, out)
	}
	groups := 0
	for _, m := range h.data.Mappings {
		for _, g := range h.data.ModuleGroups {
			if g[0] == m.ModuleCode {
				groups++
			}
		}
	}
	if len(plan.Courses) != len(h.data.Courses) || plan.Totals.CreateGroupings != len(h.data.Mappings) || plan.Totals.CreateGroups != groups || plan.Totals.AddMembers == 0 {
		t.Fatalf("plan = %+v, want %d courses, %d groupings, %d groups", plan, len(h.data.Courses), len(h.data.Mappings), groups)
	}

	// The allow-list limits a run to some courses and refuses others.
	first := h.seed.courseIDs[h.data.Courses[0].ShortName]
	second := h.seed.courseIDs[h.data.Courses[1].ShortName]
	h.env["CMISSYNC_STAGE_COURSES"] = fmt.Sprint(first)
	if code, _, errs := h.cmd("load", "--course", fmt.Sprint(second)); code != exitUsage || !strings.Contains(errs, "stage.courses") {
		t.Fatalf("--course outside the allow-list: exit %d, %s", code, errs)
	}
	h.mustRun(exitOK, "load")
	got, _ := h.actual()
	if len(got) != 1 || got[first] == nil {
		t.Fatalf("the allow-listed load touched courses %v", got)
	}
	delete(h.env, "CMISSYNC_STAGE_COURSES")

	// An item refused park_after times is parked, reported, and retried on
	// request: a group name Moodle refuses (markup) stands in for any
	// permanent refusal.
	h.env["CMISSYNC_LOAD_PARK_AFTER"] = "2"
	if _, err := h.st.DB().Exec(`UPDATE cmis_groups_course SET name = 'G<1>' WHERE courseid = ? AND moodlegroupid IS NULL AND id = (SELECT MIN(id) FROM cmis_groups_course WHERE courseid = ? AND moodlegroupid IS NULL)`, second, second); err != nil {
		t.Fatal(err)
	}
	h.mustRun(exitPartial, "load")
	h.mustRun(exitPartial, "load")
	_, status, _ := h.cmd("status")
	if !strings.Contains(status, "parked 1") {
		t.Fatalf("status does not show the parked group:\n%s", status)
	}
	out = h.mustRun(exitOK, "retry")
	if !strings.Contains(out, "1 items unparked") {
		t.Fatalf("retry: %s", out)
	}
	if _, err := h.st.DB().Exec(`UPDATE cmis_groups_course SET name = 'Fixed by hand' WHERE name = 'G<1>'`); err != nil {
		t.Fatal(err)
	}
	h.mustRun(exitOK, "load")
	if p, _ := h.st.Pending(context.Background()); p["cmis_groups_course.parked"] != 0 || p["cmis_groupmembers.toadd"] != 0 {
		t.Fatalf("after retry: %v", p)
	}
}

func TestRefusedGroupRowKeepsWhatCmissyncMade(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine, 0)
			_, handmade := h.actual()
			h.mustRun(exitOK, "run")
			before, _ := h.actual()

			// A group's title arrives mangled by a wrong client charset: the
			// row is refused, and with it every member row of the group.
			g := h.data.ModuleGroups[0]
			if _, err := h.source.Exec(`UPDATE CMIS_MOODLE_V_MODULE_GROUP SET GROUP_NAME = ? WHERE MODULE_CODE = ? AND GROUP_CODE = ?`,
				"SÃ©minaire", g[0], g[1]); err != nil {
				t.Fatal(err)
			}
			h.sim.ResetCalls()
			code, out, errs := h.cmd("run")
			if code != exitPartial {
				t.Fatalf("exit %d, want %d (bad rows reported)\n%s\n%s", code, exitPartial, out, errs)
			}
			if n := writes(h.sim); n != 0 {
				t.Fatalf("a refused row changed Moodle: %d write calls", n)
			}
			after, handmadeAfter := h.actual()
			if fmt.Sprint(after) != fmt.Sprint(before) || fmt.Sprint(handmadeAfter) != fmt.Sprint(handmade) {
				t.Fatalf("Moodle changed after a refused row\nbefore %v\nafter  %v", render(before), render(after))
			}
			reports, _ := filepath.Glob(filepath.Join(h.dir, "reports", "*extract*.eml"))
			if len(reports) != 1 {
				t.Fatalf("extract reports: %v", reports)
			}
			if raw, _ := os.ReadFile(reports[0]); !bytes.Contains(raw, []byte("mangled")) {
				t.Fatal("the extract report does not say why the row was refused")
			}

			// Fixed at the source, everything is in step again.
			if _, err := h.source.Exec(`UPDATE CMIS_MOODLE_V_MODULE_GROUP SET GROUP_NAME = ? WHERE MODULE_CODE = ? AND GROUP_CODE = ?`, g[3], g[0], g[1]); err != nil {
				t.Fatal(err)
			}
			h.mustRun(exitOK, "run")
			h.assertMoodleMatchesCMIS(handmade)
		})
	}
}
