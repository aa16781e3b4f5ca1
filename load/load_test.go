package load_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

const token = "load-test-token"

// quiet is the tests' logger: silent, or, with CMISSYNC_TEST_LOG=debug
// (or another logrus level), logging to stderr.
func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if v := os.Getenv("CMISSYNC_TEST_LOG"); v != "" {
		if lvl, err := logrus.ParseLevel(v); err == nil {
			l.SetOutput(os.Stderr)
			l.SetLevel(lvl)
		}
	}
	return l
}

// fixture is one course (with one module of groups) in the simulator and a
// staged plan for it.
type fixture struct {
	t      *testing.T
	sim    *moodlesim.Server
	mc     *moodle.Client
	st     *store.Store
	course int
	url    string
	users  map[string]int // idnumber -> Moodle id
}

// newFixture makes a course taking module MOD with groups G01..Gnn of
// `members` students each, everyone enrolled.
func newFixture(t *testing.T, engine string, groups, members int, opts moodlesim.Options, copts ...func(*moodle.Options)) *fixture {
	t.Helper()
	ctx := context.Background()
	opts.Token, opts.ShowIdnumber = token, true
	f := &fixture{t: t, sim: moodlesim.New(opts), st: storetest.Open(t, engine), users: map[string]int{}}
	url, err := f.sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.url = url
	t.Cleanup(func() { f.sim.Close() })
	mo := moodle.Options{URL: url, Token: token, MaxInputVars: opts.MaxInputVars, Retries: -1}
	for _, c := range copts {
		c(&mo)
	}
	if f.mc, err = moodle.New(mo); err != nil {
		t.Fatal(err)
	}
	f.course = f.sim.AddCourse(moodlesim.Course{ShortName: "C1", FullName: "Course one"})
	gen, err := f.st.BeginExtract(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	var grows, mrows [][]string
	for g := 1; g <= groups; g++ {
		code := fmt.Sprintf("G%02d", g)
		grows = append(grows, []string{"MOD", code, "Module", "Group " + code})
		for m := 1; m <= members; m++ {
			idn := fmt.Sprintf("%03d%04d", g, m)
			uid := f.sim.AddUser(moodlesim.User{Username: "u" + idn, IDNumber: idn, FirstName: "S", LastName: idn})
			f.users[idn] = uid
			if err := f.sim.Enrol(f.course, uid); err != nil {
				t.Fatal(err)
			}
			mrows = append(mrows, []string{"MOD", code, idn})
		}
	}
	for tbl, rows := range map[store.DumpTable][][]string{store.ModuleGroups: grows, store.GroupMembers: mrows} {
		if _, err := gen.Insert(ctx, tbl, rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := gen.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.st.UpsertMapping(ctx, store.Mapping{CourseID: int64(f.course), ModuleCode: "MOD"}); err != nil {
		t.Fatal(err)
	}
	f.stage()
	return f
}

func (f *fixture) stage() {
	f.t.Helper()
	f.stageWith(stage.Options{})
}

func (f *fixture) stageWith(o stage.Options) {
	f.t.Helper()
	if _, err := stage.Run(context.Background(), f.st, o, quiet()); err != nil {
		f.t.Fatal(err)
	}
}

// setMembers replaces the CMIS members of module MOD (group code -> ids)
// and stages with the default templates.
func (f *fixture) setMembers(groups map[string][]string) {
	f.t.Helper()
	f.setDump(groups)
	f.stage()
}

// setDump replaces the CMIS members of module MOD without staging.
func (f *fixture) setDump(groups map[string][]string) {
	f.t.Helper()
	ctx := context.Background()
	gen, err := f.st.BeginExtract(ctx, "t")
	if err != nil {
		f.t.Fatal(err)
	}
	var grows, mrows [][]string
	for code, ids := range groups {
		grows = append(grows, []string{"MOD", code, "Module", "Group " + code})
		for _, idn := range ids {
			mrows = append(mrows, []string{"MOD", code, idn})
		}
	}
	for tbl, rows := range map[store.DumpTable][][]string{store.ModuleGroups: grows, store.GroupMembers: mrows} {
		if _, err := gen.Insert(ctx, tbl, rows); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := gen.Commit(ctx); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) group(idnumber string) moodlesim.Group {
	for _, g := range f.sim.State().Groups {
		if g.IDNumber == idnumber {
			return g
		}
	}
	f.t.Fatalf("no group %s in Moodle", idnumber)
	return moodlesim.Group{}
}

func (f *fixture) newUser(idn string) int {
	uid := f.sim.AddUser(moodlesim.User{Username: "u" + idn, IDNumber: idn})
	f.users[idn] = uid
	if err := f.sim.Enrol(f.course, uid); err != nil {
		f.t.Fatal(err)
	}
	return uid
}

func (f *fixture) load() *load.Result {
	f.t.Helper()
	return f.loadWith(load.Options{})
}

func (f *fixture) loadWith(o load.Options) *load.Result {
	f.t.Helper()
	o.RunID = "t"
	res, err := load.Run(context.Background(), f.st, f.mc, o, quiet())
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// members returns idnumber -> sorted member idnumbers of owned groups.
func (f *fixture) members() map[string][]string {
	byID := map[int]string{}
	for idn, id := range f.users {
		byID[id] = idn
	}
	out := map[string][]string{}
	for _, g := range f.sim.State().Groups {
		var ms []string
		for _, u := range g.Members {
			ms = append(ms, byID[u])
		}
		sort.Strings(ms)
		out[g.IDNumber] = ms
	}
	return out
}

func eachEngine(t *testing.T, fn func(t *testing.T, engine string)) {
	for _, e := range storetest.Engines {
		t.Run(e, func(t *testing.T) { t.Parallel(); fn(t, e) })
	}
}

func TestGroupDeletedInMoodleIsRecreatedWithItsMembers(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, 3, 20, moodlesim.Options{})
		// After a first load, someone deletes group G02 in Moodle by hand.
		gone := "cmis:MOD:G02"
		res := f.load()
		if res.GroupsCreated != 3 || res.MembersAdded != 60 || len(res.Failures) != 0 {
			t.Fatalf("first load: %+v", res)
		}
		var gid int
		for _, g := range f.sim.State().Groups {
			if g.IDNumber == gone {
				gid = g.ID
			}
		}
		if err := f.sim.DeleteGroup(gid); err != nil {
			t.Fatal(err)
		}
		// CMIS adds one student to each group.
		ctx := context.Background()
		gen, _ := f.st.BeginExtract(ctx, "t2")
		var grows, mrows [][]string
		for g := 1; g <= 3; g++ {
			code := fmt.Sprintf("G%02d", g)
			grows = append(grows, []string{"MOD", code, "Module", "Group " + code})
			for m := 1; m <= 21; m++ {
				idn := fmt.Sprintf("%03d%04d", g, m)
				if m == 21 {
					if _, ok := f.users[idn]; !ok {
						uid := f.sim.AddUser(moodlesim.User{Username: "u" + idn, IDNumber: idn})
						f.users[idn] = uid
						_ = f.sim.Enrol(f.course, uid)
					}
				}
				mrows = append(mrows, []string{"MOD", code, idn})
			}
		}
		_, _ = gen.Insert(ctx, store.ModuleGroups, grows)
		_, _ = gen.Insert(ctx, store.GroupMembers, mrows)
		if err := gen.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		f.stage()
		// The load notices the deletion before writing, recreates the group
		// with all its members, and adds the new students elsewhere.
		res = f.load()
		if res.Recreated != 1 || res.GroupsCreated != 1 || res.Assigned != 1 || res.MembersAdded != 23 || len(res.Failures) != 0 || len(res.Notices) != 1 {
			t.Fatalf("load after the deletion: %+v", res)
		}
		for g, ms := range f.members() {
			if len(ms) != 21 {
				t.Fatalf("group %s has %d members, want 21", g, len(ms))
			}
		}
		if res := f.load(); res.Writes() != 0 {
			t.Fatalf("rerun wrote: %+v", res)
		}
	})
}

func TestCrashedRunGroupIsAdoptedNotDuplicated(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, 2, 3, moodlesim.Options{})
		// An earlier run created G01 in Moodle and died before recording it.
		if _, err := f.sim.AddGroup(moodlesim.Group{CourseID: f.course, Name: "MOD G01", IDNumber: "cmis:MOD:G01"}); err != nil {
			t.Fatal(err)
		}
		res := f.load()
		if res.Found != 1 || res.GroupsCreated != 1 || len(res.Failures) != 0 {
			t.Fatalf("load: %+v", res)
		}
		if n := len(f.sim.State().Groups); n != 2 {
			t.Fatalf("%d groups in Moodle, want 2 (no duplicate)", n)
		}
		if got := f.members()["cmis:MOD:G01"]; len(got) != 3 {
			t.Fatalf("adopted group has %v", got)
		}
	})
}

func TestHandMadeNameClashIsDisambiguated(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, 2, 2, moodlesim.Options{})
		hand, err := f.sim.AddGroup(moodlesim.Group{CourseID: f.course, Name: "MOD G01"})
		if err != nil {
			t.Fatal(err)
		}
		res := f.load()
		if res.GroupsCreated != 2 || len(res.Failures) != 0 || len(res.Notices) != 1 {
			t.Fatalf("load: %+v", res)
		}
		for _, g := range f.sim.State().Groups {
			switch {
			case g.ID == hand && (g.IDNumber != "" || len(g.Members) != 0 || g.Name != "MOD G01"):
				t.Fatalf("hand-made group touched: %+v", g)
			case g.IDNumber == "cmis:MOD:G01" && g.Name != "MOD G01 (CMIS)":
				t.Fatalf("ours is named %q", g.Name)
			}
		}
		if res := f.load(); res.Writes() != 0 {
			t.Fatalf("rerun wrote: %+v", res)
		}
	})
}

func TestSilentTruncationIsCaughtByReadBack(t *testing.T) {
	// The site's real limit is 200 but cmissync is told 1000: PHP drops the
	// tail of big requests and Moodle answers success anyway.
	f := newFixture(t, store.EngineSQLite, 1, 300, moodlesim.Options{MaxInputVars: 200},
		func(o *moodle.Options) { o.MaxInputVars = 1000 })
	res := f.load()
	if res.MembersAdded >= 300 || len(res.Failures) == 0 {
		t.Fatalf("silent loss not detected: %+v", res)
	}
	for _, fl := range res.Failures {
		if fl.ErrorCode != "notverified" {
			t.Fatalf("failure %+v", fl)
		}
	}
	// Told the right limit, the next load finishes the job.
	mc, err := moodle.New(moodle.Options{URL: f.url, Token: token, MaxInputVars: 200})
	if err != nil {
		t.Fatal(err)
	}
	f.mc = mc
	res = f.load()
	if len(res.Failures) != 0 || len(f.members()["cmis:MOD:G01"]) != 300 {
		t.Fatalf("second load: %+v, %d members", res, len(f.members()["cmis:MOD:G01"]))
	}
}

func TestMembershipAddedByHandIsNeverRemoved(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, 1, 2, moodlesim.Options{})
		f.load()
		g := f.group("cmis:MOD:G01")
		// A teacher adds a student to the group; later CMIS lists them too,
		// then drops them again. cmissync found them there, so it leaves them.
		uid := f.newUser("9990001")
		if err := f.sim.AddMember(g.ID, uid); err != nil {
			t.Fatal(err)
		}
		f.setMembers(map[string][]string{"G01": {"0010001", "0010002", "9990001"}})
		res := f.load()
		if res.MembersFound != 1 || res.MembersAdded != 0 {
			t.Fatalf("load: %+v", res)
		}
		f.setMembers(map[string][]string{"G01": {"0010001", "0010002"}})
		res = f.load()
		if res.MembersRemoved != 0 || len(f.members()["cmis:MOD:G01"]) != 3 {
			t.Fatalf("hand-added member removed: %+v, members %v", res, f.members())
		}
		// With remove_members_not_in_cmis, everyone CMIS does not list goes.
		res = f.loadWith(load.Options{RemoveUnseenMembers: true})
		if res.MembersRemoved != 1 || len(f.members()["cmis:MOD:G01"]) != 2 {
			t.Fatalf("remove unseen: %+v, members %v", res, f.members())
		}
	})
}

func TestRenames(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, 2, 1, moodlesim.Options{})
		f.load()
		// A new template renames cmissync's groups.
		f.stageWith(stage.Options{Templates: stage.Templates{GroupName: "{groupname} ({module})"}})
		res := f.load()
		if res.Renamed != 2 || f.group("cmis:MOD:G01").Name != "Group G01 (MOD)" {
			t.Fatalf("template rename: %+v, %q", res, f.group("cmis:MOD:G01").Name)
		}
		// A teacher renames one: kept by default...
		g := f.group("cmis:MOD:G02")
		if err := f.sim.RenameGroup(g.ID, "Thursday lab"); err != nil {
			t.Fatal(err)
		}
		f.setDump(map[string][]string{"G01": {"0010001"}, "G02": {"0020001", "0020002"}})
		_ = f.newUser("0020002")
		f.stageWith(stage.Options{Templates: stage.Templates{GroupName: "{groupname} ({module})"}})
		res = f.load()
		if res.Renamed != 0 || f.group("cmis:MOD:G02").Name != "Thursday lab" || len(f.group("cmis:MOD:G02").Members) != 2 {
			t.Fatalf("keep: %+v, %+v", res, f.group("cmis:MOD:G02"))
		}
		// ...or restored by policy.
		if err := f.sim.RenameGroup(g.ID, "Friday lab"); err != nil {
			t.Fatal(err)
		}
		f.setDump(map[string][]string{"G01": {"0010001"}, "G02": {"0020001"}})
		f.stageWith(stage.Options{Templates: stage.Templates{GroupName: "{groupname} ({module})"}})
		res = f.loadWith(load.Options{OnRenamed: load.RenamedRestore})
		if res.Renamed != 1 || f.group("cmis:MOD:G02").Name != "Group G02 (MOD)" {
			t.Fatalf("restore: %+v, %q", res, f.group("cmis:MOD:G02").Name)
		}
	})
}

func TestDeletedGroupForgottenThenRetried(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, 2, 2, moodlesim.Options{})
		f.load()
		if err := f.sim.DeleteGroup(f.group("cmis:MOD:G01").ID); err != nil {
			t.Fatal(err)
		}
		f.setMembers(map[string][]string{"G01": {"0010001", "0010002"}, "G02": {"0020001"}})
		res := f.loadWith(load.Options{OnDeleted: load.DeletedForget})
		if res.GroupsCreated != 0 || res.Parked != 1 || res.MembersRemoved != 1 {
			t.Fatalf("forget: %+v", res)
		}
		if n, err := f.st.Unpark(context.Background(), store.Filter{}); err != nil || n != 1 {
			t.Fatalf("unpark: %d, %v", n, err)
		}
		res = f.load()
		if res.GroupsCreated != 1 || res.MembersAdded != 2 || len(f.group("cmis:MOD:G01").Members) != 2 {
			t.Fatalf("after retry: %+v", res)
		}
	})
}

func TestRepeatedRefusalParksTheItem(t *testing.T) {
	f := newFixture(t, store.EngineSQLite, 1, 1, moodlesim.Options{})
	// A hand-made group holds cmissync's idnumber in another course-local
	// form: a group name with markup Moodle refuses makes creation fail
	// every run.
	ctx := context.Background()
	if _, err := f.st.DB().ExecContext(ctx, `UPDATE cmis_groups_course SET name = 'G<1>'`); err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 3; run++ {
		res := f.loadWith(load.Options{ParkAfter: 3})
		if run < 3 && (len(res.Failures) == 0 || res.Parked != 0) {
			t.Fatalf("run %d: %+v", run, res)
		}
		if run == 3 && res.Parked != 1 {
			t.Fatalf("not parked after 3 refusals: %+v", res)
		}
	}
	calls := f.sim.Calls()["core_group_create_groups"]
	res := f.loadWith(load.Options{ParkAfter: 3})
	if f.sim.Calls()["core_group_create_groups"] != calls || res.Parked != 1 || res.Failures[len(res.Failures)-1].ErrorCode != "parked" {
		t.Fatalf("a parked item was sent again or not reported: %+v", res)
	}
}

func TestCourseDeletedInMoodleIsRetired(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, 1, 2, moodlesim.Options{})
		f.load()
		if err := f.sim.DeleteCourse(f.course); err != nil {
			t.Fatal(err)
		}
		f.setMembers(map[string][]string{"G01": {"0010001"}})
		res := f.load()
		if res.CoursesRetired != 1 || len(res.Failures) != 0 {
			t.Fatalf("load: %+v", res)
		}
		maps, _ := f.st.Mappings(context.Background(), int64(f.course))
		if len(maps) != 1 || maps[0].MappingAction != store.ActionRemove {
			t.Fatalf("mapping not retired: %+v", maps)
		}
		f.stage()
		if res := f.load(); res.Writes() != 0 || len(res.Failures) != 0 {
			t.Fatalf("after retirement: %+v", res)
		}
	})
}

func TestNameClashAdoptPolicy(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, 1, 2, moodlesim.Options{})
		hand, err := f.sim.AddGroup(moodlesim.Group{CourseID: f.course, Name: "mod g01"})
		if err != nil {
			t.Fatal(err)
		}
		teacherPick := f.users["0010001"]
		if err := f.sim.AddMember(hand, teacherPick); err != nil {
			t.Fatal(err)
		}
		res := f.loadWith(load.Options{OnNameClash: load.ClashAdopt})
		if res.Adopted != 1 || res.GroupsCreated != 0 || res.MembersFound != 1 || res.MembersAdded != 1 {
			t.Fatalf("adopt: %+v", res)
		}
		g := f.group("cmis:MOD:G01")
		if g.ID != hand || len(g.Members) != 2 {
			t.Fatalf("adopted group %+v", g)
		}
		// The member the teacher had put there is not cmissync's to remove.
		f.setMembers(map[string][]string{"G01": {"0010002"}})
		f.load()
		if len(f.group("cmis:MOD:G01").Members) != 2 {
			t.Fatalf("found member removed: %+v", f.group("cmis:MOD:G01"))
		}
	})
}

func TestAddRecordedOnlyAsIntentStaysOwned(t *testing.T) {
	f := newFixture(t, store.EngineSQLite, 1, 2, moodlesim.Options{})
	ctx := context.Background()
	// Create the group, then play a run that died after Moodle applied an
	// add but before it was recorded.
	f.setDump(map[string][]string{"G01": {}})
	f.stage()
	f.load()
	f.setDump(map[string][]string{"G01": {"0010001", "0010002"}})
	f.stage()
	cur, err := f.st.StagedMembers(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var work []store.MemberRow
	for cur.Next() {
		if m := cur.Value(); m.ToAdd {
			work = append(work, m)
		}
	}
	cur.Close()
	if len(work) != 2 {
		t.Fatalf("work %v", work)
	}
	intent := []store.AddedMember{{ID: work[0].ID, MoodleUserID: int64(f.users[work[0].CMISID])}}
	if err := f.st.RecordIntent(ctx, intent); err != nil {
		t.Fatal(err)
	}
	if err := f.sim.AddMember(f.group("cmis:MOD:G01").ID, f.users[work[0].CMISID]); err != nil {
		t.Fatal(err)
	}
	res := f.load()
	if res.MembersAdded != 1 || res.MembersFound != 1 {
		t.Fatalf("load: %+v", res)
	}
	f.setDump(map[string][]string{"G01": {}})
	f.stage()
	res = f.loadWith(load.Options{})
	if res.MembersRemoved != 2 {
		t.Fatalf("the member added before the crash was not removed: %+v", res)
	}
}

func TestSameUserInTwoRolesKeepsMembershipWhileOneRoleRemains(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, 1, 1, moodlesim.Options{})
		ctx := context.Background()
		// User 0010001 is listed as a student and, under the same id, as a
		// tutor of the group.
		gen, _ := f.st.BeginExtract(ctx, "t")
		_, _ = gen.Insert(ctx, store.ModuleGroups, [][]string{{"MOD", "G01", "Module", "Group G01"}})
		_, _ = gen.Insert(ctx, store.GroupMembers, [][]string{{"MOD", "G01", "0010001"}})
		_, _ = gen.Insert(ctx, store.GroupTutors, [][]string{{"MOD", "G01", "0010001"}})
		if err := gen.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		f.stage()
		f.load()
		// They stop being a student but stay the tutor: still a member.
		gen, _ = f.st.BeginExtract(ctx, "t")
		_, _ = gen.Insert(ctx, store.ModuleGroups, [][]string{{"MOD", "G01", "Module", "Group G01"}})
		_, _ = gen.Insert(ctx, store.GroupTutors, [][]string{{"MOD", "G01", "0010001"}})
		if err := gen.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		f.stage()
		res := f.load()
		if res.MembersRemoved != 0 || len(f.group("cmis:MOD:G01").Members) != 1 {
			t.Fatalf("membership removed while the tutor row still wants it: %+v", res)
		}
		if res := f.load(); res.Writes() != 0 {
			t.Fatalf("rerun wrote: %+v", res)
		}
	})
}

// TestAdditionsInWaves: additions to more groups than a few read-back
// calls take go in waves, each read back and recorded while the next is
// sent; every member lands, is recorded, and each group is read back once.
func TestAdditionsInWaves(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		const groups, members = 300, 2
		f := newFixture(t, engine, groups, members, moodlesim.Options{MaxInputVars: 40})
		perRead := f.mc.Capacity(moodle.VarsPerReadByID)
		if groups <= 4*perRead {
			t.Fatalf("%d groups fit in one wave of %d: the test needs several", groups, 4*perRead)
		}
		f.sim.ResetCalls()
		res := f.loadWith(load.Options{Concurrency: 3})
		if res.MembersAdded != groups*members || len(res.Failures) != 0 {
			t.Fatalf("load: %+v, failures %+v", res.Map(), res.Failures)
		}
		for idn, ms := range f.members() {
			if len(ms) != members {
				t.Errorf("group %s has %d members, want %d", idn, len(ms), members)
			}
		}
		// Each wave's groups are read back with as few calls as they take.
		waves := (groups + 4*perRead - 1) / (4 * perRead)
		if got, most := f.sim.Calls()[moodle.FnGroupMembers], (groups+perRead-1)/perRead+waves; got > most {
			t.Errorf("%d read-back calls for %d groups in %d waves, want at most %d", got, groups, waves, most)
		}
		var pending int
		if err := f.st.DB().QueryRow(`SELECT COUNT(*) FROM cmis_groupmembers WHERE toadd = 1 OR COALESCE(moodleuserid, 0) = 0`).Scan(&pending); err != nil || pending != 0 {
			t.Fatalf("%d memberships not recorded (%v)", pending, err)
		}
		if res := f.load(); res.Writes() != 0 {
			t.Fatalf("rerun wrote: %+v", res.Map())
		}
	})
}
