package contract

import (
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
)

// unassignRoleKeepsEnrolment: core_role_unassign_roles takes one role from
// a user in a course and leaves the enrolment, the other roles and the
// group memberships; with no role left the user is still enrolled; a role
// not held changes nothing; a role the service user may not assign is
// invalidparameter and rolls the call back. All from Moodle's code
// (core_role_external::unassign_roles), which the reference notes do not
// cover; `cmissync apply` removes one role this way.
func unassignRoleKeepsEnrolment(t testing.TB, tg *Target) {
	tg.need(t, moodle.FnUnassignRoles)
	f := newEnrolFixture(t, tg)
	u, c := tg.Unenrolled, tg.Course
	f.enrol(t, f.outsider(tg.Role, false))
	f.enrol(t, f.outsider(tg.OtherRole, false))
	g := f.createGroup("G")
	f.addMembers(moodle.Pair{A: g, B: u})
	unassign := func(step string, roles ...int64) {
		t.Helper()
		items := make([]moodle.RoleUnassignment, len(roles))
		for i, r := range roles {
			items[i] = moodle.RoleUnassignment{RoleID: r, UserID: u, CourseID: c}
		}
		if err := f.c.UnassignRoles(f.ctx, items); err != nil {
			t.Fatalf("%s: %v, want null", step, err)
		}
	}
	kept := func(step string, roles ...int64) {
		t.Helper()
		f.wantEnrolment(t, step, enrolment{listed: true, active: true, roles: roles})
		if m := f.members(g); !sameSet(m[g], []int64{u}) {
			t.Errorf("%s: members %v, want the user kept", step, m[g])
		}
	}
	unassign("unassign the other role", tg.OtherRole)
	kept("other role unassigned", tg.Role)
	unassign("unassign a role not held", tg.OtherRole)
	kept("a role not held unassigned", tg.Role)
	err := f.c.UnassignRoles(f.ctx, []moodle.RoleUnassignment{{RoleID: tg.Role, UserID: u, CourseID: c}, {RoleID: tg.UnassignableRole, UserID: u, CourseID: c}})
	tg.wantErr(t, err, errInvalidParameter)
	kept("after a refused call", tg.Role)
	unassign("unassign the last role", tg.Role)
	kept("no role left")
}
