package moodlesim_test

import (
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodlesim"
)

// TestWorkCountsItemsAndCharges: each call is counted with the items it
// touched and charged by the cost model; refused calls are charged too,
// and their share is kept apart.
func TestWorkCountsItemsAndCharges(t *testing.T) {
	s, base, g, users := bigCourse(t, moodlesim.Options{Costs: moodlesim.ReferenceCosts()}, 30)
	s.ResetCalls()
	if a := call(t, base, "core_group_add_group_members", "members[0][groupid]", itoa(g), "members[0][userid]", itoa(users[0]),
		"members[1][groupid]", itoa(g), "members[1][userid]", itoa(users[1]), "members[2][groupid]", itoa(g), "members[2][userid]", itoa(users[2])); a.body != "null" {
		t.Fatalf("add: %s", a.body)
	}
	call(t, base, "core_enrol_get_enrolled_users", "courseid", "2", "options[0][name]", "userfields", "options[0][value]", "id,idnumber")
	call(t, base, "core_enrol_get_enrolled_users", "courseid", "2", "options[0][name]", "userfields", "options[0][value]", "id,email")
	call(t, base, "core_group_get_groups", "groupids[0]", itoa(g), "groupids[1]", "99999") // refused: no such group
	w := s.Work()
	ref := moodlesim.ReferenceCosts()
	add := w["core_group_add_group_members"]
	if add.Calls != 1 || add.Items != 3 || add.Time != 16*time.Millisecond+3*4340*time.Microsecond || add.Refused != 0 {
		t.Errorf("add: %+v", add)
	}
	en := w["core_enrol_get_enrolled_users"]
	plain := ref.Costs["core_enrol_get_enrolled_users"].Base + 30*ref.Costs["core_enrol_get_enrolled_users"].PerItem
	if en.Calls != 2 || en.Items != 60 || en.Time != 2*plain+30*ref.PerUserField["email"] {
		t.Errorf("enrolled users: %+v (plain call %s)", en, plain)
	}
	get := w["core_group_get_groups"]
	if get.Calls != 1 || get.Items != 2 || get.Refused != get.Time || get.Time == 0 {
		t.Errorf("refused read: %+v", get)
	}
	// A member call refused at its third member charges the two before it.
	s.ResetCalls()
	stranger := s.AddUser(moodlesim.User{Username: "stranger"})
	call(t, base, "core_group_add_group_members", "members[0][groupid]", itoa(g), "members[0][userid]", itoa(users[5]),
		"members[1][groupid]", itoa(g), "members[1][userid]", itoa(users[6]), "members[2][groupid]", itoa(g), "members[2][userid]", itoa(stranger),
		"members[3][groupid]", itoa(g), "members[3][userid]", itoa(users[7]))
	if w := s.Work()["core_group_add_group_members"]; w.Items != 2 || w.Refused != 16*time.Millisecond+2*4340*time.Microsecond {
		t.Errorf("refused add: %+v", w)
	}
	s.ResetCalls()
	if len(s.Work()) != 0 {
		t.Error("ResetCalls kept the work")
	}
}
