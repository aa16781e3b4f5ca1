package moodlesim_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodlesim"
)

// TestFailedCallLeavesStateUnchanged makes calls whose first entries succeed
// and change the site before a later entry fails: State() must be exactly as
// before each call.
func TestFailedCallLeavesStateUnchanged(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	g1 := mustGroup(t, st.base, st.c, "G1", "cmis:G1")
	g2 := mustGroup(t, st.base, st.c, "G2", "cmis:G2")
	g3 := mustGroup(t, st.base, st.c, "G3", "")
	for _, m := range [][2]int{{g1, st.u1}, {g1, st.u2}, {g2, st.u2}, {g2, st.u3}} {
		if err := st.s.AddMember(m[0], m[1]); err != nil {
			t.Fatal(err)
		}
	}
	gg, err := st.s.AddGrouping(moodlesim.Grouping{CourseID: st.c, Name: "GG", IDNumber: "cmis:GG", Groups: []int{g1}})
	if err != nil {
		t.Fatal(err)
	}
	const bodyNoGrouping = `{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table groupings."}`

	tests := []struct {
		name   string
		fn     string
		params []string
		want   string
	}{
		{"add members, the last not enrolled", "core_group_add_group_members", []string{
			"members[0][groupid]", itoa(g3), "members[0][userid]", itoa(st.u1),
			"members[1][groupid]", itoa(g3), "members[1][userid]", itoa(st.u2),
			"members[2][groupid]", itoa(g1), "members[2][userid]", itoa(st.u3),
			"members[3][groupid]", itoa(g2), "members[3][userid]", itoa(st.u4)}, bodyInvalidParam},
		{"create groups, a duplicate in the middle", "core_group_create_groups", []string{
			"groups[0][courseid]", itoa(st.c), "groups[0][name]", "New 1", "groups[0][description]", "",
			"groups[1][courseid]", itoa(st.c), "groups[1][name]", "New 2", "groups[1][description]", "", "groups[1][idnumber]", "cmis:N2",
			"groups[2][courseid]", itoa(st.c), "groups[2][name]", "g2", "groups[2][description]", "",
			"groups[3][courseid]", itoa(st.c), "groups[3][name]", "New 3", "groups[3][description]", ""}, bodyInvalidParam},
		{"create groups, the second reusing the first's idnumber", "core_group_create_groups", []string{
			"groups[0][courseid]", itoa(st.c), "groups[0][name]", "New 1", "groups[0][description]", "", "groups[0][idnumber]", "cmis:N",
			"groups[1][courseid]", itoa(st.c), "groups[1][name]", "New 2", "groups[1][description]", "", "groups[1][idnumber]", "cmis:N"}, bodyIDNumberTaken},
		{"delete members, then a missing group", "core_group_delete_group_members", []string{
			"members[0][groupid]", itoa(g1), "members[0][userid]", itoa(st.u1),
			"members[1][groupid]", itoa(g1), "members[1][userid]", itoa(st.u2),
			"members[2][groupid]", itoa(g2), "members[2][userid]", itoa(st.u3),
			"members[3][groupid]", "70373", "members[3][userid]", itoa(st.u1)}, bodyNoGroup},
		{"delete members, then a missing user", "core_group_delete_group_members", []string{
			"members[0][groupid]", itoa(g2), "members[0][userid]", itoa(st.u2),
			"members[1][groupid]", itoa(g2), "members[1][userid]", itoa(st.u3),
			"members[2][groupid]", itoa(g2), "members[2][userid]", "999999"}, bodyInvalidUser},
		{"assign grouping, then a missing group", "core_group_assign_grouping", []string{
			"assignments[0][groupingid]", itoa(gg), "assignments[0][groupid]", itoa(g2),
			"assignments[1][groupingid]", itoa(gg), "assignments[1][groupid]", itoa(g3),
			"assignments[2][groupingid]", itoa(gg), "assignments[2][groupid]", "999"}, bodyNoGroup},
		{"unassign grouping, then a missing grouping", "core_group_unassign_grouping", []string{
			"unassignments[0][groupingid]", itoa(gg), "unassignments[0][groupid]", itoa(g1),
			"unassignments[1][groupingid]", "999", "unassignments[1][groupid]", itoa(g1)}, bodyNoGrouping},
		{"update groups, the last taking a name the first gave up", "core_group_update_groups", []string{
			"groups[0][id]", itoa(g1), "groups[0][name]", "Renamed", "groups[0][idnumber]", "cmis:R", "groups[0][enrolmentkey]", "k",
			"groups[1][id]", itoa(g2), "groups[1][name]", "G1",
			"groups[2][id]", itoa(g3), "groups[2][name]", "renamed"}, bodyInvalidParam},
		{"create groupings, then a duplicate", "core_group_create_groupings", []string{
			"groupings[0][courseid]", itoa(st.c), "groupings[0][name]", "GG2", "groupings[0][description]", "", "groupings[0][idnumber]", "cmis:GG2",
			"groupings[1][courseid]", itoa(st.c), "groupings[1][name]", "GG", "groupings[1][description]", ""}, bodyInvalidParam},
		{"update groupings, then a missing grouping", "core_group_update_groupings", []string{
			"groupings[0][id]", itoa(gg), "groupings[0][name]", "Renamed", "groupings[0][description]", "d",
			"groupings[1][id]", "999", "groupings[1][name]", "X", "groupings[1][description]", ""}, bodyInvalidParam},
		{"enrol users, then a role that may not be assigned", "enrol_manual_enrol_users", []string{
			"enrolments[0][roleid]", "5", "enrolments[0][userid]", itoa(st.u4), "enrolments[0][courseid]", itoa(st.c),
			"enrolments[1][roleid]", "5", "enrolments[1][userid]", itoa(st.u1), "enrolments[1][courseid]", itoa(st.d),
			"enrolments[2][roleid]", "2", "enrolments[2][userid]", itoa(st.u2), "enrolments[2][courseid]", itoa(st.d)},
			`"errorcode":"wsusercannotassign"`},
	}
	for _, tc := range tests {
		before := st.s.State()
		a := call(t, st.base, tc.fn, tc.params...)
		if a.body != tc.want && !(strings.HasPrefix(tc.want, `"`) && strings.Contains(a.body, tc.want)) {
			t.Errorf("%s: answer %s, want %s", tc.name, a.body, tc.want)
		}
		if after := st.s.State(); !reflect.DeepEqual(after, before) {
			t.Errorf("%s: the failed call changed the site\n got %+v\nwant %+v", tc.name, after, before)
		}
	}

	// The same entries without the failing one are applied.
	if a := call(t, st.base, "core_group_add_group_members",
		"members[0][groupid]", itoa(g3), "members[0][userid]", itoa(st.u1)); a.body != "null" {
		t.Fatalf("add member: %s", a.body)
	}
	if m := members(t, st.s, g3); !reflect.DeepEqual(m, []int{st.u1}) {
		t.Errorf("members of G3: %v", m)
	}
}
