package load_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage/store"
)

// enrolFixture: two groups of three students; 0010003 and 0020003 are not
// enrolled in the course. The first load with enrol_missing enrols them.
func enrolFixture(t *testing.T, engine string) (*fixture, load.Options) {
	f := newFixture(t, engine, 2, 3, moodlesim.Options{})
	for _, idn := range []string{"0010003", "0020003"} {
		if err := f.sim.Unenrol(f.course, f.users[idn]); err != nil {
			t.Fatal(err)
		}
	}
	opts := load.Options{EnrolMissing: true, UnenrolAction: load.UnenrolSuspend}
	res := f.loadWith(opts)
	if res.Enrolled != 2 || res.MembersAdded != 6 || len(res.Failures) != 0 {
		t.Fatalf("first load: %+v", res)
	}
	return f, opts
}

// TestEnrolmentReadsOnlyWhereSomeoneIsNew: with load.enrol_missing, a course's
// enrolments are read only when it has members to add whom staging does not
// know as enrolled there; a night without additions, or whose additions are
// people already members of another group, reads none.
func TestEnrolmentReadsOnlyWhereSomeoneIsNew(t *testing.T) {
	f, opts := enrolFixture(t, store.EngineSQLite)
	f.sim.ResetCalls()
	if res := f.loadWith(opts); res.Writes() != 0 {
		t.Fatalf("second load wrote: %+v", res)
	}
	if n := f.sim.Calls()[moodle.FnEnrolledUsers]; n != 0 {
		t.Fatalf("an unchanged night read enrolments %d times", n)
	}
	// 0010001 joins G02 as well: known enrolled (a member of G01).
	f.setMembers(map[string][]string{"G01": {"0010001", "0010002", "0010003"}, "G02": {"0020001", "0020002", "0020003", "0010001"}})
	f.sim.ResetCalls()
	if res := f.loadWith(opts); res.MembersAdded != 1 || res.Enrolled != 0 {
		t.Fatalf("load: %+v", res)
	}
	if n := f.sim.Calls()[moodle.FnEnrolledUsers]; n != 0 {
		t.Fatalf("adding a known member read enrolments %d times", n)
	}
	// A newcomer: one read of the course, one enrolment.
	f.newUser("0030001")
	if err := f.sim.Unenrol(f.course, f.users["0030001"]); err != nil {
		t.Fatal(err)
	}
	f.setMembers(map[string][]string{"G01": {"0010001", "0010002", "0010003", "0030001"}, "G02": {"0020001", "0020002", "0020003", "0010001"}})
	f.sim.ResetCalls()
	if res := f.loadWith(opts); res.MembersAdded != 1 || res.Enrolled != 1 {
		t.Fatalf("load: %+v", res)
	}
	if n := f.sim.Calls()[moodle.FnEnrolledUsers]; n != 1 {
		t.Fatalf("a newcomer cost %d enrolment reads, want 1", n)
	}
}

// TestReleaseNeedsEvidence: a person leaving CMIS has the enrolment
// cmissync made suspended, unless the extract refused a row that may be
// theirs, the mass-change guard holds, or deletions are off.
func TestReleaseNeedsEvidence(t *testing.T) {
	cases := []struct {
		name    string
		refused []store.BadRow
		opts    func(*load.Options)
		held    string // a word of the reason; "" when the suspension goes ahead
	}{
		{"clean extract", nil, nil, ""},
		{"a refused member row of theirs", []store.BadRow{{Table: store.GroupMembers, Module: "MOD", Group: "G07", CMISID: "0010003", Reason: "control character"}}, nil, "refused"},
		{"a member row with an unreadable id in the module", []store.BadRow{{Table: store.GroupMembers, Module: "MOD", Group: "G09", Reason: "blank studentid"}}, nil, "refused"},
		{"a refused row of another person", []store.BadRow{{Table: store.GroupMembers, Module: "MOD", Group: "G01", CMISID: "0099999", Reason: "control character"}}, nil, ""},
		{"an unreadable record of the members view", []store.BadRow{{Table: store.GroupMembers, Reason: "CSV syntax error"}}, nil, "unreadable"},
		{"deletions off", nil, func(o *load.Options) { o.NoDeletes = "deletions are off for this run" }, "deletions are off"},
		{"removal pending", nil, func(o *load.Options) { o.RemoveAfterRuns = 2 }, "held back"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, opts := enrolFixture(t, store.EngineSQLite)
			if c.opts != nil {
				c.opts(&opts)
			}
			// 0010003 leaves G01 and is in no other group.
			f.dumpWith(map[string][]string{"G01": {"0010001", "0010002"}, "G02": {"0020001", "0020002", "0020003"}}, nil, c.refused...)
			res := f.loadWith(opts)
			suspended := enrolmentOf(f, "0010003").Suspended
			var held *load.Item
			for _, it := range res.Plan.Held() {
				if it.Object == "enrolment" {
					held = it
				}
			}
			switch {
			case c.held == "" && (held != nil || !suspended || res.Suspended != 1):
				t.Fatalf("not suspended: held %v, result %+v", held, res)
			case c.held != "" && (held == nil || suspended):
				t.Fatalf("suspended although it should be held (%s): %+v", c.held, res)
			case c.held != "" && !strings.Contains(held.Held, c.held):
				t.Fatalf("held for %q, want a reason with %q", held.Held, c.held)
			}
			// Enrolments cmissync did not make are never touched.
			if e := enrolmentOf(f, "0010001"); e.Suspended {
				t.Fatal("an enrolment made by hand was suspended")
			}
		})
	}
}

// TestReleaseCountsAgainstTheGuard: a CMIS export that loses most people
// holds their suspensions with the removals.
func TestReleaseCountsAgainstTheGuard(t *testing.T) {
	f, opts := enrolFixture(t, store.EngineSQLite)
	opts.Guard = load.Guard{MaxDeleteShare: 0.1, MaxDeleteCount: 1}
	f.setMembers(map[string][]string{"G01": {"0010001"}, "G02": {"0020001"}})
	opts.RunID = "t"
	res, err := load.Run(context.Background(), f.st, f.mc, opts, quiet())
	var hold *load.HoldError
	if !errors.As(err, &hold) {
		t.Fatalf("err = %v, want the guard's hold", err)
	}
	if res.Suspended != 0 || res.MembersRemoved != 0 {
		t.Fatalf("the guard let deletions through: %+v", res)
	}
	n := 0
	for _, it := range res.Plan.Held() {
		if it.Action == load.ActSuspend {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d suspensions held, want 2: %v", n, heldLines(res.Plan))
	}
	opts.ApproveDeletes = true
	if res := f.loadWith(opts); res.Suspended != 2 || res.MembersRemoved != 4 {
		t.Fatalf("approved: %+v", res)
	}
}

func enrolmentOf(f *fixture, idn string) moodlesim.UserEnrolment {
	f.t.Helper()
	for _, e := range f.sim.State().UserEnrolments {
		if e.CourseID == f.course && e.UserID == f.users[idn] && e.Method == moodlesim.MethodManual {
			return e
		}
	}
	f.t.Fatalf("%s has no manual enrolment", idn)
	return moodlesim.UserEnrolment{}
}

// TestNeededFunctions: the enrolment functions are asked for only when a
// setting needs them.
func TestNeededFunctions(t *testing.T) {
	has := func(o load.Options, fn string) bool {
		for _, x := range load.NeededFunctions(o) {
			if x == fn {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		opts           load.Options
		enrol, unenrol bool
		byField        bool
	}{
		{load.Options{}, false, false, false},
		{load.Options{EnrolMissing: true}, true, false, false},
		{load.Options{UnenrolAction: load.UnenrolSuspend}, true, false, false},
		{load.Options{UnenrolAction: load.UnenrolRemove}, false, true, false},
		{load.Options{SkipEndedCourses: true}, false, false, true},
	} {
		if has(c.opts, moodle.FnManualEnrolUsers) != c.enrol || has(c.opts, moodle.FnManualUnenrolUsers) != c.unenrol ||
			has(c.opts, moodle.FnCoursesByField) != c.byField {
			t.Errorf("%+v: %v", c.opts, load.NeededFunctions(c.opts))
		}
	}
	// A service without enrol_manual_enrol_users stops a load that needs it
	// before anything is read or written.
	f := newFixture(t, store.EngineSQLite, 1, 1, moodlesim.Options{Functions: withoutFunction(moodle.FnManualEnrolUsers)})
	_, err := load.Run(context.Background(), f.st, f.mc, load.Options{EnrolMissing: true}, quiet())
	if err == nil || !strings.Contains(err.Error(), moodle.FnManualEnrolUsers) {
		t.Fatalf("err = %v", err)
	}
	if len(f.sim.State().Groups) != 0 {
		t.Fatal("groups were created")
	}
}

func withoutFunction(fn string) []string {
	var out []string
	for _, x := range moodlesim.FunctionNames() {
		if x != fn {
			out = append(out, x)
		}
	}
	return out
}

// TestParseRole: ids and stock shortnames.
func TestParseRole(t *testing.T) {
	for in, want := range map[string]int64{"5": 5, "student": 5, "Teacher": 4, "editingteacher": 3, " 12 ": 12} {
		if got, err := load.ParseRole(in); err != nil || got != want {
			t.Errorf("ParseRole(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0", "-3", "tutor"} {
		if _, err := load.ParseRole(in); err == nil {
			t.Errorf("ParseRole(%q) accepted", in)
		}
	}
}
