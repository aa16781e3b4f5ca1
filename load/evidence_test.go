package load_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage/store"
)

// writeCalls counts the calls to functions that change Moodle.
func writeCalls(calls map[string]int) int {
	n := 0
	for fn, c := range calls {
		switch fn {
		case moodle.FnCreateGroupings, moodle.FnCreateGroups, moodle.FnAssignGrouping, moodle.FnUnassignGrouping, moodle.FnAddMembers,
			moodle.FnDeleteMembers, moodle.FnDeleteGroups, moodle.FnDeleteGroupings, moodle.FnUpdateGroups, moodle.FnUpdateGroupings:
			n += c
		}
	}
	return n
}

// dumpWith commits a dump of module MOD with the groups and members given,
// and the refused rows given, as one extract.
func (f *fixture) dumpWith(groups map[string][]string, tutors map[string][]string, refused ...store.BadRow) {
	f.t.Helper()
	ctx := context.Background()
	gen, err := f.st.BeginExtract(ctx, fmt.Sprintf("x%d", len(refused)))
	if err != nil {
		f.t.Fatal(err)
	}
	var grows, mrows, trows [][]string
	for g, ms := range groups {
		grows = append(grows, []string{"MOD", g, "Module", "Group " + g})
		for _, m := range ms {
			mrows = append(mrows, []string{"MOD", g, m})
		}
		for _, m := range tutors[g] {
			trows = append(trows, []string{"MOD", g, m})
		}
	}
	for tbl, rows := range map[store.DumpTable][][]string{store.ModuleGroups: grows, store.GroupMembers: mrows, store.GroupTutors: trows} {
		if _, err := gen.Insert(ctx, tbl, rows); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := gen.Reject(ctx, refused); err != nil {
		f.t.Fatal(err)
	}
	if err := gen.Commit(ctx); err != nil {
		f.t.Fatal(err)
	}
	f.stage()
}

func heldLines(p *load.Plan) []string {
	var out []string
	for _, it := range p.Held() {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", it.Action, it.Object, it.IDNumber, it.CMISID)))
	}
	sort.Strings(out)
	return out
}

// TestRefusedRowsProtectWhatTheyMayDescribe: G01 leaves CMIS and student
// 0020001 leaves G02; which of those deletions go ahead depends on what the
// extract refused.
func TestRefusedRowsProtectWhatTheyMayDescribe(t *testing.T) {
	const (
		delG01  = "delete group cmis:MOD:G01"
		rmStud  = "remove member cmis:MOD:G02 0020001"
		rmTutor = "remove member cmis:MOD:G02 T1"
	)
	cases := []struct {
		name    string
		refused []store.BadRow
		held    []string
	}{
		{"a clean extract deletes", nil, nil},
		{"a refused group row protects its group", []store.BadRow{{Table: store.ModuleGroups, Module: "MOD", Group: "G01", Reason: "mangled characters"}}, []string{delG01}},
		{"a refused member row protects that membership", []store.BadRow{{Table: store.GroupMembers, Module: "MOD", Group: "G02", CMISID: "0020001", Reason: "control character"}}, []string{rmStud}},
		{"a member row whose id could not be read protects its group's members", []store.BadRow{{Table: store.GroupMembers, Module: "MOD", Group: "G02", Reason: "missing studentid"}}, []string{rmStud}},
		{"a member row of another group protects nothing here", []store.BadRow{{Table: store.GroupMembers, Module: "MOD", Group: "G03", Reason: "missing studentid"}}, nil},
		{"an unreadable record of the groups view protects every deletion", []store.BadRow{{Table: store.ModuleGroups, Reason: "CSV syntax error"}}, []string{delG01, rmStud, rmTutor}},
		{"an unreadable record of the members view protects every student removal", []store.BadRow{{Table: store.GroupMembers, Reason: "the file does not end with a line break"}}, []string{rmStud}},
		{"a refused tutor row protects tutors, not students", []store.BadRow{{Table: store.GroupTutors, Module: "MOD", Group: "G02", Reason: "blank staffid"}}, []string{rmTutor}},
		{"a module whose code could not be read protects all its groups", []store.BadRow{{Table: store.ModuleGroups, Module: "MOD", Reason: "blank groupcode"}}, []string{delG01, rmStud, rmTutor}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, store.EngineSQLite, 2, 2, moodlesim.Options{})
			f.newUser("T1")
			f.dumpWith(map[string][]string{"G01": {"0010001", "0010002"}, "G02": {"0020001", "0020002"}}, map[string][]string{"G02": {"T1"}})
			f.load()
			f.dumpWith(map[string][]string{"G02": {"0020002"}}, nil, c.refused...)
			dry, err := load.MakePlan(context.Background(), f.st, f.mc, load.Options{}, quiet())
			if err != nil {
				t.Fatal(err)
			}
			res := f.loadWith(load.Options{})
			want := append([]string(nil), c.held...)
			sort.Strings(want)
			if got := heldLines(res.Plan); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("held %q, want %q", got, want)
			}
			// The plan printed beforehand held the same, and listed exactly
			// the deletions the run then carried out.
			if got := heldLines(dry); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("the dry run held %q, want %q", got, want)
			}
			planned, done := deletionLines(dry, false), deletionLines(res.Plan, true)
			if strings.Join(planned, "|") != strings.Join(done, "|") || len(planned) != 3-len(c.held) {
				t.Errorf("the dry run planned the deletions %q, the run carried out %q (of 3, %d held)", planned, done, len(c.held))
			}
			for _, it := range res.Plan.Held() {
				if !strings.Contains(it.Held, "refused") && !strings.Contains(it.Held, "unreadable") {
					t.Errorf("held for %q: the reason does not name the refused row", it.Held)
				}
			}
			// What was held is still in Moodle; what was not is gone.
			m := f.members()
			_, g01 := m["cmis:MOD:G01"]
			if g01 != contains(c.held, delG01) {
				t.Errorf("G01 in Moodle: %v, held: %v", g01, contains(c.held, delG01))
			}
			if in := contains(m["cmis:MOD:G02"], "0020001"); in != contains(c.held, rmStud) {
				t.Errorf("0020001 in G02: %v, held: %v", in, contains(c.held, rmStud))
			}
		})
	}
}

// deletionLines lists the plan's deletions that go ahead (done: those the
// run carried out).
func deletionLines(p *load.Plan, done bool) []string {
	var out []string
	for _, cp := range p.Courses {
		for _, it := range cp.Items {
			if it.Action != load.ActDelete && it.Action != load.ActRemove || done && it.Outcome != "done" {
				continue
			}
			out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", it.Action, it.Object, it.IDNumber, it.CMISID)))
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestDryRunAndPlanSendNothing: building the plan reads Moodle and never
// writes, however much there is to do.
func TestDryRunAndPlanSendNothing(t *testing.T) {
	f := newFixture(t, store.EngineSQLite, 3, 5, moodlesim.Options{})
	f.sim.ResetCalls()
	p, err := load.MakePlan(context.Background(), f.st, f.mc, load.Options{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if p.Totals.CreateGroups != 3 || p.Totals.AddMembers != 15 {
		t.Fatalf("plan: %+v", p.Totals)
	}
	res, err := load.Run(context.Background(), f.st, f.mc, load.Options{DryRun: true}, quiet())
	if err != nil || res.Writes() != 0 {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	if n := writeCalls(f.sim.Calls()); n != 0 {
		t.Fatalf("plan and dry run made %d write calls: %v", n, f.sim.Calls())
	}
	if len(f.sim.State().Groups) != 0 {
		t.Fatal("a dry run created groups")
	}
}

// TestRemovalsAreReadBack: the site's real max_input_vars is lower than
// cmissync was told, so PHP drops most of a removal batch and Moodle
// answers success. The removals not done are reported and retried, never
// forgotten; and a removal not verified holds every later deletion.
func TestRemovalsAreReadBack(t *testing.T) {
	f := newFixture(t, store.EngineSQLite, 2, 150, moodlesim.Options{MaxInputVars: 200},
		func(o *moodle.Options) { o.MaxInputVars = 1000 })
	// Told the right limit, the first load gets everyone in.
	right, err := moodle.New(moodle.Options{URL: f.url, Token: token, MaxInputVars: 200})
	if err != nil {
		t.Fatal(err)
	}
	wrong := f.mc
	f.mc = right
	if res := f.load(); res.MembersAdded != 300 || len(res.Failures) != 0 {
		t.Fatalf("first load: %+v", res)
	}
	// G01 loses all its members, G02 leaves CMIS.
	f.dumpWith(map[string][]string{"G01": {}}, nil)
	f.mc = wrong
	res := f.loadWith(load.Options{})
	if len(res.Failures) == 0 || res.MembersRemoved >= 150 {
		t.Fatalf("silent loss not detected: removed %d, failures %d", res.MembersRemoved, len(res.Failures))
	}
	for _, fl := range res.Failures {
		if fl.ErrorCode != "notverified" {
			t.Fatalf("failure %+v", fl)
		}
	}
	if res.GroupsDeleted != 0 || len(f.members()["cmis:MOD:G02"]) != 150 {
		t.Fatalf("a deletion went ahead after an unverified removal: %+v", res)
	}
	var heldReason string
	for _, it := range res.Plan.Held() {
		heldReason = it.Held
	}
	if !strings.Contains(heldReason, "failed on the way") {
		t.Fatalf("the group deletion is not held for the unverified write: %q", heldReason)
	}
	f.mc = right
	res = f.loadWith(load.Options{})
	if len(res.Failures) != 0 || len(f.members()["cmis:MOD:G01"]) != 0 || res.GroupsDeleted != 1 {
		t.Fatalf("second load: %+v, members %v", res, f.members())
	}
}

// TestEmptiedMembershipTableKeepsOwnership: a staging table emptied by
// hand does not turn memberships cmissync added into someone else's; the
// audit trail says who added them.
func TestEmptiedMembershipTableKeepsOwnership(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, 1, 3, moodlesim.Options{})
		f.load()
		if _, err := f.st.DB().ExecContext(context.Background(), `DELETE FROM cmis_groupmembers`); err != nil {
			t.Fatal(err)
		}
		f.stage()
		res := f.load()
		if res.MembersFound != 3 || res.MembersAdded != 0 || f.sim.Calls()[moodle.FnAddMembers] != 1 {
			t.Fatalf("after emptying: %+v", res)
		}
		f.setMembers(map[string][]string{"G01": {"0010001"}})
		res = f.load()
		if res.MembersRemoved != 2 || len(f.members()["cmis:MOD:G01"]) != 1 {
			t.Fatalf("memberships cmissync added were not removed when CMIS dropped them: %+v", res)
		}
	})
}

// TestFailureInACourseHoldsItsDeletions: no deletions in a course where
// something failed earlier in the run; other courses go on.
func TestFailureInACourseHoldsItsDeletions(t *testing.T) {
	f := newFixture(t, store.EngineSQLite, 2, 2, moodlesim.Options{})
	f.load()
	ctx := context.Background()
	// A new group whose name Moodle refuses, and a member leaving.
	f.dumpWith(map[string][]string{"G01": {"0010001"}, "G02": {"0020001", "0020002"}, "G03": {}}, nil)
	if _, err := f.st.DB().ExecContext(ctx, `UPDATE cmis_groups_course SET name = ? WHERE groupcode = 'G03'`, strings.Repeat("x", 300)); err != nil {
		t.Fatal(err)
	}
	res := f.load()
	if len(res.Failures) != 1 || res.MembersRemoved != 0 {
		t.Fatalf("load: %+v", res)
	}
	held := res.Plan.Held()
	if len(held) != 1 || !strings.Contains(held[0].Held, "failed earlier in this course") {
		t.Fatalf("held %v", heldLines(res.Plan))
	}
	if len(f.members()["cmis:MOD:G01"]) != 2 {
		t.Fatal("the member left although the course had a failure")
	}
}
