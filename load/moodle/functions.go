package moodle

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Functions cmissync calls. The site's external service must include them.
const (
	FnSiteInfo         = "core_webservice_get_site_info"
	FnCreateGroupings  = "core_group_create_groupings"
	FnCreateGroups     = "core_group_create_groups"
	FnAssignGrouping   = "core_group_assign_grouping"
	FnAddMembers       = "core_group_add_group_members"
	FnDeleteMembers    = "core_group_delete_group_members"
	FnDeleteGroups     = "core_group_delete_groups"
	FnDeleteGroupings  = "core_group_delete_groupings"
	FnCourseGroups     = "core_group_get_course_groups"
	FnCourseGroupings  = "core_group_get_course_groupings"
	FnGroupMembers     = "core_group_get_group_members"
	FnEnrolledUsers    = "core_enrol_get_enrolled_users"
	FnUsersByField     = "core_user_get_users_by_field"
	FnUpdateGroups     = "core_group_update_groups"
	FnCoursesByField   = "core_course_get_courses_by_field"
	FnUnassignGrouping = "core_group_unassign_grouping"
	FnGetGroupings     = "core_group_get_groupings"
	FnGetGroups        = "core_group_get_groups"
	FnManualEnrolUsers = "enrol_manual_enrol_users"
)

// RequiredFunctions are the functions a sync needs: the writes, the reads
// by id that verify everything cmissync owns every run, the course
// listings, and the enrolment read.
var RequiredFunctions = []string{
	FnSiteInfo, FnCreateGroupings, FnCreateGroups, FnAssignGrouping, FnUnassignGrouping, FnAddMembers, FnDeleteMembers,
	FnDeleteGroups, FnDeleteGroupings, FnCourseGroups, FnCourseGroupings, FnGetGroups, FnGetGroupings, FnGroupMembers,
	FnEnrolledUsers, FnUpdateGroups, FnUpdateGroupings,
}

// OptionalFunctions are used when the service offers them:
// core_course_get_courses_by_field names courses in reports and tells a
// deleted course from one the service user may not open in one call.
var OptionalFunctions = []string{FnCoursesByField}

// SiteInfo is the answer of core_webservice_get_site_info.
type SiteInfo struct {
	SiteName  string `json:"sitename"`
	Username  string `json:"username"`
	UserID    int64  `json:"userid"`
	SiteURL   string `json:"siteurl"`
	Release   string `json:"release"`
	Version   string `json:"version"`
	Functions []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"functions"`
}

// SiteInfo calls core_webservice_get_site_info.
func (c *Client) SiteInfo(ctx context.Context) (SiteInfo, error) {
	var si SiteInfo
	err := c.Call(ctx, FnSiteInfo, nil, &si)
	return si, err
}

// MissingFunctionsError names functions the token's service lacks.
type MissingFunctionsError struct {
	Missing []string
}

func (e *MissingFunctionsError) Error() string {
	return fmt.Sprintf("the Moodle web service for this token lacks %s; add them in Site administration > Server > Web services > External services > (the cmissync service) > Functions",
		strings.Join(e.Missing, ", "))
}

// CheckFunctions verifies with core_webservice_get_site_info that every
// required function is in the token's service.
func (c *Client) CheckFunctions(ctx context.Context, required []string) (SiteInfo, error) {
	si, err := c.SiteInfo(ctx)
	if err != nil {
		return si, fmt.Errorf("check Moodle site: %w", err)
	}
	have := map[string]bool{}
	for _, f := range si.Functions {
		have[f.Name] = true
	}
	var missing []string
	for _, f := range required {
		if !have[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return si, &MissingFunctionsError{Missing: missing}
	}
	return si, nil
}

// Group is a Moodle group.
type Group struct {
	ID          int64  `json:"id"`
	CourseID    int64  `json:"courseid"`
	Name        string `json:"name"`
	Description string `json:"description"`
	IDNumber    string `json:"idnumber"`
}

// Grouping is a Moodle grouping.
type Grouping struct {
	ID          int64   `json:"id"`
	CourseID    int64   `json:"courseid"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	IDNumber    string  `json:"idnumber"`
	Groups      []Group `json:"groups,omitempty"`
}

// Form variables per item, for Capacity.
const (
	VarsPerNewGroup    = 4 // courseid, name, description, idnumber
	VarsPerNewGrouping = 4
	VarsPerPair        = 2 // groupid+userid, groupingid+groupid
	VarsPerID          = 1
)

func newThingForm(key string, items []Group) *Form {
	f := &Form{}
	for i, g := range items {
		p := key + "[" + strconv.Itoa(i) + "]"
		f.AddInt(p+"[courseid]", g.CourseID)
		f.Add(p+"[name]", g.Name)
		f.Add(p+"[description]", g.Description)
		f.Add(p+"[idnumber]", g.IDNumber)
	}
	return f
}

// GroupsForm renders core_group_create_groups parameters.
func GroupsForm(groups []Group) *Form { return newThingForm("groups", groups) }

// GroupingsForm renders core_group_create_groupings parameters.
func GroupingsForm(groupings []Grouping) *Form {
	gs := make([]Group, len(groupings))
	for i, g := range groupings {
		gs[i] = Group{CourseID: g.CourseID, Name: g.Name, Description: g.Description, IDNumber: g.IDNumber}
	}
	return newThingForm("groupings", gs)
}

// CreateGroups creates groups (one transaction: all or none) and returns
// them with their ids, in order.
func (c *Client) CreateGroups(ctx context.Context, groups []Group) ([]Group, error) {
	var out []Group
	if err := c.Call(ctx, FnCreateGroups, GroupsForm(groups), &out); err != nil {
		return nil, err
	}
	if len(out) != len(groups) {
		return nil, &Error{Function: FnCreateGroups, ErrorCode: CodeShortAnswer, Exception: "cmissync",
			Message: fmt.Sprintf("sent %d groups, Moodle answered %d", len(groups), len(out))}
	}
	return out, nil
}

// CreateGroupings creates groupings and returns them with their ids.
func (c *Client) CreateGroupings(ctx context.Context, groupings []Grouping) ([]Grouping, error) {
	var out []Grouping
	if err := c.Call(ctx, FnCreateGroupings, GroupingsForm(groupings), &out); err != nil {
		return nil, err
	}
	if len(out) != len(groupings) {
		return nil, &Error{Function: FnCreateGroupings, ErrorCode: CodeShortAnswer, Exception: "cmissync",
			Message: fmt.Sprintf("sent %d groupings, Moodle answered %d", len(groupings), len(out))}
	}
	return out, nil
}

// Pair is a (group, user) membership or a (grouping, group) assignment.
type Pair struct {
	A, B int64
}

// MembersForm renders add/delete group members parameters (A=group, B=user).
func MembersForm(members []Pair) *Form { return pairForm("members", "groupid", "userid", members) }

// AssignForm renders core_group_assign_grouping parameters (A=grouping, B=group).
func AssignForm(assignments []Pair) *Form {
	return pairForm("assignments", "groupingid", "groupid", assignments)
}

func pairForm(key, a, b string, pairs []Pair) *Form {
	f := &Form{}
	for i, p := range pairs {
		k := key + "[" + strconv.Itoa(i) + "]"
		f.AddInt(k+"["+a+"]", p.A)
		f.AddInt(k+"["+b+"]", p.B)
	}
	return f
}

// IDsForm renders a list of ids.
func IDsForm(key string, ids []int64) *Form {
	f := &Form{}
	for i, id := range ids {
		f.AddInt(key+"["+strconv.Itoa(i)+"]", id)
	}
	return f
}

// AddMembers calls core_group_add_group_members (A=group, B=user).
func (c *Client) AddMembers(ctx context.Context, members []Pair) error {
	return c.Call(ctx, FnAddMembers, MembersForm(members), nil)
}

// DeleteMembers calls core_group_delete_group_members (A=group, B=user).
func (c *Client) DeleteMembers(ctx context.Context, members []Pair) error {
	return c.Call(ctx, FnDeleteMembers, MembersForm(members), nil)
}

// AssignGrouping calls core_group_assign_grouping (A=grouping, B=group).
func (c *Client) AssignGrouping(ctx context.Context, assignments []Pair) error {
	return c.Call(ctx, FnAssignGrouping, AssignForm(assignments), nil)
}

// UnassignGrouping calls core_group_unassign_grouping (A=grouping, B=group).
func (c *Client) UnassignGrouping(ctx context.Context, unassignments []Pair) error {
	return c.Call(ctx, FnUnassignGrouping, pairForm("unassignments", "groupingid", "groupid", unassignments), nil)
}

// DeleteGroups calls core_group_delete_groups; missing ids are ignored by Moodle.
func (c *Client) DeleteGroups(ctx context.Context, ids []int64) error {
	return c.Call(ctx, FnDeleteGroups, IDsForm("groupids", ids), nil)
}

// DeleteGroupings calls core_group_delete_groupings.
func (c *Client) DeleteGroupings(ctx context.Context, ids []int64) error {
	return c.Call(ctx, FnDeleteGroupings, IDsForm("groupingids", ids), nil)
}

// CourseGroups lists the groups of a course.
func (c *Client) CourseGroups(ctx context.Context, courseID int64) ([]Group, error) {
	f := &Form{}
	f.AddInt("courseid", courseID)
	var out []Group
	err := c.Call(ctx, FnCourseGroups, f, &out)
	return out, err
}

// CourseGroupings lists the groupings of a course.
func (c *Client) CourseGroupings(ctx context.Context, courseID int64) ([]Grouping, error) {
	f := &Form{}
	f.AddInt("courseid", courseID)
	var out []Grouping
	err := c.Call(ctx, FnCourseGroupings, f, &out)
	return out, err
}

// GroupMembers returns the user ids of each group, in batches that respect
// max_input_vars.
func (c *Client) GroupMembers(ctx context.Context, groupIDs []int64) (map[int64][]int64, error) {
	out := map[int64][]int64{}
	n := c.Capacity(VarsPerID)
	for start := 0; start < len(groupIDs); start += n {
		end := min(start+n, len(groupIDs))
		var ans []struct {
			GroupID int64   `json:"groupid"`
			UserIDs []int64 `json:"userids"`
		}
		if err := c.Call(ctx, FnGroupMembers, IDsForm("groupids", groupIDs[start:end]), &ans); err != nil {
			return nil, err
		}
		for _, g := range ans {
			out[g.GroupID] = g.UserIDs
		}
	}
	return out, nil
}

// User is a Moodle user as core_enrol_get_enrolled_users and
// core_user_get_users_by_field return it.
type User struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	FullName string `json:"fullname"`
	Email    string `json:"email"`
	IDNumber string `json:"idnumber"`
}

// Field returns the user's value of a match field (idnumber, username,
// email or id).
func (u User) Field(name string) string {
	switch name {
	case "username":
		return u.Username
	case "email":
		return u.Email
	case "id":
		return strconv.FormatInt(u.ID, 10)
	default:
		return u.IDNumber
	}
}

// EnrolledUsers lists the users enrolled in a course with the given fields
// (id is always included).
func (c *Client) EnrolledUsers(ctx context.Context, courseID int64, fields ...string) ([]User, error) {
	f := &Form{}
	f.AddInt("courseid", courseID)
	f.Add("options[0][name]", "userfields")
	f.Add("options[0][value]", strings.Join(append([]string{"id"}, fields...), ","))
	var out []User
	err := c.Call(ctx, FnEnrolledUsers, f, &out)
	return out, err
}

// UsersByField looks users up by a field.
func (c *Client) UsersByField(ctx context.Context, field string, values []string) ([]User, error) {
	f := &Form{}
	f.Add("field", field)
	for i, v := range values {
		f.Add("values["+strconv.Itoa(i)+"]", v)
	}
	var out []User
	err := c.Call(ctx, FnUsersByField, f, &out)
	return out, err
}

// Course is a Moodle course as core_course_get_courses_by_field returns it.
// StartDate and EndDate are unix times (EndDate 0: no end date);
// DatesKnown says the answer had them, which it has only for a course the
// service user may access (see course.go).
type Course struct {
	ID         int64  `json:"id"`
	ShortName  string `json:"shortname"`
	FullName   string `json:"fullname"`
	IDNumber   string `json:"idnumber"`
	StartDate  int64  `json:"startdate"`
	EndDate    int64  `json:"enddate"`
	DatesKnown bool   `json:"-"`
}

// CoursesByID looks courses up by id (one call per batch). Courses that no
// longer exist are simply absent.
func (c *Client) CoursesByID(ctx context.Context, ids []int64) ([]Course, error) {
	var out []Course
	const perCall = 200
	for start := 0; start < len(ids); start += perCall {
		end := min(start+perCall, len(ids))
		parts := make([]string, 0, end-start)
		for _, id := range ids[start:end] {
			parts = append(parts, strconv.FormatInt(id, 10))
		}
		courses, err := c.CoursesByField(ctx, "ids", strings.Join(parts, ","))
		if err != nil {
			return nil, err
		}
		out = append(out, courses...)
	}
	return out, nil
}

// Groupings returns groupings by id, with their groups when returnGroups is
// set (core_group_get_groupings).
func (c *Client) Groupings(ctx context.Context, ids []int64, returnGroups bool) ([]Grouping, error) {
	f := IDsForm("groupingids", ids)
	if returnGroups {
		f.Add("returngroups", "1")
	}
	var out []Grouping
	err := c.Call(ctx, FnGetGroupings, f, &out)
	return out, err
}

// Has reports whether the token's service offers a function.
func (si SiteInfo) Has(function string) bool {
	for _, f := range si.Functions {
		if f.Name == function {
			return true
		}
	}
	return false
}
