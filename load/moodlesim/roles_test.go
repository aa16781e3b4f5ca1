package moodlesim_test

import (
	"reflect"
	"testing"

	"github.com/cmissync/cmissync/load/moodlesim"
)

// unassign calls core_role_unassign_roles with one entry per triple of
// role, user and course, each course named by contextlevel and instanceid.
func unassign(t *testing.T, base string, entries ...[3]int) answer {
	t.Helper()
	var p []string
	for i, e := range entries {
		k := "unassignments[" + itoa(i) + "]"
		p = append(p, k+"[roleid]", itoa(e[0]), k+"[userid]", itoa(e[1]), k+"[contextlevel]", "course", k+"[instanceid]", itoa(e[2]))
	}
	return call(t, base, "core_role_unassign_roles", p...)
}

// TestUnassignRoles walks Moodle's code of core_role_unassign_roles: the
// role goes, the enrolment and the group memberships stay, also with no
// role left; a role not held, or a user that does not exist, changes
// nothing.
func TestUnassignRoles(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	c, u := st.c, st.u1
	if err := st.s.EnrolUser(moodlesim.UserEnrolment{CourseID: c, UserID: u}, moodlesim.RoleTeacher); err != nil {
		t.Fatal(err)
	}
	g := mustGroup(t, st.base, c, "G", "")
	if err := st.s.AddMember(g, u); err != nil {
		t.Fatal(err)
	}
	check := func(step string, roles []int) {
		t.Helper()
		ues, rs := enrolmentsOf(st.s, c, u)
		if len(ues) != 1 || !reflect.DeepEqual(rs, roles) {
			t.Errorf("%s: enrolments %+v, roles %v; want one enrolment, roles %v", step, ues, rs, roles)
		}
		if m := members(t, st.s, g); !reflect.DeepEqual(m, []int{u}) {
			t.Errorf("%s: members %v, want the user kept", step, m)
		}
	}
	check("before", []int{4, 5})
	if a := unassign(t, st.base, [3]int{4, u, c}); a.body != "null" {
		t.Fatalf("unassign: %s", a.body)
	}
	check("teacher unassigned", []int{5})
	before := st.s.State()
	for _, e := range [][3]int{{4, u, c}, {3, u, c}, {5, 999999, c}, {5, st.u4, c}} {
		if a := unassign(t, st.base, e); a.body != "null" {
			t.Errorf("unassign %v: %s", e, a.body)
		}
	}
	if !reflect.DeepEqual(st.s.State(), before) {
		t.Errorf("unassigning roles nobody holds changed the site")
	}
	if a := unassign(t, st.base, [3]int{5, u, c}); a.body != "null" {
		t.Fatalf("unassign the last role: %s", a.body)
	}
	check("no role left", []int{})
	if ids := enrolledIDs(t, st.base, c, false); !reflect.DeepEqual(ids, []int{st.u1, st.u2, st.u3}) {
		t.Errorf("enrolled %v: a user without a role is still enrolled", ids)
	}
}

// TestUnassignRolesRefusals: one refused entry rolls the whole call back,
// and each refusal has Moodle's code's answer.
func TestUnassignRolesRefusals(t *testing.T) {
	st := newSite(t, moodlesim.Options{Debug: true})
	if err := st.s.SetCourseAccessible(st.d, false); err != nil {
		t.Fatal(err)
	}
	invalid := func(debug string) string {
		return `{"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected","debuginfo":"` + debug + `"}`
	}
	good := [3]int{5, st.u1, st.c}
	tests := []struct {
		name   string
		params []string
		want   string
	}{
		{"a role the service user may not assign", nil, invalid("Can not unassign roleid=999 in contextid=")},
		{"a course that does not exist", []string{"unassignments[1][roleid]", "5", "unassignments[1][userid]", itoa(st.u1),
			"unassignments[1][contextlevel]", "course", "unassignments[1][instanceid]", "999999"}, invalid("Context does not exist")},
		{"a course the service user may not access", []string{"unassignments[1][roleid]", "5", "unassignments[1][userid]", itoa(st.u1),
			"unassignments[1][contextlevel]", "course", "unassignments[1][instanceid]", itoa(st.d)},
			`{"exception":"core\\exception\\require_login_exception","errorcode":"requireloginerror","message":"Course or activity not accessible.","debuginfo":"Not enrolled"}`},
		{"an unknown context level", []string{"unassignments[1][roleid]", "5", "unassignments[1][userid]", itoa(st.u1),
			"unassignments[1][contextlevel]", "planet", "unassignments[1][instanceid]", itoa(st.c)}, invalid("Invalid context level = planet")},
		{"no context", []string{"unassignments[1][roleid]", "5", "unassignments[1][userid]", itoa(st.u1)},
			invalid("Missing parameters, please provide either context level with instance id or contextid")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := []string{"unassignments[0][roleid]", itoa(good[0]), "unassignments[0][userid]", itoa(good[1]),
				"unassignments[0][contextlevel]", "course", "unassignments[0][instanceid]", itoa(good[2])}
			if tc.params == nil {
				p = append(p, "unassignments[1][roleid]", "999", "unassignments[1][userid]", itoa(st.u1),
					"unassignments[1][contextlevel]", "course", "unassignments[1][instanceid]", itoa(st.c))
			}
			before := st.s.State()
			if a := call(t, st.base, "core_role_unassign_roles", append(p, tc.params...)...); a.body != tc.want {
				t.Errorf("\n got %s\nwant %s", a.body, tc.want)
			}
			if !reflect.DeepEqual(st.s.State(), before) {
				t.Errorf("the refused call changed the site")
			}
		})
	}
}
