package moodlesim

import (
	"fmt"
	"strconv"
)

// core_role_unassign_roles, from Moodle's code (core_role_external in
// enrol/externallib.php of 4.5, get_context_from_params in
// core_external\external_api, role_unassign in lib/accesslib.php); the
// reference notes do not cover it, and it is not recorded on a real site.

// unassignRolesFunc is core_role_unassign_roles' description.
var unassignRolesFunc = &wsFunc{
	name: "core_role_unassign_roles", component: "moodle", write: true,
	params: single(key("unassignments", multi(single(
		key("roleid", val(paramInt)),
		key("userid", val(paramInt)),
		key("contextid", optVal(paramInt)),
		key("contextlevel", optVal(paramAlpha)),
		key("instanceid", optVal(paramInt)),
	)))),
	run: unassignRoles,
}

// contextLevels are the context levels get_context_from_params knows.
var contextLevels = map[string]bool{"system": true, "user": true, "coursecat": true, "course": true, "module": true, "block": true}

// roleContextCourse is get_context_from_params() then validate_context()
// for one entry, as far as the simulator models contexts: only course
// contexts named by contextlevel "course" and instanceid exist. A contextid,
// or another level, is answered as a context that does not exist (the
// simulator has no context ids). Neither step is inside a try block, so a
// course the web-service user may not access answers
// require_login_exception itself.
func (c *callCtx) roleContextCourse(e map[string]any) (int, *wsError) {
	level, hasLevel := e["contextlevel"].(string)
	instance, hasInstance := e["instanceid"].(int)
	switch {
	case !isEmptyInt(e["contextid"]):
		return 0, invalidParam("Context does not exist")
	case hasLevel && level != "" && hasInstance:
		if !contextLevels[level] {
			return 0, invalidParam("Invalid context level = " + level)
		}
	default:
		return 0, invalidParam("Missing parameters, please provide either context level with instance id or contextid")
	}
	co := c.st.courses[instance]
	if level != "course" || co == nil {
		return 0, invalidParam("Context does not exist")
	}
	if co.inaccessible {
		return 0, requireLogin()
	}
	return instance, nil
}

// unassignRoles is core_role_unassign_roles: for each entry, the course
// context is checked, then the role must be one the web-service user may
// assign there (invalidparameter otherwise), then role_unassign() removes
// the user's assignment of the role, if any: a user who does not hold it,
// or does not exist, changes nothing. The enrolment stays, with no role if
// that was the last one.
func unassignRoles(c *callCtx, p map[string]any) (any, *wsError) {
	for _, x := range list(p["unassignments"]) {
		e := rec(x)
		courseID, err := c.roleContextCourse(e)
		if err != nil {
			return nil, err
		}
		roleID, userID := e["roleid"].(int), e["userid"].(int)
		if !assignableRoles[roleID] {
			// Moodle's message names the contextid entry, unset here.
			ctxID := ""
			if id, ok := e["contextid"].(int); ok {
				ctxID = strconv.Itoa(id)
			}
			return nil, invalidParam(fmt.Sprintf("Can not unassign roleid=%d in contextid=%s", roleID, ctxID))
		}
		c.st.unassignRole(courseID, userID, roleID)
	}
	return nil, nil
}

// unassignRole takes a role from a user in a course; the enrolment stays.
func (st *state) unassignRole(courseID, userID, roleID int) {
	old := st.enrol[courseID][userID]
	if old == nil || !old.roles[roleID] {
		return
	}
	e := old.clone()
	delete(e.roles, roleID)
	st.putEnrolment(courseID, userID, e)
}
