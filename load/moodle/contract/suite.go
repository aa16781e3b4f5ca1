package contract

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
)

// Case is one behaviour of Moodle that cmissync relies on.
type Case struct {
	Name string
	Run  func(t *testing.T, tg *Target)
}

// Cases lists the suite, in the order Run runs it.
func Cases() []Case {
	return []Case{
		{"SiteInfo", siteInfo},
		{"InvalidToken", invalidToken},
		{"UnknownFunction", unknownFunction},
		{"FunctionOutsideService", functionOutsideService},
		{"MissingParameter", missingParameter},
		{"WrongParameterType", wrongParameterType},
		{"ParametersInURL", parametersInURL},
		{"WrongHostRedirects", wrongHost},
		{"CreateGroups", createGroups},
		{"CourseGroups", courseGroups},
		{"GroupNameUniquePerCourse", groupNameUnique},
		{"GroupIDNumberUniquePerCourse", groupIDNumberUnique},
		{"GroupingNameUniquePerCourse", groupingNameUnique},
		{"GroupingIDNumberUniquePerCourse", groupingIDNumberUnique},
		{"CourseNotFound", courseNotFound},
		{"CourseInaccessible", courseInaccessible},
		{"CreateIsOneTransaction", createTransaction},
		{"PhantomAfterRefusedCreate", phantomAfterRefusedCreate},
		{"AddMembersIsOneTransaction", addMembersTransaction},
		{"DeleteMembersIsOneTransaction", deleteMembersTransaction},
		{"AddMemberNotEnrolled", addMemberNotEnrolled},
		{"AddMemberUnknownUser", addMemberUnknownUser},
		{"MissingGroupIsInvalidRecord", missingGroup},
		{"DeleteMissingIsSilent", deleteMissing},
		{"MembershipChangesAreIdempotent", membershipIdempotent},
		{"GroupMembers", groupMembers},
		{"CourseGroupings", courseGroupings},
		{"AssignGrouping", assignGrouping},
		{"GetGroupingsReturnGroups", getGroupingsReturnGroups},
		{"ReadsByIDAcrossCourses", readsByIDAcrossCourses},
		{"EnrolledUsersWithUserfields", enrolledUsers},
		{"UsersByField", usersByField},
		{"CoursesByField", coursesByField},
		{"CourseDates", courseDates},
		{"EnrolTwiceChangesNothing", tb(enrolTwice)},
		{"EnrolSuspendAndOnlyActive", tb(enrolSuspend)},
		{"EnrolIsOneTransaction", enrolTransaction},
		{"UnenrolRemovesGroupMemberships", tb(unenrolRemovesMemberships)},
		{"UnenrolNotEnrolled", tb(unenrolNotEnrolled)},
		{"UnenrolIgnoresRoleID", tb(unenrolRoleID)},
		{"UnenrolIsOneTransaction", unenrolTransaction},
		{"UnassignRoleKeepsEnrolment", tb(unassignRoleKeepsEnrolment)},
		{"MaxInputVars", maxInputVars},
	}
}

// tb adapts a case written for testing.TB (so that a meta-test can run it
// under a recorder) to Case.Run.
func tb(run func(t testing.TB, tg *Target)) func(t *testing.T, tg *Target) {
	return func(t *testing.T, tg *Target) { run(t, tg) }
}

// Run runs the suite (or only the named cases) against tg, one subtest per
// case.
func Run(t *testing.T, tg *Target, only ...string) {
	for _, c := range Cases() {
		if len(only) > 0 && !slices.Contains(only, c.Name) {
			continue
		}
		t.Run(c.Name, func(t *testing.T) { c.Run(t, tg) })
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// --- protocol ---------------------------------------------------------------

func siteInfo(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	si, err := f.c.CheckFunctions(f.ctx, moodle.RequiredFunctions)
	if err != nil {
		t.Fatalf("the service lacks functions cmissync needs: %v", err)
	}
	if si.SiteName == "" || si.Username == "" || si.UserID <= 0 {
		t.Errorf("site info without site or user: %+v", si)
	}
	if got := strings.TrimRight(si.SiteURL, "/"); got != strings.TrimRight(tg.URL, "/") {
		t.Errorf("siteurl %q is not the URL used, %q: use the site's wwwroot exactly", si.SiteURL, tg.URL)
	}
	names := map[string]bool{}
	for _, fn := range si.Functions {
		if fn.Name == "" || fn.Version == "" {
			t.Errorf("function entry without name or version: %+v", fn)
		}
		names[fn.Name] = true
	}
	if tg.OutsideFunction != "" && names[tg.OutsideFunction] {
		t.Errorf("%s is listed, but it is outside the token's service", tg.OutsideFunction)
	}
	var raw map[string]any
	if err := f.c.Call(f.ctx, moodle.FnSiteInfo, nil, &raw); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, "site info", raw, false, "sitename", "username", "userid", "siteurl", "functions", "release", "version")
}

func invalidToken(t *testing.T, tg *Target) {
	for _, tc := range []struct{ name, token string }{{"bad", "not-" + tg.prefix}, {"empty", ""}} {
		t.Run(tc.name+" token, raw", func(t *testing.T) {
			a := tg.Post(t, "", Form("wstoken", tc.token, "wsfunction", moodle.FnSiteInfo, "moodlewsrestformat", "json"))
			tg.wantErrBody(t, a, errInvalidToken)
		})
	}
	t.Run("bad token, client", func(t *testing.T) {
		c := tg.Client(t, func(o *moodle.Options) { o.Token = "not-" + tg.prefix })
		_, err := c.SiteInfo(t.Context())
		tg.wantErr(t, err, errInvalidToken)
		if !moodle.IsFatal(err) || moodle.IsTransient(err) {
			t.Errorf("invalidtoken: IsFatal %v, IsTransient %v; want fatal, not transient", moodle.IsFatal(err), moodle.IsTransient(err))
		}
	})
}

func unknownFunction(t *testing.T, tg *Target) {
	const fn = "core_group_no_such_function"
	tg.wantErrBody(t, tg.Post(t, "", tg.WSParams(fn)), errNoFunction)
	c := tg.Client(t)
	tg.wantErr(t, c.Call(t.Context(), fn, nil, nil), errNoFunction)
}

func functionOutsideService(t *testing.T, tg *Target) {
	if tg.OutsideFunction == "" {
		t.Skipf("needs a function outside the token's service: set %s", EnvOutsideFunction)
	}
	tg.wantErrBody(t, tg.Post(t, "", tg.WSParams(tg.OutsideFunction)), errAccess)
	err := tg.Client(t).Call(t.Context(), tg.OutsideFunction, nil, nil)
	tg.wantErr(t, err, errAccess)
	if !moodle.IsFatal(err) {
		t.Errorf("accessexception is not fatal: %v", err)
	}
}

func missingParameter(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	t.Run("no courseid", func(t *testing.T) {
		tg.wantErrBody(t, tg.Post(t, "", tg.WSParams(moodle.FnCourseGroups)), errInvalidParameter)
	})
	t.Run("member without userid", func(t *testing.T) {
		g := f.createGroup("G")
		a := tg.Post(t, "", join(tg.WSParams(moodle.FnAddMembers),
			Form("members[0][groupid]", itoa(g), "members[0][userid]", itoa(tg.Users[0]), "members[1][groupid]", itoa(g))))
		tg.wantErrBody(t, a, errInvalidParameter)
		if m := f.members(g); len(m[g]) != 0 {
			t.Errorf("members %v added by a call that failed validation", m[g])
		}
	})
}

func wrongParameterType(t *testing.T, tg *Target) {
	for _, v := range []string{"abc", "1.5"} {
		a := tg.Post(t, "", join(tg.WSParams(moodle.FnCourseGroups), Form("courseid", v)))
		tg.wantErrBody(t, a, errInvalidParameter)
	}
}

// parametersInURL: Moodle reads wstoken, wsfunction and the format from the
// query string as well as from the body.
func parametersInURL(t *testing.T, tg *Target) {
	a := tg.Post(t, tg.WSParams(moodle.FnCourseGroups), Form("courseid", itoa(tg.Course)))
	wantOK(t, a)
	var groups []map[string]any
	if err := json.Unmarshal([]byte(a.Body), &groups); err != nil {
		t.Errorf("answer is not a list of groups (%v): %.300s", err, a.Body)
	}
}

func wrongHost(t *testing.T, tg *Target) {
	if tg.OtherHost == "" {
		t.Skip("needs another host name for the same server (simulator only)")
	}
	a := tg.PostHost(t, tg.OtherHost, "", tg.WSParams(moodle.FnSiteInfo))
	if a.Status != 303 || !strings.HasPrefix(a.Location, tg.URL) || !strings.Contains(a.ContentType, "text/html") {
		t.Errorf("another host name: HTTP %d, Location %q, %s; want 303 to the wwwroot with an HTML page", a.Status, a.Location, a.ContentType)
	}
}

// --- groups -----------------------------------------------------------------

var groupKeys = []string{"id", "courseid", "name", "description", "descriptionformat", "enrolmentkey", "idnumber", "visibility", "participation"}

func createGroups(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	sent := []moodle.Group{f.newGroup(tg.Course, "A"), f.newGroup(tg.Course, "B")}
	var out []map[string]any
	err := f.c.Call(f.ctx, moodle.FnCreateGroups, moodle.GroupsForm(sent), &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(sent) {
		t.Fatalf("sent %d groups, answer has %d: %v", len(sent), len(out), out)
	}
	for i, g := range out {
		wantKeys(t, "created group", g, tg.Strict, groupKeys...)
		if num(g["id"]) <= 0 || num(g["courseid"]) != tg.Course || g["name"] != sent[i].Name || g["idnumber"] != sent[i].IDNumber ||
			g["description"] != sent[i].Description || num(g["descriptionformat"]) != 1 || g["enrolmentkey"] != "" ||
			num(g["visibility"]) != 0 || g["participation"] != true {
			t.Errorf("created group %d: %v, sent %+v", i, g, sent[i])
		}
	}
	// The typed method gives the ids in order.
	gs, err := f.c.CreateGroups(f.ctx, []moodle.Group{f.newGroup(tg.Course, "C")})
	if err != nil || len(gs) != 1 || gs[0].ID <= 0 || gs[0].Name != f.name("C") || gs[0].IDNumber != f.name("C") {
		t.Errorf("CreateGroups = %+v, %v", gs, err)
	}
}

func courseGroups(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	made := f.createGroups("A", "B")
	var out []map[string]any
	form := &moodle.Form{}
	form.AddInt("courseid", tg.Course)
	if err := f.c.Call(f.ctx, moodle.FnCourseGroups, form, &out); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, g := range out {
		wantKeys(t, "course group", g, tg.Strict, groupKeys...)
		if k := g["enrolmentkey"]; k != nil {
			if _, ok := k.(string); !ok {
				t.Errorf("enrolmentkey %v is neither null nor a string", k)
			}
		}
		for _, m := range made {
			if num(g["id"]) == m.ID {
				found++
				if g["idnumber"] != m.IDNumber || g["name"] != m.Name || num(g["courseid"]) != tg.Course {
					t.Errorf("course group %v, created %+v", g, m)
				}
			}
		}
	}
	if found != len(made) {
		t.Errorf("%d of the %d groups made are listed", found, len(made))
	}
}

// uniqueness runs the name and idnumber checks of groups or groupings: a
// second object with the first's name (or idnumber) in the same course is
// refused and nothing is created; in another course it is fine.
func uniqueness(t *testing.T, tg *Target, k kind, byName bool) {
	f := newFixture(t, tg)
	create := func(course int64, name, idnumber string) error {
		_, err := f.create(k, course, object{Name: name, IDNumber: idnumber})
		return err
	}
	// listed reports whether the course lists an object with that name or
	// idnumber.
	listed := func(course int64, name, idnumber string) bool {
		t.Helper()
		objs, err := f.list(f.ctx, k, course)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(objs, func(o object) bool { return o.Name == name || o.IDNumber == idnumber })
	}
	first, second := f.name("first"), f.name("second")
	if err := create(tg.Course, first, first); err != nil {
		t.Fatal(err)
	}
	if byName {
		tg.wantErr(t, create(tg.Course, first, second), errInvalidParameter)
		if listed(tg.Course, "", second) {
			t.Errorf("the refused object was created")
		}
	} else {
		tg.wantErr(t, create(tg.Course, second, first), errIDNumberTaken)
		if listed(tg.Course, second, "") {
			t.Errorf("the refused object was created")
		}
	}
	if tg.OtherCourse == 0 {
		t.Logf("per course: not checked, set %s", EnvOtherCourse)
		return
	}
	if err := create(tg.OtherCourse, first, first); err != nil {
		t.Errorf("the same name and idnumber in another course: %v", err)
	}
}

func groupNameUnique(t *testing.T, tg *Target)        { uniqueness(t, tg, groupKind, true) }
func groupIDNumberUnique(t *testing.T, tg *Target)    { uniqueness(t, tg, groupKind, false) }
func groupingNameUnique(t *testing.T, tg *Target)     { uniqueness(t, tg, groupingKind, true) }
func groupingIDNumberUnique(t *testing.T, tg *Target) { uniqueness(t, tg, groupingKind, false) }

// courseNotFound: the reference's answers for a course that does not exist
// (deleted). Only invalidrecord on the course table and an empty courses
// list say so: the course-context functions answer as for a course the
// service user may not access (CourseInaccessible).
func courseNotFound(t *testing.T, tg *Target) {
	if tg.MissingCourse == 0 {
		t.Skipf("needs a course id that does not exist (found with %s)", moodle.FnCoursesByField)
	}
	f := newFixture(t, tg)
	missing := tg.MissingCourse
	t.Run("create groups", func(t *testing.T) {
		_, err := f.c.CreateGroups(f.ctx, []moodle.Group{f.newGroup(missing, "G")})
		tg.wantErr(t, err, errCourseContext(missing))
	})
	courseAnswers(t, tg, f, missing, errCourseContext(missing), errNoCourse, false)
}

// courseInaccessible: a course the service user may not access answers
// every course-context function with the errorcode of a deleted course (only
// the message differs), and core_course_get_courses_by_field still lists
// it: an access error is never a deletion. The case only reads: the course
// is not the suite's.
func courseInaccessible(t *testing.T, tg *Target) {
	if tg.InaccessibleCourse == 0 {
		t.Skipf("needs a course the token's user may not access: set %s", EnvInaccessibleCourse)
	}
	c := tg.InaccessibleCourse
	courseAnswers(t, tg, newFixture(t, tg), c, errCourseNotAccessible(c), errCourseNotAccessible(c), true)
}

// courseAnswers checks what the course listings and get_enrolled_users
// answer for a course, and whether get_courses_by_field lists it: what
// tells a deleted course from an inaccessible one.
func courseAnswers(t *testing.T, tg *Target, f *fixture, course int64, listings, enrolled moodleErr, listed bool) {
	t.Run("get course groups", func(t *testing.T) {
		_, err := f.c.CourseGroups(f.ctx, course)
		tg.wantErr(t, err, listings)
	})
	t.Run("get course groupings", func(t *testing.T) {
		_, err := f.c.CourseGroupings(f.ctx, course)
		tg.wantErr(t, err, listings)
	})
	t.Run("get enrolled users", func(t *testing.T) {
		_, err := f.c.EnrolledUsers(f.ctx, course, "username")
		tg.wantErr(t, err, enrolled)
	})
	t.Run("courses by field id", func(t *testing.T) {
		tg.need(t, moodle.FnCoursesByField)
		courses := f.coursesByFieldID(t, course)
		if !listed {
			if len(courses) != 0 {
				t.Errorf("courses %v, want none", courses)
			}
			return
		}
		if len(courses) != 1 {
			t.Fatalf("courses %v, want the course", courses)
		}
		if co, _ := courses[0].(map[string]any); num(co["id"]) != course {
			t.Errorf("course %v, want id %d", courses[0], course)
		}
	})
}

// --- transactions -------------------------------------------------------------

// createTransaction: a create call refused on its second item creates
// nothing. A refusal by name (a database check) leaves nothing behind; a
// refusal by idnumber (a check that reads Moodle's group cache after the
// first item's insert) leaves that item listed in the course as a phantom of
// the cache, which does not exist when read by id (see PhantomAfterRefusedCreate).
func createTransaction(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	f.createGroup("taken")
	takenGrouping := f.createGrouping("taken")
	t.Run("groups", func(t *testing.T) {
		good := f.newGroup(tg.Course, "good")
		dup := f.newGroup(tg.Course, "dup")
		dup.Name = f.name("taken")
		_, err := f.c.CreateGroups(f.ctx, []moodle.Group{good, dup})
		tg.wantErr(t, err, errInvalidParameter)
		if _, ok := f.listed(groupKind, tg.Course, good.IDNumber); ok {
			t.Errorf("the good group of a refused call was created")
		}
	})
	t.Run("groupings", func(t *testing.T) {
		good := f.newGrouping(tg.Course, "good")
		dup := f.newGrouping(tg.Course, "dup")
		dup.IDNumber = f.name("taken")
		// A no-op update of a grouping of the course clears the phantom.
		t.Cleanup(func() {
			if err := f.noOpUpdate(groupingKind, object{takenGrouping, f.name("taken"), f.name("taken")}); err != nil {
				t.Errorf("clear the group cache: %v", err)
			}
		})
		_, err := f.c.CreateGroupings(f.ctx, []moodle.Grouping{good, dup})
		tg.wantErr(t, err, errIDNumberTaken)
		if g, ok := f.listed(groupingKind, tg.Course, good.IDNumber); ok {
			t.Logf("grouping %d is listed by the course: a phantom of the group cache, as the reference records", g.ID)
			_, err := f.c.GroupingsWithGroups(f.ctx, []int64{g.ID})
			tg.wantErr(t, err, errNoGrouping)
		}
	})
}

func addMembersTransaction(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	for _, order := range []string{"enrolled first", "unenrolled first"} {
		t.Run(order, func(t *testing.T) {
			g := f.createGroup(order)
			pairs := []moodle.Pair{{A: g, B: tg.Users[0]}, {A: g, B: tg.Unenrolled}}
			if order == "unenrolled first" {
				slices.Reverse(pairs)
			}
			tg.wantErr(t, f.c.AddMembers(f.ctx, pairs), errInvalidParameter)
			if m := f.members(g); len(m[g]) != 0 {
				t.Errorf("members %v added by a refused call; want nobody", m[g])
			}
		})
	}
}

func deleteMembersTransaction(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	g := f.createGroup("G")
	f.addMembers(moodle.Pair{A: g, B: tg.Users[0]})
	missing := f.missingGroup()
	err := f.c.DeleteMembers(f.ctx, []moodle.Pair{{A: g, B: tg.Users[0]}, {A: missing, B: tg.Users[0]}})
	tg.wantErr(t, err, errNoGroup)
	if m := f.members(g); !sameSet(m[g], []int64{tg.Users[0]}) {
		t.Errorf("members %v after a refused delete; want %d kept", m[g], tg.Users[0])
	}
}

// --- members ------------------------------------------------------------------

func addMemberNotEnrolled(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	g := f.createGroup("G")
	tg.wantErr(t, f.c.AddMembers(f.ctx, []moodle.Pair{{A: g, B: tg.Unenrolled}}), errInvalidParameter)
}

func addMemberUnknownUser(t *testing.T, tg *Target) {
	if tg.MissingUser == 0 {
		t.Skipf("needs a user id that does not exist (found with %s)", moodle.FnUsersByField)
	}
	f := newFixture(t, tg)
	g := f.createGroup("G")
	tg.wantErr(t, f.c.AddMembers(f.ctx, []moodle.Pair{{A: g, B: tg.MissingUser}}), errInvalidUser)
}

func missingGroup(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	missing := f.missingGroup()
	u := tg.Users[0]
	t.Run("add members", func(t *testing.T) {
		tg.wantErr(t, f.c.AddMembers(f.ctx, []moodle.Pair{{A: missing, B: u}}), errNoGroup)
	})
	t.Run("delete members", func(t *testing.T) {
		tg.wantErr(t, f.c.DeleteMembers(f.ctx, []moodle.Pair{{A: missing, B: u}}), errNoGroup)
	})
	t.Run("get group members", func(t *testing.T) {
		_, err := f.c.GroupMembers(f.ctx, []int64{missing})
		tg.wantErr(t, err, errNoGroup)
	})
	t.Run("get groups", func(t *testing.T) {
		tg.need(t, moodle.FnGetGroups)
		tg.wantErr(t, f.c.Call(f.ctx, moodle.FnGetGroups, moodle.IDsForm("groupids", []int64{missing}), nil), errNoGroup)
	})
}

func deleteMissing(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	missing, missingGrouping := f.missingGroup(), f.missingGrouping()
	if err := f.c.DeleteGroups(f.ctx, []int64{missing}); err != nil {
		t.Errorf("delete a missing group: %v, want null", err)
	}
	if err := f.c.DeleteGroupings(f.ctx, []int64{missingGrouping}); err != nil {
		t.Errorf("delete a missing grouping: %v, want null", err)
	}
	// Mixed with an existing one: that one goes, the call succeeds.
	g, gg := f.createGroup("G"), f.createGrouping("GG")
	if err := f.c.DeleteGroups(f.ctx, []int64{missing, g}); err != nil {
		t.Errorf("delete a missing and an existing group: %v", err)
	}
	if err := f.c.DeleteGroupings(f.ctx, []int64{gg, missingGrouping}); err != nil {
		t.Errorf("delete an existing and a missing grouping: %v", err)
	}
	if _, ok := f.listed(groupKind, tg.Course, f.name("G")); ok {
		t.Errorf("existing group not deleted")
	}
	if _, ok := f.listed(groupingKind, tg.Course, f.name("GG")); ok {
		t.Errorf("existing grouping not deleted")
	}
}

func membershipIdempotent(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	g := f.createGroup("G")
	u0, u1 := tg.Users[0], tg.Users[1]
	f.addMembers(moodle.Pair{A: g, B: u0})
	if err := f.c.AddMembers(f.ctx, []moodle.Pair{{A: g, B: u0}}); err != nil {
		t.Errorf("add a member again: %v, want null", err)
	}
	if err := f.c.DeleteMembers(f.ctx, []moodle.Pair{{A: g, B: u1}}); err != nil {
		t.Errorf("delete a non-member: %v, want null", err)
	}
	if m := f.members(g); !sameSet(m[g], []int64{u0}) {
		t.Errorf("members %v, want [%d]", m[g], u0)
	}
}

func groupMembers(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	gs := f.createGroups("A", "B")
	a, b := gs[0].ID, gs[1].ID
	f.addMembers(moodle.Pair{A: a, B: tg.Users[0]}, moodle.Pair{A: a, B: tg.Users[1]}, moodle.Pair{A: a, B: tg.Users[2]})
	var out []map[string]any
	if err := f.c.Call(f.ctx, moodle.FnGroupMembers, moodle.IDsForm("groupids", []int64{b, a}), &out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("answer %v, want one entry per group", out)
	}
	for i, want := range []struct {
		group int64
		users []int64
	}{{b, nil}, {a, tg.Users[:3]}} {
		wantKeys(t, "group members", out[i], true, "groupid", "userids")
		list, ok := out[i]["userids"].([]any)
		if !ok || num(out[i]["groupid"]) != want.group {
			t.Errorf("entry %d: %v, want group %d with a userids list (entries in request order)", i, out[i], want.group)
			continue
		}
		var got []int64
		for _, u := range list {
			got = append(got, num(u))
		}
		if !sameSet(got, want.users) {
			t.Errorf("group %d: userids %v, want %v", want.group, got, want.users)
		}
	}
}

// --- groupings ----------------------------------------------------------------

func courseGroupings(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	gg := f.createGrouping("GG")
	var out []map[string]any
	form := &moodle.Form{}
	form.AddInt("courseid", tg.Course)
	if err := f.c.Call(f.ctx, moodle.FnCourseGroupings, form, &out); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range out {
		wantKeys(t, "course grouping", g, tg.Strict, "id", "courseid", "name", "description", "descriptionformat", "idnumber")
		if num(g["id"]) == gg {
			found = true
			if g["idnumber"] != f.name("GG") || g["name"] != f.name("GG") || num(g["courseid"]) != tg.Course {
				t.Errorf("course grouping %v", g)
			}
		}
	}
	if !found {
		t.Errorf("grouping %d not listed: %v", gg, out)
	}
}

func assignGrouping(t *testing.T, tg *Target) {
	tg.need(t, moodle.FnGetGroupings, moodle.FnUnassignGrouping)
	f := newFixture(t, tg)
	gs := f.createGroups("A", "B")
	a, b := gs[0].ID, gs[1].ID
	gg := f.createGrouping("GG")
	groupsOf := func(t *testing.T) []int64 {
		t.Helper()
		out, err := f.c.Groupings(f.ctx, []int64{gg}, true)
		if err != nil || len(out) != 1 {
			t.Fatalf("get groupings: %+v, %v", out, err)
		}
		var ids []int64
		for _, g := range out[0].Groups {
			ids = append(ids, g.ID)
		}
		return ids
	}
	steps := []struct {
		name   string
		do     func() error
		groups []int64
	}{
		{"assign two", func() error { return f.c.AssignGrouping(f.ctx, []moodle.Pair{{A: gg, B: a}, {A: gg, B: b}}) }, []int64{a, b}},
		{"assign again is silent", func() error { return f.c.AssignGrouping(f.ctx, []moodle.Pair{{A: gg, B: a}}) }, []int64{a, b}},
		{"unassign", func() error { return f.c.UnassignGrouping(f.ctx, []moodle.Pair{{A: gg, B: a}}) }, []int64{b}},
		{"unassign again is silent", func() error { return f.c.UnassignGrouping(f.ctx, []moodle.Pair{{A: gg, B: a}}) }, []int64{b}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.do(); err != nil {
				t.Fatalf("%v, want null", err)
			}
			if got := groupsOf(t); !sameSet(got, s.groups) {
				t.Errorf("grouping's groups %v, want %v", got, s.groups)
			}
		})
	}
	t.Run("missing grouping", func(t *testing.T) {
		tg.wantErr(t, f.c.AssignGrouping(f.ctx, []moodle.Pair{{A: f.missingGrouping(), B: a}}), errNoGrouping)
	})
	t.Run("missing group, one transaction", func(t *testing.T) {
		err := f.c.AssignGrouping(f.ctx, []moodle.Pair{{A: gg, B: a}, {A: gg, B: f.missingGroup()}})
		tg.wantErr(t, err, errNoGroup)
		if got := groupsOf(t); !sameSet(got, []int64{b}) {
			t.Errorf("grouping's groups %v after a refused call, want [%d]", got, b)
		}
	})
}

func getGroupingsReturnGroups(t *testing.T, tg *Target) {
	tg.need(t, moodle.FnGetGroupings)
	f := newFixture(t, tg)
	g := f.createGroup("G")
	gg, empty := f.createGrouping("GG"), f.createGrouping("empty")
	if err := f.c.AssignGrouping(f.ctx, []moodle.Pair{{A: gg, B: g}}); err != nil {
		t.Fatal(err)
	}
	get := func(t *testing.T, returnGroups string) []map[string]any {
		t.Helper()
		form := moodle.IDsForm("groupingids", []int64{gg, empty})
		form.Add("returngroups", returnGroups)
		var out []map[string]any
		if err := f.c.Call(f.ctx, moodle.FnGetGroupings, form, &out); err != nil {
			t.Fatal(err)
		}
		if len(out) != 2 || num(out[0]["id"]) != gg || num(out[1]["id"]) != empty {
			t.Fatalf("answer %v, want groupings %d and %d in order", out, gg, empty)
		}
		for _, o := range out {
			wantKeys(t, "grouping", o, false, "id", "courseid", "name", "description", "descriptionformat", "idnumber")
		}
		return out
	}
	t.Run("returngroups=1", func(t *testing.T) {
		out := get(t, "1")
		groups, ok := out[0]["groups"].([]any)
		if !ok || len(groups) != 1 {
			t.Fatalf("grouping with a group: %v, want a groups list of one", out[0])
		}
		gr, _ := groups[0].(map[string]any)
		wantKeys(t, "grouping's group", gr, false, "id", "courseid", "name", "description", "descriptionformat", "enrolmentkey", "idnumber")
		if num(gr["id"]) != g || gr["idnumber"] != f.name("G") {
			t.Errorf("grouping's group %v, want %d", gr, g)
		}
		if groups, ok := out[1]["groups"].([]any); ok && len(groups) != 0 {
			t.Errorf("grouping without groups lists %v", groups)
		}
	})
	t.Run("returngroups=0", func(t *testing.T) {
		for _, o := range get(t, "0") {
			if _, ok := o["groups"]; ok {
				t.Errorf("groups listed without returngroups: %v", o)
			}
		}
	})
}

// readsByIDAcrossCourses: get_groups, get_group_members and get_groupings
// answer ids of several courses in one call, in request order; one id that
// does not exist fails the whole call with invalidrecord.
func readsByIDAcrossCourses(t *testing.T, tg *Target) {
	if tg.OtherCourse == 0 {
		t.Skipf("needs a second course: set %s", EnvOtherCourse)
	}
	tg.need(t, moodle.FnGetGroups, moodle.FnGetGroupings)
	f := newFixture(t, tg)
	courses := []int64{tg.Course, tg.OtherCourse}
	var groups, groupings []int64 // one per course
	for i, course := range courses {
		g, err := f.create(groupKind, course, f.spec(fmt.Sprintf("G%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		gg, err := f.create(groupingKind, course, f.spec(fmt.Sprintf("GG%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		groups, groupings = append(groups, g[0].ID), append(groupings, gg[0].ID)
	}
	if err := f.c.AssignGrouping(f.ctx, []moodle.Pair{{A: groupings[0], B: groups[0]}, {A: groupings[1], B: groups[1]}}); err != nil {
		t.Fatal(err)
	}
	f.addMembers(moodle.Pair{A: groups[0], B: tg.Users[0]})
	missing, missingGrouping := f.missingGroup(), f.missingGrouping()
	reversed := func(ids []int64) []int64 { return []int64{ids[1], ids[0]} }

	t.Run("groups", func(t *testing.T) {
		gs, err := f.c.GroupsByID(f.ctx, reversed(groups))
		if err != nil || len(gs) != 2 {
			t.Fatalf("GroupsByID = %+v, %v; want both groups", gs, err)
		}
		for i, g := range gs {
			if g.ID != groups[1-i] || g.CourseID != courses[1-i] {
				t.Errorf("group %d: %+v, want id %d of course %d (request order)", i, g, groups[1-i], courses[1-i])
			}
		}
		_, err = f.c.GroupsByID(f.ctx, []int64{groups[0], missing, groups[1]})
		tg.wantErr(t, err, errNoGroup)
	})
	t.Run("members", func(t *testing.T) {
		m, err := f.c.MembersOf(f.ctx, reversed(groups))
		if err != nil || len(m) != 2 || !sameSet(m[groups[0]], tg.Users[:1]) || len(m[groups[1]]) != 0 {
			t.Errorf("MembersOf = %v, %v; want %d: [%d], %d: []", m, err, groups[0], tg.Users[0], groups[1])
		}
		_, err = f.c.MembersOf(f.ctx, []int64{groups[0], groups[1], missing})
		tg.wantErr(t, err, errNoGroup)
	})
	t.Run("groupings", func(t *testing.T) {
		ggs, err := f.c.GroupingsWithGroups(f.ctx, reversed(groupings))
		if err != nil || len(ggs) != 2 {
			t.Fatalf("GroupingsWithGroups = %+v, %v; want both groupings", ggs, err)
		}
		for i, gg := range ggs {
			if gg.ID != groupings[1-i] || gg.CourseID != courses[1-i] || len(gg.Groups) != 1 || gg.Groups[0].ID != groups[1-i] {
				t.Errorf("grouping %d: %+v, want id %d of course %d with group %d", i, gg, groupings[1-i], courses[1-i], groups[1-i])
			}
		}
		_, err = f.c.GroupingsWithGroups(f.ctx, []int64{missingGrouping, groupings[0], groupings[1]})
		tg.wantErr(t, err, errNoGrouping)
	})
}

// --- users and courses ------------------------------------------------------------

func enrolledUsers(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	form := &moodle.Form{}
	form.AddInt("courseid", tg.Course)
	form.Add("options[0][name]", "userfields")
	form.Add("options[0][value]", "id,username,idnumber")
	var out []map[string]any
	if err := f.c.Call(f.ctx, moodle.FnEnrolledUsers, form, &out); err != nil {
		t.Fatal(err)
	}
	byID := map[int64]map[string]any{}
	for _, u := range out {
		wantKeys(t, "enrolled user", u, false, "id", "fullname")
		if _, ok := u["email"]; ok {
			t.Errorf("email returned although not among the userfields: %v", u)
		}
		for k := range u {
			if !slices.Contains([]string{"id", "username", "fullname", "idnumber"}, k) {
				t.Errorf("enrolled user has %q, not asked for: %v", k, u)
			}
		}
		byID[num(u["id"])] = u
	}
	for _, uid := range tg.Users {
		u, ok := byID[uid]
		if !ok {
			t.Errorf("enrolled user %d not listed", uid)
			continue
		}
		if s, _ := u["username"].(string); s == "" {
			t.Errorf("user %d without username: %v", uid, u)
		}
		if want, known := tg.UserIDNumbers[uid]; known && u["idnumber"] != want {
			t.Errorf("user %d: idnumber %v, want %q", uid, u["idnumber"], want)
		}
	}
	if _, ok := byID[tg.Unenrolled]; ok {
		t.Errorf("user %d listed, but not enrolled", tg.Unenrolled)
	}
	// The typed method agrees.
	users, err := f.c.EnrolledUsers(f.ctx, tg.Course, "username", "idnumber")
	if err != nil || len(users) != len(out) {
		t.Errorf("EnrolledUsers: %d users, %v; raw call: %d", len(users), err, len(out))
	}
}

func usersByField(t *testing.T, tg *Target) {
	tg.need(t, moodle.FnUsersByField)
	f := newFixture(t, tg)
	var ids []string
	for _, u := range tg.Users {
		ids = append(ids, itoa(u))
	}
	users, err := f.c.UsersByField(f.ctx, "id", ids)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, u := range users {
		got = append(got, u.ID)
		if u.FullName == "" {
			t.Errorf("user without fullname: %+v", u)
		}
	}
	if !sameSet(got, tg.Users) {
		t.Errorf("users by id: %v, want %v", got, tg.Users)
	}
	form := &moodle.Form{}
	form.Add("field", "idnumber")
	form.Add("values[0]", f.name("nobody"))
	var raw json.RawMessage
	if err := f.c.Call(f.ctx, moodle.FnUsersByField, form, &raw); err != nil || string(raw) != "[]" {
		t.Errorf("no match: %s, %v; want []", raw, err)
	}
}

func coursesByField(t *testing.T, tg *Target) {
	tg.need(t, moodle.FnCoursesByField)
	f := newFixture(t, tg)
	cs, err := f.c.CoursesByID(f.ctx, []int64{tg.Course})
	if err != nil || len(cs) != 1 || cs[0].ID != tg.Course || cs[0].ShortName == "" {
		t.Errorf("CoursesByID(%d) = %+v, %v", tg.Course, cs, err)
	}
	if courses := f.coursesByFieldID(t, tg.Course); len(courses) != 1 {
		t.Errorf("courses %v, want one", courses)
	}
	if tg.MissingCourse != 0 {
		if cs, err := f.c.CoursesByID(f.ctx, []int64{tg.MissingCourse}); err != nil || len(cs) != 0 {
			t.Errorf("missing course: %+v, %v; want none", cs, err)
		}
	}
}
