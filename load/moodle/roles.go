package moodle

import (
	"context"
	"strconv"
)

// Removing one role from a user in a course, for `cmissync apply`. The
// reference notes do not cover core_role_unassign_roles; what follows is
// from Moodle's code (core_role_external::unassign_roles in
// enrol/externallib.php of 4.5), not recorded on a real site (the contract
// suite checks it there): the call runs in one transaction; each entry
// names its context by contextlevel and instanceid (or contextid); a course
// that does not exist answers invalidparameter ("Context does not exist"),
// one the service user may not access requireloginerror (validate_context
// runs outside any try block), a role the service user may not assign there
// invalidparameter; then role_unassign() removes the assignment made
// without a component (as manual and self enrolments make them), and
// nothing when the user does not hold the role. A role given by an
// enrolment plugin that records itself as the component (cohort sync, meta
// link) stays: read the roles back to know.

// FnUnassignRoles removes role assignments.
const FnUnassignRoles = "core_role_unassign_roles"

// RoleUnassignment is one entry of core_role_unassign_roles: the role to
// take from the user in the course's context. The enrolment stays.
type RoleUnassignment struct {
	RoleID, UserID, CourseID int64
}

// VarsPerRoleUnassignment is the form variables of one RoleUnassignment.
const VarsPerRoleUnassignment = 4 // roleid, userid, contextlevel, instanceid

// RoleUnassignForm renders core_role_unassign_roles parameters, naming
// each course's context by level and instance: a web-service client has no
// cheap way to learn context ids.
func RoleUnassignForm(items []RoleUnassignment) *Form {
	f := &Form{}
	for i, u := range items {
		p := "unassignments[" + strconv.Itoa(i) + "]"
		f.AddInt(p+"[roleid]", u.RoleID)
		f.AddInt(p+"[userid]", u.UserID)
		f.Add(p+"[contextlevel]", "course")
		f.AddInt(p+"[instanceid]", u.CourseID)
	}
	return f
}

// UnassignRoles calls core_role_unassign_roles once (one transaction: all
// or none). Size the batch with Capacity(VarsPerRoleUnassignment).
func (c *Client) UnassignRoles(ctx context.Context, items []RoleUnassignment) error {
	return c.Call(ctx, FnUnassignRoles, RoleUnassignForm(items), nil)
}

// CoursesByField calls core_course_get_courses_by_field with one field
// ("id", "shortname", "idnumber", ...) and value. A course that does not
// exist, or that is hidden from the service user, is simply absent.
func (c *Client) CoursesByField(ctx context.Context, field, value string) ([]Course, error) {
	f := &Form{}
	f.Add("field", field)
	f.Add("value", value)
	var ans struct {
		Courses []Course `json:"courses"`
	}
	err := c.Call(ctx, FnCoursesByField, f, &ans)
	return ans.Courses, err
}
