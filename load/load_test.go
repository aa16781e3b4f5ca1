package load_test

import (
	"context"
	"fmt"
	"io"
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

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
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
	if _, err := stage.Run(context.Background(), f.st, stage.Options{}, quiet()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) load() *load.Result {
	f.t.Helper()
	res, err := load.Run(context.Background(), f.st, f.mc, load.Options{RunID: "t"}, quiet())
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

func TestBisectionIsolatesTheBadItem(t *testing.T) {
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
		// CMIS adds one student to each group; the batch of three additions
		// holds one for the deleted group, which Moodle refuses.
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
		res = f.load()
		if res.MembersAdded != 2 {
			t.Fatalf("the two good additions did not land: %+v", res)
		}
		if len(res.Notices) != 1 {
			t.Fatalf("the deleted group was not noticed: %+v", res.Notices)
		}
		// The next run recreates the deleted group with all its members.
		res = f.load()
		if res.GroupsCreated != 1 || res.MembersAdded != 21 || len(res.Failures) != 0 {
			t.Fatalf("recreate run: %+v", res)
		}
		if got := f.members()[gone]; len(got) != 21 {
			t.Fatalf("recreated group has %d members", len(got))
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
		if res.GroupsAdopted != 1 || res.GroupsCreated != 1 || len(res.Failures) != 0 {
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
	if res.DeletesSkipped != true {
		t.Fatal("deletions ran after unverified writes")
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
