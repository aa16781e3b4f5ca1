package contract_test

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodle/contract"
	"github.com/cmissync/cmissync/load/moodlesim"
)

// TestSimulator runs the whole suite against the simulator, then checks
// that the suite left the site as it found it.
func TestSimulator(t *testing.T) {
	tg, sim := contract.NewSimulator(t, contract.SimulatorOptions{})
	before := sim.State()
	contract.Run(t, tg)
	after := sim.State()
	if !reflect.DeepEqual(before, after) {
		t.Errorf("the suite left changes behind:\nbefore %+v\nafter  %+v", before, after)
	}
	var hand []moodlesim.Group
	for _, g := range after.Groups {
		if g.Name == contract.HandMadeGroup {
			hand = append(hand, g)
		}
	}
	if len(hand) != 1 || len(hand[0].Members) != 1 {
		t.Errorf("the hand-made group was touched: %+v", hand)
	}
}

// TestSimulatorMaxInputVars5000 is the reference's fix of raising
// max_input_vars: with 5000 all 600 members are added, whatever the layout.
func TestSimulatorMaxInputVars5000(t *testing.T) {
	tg, sim := contract.NewSimulator(t, contract.SimulatorOptions{MaxInputVars: 5000})
	before := sim.State()
	contract.Run(t, tg, "MaxInputVars")
	if after := sim.State(); !reflect.DeepEqual(before, after) {
		t.Errorf("the case left changes behind:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestRealMoodle runs the suite against the Moodle named by MOODLE_URL and
// MOODLE_TOKEN (see the package documentation); it skips when they are unset.
func TestRealMoodle(t *testing.T) {
	tg := contract.FromEnv(t)
	t.Logf("contract suite against %s (course %d, users %v, max_input_vars %d known=%v)",
		tg.URL, tg.Course, tg.Users, tg.MaxInputVars, tg.MaxInputVarsKnown)
	contract.Run(t, tg)
}

// TestCasesAreNamedOnce keeps -run patterns unambiguous.
func TestCasesAreNamedOnce(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range contract.Cases() {
		if seen[c.Name] || c.Run == nil {
			t.Errorf("case %q duplicated or empty", c.Name)
		}
		seen[c.Name] = true
	}
	if len(seen) == 0 || !seen["MaxInputVars"] {
		t.Errorf("cases: %v", seen)
	}
}

// TestFromEnv points the real-Moodle target at a simulator through the
// environment, so that reading the variables, checking the fixtures and the
// non-strict checks run in every test run too.
func TestFromEnv(t *testing.T) {
	sim, _ := contract.NewSimulator(t, contract.SimulatorOptions{})
	users := ""
	for i, u := range sim.Users {
		if i > 0 {
			users += ","
		}
		users += strconv.FormatInt(u, 10)
	}
	for k, v := range map[string]string{
		contract.EnvURL: sim.URL, contract.EnvToken: sim.Token, contract.EnvCourse: strconv.FormatInt(sim.Course, 10),
		contract.EnvUsers: users, contract.EnvUnenrolled: strconv.FormatInt(sim.Unenrolled, 10),
		contract.EnvMaxInputVars: "", contract.EnvOtherCourse: "", contract.EnvOutsideFunction: contract.OutsideFunction, contract.EnvCAFile: "",
		contract.EnvInaccessibleCourse: strconv.FormatInt(sim.InaccessibleCourse, 10),
		contract.EnvRole:               "", contract.EnvOtherRole: "",
	} {
		t.Setenv(k, v)
	}
	tg := contract.FromEnv(t)
	if tg.Strict || tg.MaxInputVarsKnown || tg.MaxInputVars != 1000 || tg.MissingCourse == 0 || tg.MissingUser == 0 ||
		tg.Role != 5 || tg.OtherRole != 4 || tg.UnassignableRole != 999 || tg.CourseEndKnown ||
		!tg.Has(moodle.FnManualEnrolUsers) || !tg.Has(moodle.FnManualUnenrolUsers) ||
		tg.OtherCourse != 0 || tg.InaccessibleCourse != sim.InaccessibleCourse || !tg.Has(moodle.FnAddMembers) || tg.Has(contract.OutsideFunction) {
		t.Fatalf("target from the environment: %+v", tg)
	}
	contract.Run(t, tg)
}
