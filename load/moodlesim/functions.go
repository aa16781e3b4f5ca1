package moodlesim

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Site facts reported by core_webservice_get_site_info.
const (
	siteRelease        = "4.5.6+ (Build: 20250101)"
	siteVersion        = "2024100706"
	enrolManualVersion = "2024100700"
	// fixedTime is used for every timestamp so that answers are reproducible.
	fixedTime = 1735689600
)

// callCtx is what a web-service function sees: the site's state (in a
// transaction for a write function) and the request's settings.
type callCtx struct {
	s       *Server
	st      *state
	raw     bool // moodlewssettingraw
	siteURL string
	// done counts the items a call completed, for the cost of a call
	// refused part-way (-1: the function does not count them).
	done int
}

// wsFunc is one external function: its parameter and return descriptions and
// its implementation.
type wsFunc struct {
	name      string
	component string
	params    *singleDesc
	returns   desc // nil: the function returns nothing (JSON null)
	write     bool // runs in a transaction, rolled back on error
	run       func(c *callCtx, p map[string]any) (any, *wsError)
}

func (f *wsFunc) version() string {
	if f.component == "enrol_manual" {
		return enrolManualVersion
	}
	return siteVersion
}

// Descriptions shared by several functions.
var (
	customFieldsParam = optMulti(single(
		key("shortname", val(paramAlnumExt)),
		key("value", val(paramRaw)),
	))
	customFieldsReturn = optMulti(single(
		key("name", val(paramRaw)),
		key("shortname", val(paramRaw)),
		key("type", val(paramAlnumExt)),
		key("valueraw", val(paramRaw)),
		key("value", val(paramRaw)),
	))
	groupReturn = single(
		key("id", val(paramInt)),
		key("courseid", val(paramInt)),
		key("name", val(paramText)),
		key("description", val(paramRaw)),
		key("descriptionformat", val(paramInt)),
		key("enrolmentkey", val(paramRaw)),
		key("idnumber", val(paramRaw)),
		key("visibility", val(paramInt)),
		key("participation", val(paramBool)),
	)
	groupingReturn = single(
		key("id", val(paramInt)),
		key("courseid", val(paramInt)),
		key("name", val(paramText)),
		key("description", val(paramRaw)),
		key("descriptionformat", val(paramInt)),
		key("idnumber", val(paramRaw)),
	)
	memberParams = multi(single(
		key("groupid", val(paramInt)),
		key("userid", val(paramInt)),
	))
	assignParams = multi(single(
		key("groupingid", val(paramInt)),
		key("groupid", val(paramInt)),
	))
	userReturn = single(
		key("id", val(paramInt)),
		key("username", optVal(paramRaw)),
		key("firstname", optVal(paramText)),
		key("lastname", optVal(paramText)),
		key("fullname", val(paramText)),
		key("email", optVal(paramText)),
		key("idnumber", optVal(paramRaw)),
	)
	// enrolledUserReturn is core_enrol_get_enrolled_users' user: the
	// user fields and, in the course, the user's roles.
	enrolledUserReturn = userReturn.with(key("roles", optMulti(single(
		key("roleid", val(paramInt)),
		key("name", val(paramRaw)),
		key("shortname", val(paramAlnumExt)),
		key("sortorder", val(paramInt)),
	))))
	fileReturn = single(
		key("filename", optVal(paramRaw)),
		key("filepath", optVal(paramRaw)),
		key("filesize", optVal(paramInt)),
		key("fileurl", optVal(paramRaw)),
		key("timemodified", optVal(paramInt)),
		key("mimetype", optVal(paramRaw)),
	)
	courseReturn = single(
		key("id", val(paramInt)),
		key("fullname", val(paramText)),
		key("displayname", val(paramText)),
		key("shortname", val(paramText)),
		key("courseimage", optVal(paramRaw)),
		key("categoryid", val(paramInt)),
		key("categoryname", val(paramText)),
		key("sortorder", optVal(paramInt)),
		key("summary", val(paramRaw)),
		key("summaryformat", val(paramInt)),
		key("summaryfiles", optMulti(fileReturn)),
		key("overviewfiles", multi(fileReturn)),
		key("showactivitydates", val(paramBool)),
		key("showcompletionconditions", val(paramBool)),
		key("contacts", multi(single(key("id", val(paramInt)), key("fullname", val(paramText))))),
		key("enrollmentmethods", multi(val(paramRaw))),
		key("idnumber", optVal(paramRaw)),
		key("format", optVal(paramAlnumExt)),
		key("showgrades", optVal(paramInt)),
		key("newsitems", optVal(paramInt)),
		key("startdate", optVal(paramInt)),
		key("enddate", optVal(paramInt)),
		key("maxbytes", optVal(paramInt)),
		key("showreports", optVal(paramInt)),
		key("visible", optVal(paramInt)),
		key("groupmode", optVal(paramInt)),
		key("groupmodeforce", optVal(paramInt)),
		key("defaultgroupingid", optVal(paramInt)),
		key("enablecompletion", optVal(paramInt)),
		key("completionnotify", optVal(paramInt)),
		key("lang", optVal(paramRaw)),
		key("theme", optVal(paramRaw)),
		key("marker", optVal(paramInt)),
		key("legacyfiles", optVal(paramInt)),
		key("calendartype", optVal(paramRaw)),
		key("timecreated", optVal(paramInt)),
		key("timemodified", optVal(paramInt)),
		key("requested", optVal(paramInt)),
		key("cacherev", optVal(paramInt)),
	)
	warningsReturn = multi(single(
		key("item", optVal(paramText)),
		key("itemid", optVal(paramInt)),
		key("warningcode", val(paramAlnumExt)),
		key("message", val(paramRaw)),
	))
)

// functionList is every implemented external function.
var functionList = []*wsFunc{
	{
		name: "core_group_create_groups", component: "moodle", write: true,
		params: single(key("groups", multi(single(
			key("courseid", val(paramInt)),
			key("name", val(paramText)),
			key("description", val(paramRaw)),
			key("descriptionformat", formatVal()),
			key("enrolmentkey", optVal(paramRaw)),
			key("idnumber", optVal(paramRaw)),
			key("visibility", defVal(paramInt, 0)),
			key("participation", defVal(paramBool, true)),
			key("customfields", customFieldsParam),
		)))),
		returns: multi(groupReturn.with(key("customfields", customFieldsParam))),
		run:     createGroups,
	},
	{
		name: "core_group_update_groups", component: "moodle", write: true,
		params: single(key("groups", multi(single(
			key("id", val(paramInt)),
			key("name", val(paramText)),
			key("description", optVal(paramRaw)),
			key("descriptionformat", formatVal()),
			key("enrolmentkey", optVal(paramRaw)),
			key("idnumber", optVal(paramRaw)),
			key("visibility", optVal(paramText)),
			key("participation", optVal(paramBool)),
			key("customfields", customFieldsParam),
		)))),
		run: updateGroups,
	},
	{
		name: "core_group_delete_groups", component: "moodle", write: true,
		params: single(key("groupids", multi(val(paramInt)))),
		run: func(c *callCtx, p map[string]any) (any, *wsError) {
			return deleteObjects(c, p["groupids"], c.st.groups, c.st.deleteGroup)
		},
	},
	{
		name: "core_group_get_groups", component: "moodle",
		params:  single(key("groupids", multi(val(paramInt)))),
		returns: multi(groupReturn.with(key("customfields", customFieldsReturn))),
		run:     getGroups,
	},
	{
		name: "core_group_get_course_groups", component: "moodle",
		params:  single(key("courseid", val(paramInt))),
		returns: multi(groupReturn),
		run:     getCourseGroups,
	},
	{
		name: "core_group_create_groupings", component: "moodle", write: true,
		params: single(key("groupings", multi(single(
			key("courseid", val(paramInt)),
			key("name", val(paramText)),
			key("description", val(paramRaw)),
			key("descriptionformat", formatVal()),
			key("idnumber", optVal(paramRaw)),
			key("customfields", customFieldsParam),
		)))),
		returns: multi(groupingReturn.with(key("customfields", customFieldsParam))),
		run:     createGroupings,
	},
	{
		name: "core_group_update_groupings", component: "moodle", write: true,
		params: single(key("groupings", multi(single(
			key("id", val(paramInt)),
			key("name", val(paramText)),
			key("description", val(paramRaw)),
			key("descriptionformat", formatVal()),
			key("idnumber", optVal(paramRaw)),
			key("customfields", customFieldsParam),
		)))),
		run: updateGroupings,
	},
	{
		name: "core_group_delete_groupings", component: "moodle", write: true,
		params: single(key("groupingids", multi(val(paramInt)))),
		run: func(c *callCtx, p map[string]any) (any, *wsError) {
			return deleteObjects(c, p["groupingids"], c.st.groupings, c.st.deleteGrouping)
		},
	},
	{
		name: "core_group_get_groupings", component: "moodle",
		params: single(
			key("groupingids", multi(val(paramInt))),
			key("returngroups", defVal(paramBool, false)),
		),
		returns: multi(groupingReturn.with(
			key("customfields", customFieldsReturn),
			key("groups", optMulti(single(
				key("id", val(paramInt)),
				key("courseid", val(paramInt)),
				key("name", val(paramText)),
				key("description", val(paramRaw)),
				key("descriptionformat", val(paramInt)),
				key("enrolmentkey", val(paramRaw)),
				key("idnumber", val(paramRaw)),
				key("customfields", customFieldsReturn),
			))),
		)),
		run: getGroupings,
	},
	{
		name: "core_group_get_course_groupings", component: "moodle",
		params:  single(key("courseid", val(paramInt))),
		returns: multi(groupingReturn),
		run:     getCourseGroupings,
	},
	{
		name: "core_group_assign_grouping", component: "moodle", write: true,
		params: single(key("assignments", assignParams)),
		run:    func(c *callCtx, p map[string]any) (any, *wsError) { return assignGrouping(c, p["assignments"], true) },
	},
	{
		name: "core_group_unassign_grouping", component: "moodle", write: true,
		params: single(key("unassignments", assignParams)),
		run: func(c *callCtx, p map[string]any) (any, *wsError) {
			return assignGrouping(c, p["unassignments"], false)
		},
	},
	{
		name: "core_group_add_group_members", component: "moodle", write: true,
		params: single(key("members", memberParams)),
		run:    func(c *callCtx, p map[string]any) (any, *wsError) { return changeMembers(c, p["members"], true) },
	},
	{
		name: "core_group_delete_group_members", component: "moodle", write: true,
		params: single(key("members", memberParams)),
		run:    func(c *callCtx, p map[string]any) (any, *wsError) { return changeMembers(c, p["members"], false) },
	},
	{
		name: "core_group_get_group_members", component: "moodle",
		params:  single(key("groupids", multi(val(paramInt)))),
		returns: multi(single(key("groupid", val(paramInt)), key("userids", multi(val(paramInt))))),
		run:     getGroupMembers,
	},
	{
		name: "core_enrol_get_enrolled_users", component: "moodle",
		params: single(
			key("courseid", val(paramInt)),
			key("options", defMulti(single(key("name", val(paramAlnumExt)), key("value", val(paramRaw))))),
		),
		returns: multi(enrolledUserReturn),
		run:     getEnrolledUsers,
	},
	{
		name: "core_user_get_users_by_field", component: "moodle",
		params: single(
			key("field", val(paramAlpha)),
			key("values", multi(val(paramRaw))),
		),
		returns: multi(userReturn),
		run:     getUsersByField,
	},
	{
		name: "core_course_get_courses_by_field", component: "moodle",
		params: single(
			key("field", defVal(paramAlpha, "")),
			key("value", defVal(paramRaw, "")),
		),
		returns: single(key("courses", multi(courseReturn)), key("warnings", warningsReturn)),
		run:     getCoursesByField,
	},
	{
		name: "enrol_manual_enrol_users", component: "enrol_manual", write: true,
		params: single(key("enrolments", multi(single(
			key("roleid", val(paramInt)),
			key("userid", val(paramInt)),
			key("courseid", val(paramInt)),
			key("timestart", optVal(paramInt)),
			key("timeend", optVal(paramInt)),
			key("suspend", optVal(paramInt)),
		)))),
		run: enrolUsers,
	},
	{
		name: "enrol_manual_unenrol_users", component: "enrol_manual", write: true,
		params: single(key("enrolments", multi(single(
			key("userid", val(paramInt)),
			key("courseid", val(paramInt)),
			key("roleid", optVal(paramInt)),
		)))),
		run: unenrolUsers,
	},
	unassignRolesFunc,
	{
		name: "core_webservice_get_site_info", component: "moodle",
		params: single(key("serviceshortnames", defMulti(val(paramAlnumExt)))),
		returns: single(
			key("sitename", val(paramRaw)),
			key("username", val(paramRaw)),
			key("firstname", val(paramText)),
			key("lastname", val(paramText)),
			key("fullname", val(paramText)),
			key("lang", val(paramRaw)),
			key("userid", val(paramInt)),
			key("siteurl", val(paramRaw)),
			key("userpictureurl", val(paramRaw)),
			key("functions", multi(single(key("name", val(paramRaw)), key("version", val(paramText))))),
			key("downloadfiles", optVal(paramInt)),
			key("uploadfiles", optVal(paramInt)),
			key("release", optVal(paramText)),
			key("version", optVal(paramText)),
			key("mobilecssurl", optVal(paramRaw)),
			key("advancedfeatures", optMulti(single(key("name", val(paramAlnumExt)), key("value", val(paramInt))))),
			key("usercanmanageownfiles", optVal(paramBool)),
			key("userquota", optVal(paramInt)),
			key("usermaxuploadfilesize", optVal(paramInt)),
			key("userhomepage", optVal(paramInt)),
			key("siteid", optVal(paramInt)),
			key("sitecalendartype", optVal(paramRaw)),
			key("usercalendartype", optVal(paramRaw)),
			key("userissiteadmin", optVal(paramBool)),
			key("theme", optVal(paramRaw)),
			key("limitconcurrentlogins", optVal(paramInt)),
			key("policyagreed", optVal(paramInt)),
		),
		run: getSiteInfo,
	},
}

// unimplementedFunctions are functions a Moodle 4.5 site has that the
// simulator does not implement. They are never in the token's service, so
// they answer accessexception, as a real site answers for a function left
// out of the service (unknown names answer invalidrecord).
var unimplementedFunctions = map[string]bool{
	"core_course_update_courses": true,
	"core_user_create_users":     true,
}

var functionsByName = func() map[string]*wsFunc {
	m := make(map[string]*wsFunc, len(functionList))
	for _, f := range functionList {
		m[f.name] = f
	}
	return m
}()

// FunctionNames lists every web-service function the simulator implements,
// sorted.
func FunctionNames() []string {
	out := make([]string, 0, len(functionList))
	for _, f := range functionList {
		out = append(out, f.name)
	}
	sort.Strings(out)
	return out
}

// --- helpers ---------------------------------------------------------------

func list(v any) []any { l, _ := v.([]any); return l }

func rec(v any) map[string]any { m, _ := v.(map[string]any); return m }

// courseContext is validate_context() on a course context inside the try
// block of the core_group functions (and of core_enrol_get_enrolled_users):
// a course that does not exist, or that the web-service user may not
// access, answers errorcoursecontextnotvalid. named is the course id the
// exception names: assign_grouping and unassign_grouping validate the
// grouping's course and name the group's.
func (c *callCtx) courseContext(courseID, named int) *wsError {
	co := c.st.courses[courseID]
	switch {
	case co == nil:
		return courseContextErr(named, msgInvalidParam)
	case co.inaccessible:
		return courseContextErr(named, msgNotAccessible)
	}
	return nil
}

// validateFormat is core_external\util::validate_format().
func validateFormat(f int) *wsError {
	switch f {
	case formatMoodle, formatHTML, formatPlain, formatMarkdown:
		return nil
	}
	return formatNotSupported()
}

// validateVisibility is core_group_external::validate_visibility().
func validateVisibility(v int) *wsError {
	if v < 0 || v > 3 {
		return invalidParam("Invalid group visibility provided. Must be one of 0,1,2,3")
	}
	return nil
}

var entityRe = regexp.MustCompile(`&([a-zA-Z0-9#]{1,8};)?`)

// formatString is what format_string() does to a plain group name: "&" not
// starting an entity becomes "&amp;", tags are stripped and "<", ">" escaped.
func (c *callCtx) formatString(s string) string {
	if c.raw {
		return s
	}
	s = entityRe.ReplaceAllStringFunc(s, func(m string) string {
		if m == "&" {
			return "&amp;"
		}
		return m
	})
	s = stripTags(s)
	return strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(s)
}

func tooLong(table string, fields map[string]string, limits map[string]int) *wsError {
	for _, col := range []string{"name", "idnumber", "enrolmentkey"} {
		v, ok := fields[col]
		if ok && utf8.RuneCountInString(v) > limits[col] {
			return writeErr("Data too long for column '" + col + "' at row 1\nINSERT INTO mdl_" + table)
		}
	}
	return nil
}

var groupLimits = map[string]int{"name": maxGroupName, "idnumber": maxGroupIDNumber, "enrolmentkey": maxEnrolmentKey}

func strOrEmpty(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (c *callCtx) groupOut(g *groupRec) map[string]any {
	var key any
	if g.enrolmentkey != nil {
		key = *g.enrolmentkey
	}
	return map[string]any{
		"id": g.id, "courseid": g.courseid, "name": c.formatString(g.name),
		"description": g.description, "descriptionformat": formatHTML,
		"enrolmentkey": key, "idnumber": g.idnumber,
		"visibility": g.visibility, "participation": g.participation,
	}
}

func groupingOut(g *groupingRec) map[string]any {
	return map[string]any{
		"id": g.id, "courseid": g.courseid, "name": g.name,
		"description": g.description, "descriptionformat": formatHTML, "idnumber": g.idnumber,
	}
}

func fullname(u *userRec) string { return u.firstname + " " + u.lastname }

// userDetails is user_get_user_details(); fields nil means every field.
func (c *callCtx) userDetails(u *userRec, fields map[string]bool) map[string]any {
	want := func(f string) bool { return fields == nil || fields[f] }
	m := map[string]any{"id": u.id, "fullname": fullname(u)}
	if want("username") {
		m["username"] = u.username
	}
	if want("firstname") {
		m["firstname"] = u.firstname
	}
	if want("lastname") {
		m["lastname"] = u.lastname
	}
	if want("email") {
		m["email"] = u.email
	}
	if want("idnumber") && !phpEmpty(u.idnumber) && c.s.opts.ShowIdnumber {
		m["idnumber"] = u.idnumber
	}
	return m
}

// --- core_group ------------------------------------------------------------

func createGroups(c *callCtx, p map[string]any) (any, *wsError) {
	out := []any{}
	for _, x := range list(p["groups"]) {
		g := rec(x)
		courseID, name := g["courseid"].(int), g["name"].(string)
		if phpTrim(name) == "" {
			return nil, invalidParam("Invalid group name")
		}
		if c.st.groupNameTaken(courseID, name) {
			return nil, invalidParam("Group with the same name already exists in the course")
		}
		if err := c.courseContext(courseID, courseID); err != nil {
			return nil, err
		}
		format := g["descriptionformat"].(int)
		if err := validateFormat(format); err != nil {
			return nil, err
		}
		vis := g["visibility"].(int)
		if err := validateVisibility(vis); err != nil {
			return nil, err
		}
		// groups_create_group()
		r := &groupRec{courseid: courseID, name: phpTrim(name), description: g["description"].(string),
			descformat: format, visibility: vis, participation: g["participation"].(bool), members: map[int]bool{}}
		fields := map[string]string{"name": r.name}
		if idn, ok := g["idnumber"].(string); ok {
			r.idnumber = phpTrim(idn)
			fields["idnumber"] = r.idnumber
			if byIDNumber(c.st.courseData(courseID).groups, r.idnumber) != 0 {
				return nil, idNumberTaken()
			}
		}
		if k, ok := g["enrolmentkey"].(string); ok {
			r.enrolmentkey = &k
			fields["enrolmentkey"] = k
		}
		if err := tooLong("groups", fields, groupLimits); err != nil {
			return nil, err
		}
		r.id = c.st.newGroupID()
		c.st.insertGroup(r)
		o := map[string]any{
			"id": r.id, "courseid": courseID, "name": r.name, "description": r.description,
			"descriptionformat": format, "enrolmentkey": strOrEmpty(r.enrolmentkey), "idnumber": r.idnumber,
			"visibility": vis, "participation": r.participation,
		}
		if cf, ok := g["customfields"]; ok {
			o["customfields"] = cf
		}
		out = append(out, o)
	}
	return out, nil
}

func updateGroups(c *callCtx, p map[string]any) (any, *wsError) {
	for _, x := range list(p["groups"]) {
		g := rec(x)
		id, name := g["id"].(int), g["name"].(string)
		if phpTrim(name) == "" {
			return nil, invalidParam("Invalid group name")
		}
		cur := c.st.groups[id]
		if cur == nil {
			return nil, invalidParam(fmt.Sprintf("Group %d does not exist", id))
		}
		if !phpLooseEq(name, cur.name) && c.st.groupNameTaken(cur.courseid, name) {
			return nil, invalidParam("A different group with the same name already exists in the course")
		}
		visStr, hasVis := g["visibility"].(string)
		part, hasPart := g["participation"].(bool)
		vis := cur.visibility
		if hasVis || hasPart {
			hasMembers := len(cur.members) > 0
			if hasVis {
				n, err := strconv.Atoi(strings.TrimSpace(visStr))
				if err != nil {
					return nil, invalidParam("Invalid group visibility provided. Must be one of 0,1,2,3")
				}
				if werr := validateVisibility(n); werr != nil {
					return nil, werr
				}
				if hasMembers && n != cur.visibility {
					return nil, invalidParam("The visibility of this group cannot be changed as it currently has members.")
				}
				vis = n
			}
			if hasPart && hasMembers && part != cur.participation {
				return nil, invalidParam("The participation mode of this group cannot be changed as it currently has members.")
			}
		}
		if err := c.courseContext(cur.courseid, cur.courseid); err != nil {
			return nil, err
		}
		format := g["descriptionformat"].(int)
		desc, hasDesc := g["description"].(string)
		if hasDesc && !phpEmpty(desc) {
			if err := validateFormat(format); err != nil {
				return nil, err
			}
		}
		// groups_update_group()
		newName := phpTrim(name)
		fields := map[string]string{"name": newName}
		idn, hasIdn := g["idnumber"].(string)
		if hasIdn {
			idn = phpTrim(idn)
			fields["idnumber"] = idn
			if e := byIDNumber(c.st.courseData(cur.courseid).groups, idn); e != 0 && e != id {
				return nil, idNumberTaken()
			}
		}
		key, hasKey := g["enrolmentkey"].(string)
		if hasKey {
			fields["enrolmentkey"] = key
		}
		if err := tooLong("groups", fields, groupLimits); err != nil {
			return nil, err
		}
		c.st.editGroup(cur, func(cur *groupRec) {
			cur.name = newName
			cur.descformat = format
			if hasDesc {
				cur.description = desc
			}
			if hasIdn {
				cur.idnumber = idn
			}
			if hasKey {
				cur.enrolmentkey = &key
			}
			cur.visibility = vis
			if hasPart {
				cur.participation = part
			}
		})
	}
	return nil, nil
}

// deleteObjects is delete_groups and delete_groupings: ids that do not
// exist are silently ignored, and each object's course context is validated
// before it goes.
func deleteObjects[R interface{ course() int }](c *callCtx, ids any, recs map[int]*R, del func(id int)) (any, *wsError) {
	for _, x := range list(ids) {
		r := recs[x.(int)]
		if r == nil {
			continue
		}
		if err := c.courseContext((*r).course(), (*r).course()); err != nil {
			return nil, err
		}
		del(x.(int))
	}
	return nil, nil
}

func getGroups(c *callCtx, p map[string]any) (any, *wsError) {
	out := []any{}
	for _, x := range list(p["groupids"]) {
		id := x.(int)
		g := c.st.groups[id]
		if g == nil {
			return nil, missingRecord("groups", "SELECT id, courseid, name, idnumber, description, descriptionformat, "+
				"enrolmentkey, visibility, participation FROM {groups} WHERE id = ?", id)
		}
		if err := c.courseContext(g.courseid, g.courseid); err != nil {
			return nil, err
		}
		o := c.groupOut(g)
		o["customfields"] = []any{}
		out = append(out, o)
	}
	return out, nil
}

// getCourseGroups answers from the course's group cache (groups_get_all_groups
// with only group fields uses it), so it lists phantoms.
func getCourseGroups(c *callCtx, p map[string]any) (any, *wsError) {
	courseID := p["courseid"].(int)
	if err := c.courseContext(courseID, courseID); err != nil {
		return nil, err
	}
	out := []any{}
	for _, g := range c.st.courseData(courseID).groups {
		out = append(out, c.groupOut(&g))
	}
	return out, nil
}

func getGroupMembers(c *callCtx, p map[string]any) (any, *wsError) {
	out := []any{}
	for _, x := range list(p["groupids"]) {
		id := x.(int)
		g := c.st.groups[id]
		if g == nil {
			return nil, missingRecord("groups", "SELECT id, courseid, name, enrolmentkey FROM {groups} WHERE id = ?", id)
		}
		if err := c.courseContext(g.courseid, g.courseid); err != nil {
			return nil, err
		}
		// groups_get_members(..., 'lastname ASC, firstname ASC')
		var users []*userRec
		for uid := range g.members {
			if u := c.st.users[uid]; u != nil {
				users = append(users, u)
			}
		}
		sort.Slice(users, func(i, j int) bool {
			a, b := users[i], users[j]
			if la, lb := strings.ToLower(a.lastname), strings.ToLower(b.lastname); la != lb {
				return la < lb
			}
			if fa, fb := strings.ToLower(a.firstname), strings.ToLower(b.firstname); fa != fb {
				return fa < fb
			}
			return a.id < b.id
		})
		ids := make([]any, 0, len(users))
		for _, u := range users {
			ids = append(ids, u.id)
		}
		out = append(out, map[string]any{"groupid": id, "userids": ids})
	}
	return out, nil
}

func changeMembers(c *callCtx, members any, add bool) (any, *wsError) {
	for _, x := range list(members) {
		m := rec(x)
		gid, uid := m["groupid"].(int), m["userid"].(int)
		g := c.st.groups[gid]
		if g == nil {
			return nil, missingRecord("groups", "SELECT * FROM {groups} WHERE id = ?", gid)
		}
		if c.st.users[uid] == nil {
			return nil, missingRecord("user", "SELECT * FROM {user} WHERE id = ? AND deleted = ? AND mnethostid = ?", uid, 0, "1")
		}
		if err := c.courseContext(g.courseid, g.courseid); err != nil {
			return nil, err
		}
		if add {
			if !c.st.enrolled(g.courseid, uid) {
				return nil, invalidParam("Only enrolled users may be members of groups")
			}
			c.st.addMember(g, uid)
		} else {
			c.st.removeMember(g, uid)
		}
		c.done++
	}
	return nil, nil
}

func createGroupings(c *callCtx, p map[string]any) (any, *wsError) {
	out := []any{}
	for _, x := range list(p["groupings"]) {
		g := rec(x)
		courseID, name := g["courseid"].(int), g["name"].(string)
		if phpTrim(name) == "" {
			return nil, invalidParam("Invalid grouping name")
		}
		if c.st.groupingNameTaken(courseID, name) {
			return nil, invalidParam("Grouping with the same name already exists in the course")
		}
		// context_course::instance($courseid) with MUST_EXIST, outside the try.
		if c.st.courses[courseID] == nil {
			return nil, missingRecord("course", "SELECT id,category FROM {course} WHERE id = ?", courseID)
		}
		if err := c.courseContext(courseID, courseID); err != nil {
			return nil, err
		}
		format := g["descriptionformat"].(int)
		if err := validateFormat(format); err != nil {
			return nil, err
		}
		// groups_create_grouping()
		r := &groupingRec{courseid: courseID, name: phpTrim(name), description: g["description"].(string),
			descformat: format, groups: map[int]bool{}}
		o := map[string]any{"courseid": courseID, "name": r.name, "description": r.description, "descriptionformat": format}
		fields := map[string]string{"name": r.name}
		if idn, ok := g["idnumber"].(string); ok {
			r.idnumber = phpTrim(idn)
			fields["idnumber"] = r.idnumber
			if byIDNumber(c.st.courseData(courseID).groupings, r.idnumber) != 0 {
				return nil, idNumberTaken()
			}
			// Only set when given: without it Moodle's answer fails
			// clean_returnvalue after the grouping was created.
			o["idnumber"] = r.idnumber
		}
		if err := tooLong("groupings", fields, groupLimits); err != nil {
			return nil, err
		}
		r.id = c.st.newGroupingID()
		c.st.insertGrouping(r)
		o["id"] = r.id
		if cf, ok := g["customfields"]; ok {
			o["customfields"] = cf
		}
		out = append(out, o)
	}
	return out, nil
}

func updateGroupings(c *callCtx, p map[string]any) (any, *wsError) {
	for _, x := range list(p["groupings"]) {
		g := rec(x)
		id, name := g["id"].(int), g["name"].(string)
		if phpTrim(name) == "" {
			return nil, invalidParam("Invalid grouping name")
		}
		cur := c.st.groupings[id]
		if cur == nil {
			return nil, invalidParam(fmt.Sprintf("Grouping %d does not exist in the course", id))
		}
		if !phpLooseEq(name, cur.name) && c.st.groupingNameTaken(cur.courseid, name) {
			return nil, invalidParam("A different grouping with the same name already exists in the course")
		}
		if c.st.courses[cur.courseid] == nil {
			return nil, missingRecord("course", "SELECT id,category FROM {course} WHERE id = ?", cur.courseid)
		}
		if err := c.courseContext(cur.courseid, cur.courseid); err != nil {
			return nil, err
		}
		format := g["descriptionformat"].(int)
		if err := validateFormat(format); err != nil {
			return nil, err
		}
		newName := phpTrim(name)
		fields := map[string]string{"name": newName}
		idn, hasIdn := g["idnumber"].(string)
		if hasIdn {
			idn = phpTrim(idn)
			fields["idnumber"] = idn
			if e := byIDNumber(c.st.courseData(cur.courseid).groupings, idn); e != 0 && e != id {
				return nil, idNumberTaken()
			}
		}
		if err := tooLong("groupings", fields, groupLimits); err != nil {
			return nil, err
		}
		desc := g["description"].(string)
		c.st.editGrouping(cur, func(cur *groupingRec) {
			cur.name = newName
			cur.description = desc
			cur.descformat = format
			if hasIdn {
				cur.idnumber = idn
			}
		})
	}
	return nil, nil
}

func getGroupings(c *callCtx, p map[string]any) (any, *wsError) {
	returnGroups := p["returngroups"].(bool)
	out := []any{}
	for _, x := range list(p["groupingids"]) {
		id := x.(int)
		g := c.st.groupings[id]
		if g == nil {
			return nil, missingRecord("groupings", "SELECT * FROM {groupings} WHERE id = ?", id)
		}
		if err := c.courseContext(g.courseid, g.courseid); err != nil {
			return nil, err
		}
		o := groupingOut(g)
		o["customfields"] = []any{}
		if returnGroups && len(g.groups) > 0 {
			groups := []any{}
			for _, gid := range sortedKeys(g.groups) {
				gr := c.st.groups[gid]
				if gr == nil {
					continue
				}
				var key any
				if gr.enrolmentkey != nil {
					key = *gr.enrolmentkey
				}
				groups = append(groups, map[string]any{
					"id": gr.id, "courseid": gr.courseid, "name": gr.name, "description": gr.description,
					"descriptionformat": formatHTML, "enrolmentkey": key, "idnumber": gr.idnumber,
					"customfields": []any{},
				})
			}
			o["groups"] = groups
		}
		out = append(out, o)
	}
	return out, nil
}

// getCourseGroupings answers from the course's group cache
// (groups_get_all_groupings), so it lists phantoms. A missing course answers
// errorcoursecontextnotvalid as the reference records, although the seed code
// looks the context up with MUST_EXIST outside its try block.
func getCourseGroupings(c *callCtx, p map[string]any) (any, *wsError) {
	courseID := p["courseid"].(int)
	if err := c.courseContext(courseID, courseID); err != nil {
		return nil, err
	}
	out := []any{}
	for _, g := range c.st.courseData(courseID).groupings {
		out = append(out, groupingOut(&g))
	}
	return out, nil
}

// assignGrouping implements assign_grouping and unassign_grouping. Like
// Moodle it does not check that the group and the grouping share a course.
func assignGrouping(c *callCtx, items any, assign bool) (any, *wsError) {
	for _, x := range list(items) {
		a := rec(x)
		gingID, gid := a["groupingid"].(int), a["groupid"].(int)
		ging := c.st.groupings[gingID]
		if ging == nil {
			return nil, missingRecord("groupings", "SELECT id, courseid FROM {groupings} WHERE id = ?", gingID)
		}
		g := c.st.groups[gid]
		if g == nil {
			return nil, missingRecord("groups", "SELECT id, courseid FROM {groups} WHERE id = ?", gid)
		}
		if ging.groups[gid] == assign {
			continue // already (un)assigned: Moodle continues silently
		}
		if c.st.courses[ging.courseid] == nil {
			return nil, missingRecord("course", "SELECT id,category FROM {course} WHERE id = ?", ging.courseid)
		}
		// Moodle validates the grouping's course and names the group's.
		if err := c.courseContext(ging.courseid, g.courseid); err != nil {
			return nil, err
		}
		if assign {
			c.st.assignGroup(ging, gid)
		} else {
			c.st.unassignGroup(ging, gid)
		}
	}
	return nil, nil
}

// --- users, courses, enrolments ----------------------------------------------

// getEnrolledUsers lists the users enrolled in a course by any method,
// suspended ones included unless onlyactive is set, ordered by id. Options
// it does not model (withcapability, onlysuspended, sortby, ...) are
// ignored.
func getEnrolledUsers(c *callCtx, p map[string]any) (any, *wsError) {
	courseID := p["courseid"].(int)
	var fields map[string]bool
	groupID, limitFrom, limitNumber := 0, 0, 0
	onlyActive := false
	for _, x := range list(p["options"]) {
		o := rec(x)
		v := o["value"].(string)
		switch o["name"].(string) {
		case "userfields":
			fields = map[string]bool{}
			for _, f := range strings.Split(v, ",") {
				fields[cleanAlnumExt(f)] = true
			}
		case "groupid":
			groupID = phpIntCast(v)
		case "onlyactive":
			onlyActive = !phpEmpty(v)
		case "limitfrom":
			limitFrom = phpIntCast(v)
		case "limitnumber":
			limitNumber = phpIntCast(v)
		}
	}
	co := c.st.courses[courseID]
	if co == nil {
		return nil, missingRecord("course", "SELECT * FROM {course} WHERE id = ?", courseID)
	}
	if err := c.courseContext(courseID, courseID); err != nil {
		return nil, err
	}
	now := time.Now().Unix()
	var ids []int
	for _, uid := range sortedKeys(c.st.enrol[courseID]) {
		if onlyActive && !c.st.enrol[courseID][uid].active(co, now) {
			continue
		}
		ids = append(ids, uid)
	}
	if groupID != 0 {
		g := c.st.groups[groupID]
		var kept []int
		for _, uid := range ids {
			if g != nil && g.courseid == courseID && g.members[uid] {
				kept = append(kept, uid)
			}
		}
		ids = kept
	}
	if limitFrom > 0 {
		if limitFrom >= len(ids) {
			ids = nil
		} else {
			ids = ids[limitFrom:]
		}
	}
	if limitNumber > 0 && limitNumber < len(ids) {
		ids = ids[:limitNumber]
	}
	out := []any{}
	for _, uid := range ids {
		u := c.st.users[uid]
		if u == nil {
			continue
		}
		d := c.userDetails(u, fields)
		if fields == nil || fields["roles"] {
			d["roles"] = rolesOut(c.st.enrol[courseID][uid])
		}
		out = append(out, d)
	}
	return out, nil
}

// rolesOut is user_get_user_details()' roles: a stock role's name is empty
// in the database, and its sortorder is its id.
func rolesOut(e *enrolment) []any {
	out := []any{}
	for _, r := range sortedKeys(e.roles) {
		out = append(out, map[string]any{"roleid": r, "name": "", "shortname": roleShortNames[r], "sortorder": r})
	}
	return out
}

// phpIntCast is PHP's (int) on a string: the leading integer, else 0.
func phpIntCast(s string) int {
	s = strings.TrimLeft(s, " \t\n\r\v\f")
	end := 0
	if end < len(s) && (s[end] == '-' || s[end] == '+') {
		end++
	}
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(s[:end])
	return n
}

// cleanUsername is clean_param(PARAM_USERNAME) without extended characters.
func cleanUsername(s string) string {
	s = strings.ToLower(phpTrim(s))
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if ch := s[i]; ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || strings.IndexByte("-.@_", ch) >= 0 {
			b.WriteByte(ch)
		}
	}
	return b.String()
}

func getUsersByField(c *callCtx, p map[string]any) (any, *wsError) {
	field := p["field"].(string)
	var match func(u *userRec, v string) bool
	var cleanValue func(v string) (string, bool)
	switch field {
	case "id":
		cleanValue = func(v string) (string, bool) {
			n := phpIntCast(v)
			return strconv.Itoa(n), phpLooseEq(v, strconv.Itoa(n))
		}
		match = func(u *userRec, v string) bool { return strconv.Itoa(u.id) == v }
	case "idnumber":
		cleanValue = func(v string) (string, bool) { return v, true }
		match = func(u *userRec, v string) bool { return sqlEq(u.idnumber, v) }
	case "username":
		cleanValue = func(v string) (string, bool) { cv := cleanUsername(v); return cv, cv == v }
		match = func(u *userRec, v string) bool { return sqlEq(u.username, v) }
	case "email":
		cleanValue = func(v string) (string, bool) { cv := phpTrim(v); return cv, cv == v }
		match = func(u *userRec, v string) bool { return sqlEq(u.email, v) }
	default:
		return nil, codingErr("invalid field parameter",
			"The search field '"+field+"' is not supported, look at the web service documentation")
	}
	var values []string
	for _, x := range list(p["values"]) {
		v := x.(string)
		cv, ok := cleanValue(v)
		if !ok {
			return nil, invalidParam("The field '" + field + "' value is invalid: " + v + "(cleaned value: " + cv + ")")
		}
		values = append(values, cv)
	}
	ids := make([]int, 0)
	if field == "id" {
		for id, u := range c.st.users {
			for _, v := range values {
				if match(u, v) {
					ids = append(ids, id)
					break
				}
			}
		}
	} else {
		// The index finds the users a value may match as sqlEq compares;
		// match decides, as it would over every user.
		seen := map[int]bool{}
		for _, v := range values {
			for _, id := range c.st.usersByKey(field, v) {
				if u := c.st.users[id]; u != nil && !seen[id] && match(u, v) {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
	}
	sort.Ints(ids)
	out := []any{}
	for _, id := range ids {
		out = append(out, c.userDetails(c.st.users[id], nil))
	}
	return out, nil
}

// courseOut is one course of core_course_get_courses_by_field. Like
// Moodle, it gives a course the web-service user may not access only its
// public information: no dates, format, idnumber, ... The web-service user
// is a site administrator, so it gets the managers' fields of the others.
func courseOut(co *courseRec) map[string]any {
	out := map[string]any{
		"id": co.id, "fullname": co.fullname, "displayname": co.fullname, "shortname": co.shortname,
		"categoryid": 1, "categoryname": "Category 1", "sortorder": 10000 + co.id,
		"summary": "", "summaryformat": formatHTML, "summaryfiles": []any{}, "overviewfiles": []any{},
		"showactivitydates": true, "showcompletionconditions": true, "contacts": []any{},
		"enrollmentmethods": []any{"manual"},
	}
	if co.inaccessible {
		return out
	}
	for k, v := range map[string]any{
		"idnumber": co.idnumber, "format": "topics",
		"showgrades": 1, "newsitems": 5, "startdate": co.start(), "enddate": co.enddate, "maxbytes": 0,
		"showreports": 0, "visible": 1, "groupmode": 0, "groupmodeforce": 0, "defaultgroupingid": 0,
		"enablecompletion": 1, "completionnotify": 0, "lang": "", "theme": "", "marker": 0,
		"legacyfiles": 0, "calendartype": "", "timecreated": fixedTime, "timemodified": fixedTime,
		"requested": 0, "cacherev": fixedTime,
	} {
		out[k] = v
	}
	return out
}

func getCoursesByField(c *callCtx, p map[string]any) (any, *wsError) {
	field, value := p["field"].(string), p["value"].(string)
	var match func(co *courseRec) bool
	switch field {
	case "":
		match = func(*courseRec) bool { return true }
	case "id":
		n := phpIntCast(value)
		match = func(co *courseRec) bool { return co.id == n }
	case "category":
		n := phpIntCast(value)
		match = func(*courseRec) bool { return n == 1 }
	case "ids":
		want := map[int]bool{}
		for _, s := range strings.Split(value, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
				want[n] = true
			}
		}
		match = func(co *courseRec) bool { return want[co.id] }
	case "shortname":
		v := stripTags(value)
		match = func(co *courseRec) bool { return sqlEq(co.shortname, v) }
	case "idnumber":
		match = func(co *courseRec) bool { return sqlEq(co.idnumber, value) }
	case "sectionid":
		match = func(*courseRec) bool { return false }
	default:
		return nil, invalidParam("Invalid field name")
	}
	ids := make([]int, 0)
	for id, co := range c.st.courses {
		if match(co) && !co.hidden {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	courses := []any{}
	for _, id := range ids {
		courses = append(courses, courseOut(c.st.courses[id]))
	}
	return map[string]any{"courses": courses, "warnings": []any{}}, nil
}

// assignableRoles are the roles a manager may assign in a course: manager,
// editingteacher, teacher, student.
var assignableRoles = map[int]bool{1: true, 3: true, 4: true, 5: true}

// enrolUsers is enrol_manual_enrol_users. Each entry is checked in the
// order of Moodle's code (the course, then the role, then the enrolment
// method, then the user), then enrolled as enrol_plugin::enrol_user() does:
// a user already enrolled manually gets the entry's suspension and times
// (suspend left out means active) and the role added; enrolling again as
// things are changes nothing.
func enrolUsers(c *callCtx, p map[string]any) (any, *wsError) {
	for _, x := range list(p["enrolments"]) {
		e := rec(x)
		roleID, userID, courseID := e["roleid"].(int), e["userid"].(int), e["courseid"].(int)
		co := c.st.courses[courseID]
		if co == nil {
			// context_course::instance(IGNORE_MISSING), then validate_context(false).
			return nil, invalidParam("Context does not exist")
		}
		if co.inaccessible {
			return nil, requireLogin()
		}
		if !assignableRoles[roleID] {
			return nil, moodleErr("wsusercannotassign", fmt.Sprintf(
				"You don't have the permission to assign this role (%d) to this user (%d) in this course (%d).",
				roleID, userID, courseID))
		}
		if co.manualDisabled {
			return nil, noManualInstance(courseID)
		}
		if c.st.users[userID] == nil {
			// Moodle does not catch it: PHP's TypeError, without errorcode.
			return nil, phpError("TypeError",
				`core\user::get_name_placeholders(): Argument #1 ($user) must be of type stdClass, bool given`)
		}
		ue := ueRec{suspended: !isEmptyInt(e["suspend"]), timestart: optInt(e["timestart"]), timeend: optInt(e["timeend"])}
		c.st.enrolUser(courseID, userID, MethodManual, ue, roleID)
	}
	return nil, nil
}

// unenrolUsers is enrol_manual_unenrol_users: it removes each user's manual
// enrolment (nothing for a user without one), and with the user's last
// enrolment in the course the user's roles and group memberships there. Its
// roleid is accepted and not used, as in Moodle's code: the whole manual
// enrolment goes.
func unenrolUsers(c *callCtx, p map[string]any) (any, *wsError) {
	for _, x := range list(p["enrolments"]) {
		e := rec(x)
		userID, courseID := e["userid"].(int), e["courseid"].(int)
		co := c.st.courses[courseID]
		if co == nil {
			// context_course::instance() with MUST_EXIST, outside any try.
			return nil, missingRecord("course", "SELECT id,category FROM {course} WHERE id = ?", courseID)
		}
		if co.inaccessible {
			return nil, requireLogin()
		}
		if c.st.users[userID] == nil {
			return nil, invalidParam(fmt.Sprintf("User id not exist: %d", userID))
		}
		c.st.unenrolMethod(courseID, userID, MethodManual)
	}
	return nil, nil
}

// isEmptyInt is PHP's empty() on an optional integer parameter.
func isEmptyInt(v any) bool { n, _ := v.(int); return n == 0 }

// optInt is an optional integer parameter, 0 when left out.
func optInt(v any) int64 { n, _ := v.(int); return int64(n) }

func getSiteInfo(c *callCtx, _ map[string]any) (any, *wsError) {
	funcs := []any{}
	for _, name := range c.s.allowedNames() {
		funcs = append(funcs, map[string]any{"name": name, "version": c.s.allowed[name].version()})
	}
	return map[string]any{
		"sitename": c.s.opts.SiteName, "username": siteUsername, "firstname": "Admin", "lastname": "User",
		"fullname": "Admin User", "lang": "en", "userid": siteUserID, "siteurl": c.siteURL,
		"userpictureurl": c.siteURL + "/theme/image.php/boost/core/1/u/f1", "functions": funcs,
		"downloadfiles": 0, "uploadfiles": 0, "release": siteRelease, "version": siteVersion,
		"mobilecssurl": "", "advancedfeatures": []any{
			map[string]any{"name": "usecomments", "value": 1},
			map[string]any{"name": "usetags", "value": 1},
			map[string]any{"name": "enablenotes", "value": 1},
		},
		"usercanmanageownfiles": true, "userquota": 104857600, "usermaxuploadfilesize": 104857600,
		"userhomepage": 1, "siteid": 1, "sitecalendartype": "gregorian", "usercalendartype": "gregorian",
		"userissiteadmin": true, "theme": "boost", "limitconcurrentlogins": 0, "policyagreed": 0,
	}, nil
}
