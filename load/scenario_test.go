package load_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// world is a small institution for scenario tests: courses, CMIS modules
// with groups and members, and a Moodle with everyone enrolled.
type world struct {
	t       *testing.T
	sim     *moodlesim.Server
	mc      *moodle.Client
	st      *store.Store
	courses map[string]int    // shortname -> id
	users   map[string]int    // CMIS id -> Moodle id
	groups  map[string]string // "MODULE GROUP" -> group title
	members map[string][]string
	out     bytes.Buffer
	// concurrency, when set, overrides every load's Options.Concurrency.
	concurrency int
	// deleted lists courses the scenario deleted in Moodle.
	deleted []int
	// syncs counts the extracts, each a run of its own.
	syncs int
}

func newWorld(t *testing.T, engine string, courses ...string) *world {
	w := &world{t: t, sim: moodlesim.New(moodlesim.Options{Token: token, ShowIdnumber: true}), st: storetest.Open(t, engine),
		courses: map[string]int{}, users: map[string]int{}, groups: map[string]string{}, members: map[string][]string{}}
	url, err := w.sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.sim.Close() })
	if w.mc, err = moodle.New(moodle.Options{URL: url, Token: token, Retries: -1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range courses {
		w.courses[c] = w.sim.AddCourse(moodlesim.Course{ShortName: c, FullName: "Course " + c})
	}
	return w
}

// cmis sets a CMIS group and its members ("s1", "t1" are a student and a
// tutor), creating and enrolling Moodle users in every course as needed.
func (w *world) cmis(module, group string, people ...string) {
	w.groups[module+" "+group] = "Group " + group
	w.members[module+" "+group] = people
	for _, p := range people {
		if _, ok := w.users[p]; !ok {
			w.users[p] = w.sim.AddUser(moodlesim.User{Username: "u" + p, IDNumber: p, FirstName: "F", LastName: p})
			for _, c := range w.courses {
				if err := w.sim.Enrol(c, w.users[p]); err != nil {
					w.t.Fatal(err)
				}
			}
		}
	}
}

// notEnrolled unenrols people from every course: CMIS lists them, no one
// enrolled them in Moodle.
func (w *world) notEnrolled(people ...string) {
	for _, p := range people {
		for _, c := range w.courses {
			if err := w.sim.Unenrol(c, w.users[p]); err != nil {
				w.t.Fatal(err)
			}
		}
	}
}

func (w *world) dropGroup(module, group string) {
	delete(w.groups, module+" "+group)
	delete(w.members, module+" "+group)
}

func (w *world) mapping(course, module, groupImport, mappingAction string) {
	if err := w.st.UpsertMapping(context.Background(), store.Mapping{CourseID: int64(w.courses[course]), ModuleCode: module, GroupImport: groupImport, MappingAction: mappingAction}); err != nil {
		w.t.Fatal(err)
	}
}

// sync extracts (the CMIS state as set), stages, writes the plan, loads and
// writes what load did and what Moodle holds.
func (w *world) sync(title string, sopts stage.Options, lopts load.Options) {
	w.t.Helper()
	ctx := context.Background()
	w.syncs++
	gen, err := w.st.BeginExtract(ctx, fmt.Sprintf("s%d", w.syncs))
	if err != nil {
		w.t.Fatal(err)
	}
	var grows, srows, trows [][]string
	for k, name := range w.groups {
		mg := strings.SplitN(k, " ", 2)
		grows = append(grows, []string{mg[0], mg[1], "Module " + mg[0], name})
		for _, p := range w.members[k] {
			if strings.HasPrefix(p, "t") {
				trows = append(trows, []string{mg[0], mg[1], p})
			} else {
				srows = append(srows, []string{mg[0], mg[1], p})
			}
		}
	}
	for tbl, rows := range map[store.DumpTable][][]string{store.ModuleGroups: grows, store.GroupMembers: srows, store.GroupTutors: trows} {
		if _, err := gen.Insert(ctx, tbl, rows); err != nil {
			w.t.Fatal(err)
		}
	}
	if err := gen.Commit(ctx); err != nil {
		w.t.Fatal(err)
	}
	sres, err := stage.Run(ctx, w.st, sopts, quiet())
	if err != nil {
		w.t.Fatal(err)
	}
	fmt.Fprintf(&w.out, "## %s\n\nstage: %s\n\nplan:\n", title, countsLine(sres))
	lopts.RunID = "s"
	lopts.Filter = sopts.Filter
	if w.concurrency > 0 {
		lopts.Concurrency = w.concurrency
	}
	pl, err := load.MakePlan(ctx, w.st, w.mc, lopts, quiet())
	if err != nil {
		w.t.Fatal(err)
	}
	pl.WriteText(&w.out)
	before := w.sim.State()
	res, err := load.Run(ctx, w.st, w.mc, lopts, quiet())
	w.assertPlanIsWhatHappened(pl, res.Plan, before, w.sim.State())
	if err != nil {
		fmt.Fprintf(&w.out, "\nload: held: %v\n", err)
	}
	fmt.Fprintf(&w.out, "\nload: %s\n", resultLine(res))
	for _, n := range res.Notices {
		fmt.Fprintf(&w.out, "  notice: course %d %s: %s\n", n.CourseID, n.Object, n.Message)
	}
	for _, f := range res.Failures {
		fmt.Fprintf(&w.out, "  failure: course %d %s %s %s: %s\n", f.CourseID, f.GroupIDNumber, f.User, f.ErrorCode, f.Message)
	}
	for _, wm := range res.Waiting {
		fmt.Fprintf(&w.out, "  waiting: %s\n", strings.Replace(wm.Line(), wm.Since.UTC().Format("2006-01-02"), "(date)", 1))
	}
	w.moodle()
}

// assertPlanIsWhatHappened checks that the plan printed before the load is
// the plan the load executed, item by item, and that the writes it reports
// done are exactly the changes Moodle shows between before and after.
func (w *world) assertPlanIsWhatHappened(dry, done *load.Plan, before, after moodlesim.State) {
	w.t.Helper()
	var a, b bytes.Buffer
	dry.WriteItems(&a)
	for _, cp := range done.Courses {
		for _, it := range append(append([]*load.Item(nil), cp.Items...), cp.Held...) {
			if it.Outcome == "held" {
				w.t.Errorf("the gate held an item the plan did not: %s", it.Line())
			}
		}
	}
	done.WriteItemsAsPlanned(&b)
	if a.String() != b.String() {
		w.t.Errorf("the dry-run plan and the executed plan differ:\n--- dry run\n%s--- executed\n%s", a.String(), b.String())
	}
	var want []string
	for _, cp := range done.Courses {
		for _, it := range cp.Items {
			if it.Outcome == "done" && writesToMoodle(it) {
				want = append(want, w.changeKey(it))
			}
		}
	}
	got := w.changes(before, after)
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		w.t.Errorf("the writes the load reports differ from Moodle's changes:\n--- reported\n%s\n--- in Moodle\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

func writesToMoodle(it *load.Item) bool {
	switch it.Action {
	case load.ActCreate, load.ActAdopt, load.ActRename, load.ActAssign, load.ActAdd, load.ActRemove, load.ActGiveBack, load.ActArchive, load.ActDelete,
		load.ActEnrol, load.ActSuspend, load.ActUnenrol:
		return true
	}
	return false
}

// changeKey names a write as changes() names what Moodle shows.
func (w *world) changeKey(it *load.Item) string {
	switch it.Object {
	case "member":
		who := it.CMISID
		if who == "" {
			who = w.cmisOf(int(it.UserID))
		}
		return fmt.Sprintf("%d %s member %s %s", it.CourseID, it.Action, it.IDNumber, who)
	case "enrolment":
		return fmt.Sprintf("%d %s enrolment %s", it.CourseID, it.Action, it.CMISID)
	case "group", "grouping":
		action := it.Action
		if action == load.ActArchive {
			action = load.ActGiveBack // both clear cmissync's idnumber
		}
		return fmt.Sprintf("%d %s %s %s", it.CourseID, action, it.Object, it.IDNumber)
	}
	return fmt.Sprintf("%d %s %s", it.CourseID, it.Action, it.Object)
}

func (w *world) cmisOf(uid int) string {
	for p, id := range w.users {
		if id == uid {
			return p
		}
	}
	return fmt.Sprintf("user%d", uid)
}

// changes lists what changed in Moodle between two states, in the words of
// changeKey.
func (w *world) changes(before, after moodlesim.State) []string {
	var out []string
	type obj struct {
		course    int
		name, idn string
		members   []int
		groups    []int
		grouping  bool
	}
	index := func(s moodlesim.State) map[string]obj {
		m := map[string]obj{}
		for _, g := range s.Groups {
			m[fmt.Sprintf("g%d", g.ID)] = obj{course: g.CourseID, name: g.Name, idn: g.IDNumber, members: g.Members}
		}
		for _, g := range s.Groupings {
			m[fmt.Sprintf("G%d", g.ID)] = obj{course: g.CourseID, name: g.Name, idn: g.IDNumber, groups: g.Groups, grouping: true}
		}
		return m
	}
	b, a := index(before), index(after)
	idnOf := func(id int) string {
		if o, ok := a[fmt.Sprintf("g%d", id)]; ok {
			return o.idn
		}
		return b[fmt.Sprintf("g%d", id)].idn
	}
	kindOf := func(o obj) string {
		if o.grouping {
			return "grouping"
		}
		return "group"
	}
	for k, x := range a {
		y, existed := b[k]
		switch {
		case !existed:
			out = append(out, fmt.Sprintf("%d create %s %s", x.course, kindOf(x), x.idn))
			for _, u := range x.members {
				out = append(out, fmt.Sprintf("%d add member %s %s", x.course, x.idn, w.cmisOf(u)))
			}
			for _, g := range x.groups {
				out = append(out, fmt.Sprintf("%d assign group %s", x.course, idnOf(g)))
			}
			continue
		case y.idn == "" && x.idn != "":
			out = append(out, fmt.Sprintf("%d adopt %s %s", x.course, kindOf(x), x.idn))
		case y.idn != "" && x.idn == "":
			out = append(out, fmt.Sprintf("%d give-back %s %s", x.course, kindOf(x), y.idn))
		case y.name != x.name || y.idn != x.idn:
			out = append(out, fmt.Sprintf("%d rename %s %s", x.course, kindOf(x), x.idn))
		}
		idn := x.idn
		if idn == "" {
			idn = y.idn
		}
		for _, u := range diff(x.members, y.members) {
			out = append(out, fmt.Sprintf("%d add member %s %s", x.course, idn, w.cmisOf(u)))
		}
		for _, u := range diff(y.members, x.members) {
			out = append(out, fmt.Sprintf("%d remove member %s %s", x.course, idn, w.cmisOf(u)))
		}
		for _, g := range diff(x.groups, y.groups) {
			out = append(out, fmt.Sprintf("%d assign group %s", x.course, idnOf(g)))
		}
	}
	for k, y := range b {
		if _, ok := a[k]; !ok {
			if _, courseGone := w.coursesByID()[y.course]; courseGone {
				continue // the course itself was deleted in Moodle
			}
			out = append(out, fmt.Sprintf("%d delete %s %s", y.course, kindOf(y), y.idn))
		}
	}
	// Manual enrolments: made, suspended, made active again, removed.
	manual := func(s moodlesim.State) map[[2]int]bool { // -> suspended
		m := map[[2]int]bool{}
		for _, e := range s.UserEnrolments {
			if e.Method == moodlesim.MethodManual {
				m[[2]int{e.CourseID, e.UserID}] = e.Suspended
			}
		}
		return m
	}
	eb, ea := manual(before), manual(after)
	for k, susp := range ea {
		was, existed := eb[k]
		switch {
		case !existed || was && !susp:
			out = append(out, fmt.Sprintf("%d enrol enrolment %s", k[0], w.cmisOf(k[1])))
		case !was && susp:
			out = append(out, fmt.Sprintf("%d suspend enrolment %s", k[0], w.cmisOf(k[1])))
		}
	}
	for k := range eb {
		if _, ok := ea[k]; !ok {
			out = append(out, fmt.Sprintf("%d unenrol enrolment %s", k[0], w.cmisOf(k[1])))
		}
	}
	return out
}

// coursesByID lists courses the scenario deleted from Moodle.
func (w *world) coursesByID() map[int]bool {
	gone := map[int]bool{}
	live := map[int]bool{}
	for _, c := range w.sim.State().Courses {
		live[c.ID] = true
	}
	for _, g := range w.deleted {
		if !live[g] {
			gone[g] = true
		}
	}
	return gone
}

func diff(a, b []int) []int {
	in := map[int]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []int
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

func countsLine(r stage.Result) string {
	var parts []string
	for _, kv := range []struct {
		name string
		c    stage.Counts
	}{{"groupings", r.Groupings}, {"groups", r.Groups}, {"members", r.Members}} {
		parts = append(parts, fmt.Sprintf("%s +%d -%d revive %d rename %d drop %d keep %d", kv.name, kv.c.Add, kv.c.Delete, kv.c.Revive, kv.c.Rename, kv.c.Drop, kv.c.Keep))
	}
	return strings.Join(parts, "; ")
}

func resultLine(r *load.Result) string {
	m := r.Map()
	var keys []string
	for k, v := range m {
		if v != 0 {
			keys = append(keys, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return "nothing to do"
	}
	return strings.Join(keys, " ")
}

// moodle writes what Moodle holds, by course, with CMIS ids for users.
func (w *world) moodle() {
	byID := map[int]string{}
	for p, id := range w.users {
		byID[id] = p
	}
	s := w.sim.State()
	names := map[int]string{}
	for c, id := range w.courses {
		names[id] = c
	}
	fmt.Fprintf(&w.out, "\nmoodle:\n")
	var cids []int
	for id := range names {
		cids = append(cids, id)
	}
	sort.Ints(cids)
	gname := map[int]string{}
	for _, g := range s.Groups {
		gname[g.ID] = g.IDNumber
	}
	type enrolment struct {
		suspended bool
		roles     []int
	}
	enrolled := map[[2]int]*enrolment{}
	for _, e := range s.UserEnrolments {
		k := [2]int{e.CourseID, e.UserID}
		if enrolled[k] == nil {
			enrolled[k] = &enrolment{suspended: true}
		}
		enrolled[k].suspended = enrolled[k].suspended && e.Suspended
	}
	for _, r := range s.RoleAssignments {
		if e := enrolled[[2]int{r.CourseID, r.UserID}]; e != nil {
			e.roles = append(e.roles, r.RoleID)
		}
	}
	var people []string
	for p := range w.users {
		people = append(people, p)
	}
	sort.Strings(people)
	for _, c := range cids {
		fmt.Fprintf(&w.out, "  %s\n", names[c])
		// Enrolments other than the world's default (everyone enrolled,
		// active, as a student) are listed.
		var odd []string
		exists := false
		for _, x := range s.Courses {
			exists = exists || x.ID == c
		}
		for _, p := range people {
			if !exists {
				break
			}
			e := enrolled[[2]int{c, w.users[p]}]
			switch {
			case e == nil:
				odd = append(odd, p+": not enrolled")
			case e.suspended || len(e.roles) != 1 || e.roles[0] != moodlesim.RoleStudent:
				sort.Ints(e.roles)
				st := "active"
				if e.suspended {
					st = "suspended"
				}
				odd = append(odd, fmt.Sprintf("%s: %s, roles %v", p, st, e.roles))
			}
		}
		if len(odd) > 0 {
			fmt.Fprintf(&w.out, "    enrolments: %s\n", strings.Join(odd, "; "))
		}
		for _, g := range s.Groupings {
			if g.CourseID == c {
				var in []string
				for _, id := range g.Groups {
					in = append(in, gname[id])
				}
				fmt.Fprintf(&w.out, "    grouping %-16s %-28q %v\n", g.IDNumber, g.Name, in)
			}
		}
		for _, g := range s.Groups {
			if g.CourseID == c {
				var ms []string
				for _, u := range g.Members {
					ms = append(ms, byID[u])
				}
				sort.Strings(ms)
				idn := g.IDNumber
				if idn == "" {
					idn = "(hand-made)"
				}
				fmt.Fprintf(&w.out, "    group    %-16s %-28q %v\n", idn, g.Name, ms)
			}
		}
	}
	w.out.WriteString("\n")
}

func (w *world) golden(name string) {
	w.t.Helper()
	path := filepath.Join("testdata", "scenarios", name+".txt")
	if *update {
		if err := os.WriteFile(path, w.out.Bytes(), 0o644); err != nil {
			w.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		w.t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, w.out.Bytes()) {
		w.t.Fatalf("%s differs from the golden file (run go test ./load -run Scenarios -update and review the diff):\n%s", path, w.out.String())
	}
}

func (w *world) handGroup(course, name string, people ...string) int {
	id, err := w.sim.AddGroup(moodlesim.Group{CourseID: w.courses[course], Name: name})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, p := range people {
		if err := w.sim.AddMember(id, w.users[p]); err != nil {
			w.t.Fatal(err)
		}
	}
	return id
}

func (w *world) ownedGrouping(course, idnumber string) int {
	for _, g := range w.sim.State().Groupings {
		if g.CourseID == w.courses[course] && g.IDNumber == idnumber {
			return g.ID
		}
	}
	w.t.Fatalf("no grouping %s in %s", idnumber, course)
	return 0
}

func (w *world) ownedGroup(course, idnumber string) int {
	for _, g := range w.sim.State().Groups {
		if g.CourseID == w.courses[course] && g.IDNumber == idnumber {
			return g.ID
		}
	}
	w.t.Fatalf("no group %s in %s", idnumber, course)
	return 0
}

// The scenarios: each rule of the stage step and each known issue of the
// old tool's runbook, as a story whose plans, load results and Moodle
// states are golden files under testdata/scenarios. Same output on both
// engines.
var scenarios = map[string]func(w *world){
	"rules_add_remove_readd": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2", "t1")
		w.cmis("COMP1001", "SEM02", "s3")
		w.cmis("MATH1001", "LAB01", "s1", "s4")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.mapping("B", "COMP1001", "ADD", "ADD") // a module feeds two courses
		w.mapping("B", "MATH1001", "ADD", "ADD") // a course takes two modules
		w.sync("first sync: groupings, groups, students and tutors", stage.Options{}, load.Options{})
		w.sync("nothing changed: nothing to do", stage.Options{}, load.Options{})
		w.cmis("COMP1001", "SEM01", "s1", "t1", "s5") // s2 leaves, s5 joins
		w.sync("a student leaves, another joins (both courses taking the module)", stage.Options{}, load.Options{})
		w.dropGroup("COMP1001", "SEM02")
		w.sync("a group disappears from CMIS", stage.Options{}, load.Options{})
		w.mapping("B", "MATH1001", "RMV", "ADD")
		w.sync("group_import=RMV removes that module's groups and grouping from that course only", stage.Options{}, load.Options{})
		w.mapping("A", "COMP1001", "RMV", "RMV")
		w.sync("mapping_action=RMV removes the mapping entirely", stage.Options{}, load.Options{})
		w.mapping("B", "MATH1001", "ADD", "ADD")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.sync("adding removed modules back recreates everything", stage.Options{}, load.Options{})
	},
	"known_issue_1_group_deleted_in_moodle": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.sync("first sync", stage.Options{}, load.Options{})
		if err := w.sim.DeleteGroup(w.ownedGroup("A", "cmis:COMP1001:SEM01")); err != nil {
			w.t.Fatal(err)
		}
		w.cmis("COMP1001", "SEM01", "s1", "s2", "s3")
		w.sync("the group was deleted in Moodle: recreated with its members, no exception", stage.Options{}, load.Options{})
	},
	"known_issue_2_same_name_hand_made_group": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.cmis("COMP1001", "SEM02", "s3")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.handGroup("A", "COMP1001 SEM01", "s3")
		w.sync("a hand-made group has the name: cmissync's is created as NAME (CMIS), reported", stage.Options{}, load.Options{})
		w.handGroup("A", "COMP1001 SEM03")
		w.cmis("COMP1001", "SEM03", "s1")
		w.sync("with on_name_clash=adopt the hand-made one is taken over", stage.Options{}, load.Options{OnNameClash: load.ClashAdopt})
	},
	"known_issues_3_6_unenrolled_members": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2", "s3")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		if err := w.sim.Unenrol(w.courses["A"], w.users["s2"]); err != nil {
			w.t.Fatal(err)
		}
		w.sync("an unenrolled student is reported, everyone else is added", stage.Options{}, load.Options{})
		w.sync("still not enrolled: tried again on its own (one single add, no read of the course), refused, still waiting", stage.Options{}, load.Options{})
		if err := w.sim.Enrol(w.courses["A"], w.users["s2"]); err != nil {
			w.t.Fatal(err)
		}
		w.sync("once enrolled, the student is added", stage.Options{}, load.Options{})
	},
	"known_issue_4_group_renamed_in_moodle": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.sync("first sync", stage.Options{}, load.Options{})
		if err := w.sim.RenameGroup(w.ownedGroup("A", "cmis:COMP1001:SEM01"), "Monday seminar"); err != nil {
			w.t.Fatal(err)
		}
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.sync("renamed in Moodle: still recognised by idnumber, Moodle's name kept", stage.Options{}, load.Options{})
		// "keep" made the teacher's name the one cmissync expects; with
		// "restore", renames made from then on are undone.
		if err := w.sim.RenameGroup(w.ownedGroup("A", "cmis:COMP1001:SEM01"), "Tuesday seminar"); err != nil {
			w.t.Fatal(err)
		}
		w.cmis("COMP1001", "SEM01", "s1")
		w.sync("renamed again, with on_renamed=restore: cmissync's name comes back", stage.Options{}, load.Options{OnRenamed: load.RenamedRestore})
		w.sync("a new name template renames cmissync's groups", stage.Options{Templates: stage.Templates{GroupName: "{groupname} ({module})"}}, load.Options{})
	},
	"known_issue_5_hand_made_groups_and_members_untouched": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.cmis("X", "X", "s9") // makes user s9
		w.dropGroup("X", "X")
		w.handGroup("A", "Study group", "s1", "s9")
		w.sync("first sync leaves the hand-made group alone", stage.Options{}, load.Options{})
		if err := w.sim.AddMember(w.ownedGroup("A", "cmis:COMP1001:SEM01"), w.users["s9"]); err != nil {
			w.t.Fatal(err)
		}
		w.cmis("COMP1001", "SEM01", "s1")
		w.sync("a member added by hand to cmissync's group stays; one cmissync added leaves", stage.Options{}, load.Options{})
		w.sync("with remove_members_not_in_cmis the hand-added member goes too", stage.Options{}, load.Options{RemoveUnseenMembers: true})
		w.mapping("A", "COMP1001", "RMV", "RMV")
		w.sync("unmapping deletes cmissync's group and grouping, never the hand-made group", stage.Options{}, load.Options{})
	},
	"known_issue_7_same_group_code_two_modules": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1")
		w.cmis("MATH1001", "SEM01", "s2")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.mapping("A", "MATH1001", "ADD", "ADD")
		w.sync("two modules with group SEM01 in one course: distinct idnumbers and names", stage.Options{}, load.Options{})
	},
	"course_filter_and_deleted_course": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.mapping("B", "COMP1001", "ADD", "ADD")
		w.sync("--course A touches only course A", stage.Options{Filter: store.Filter{Courses: []int64{int64(w.courses["A"])}}}, load.Options{})
		w.sync("then all courses", stage.Options{}, load.Options{})
		if err := w.sim.DeleteCourse(w.courses["B"]); err != nil {
			w.t.Fatal(err)
		}
		w.deleted = append(w.deleted, w.courses["B"])
		delete(w.courses, "B")
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.sync("a course deleted in Moodle retires its mappings", stage.Options{}, load.Options{})
	},
	"drift_repaired_in_a_quiet_course": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.cmis("COMP1001", "SEM02", "s3", "s4")
		w.cmis("COMP1001", "SEM03", "s5")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.sync("first sync", stage.Options{}, load.Options{})
		// Nothing changes in CMIS; in Moodle a teacher deletes one group,
		// renames another, takes the third out of its grouping and removes
		// a student from the second.
		if err := w.sim.DeleteGroup(w.ownedGroup("A", "cmis:COMP1001:SEM01")); err != nil {
			w.t.Fatal(err)
		}
		if err := w.sim.RenameGroup(w.ownedGroup("A", "cmis:COMP1001:SEM02"), "Tuesday seminar"); err != nil {
			w.t.Fatal(err)
		}
		if err := w.sim.RemoveMember(w.ownedGroup("A", "cmis:COMP1001:SEM02"), w.users["s3"]); err != nil {
			w.t.Fatal(err)
		}
		if err := w.mc.UnassignGrouping(context.Background(), []moodle.Pair{{A: int64(w.ownedGrouping("A", "cmis:COMP1001")), B: int64(w.ownedGroup("A", "cmis:COMP1001:SEM03"))}}); err != nil {
			w.t.Fatal(err)
		}
		w.sync("a quiet night repairs everything: recreated, name kept, put back in its grouping, member restored", stage.Options{}, load.Options{})
		w.sync("and the next night has nothing to do", stage.Options{}, load.Options{})
		if err := w.sim.RemoveMember(w.ownedGroup("A", "cmis:COMP1001:SEM02"), w.users["s4"]); err != nil {
			w.t.Fatal(err)
		}
		w.sync("with on_member_removed=respect a member removed by hand stays out", stage.Options{}, load.Options{OnMemberRemoved: load.MemberRespect})
		w.sync("and stays out on later nights, whatever the policy", stage.Options{}, load.Options{})
	},
	"course_inaccessible_then_deleted": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.mapping("B", "COMP1001", "ADD", "ADD")
		w.sync("first sync", stage.Options{}, load.Options{})
		if err := w.sim.SetCourseAccessible(w.courses["B"], false); err != nil {
			w.t.Fatal(err)
		}
		w.cmis("COMP1001", "SEM01", "s2")
		w.sync("the service user loses access to course B: a failure every run, nothing of it forgotten, nothing deleted there", stage.Options{}, load.Options{})
		if err := w.sim.SetCourseAccessible(w.courses["B"], true); err != nil {
			w.t.Fatal(err)
		}
		w.sync("access restored: course B catches up", stage.Options{}, load.Options{})
		if err := w.sim.DeleteCourse(w.courses["B"]); err != nil {
			w.t.Fatal(err)
		}
		w.deleted = append(w.deleted, w.courses["B"])
		w.sync("course B deleted in Moodle, CMIS unchanged: retired on positive evidence", stage.Options{}, load.Options{})
	},
	"course_hidden_is_not_deleted": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.mapping("B", "COMP1001", "ADD", "ADD")
		w.sync("first sync", stage.Options{}, load.Options{})
		if err := w.sim.SetCourseHidden(w.courses["B"], true); err != nil {
			w.t.Fatal(err)
		}
		w.cmis("COMP1001", "SEM01", "s2")
		w.sync("course B hidden from the service user: left out of the course search as a deleted one is, but its enrolment read is refused, not invalidrecord: inaccessible, nothing retired", stage.Options{}, load.Options{})
		if err := w.sim.SetCourseHidden(w.courses["B"], false); err != nil {
			w.t.Fatal(err)
		}
		w.sync("shown again: course B catches up", stage.Options{}, load.Options{})
	},
	"enrol_missing_then_suspend_and_reactivate": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2", "t1")
		w.cmis("COMP1001", "SEM02", "s2")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.notEnrolled("s2", "t1")
		on := load.Options{EnrolMissing: true, UnenrolAction: load.UnenrolSuspend}
		w.sync("s2 and tutor t1 are not enrolled: enrolled first (student role, non-editing teacher), then added to their groups; s1 was enrolled by hand", stage.Options{}, on)
		w.sync("in step: nothing read or sent for enrolment", stage.Options{}, on)
		w.cmis("COMP1001", "SEM01", "s1", "t1")
		w.sync("s2 leaves SEM01 but stays in SEM02: still enrolled", stage.Options{}, on)
		w.dropGroup("COMP1001", "SEM02")
		w.cmis("COMP1001", "SEM01", "t1")
		w.sync("s2 in no CMIS group of the course: removed, then the enrolment cmissync made is suspended; s1, enrolled by hand, keeps theirs", stage.Options{}, on)
		w.cmis("COMP1001", "SEM01", "s2", "t1")
		w.sync("s2 back in CMIS: made active again and added", stage.Options{}, on)
	},
	"unenrol_only_what_cmissync_made": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2", "s3")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.notEnrolled("s2", "s3")
		opts := load.Options{EnrolMissing: true, UnenrolAction: load.UnenrolRemove}
		w.sync("s2 and s3 enrolled by cmissync, s1 by hand", stage.Options{}, opts)
		w.cmis("COMP1001", "SEM01", "s3")
		opts.RemoveAfterRuns = 2
		w.sync("s1 and s2 leave CMIS, one absence of two: nothing removed, the unenrolment of s2 is held with its removal", stage.Options{}, opts)
		w.sync("second absence: both removed from the group; only s2's enrolment, made by cmissync, is removed", stage.Options{}, opts)
		w.sync("in step", stage.Options{}, opts)
	},
	"enrol_refused_role": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2", "t1")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.notEnrolled("s2", "t1")
		w.sync("the tutor role is one the service user may not assign: t1's enrolment fails and t1 waits; s2 is enrolled and added", stage.Options{},
			load.Options{EnrolMissing: true, TutorRoleID: moodlesim.RoleCourseCreator})
		w.sync("with an assignable role, t1 is enrolled and added", stage.Options{}, load.Options{EnrolMissing: true})
	},
	"skip_ended_courses": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.mapping("B", "COMP1001", "ADD", "ADD")
		opts := load.Options{SkipEndedCourses: true}
		w.sync("first sync", stage.Options{}, opts)
		if err := w.sim.SetCourseEndDate(w.courses["B"], time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC).Unix()); err != nil {
			w.t.Fatal(err)
		}
		w.cmis("COMP1001", "SEM01", "s2")
		w.sync("course B ended: frozen, reported once; course A kept in step", stage.Options{}, opts)
		w.sync("still ended: nothing written to B, nothing reported again", stage.Options{}, opts)
		if err := w.sim.SetCourseEndDate(w.courses["B"], time.Now().AddDate(1, 0, 0).Unix()); err != nil {
			w.t.Fatal(err)
		}
		w.sync("its end date moved into the future: thawed and caught up", stage.Options{}, opts)
	},
	"adopted_group_survives_forget": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.cmis("X", "X", "s9") // makes user s9
		w.dropGroup("X", "X")
		w.handGroup("A", "COMP1001 SEM01", "s9")
		w.sync("a teacher's group has the wanted name and is adopted", stage.Options{}, load.Options{OnNameClash: load.ClashAdopt})
		if _, err := w.st.ForgetCourse(context.Background(), int64(w.courses["A"]), store.AuditEntry{RunID: "forget", CourseID: int64(w.courses["A"]), Object: "course", Action: "forget"}); err != nil {
			w.t.Fatal(err)
		}
		w.sync("the course forgotten in staging: everything found again by idnumber, the group still known as adopted from the audit trail", stage.Options{}, load.Options{OnNameClash: load.ClashAdopt})
		w.dropGroup("COMP1001", "SEM01")
		w.sync("CMIS drops it: given back to the teacher, never deleted", stage.Options{}, load.Options{OnNameClash: load.ClashAdopt})
	},
	"adopted_group_given_back": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.cmis("COMP1001", "SEM02", "s3")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.cmis("X", "X", "s9") // makes user s9
		w.dropGroup("X", "X")
		w.handGroup("A", "COMP1001 SEM01", "s9")
		w.sync("a teacher's group has the wanted name and is adopted with its member", stage.Options{}, load.Options{OnNameClash: load.ClashAdopt})
		w.dropGroup("COMP1001", "SEM01")
		w.sync("CMIS drops it: given back, never deleted; only the members cmissync added leave", stage.Options{}, load.Options{OnNameClash: load.ClashAdopt})
		w.sync("and it is the teacher's again", stage.Options{}, load.Options{OnNameClash: load.ClashAdopt})
	},
	"phantom_left_by_a_refused_create": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1")
		w.cmis("COMP1001", "SEM02", "s2")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.sync("first sync", stage.Options{}, load.Options{})
		// Another client's create call made SEM03 and was refused on its
		// second item: SEM03 is a phantom in Moodle's group cache, listed
		// but not in the database.
		phantom := moodle.Group{CourseID: int64(w.courses["A"]), Name: "COMP1001 SEM03", IDNumber: "cmis:COMP1001:SEM03"}
		taken := moodle.Group{CourseID: int64(w.courses["A"]), Name: "other", IDNumber: "cmis:COMP1001:SEM01"}
		if _, err := w.mc.CreateGroups(context.Background(), []moodle.Group{phantom, taken}); moodle.ErrorCode(err) != moodle.CodeIDNumberTaken {
			w.t.Fatalf("the refused call answered %v", err)
		}
		w.cmis("COMP1001", "SEM03", "s3")
		w.sync("the phantom is confirmed absent by id, the cache cleared, and the group created once", stage.Options{}, load.Options{})
	},
	"phantom_in_courses_with_nothing_to_clear_it_with": func(w *world) {
		// Course B has no group or grouping at all, only a phantom of
		// cmissync's grouping left by another client's refused call. The
		// groupings go in one batch, which the phantom refuses, leaving a
		// phantom of A's grouping too; neither course has an object yet to
		// clear its cache with. The groups are created, and with them the
		// groupings, once each course's cache is cleared.
		dup := moodle.Grouping{CourseID: int64(w.courses["B"]), Name: "first", IDNumber: "cmis:COMP1001", Description: "x"}
		dup2 := dup
		dup2.Name = "second"
		if _, err := w.mc.CreateGroupings(context.Background(), []moodle.Grouping{dup, dup2}); moodle.ErrorCode(err) != moodle.CodeIDNumberTaken {
			w.t.Fatalf("the refused call answered %v", err)
		}
		w.cmis("COMP1001", "SEM01", "s1")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.mapping("B", "COMP1001", "ADD", "ADD")
		w.sync("first sync", stage.Options{}, load.Options{})
		w.sync("nothing left to do", stage.Options{}, load.Options{})
	},
	"group_removed_archived": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.cmis("COMP1001", "SEM02", "s3")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		archive := load.Options{OnGroupRemoved: load.GroupArchive}
		w.sync("first sync", stage.Options{}, archive)
		w.dropGroup("COMP1001", "SEM01")
		w.sync("with on_group_removed=archive a group gone from CMIS is kept with its id and members, renamed, no longer managed", stage.Options{}, archive)
		w.sync("and left alone afterwards", stage.Options{}, archive)
	},
	"remove_after_runs": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.cmis("COMP1001", "SEM02", "s3")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		after3 := load.Options{RemoveAfterRuns: 3}
		w.sync("first sync", stage.Options{}, after3)
		w.cmis("COMP1001", "SEM01", "s1")
		w.dropGroup("COMP1001", "SEM02")
		w.sync("a student and a group leave CMIS: pending, absent from 1 of 3 extracts", stage.Options{}, after3)
		w.sync("absent from 2 of 3", stage.Options{}, after3)
		w.cmis("COMP1001", "SEM01", "s1", "s2")
		w.sync("the student is back before the third absence: nothing removed, the count starts again; the group, absent a third time, goes", stage.Options{}, after3)
		w.cmis("COMP1001", "SEM01", "s1")
		w.sync("the student is gone again: 1 of 3", stage.Options{}, after3)
		w.sync("2 of 3", stage.Options{}, after3)
		w.sync("3 of 3: removed", stage.Options{}, after3)
	},
	"frozen_course": func(w *world) {
		w.cmis("COMP1001", "SEM01", "s1")
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.mapping("B", "COMP1001", "ADD", "ADD")
		w.sync("first sync", stage.Options{}, load.Options{})
		frozen := load.Options{FrozenCourses: []int64{int64(w.courses["B"])}}
		w.cmis("COMP1001", "SEM01", "s2")
		w.sync("course B frozen: reported once, nothing in it changes", stage.Options{}, frozen)
		w.sync("still frozen: no report, no change", stage.Options{}, frozen)
		w.sync("named with --course, a frozen course is written to all the same", stage.Options{Filter: store.Filter{Courses: []int64{int64(w.courses["B"])}}},
			load.Options{FrozenCourses: []int64{int64(w.courses["B"])}, Unfreeze: []int64{int64(w.courses["B"])}})
		w.cmis("COMP1001", "SEM01", "s3")
		w.sync("thawed: reported, and in step again", stage.Options{}, load.Options{})
	},
	"mass_change_guard": func(w *world) {
		var people []string
		for i := 1; i <= 60; i++ {
			people = append(people, fmt.Sprintf("s%02d", i))
		}
		w.cmis("COMP1001", "SEM01", people...)
		w.mapping("A", "COMP1001", "ADD", "ADD")
		w.sync("first sync", stage.Options{}, load.Options{})
		w.cmis("COMP1001", "SEM01")
		w.sync("CMIS returns no members: held", stage.Options{}, load.Options{Guard: load.Guard{MaxDeleteShare: 0.25, CourseMaxDeleteShare: 0.5, CourseMinItems: 50}})
		w.sync("approved", stage.Options{}, load.Options{Guard: load.Guard{MaxDeleteShare: 0.25}, ApproveDeletes: true})
	},
}

func TestScenarios(t *testing.T) {
	for name, run := range scenarios {
		for _, engine := range storetest.Engines {
			t.Run(name+"/"+engine, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, engine, "A", "B")
				run(w)
				if engine == store.EngineSQLite || !*update {
					w.golden(name)
				}
			})
		}
	}
}

// TestScenariosSequentialAndParallelAgree runs every scenario one request at
// a time and sixteen at a time: the outcome must be the golden one both ways.
func TestScenariosSequentialAndParallelAgree(t *testing.T) {
	if *update {
		t.Skip("golden files are written by TestScenarios")
	}
	for name, run := range scenarios {
		for _, c := range []int{1, 16} {
			t.Run(fmt.Sprintf("%s/concurrency=%d", name, c), func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, store.EngineSQLite, "A", "B")
				w.concurrency = c
				run(w)
				w.golden(name)
			})
		}
	}
}
