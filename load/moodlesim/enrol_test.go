package moodlesim_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodlesim"
)

// enrol calls enrol_manual_enrol_users with one entry per triple of role,
// user and course (and suspend when given as a fourth value).
func enrol(t *testing.T, base string, entries ...[]int) answer {
	t.Helper()
	var p []string
	for i, e := range entries {
		k := "enrolments[" + itoa(i) + "]"
		p = append(p, k+"[roleid]", itoa(e[0]), k+"[userid]", itoa(e[1]), k+"[courseid]", itoa(e[2]))
		if len(e) > 3 {
			p = append(p, k+"[suspend]", itoa(e[3]))
		}
	}
	return call(t, base, "enrol_manual_enrol_users", p...)
}

// unenrol calls enrol_manual_unenrol_users with one entry per pair of user
// and course (and roleid when given as a third value).
func unenrol(t *testing.T, base string, entries ...[]int) answer {
	t.Helper()
	var p []string
	for i, e := range entries {
		k := "enrolments[" + itoa(i) + "]"
		p = append(p, k+"[userid]", itoa(e[0]), k+"[courseid]", itoa(e[1]))
		if len(e) > 2 {
			p = append(p, k+"[roleid]", itoa(e[2]))
		}
	}
	return call(t, base, "enrol_manual_unenrol_users", p...)
}

// enrolledIDs lists the ids core_enrol_get_enrolled_users answers for a
// course, with onlyactive=1 when active.
func enrolledIDs(t *testing.T, base string, course int, active bool) []int {
	t.Helper()
	p := []string{"courseid", itoa(course), "options[0][name]", "userfields", "options[0][value]", "id"}
	if active {
		p = append(p, "options[1][name]", "onlyactive", "options[1][value]", "1")
	}
	a := call(t, base, "core_enrol_get_enrolled_users", p...)
	var out []struct{ ID int }
	if err := json.Unmarshal([]byte(a.body), &out); err != nil {
		t.Fatalf("enrolled users: %s", a.body)
	}
	ids := []int{}
	for _, u := range out {
		ids = append(ids, u.ID)
	}
	return ids
}

// enrolmentsOf returns the user's enrolments and roles in the course, from
// State.
func enrolmentsOf(s *moodlesim.Server, course, user int) ([]moodlesim.UserEnrolment, []int) {
	st := s.State()
	var ues []moodlesim.UserEnrolment
	roles := []int{}
	for _, ue := range st.UserEnrolments {
		if ue.CourseID == course && ue.UserID == user {
			ues = append(ues, ue)
		}
	}
	for _, ra := range st.RoleAssignments {
		if ra.CourseID == course && ra.UserID == user {
			roles = append(roles, ra.RoleID)
		}
	}
	return ues, roles
}

// TestEnrolUsers walks the reference's account of enrol_manual_enrol_users:
// enrolling twice changes nothing, suspend=1 suspends, a suspended user is
// listed (not with onlyactive=1) and can be added to groups. Moodle's code
// adds: enrolling again without suspend makes the enrolment active again,
// and another role is added to the user's roles.
func TestEnrolUsers(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	c, u := st.c, st.u4
	manual := func(suspended bool) []moodlesim.UserEnrolment {
		return []moodlesim.UserEnrolment{{CourseID: c, UserID: u, Method: moodlesim.MethodManual, Suspended: suspended}}
	}
	check := func(step string, suspended bool, roles []int) {
		t.Helper()
		ues, rs := enrolmentsOf(st.s, c, u)
		if !reflect.DeepEqual(ues, manual(suspended)) || !reflect.DeepEqual(rs, roles) {
			t.Errorf("%s: enrolments %+v, roles %v; want suspended %v, roles %v", step, ues, rs, suspended, roles)
		}
		all, active := enrolledIDs(t, st.base, c, false), enrolledIDs(t, st.base, c, true)
		want := []int{st.u1, st.u2, st.u3, u}
		wantActive := want
		if suspended {
			wantActive = want[:3]
		}
		if !reflect.DeepEqual(all, want) || !reflect.DeepEqual(active, wantActive) {
			t.Errorf("%s: listed %v, active %v; want %v, %v", step, all, active, want, wantActive)
		}
	}

	if a := enrol(t, st.base, []int{5, u, c}); a.body != "null" {
		t.Fatalf("enrol: %s", a.body)
	}
	check("enrolled", false, []int{5})
	before := st.s.State()
	if a := enrol(t, st.base, []int{5, u, c}); a.body != "null" {
		t.Fatalf("enrol again: %s", a.body)
	}
	if !reflect.DeepEqual(st.s.State(), before) {
		t.Errorf("enrolling again changed the site")
	}

	if a := enrol(t, st.base, []int{5, u, c, 1}); a.body != "null" {
		t.Fatalf("suspend: %s", a.body)
	}
	check("suspended", true, []int{5})
	g := mustGroup(t, st.base, c, "G", "g")
	if a := call(t, st.base, "core_group_add_group_members", "members[0][groupid]", itoa(g), "members[0][userid]", itoa(u)); a.body != "null" {
		t.Errorf("add a suspended user to a group: %s", a.body)
	}
	if m := members(t, st.s, g); !reflect.DeepEqual(m, []int{u}) {
		t.Errorf("members %v", m)
	}

	if a := enrol(t, st.base, []int{5, u, c}); a.body != "null" {
		t.Fatalf("enrol without suspend: %s", a.body)
	}
	check("active again", false, []int{5})
	if a := enrol(t, st.base, []int{4, u, c, 0}); a.body != "null" {
		t.Fatalf("enrol with another role: %s", a.body)
	}
	check("second role", false, []int{4, 5})
	if m := members(t, st.s, g); !reflect.DeepEqual(m, []int{u}) {
		t.Errorf("members after enrolling again: %v", m)
	}
}

// TestEnrolledUsersRoles: userfields=roles lists each user's roles as
// user_get_user_details() does; without userfields every field comes,
// roles included; id is always there.
func TestEnrolledUsersRoles(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	if err := st.s.EnrolUser(moodlesim.UserEnrolment{CourseID: st.c, UserID: st.u1}, moodlesim.RoleTeacher); err != nil {
		t.Fatal(err)
	}
	a := call(t, st.base, "core_enrol_get_enrolled_users", "courseid", itoa(st.c),
		"options[0][name]", "userfields", "options[0][value]", "roles", "options[1][name]", "limitnumber", "options[1][value]", "1")
	want := `[{"id":` + itoa(st.u1) + `,"fullname":"Student 001","roles":[` +
		`{"roleid":4,"name":"","shortname":"teacher","sortorder":4},{"roleid":5,"name":"","shortname":"student","sortorder":5}]}]`
	if a.body != want {
		t.Errorf("roles:\n got %s\nwant %s", a.body, want)
	}
	a = call(t, st.base, "core_enrol_get_enrolled_users", "courseid", itoa(st.c),
		"options[0][name]", "limitfrom", "options[0][value]", "1", "options[1][name]", "limitnumber", "options[1][value]", "1")
	want = `[{"id":` + itoa(st.u2) + `,"username":"s002","firstname":"Student","lastname":"002","fullname":"Student 002",` +
		`"email":"s002@example.org","roles":[{"roleid":5,"name":"","shortname":"student","sortorder":5}]}]`
	if a.body != want {
		t.Errorf("every field:\n got %s\nwant %s", a.body, want)
	}
}

// TestEnrolOneBadEntryRollsBack: one bad entry rolls the whole call back,
// whatever the reason, and the answer is that entry's.
func TestEnrolOneBadEntryRollsBack(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	if err := st.s.EnrolUser(moodlesim.UserEnrolment{CourseID: st.c, UserID: st.u1, Method: "self", Suspended: true}); err != nil {
		t.Fatal(err)
	}
	good := []int{5, st.u4, st.c}
	tests := []struct {
		name string
		bad  []int
		want string
	}{
		{"a role the service user may not assign", []int{999, st.u1, st.c},
			`{"exception":"core\\exception\\moodle_exception","errorcode":"wsusercannotassign","message":"You don't have the permission to assign this role (999) to this user (` + itoa(st.u1) + `) in this course (` + itoa(st.c) + `)."}`},
		{"a course that does not exist", []int{5, st.u1, 999999}, bodyInvalidParam},
		{"a user that does not exist", []int{5, 999999, st.c},
			`{"exception":"TypeError","message":"core\\user::get_name_placeholders(): Argument #1 ($user) must be of type stdClass, bool given"}`},
	}
	for _, tc := range tests {
		for _, order := range []string{"good first", "bad first"} {
			entries := [][]int{good, {5, st.u1, st.c, 1}, tc.bad}
			if order == "bad first" {
				entries = [][]int{tc.bad, good}
			}
			before := st.s.State()
			if a := enrol(t, st.base, entries...); a.body != tc.want {
				t.Errorf("%s, %s:\n got %s\nwant %s", tc.name, order, a.body, tc.want)
			}
			if !reflect.DeepEqual(st.s.State(), before) {
				t.Errorf("%s, %s: the refused call changed the site", tc.name, order)
			}
		}
	}
}

// TestUnenrolUsers: unenrolling answers null, also for someone not
// enrolled, and removes the user from every group of the course when the
// manual enrolment was the user's last; roleid is not used (Moodle's code).
func TestUnenrolUsers(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	g1, g2 := mustGroup(t, st.base, st.c, "G1", "g1"), mustGroup(t, st.base, st.c, "G2", "g2")
	for _, m := range [][2]int{{g1, st.u1}, {g2, st.u1}, {g1, st.u2}, {g1, st.u3}, {g2, st.u3}} {
		if err := st.s.AddMember(m[0], m[1]); err != nil {
			t.Fatal(err)
		}
	}
	// u3 is also enrolled by another method, as a teacher.
	if err := st.s.EnrolUser(moodlesim.UserEnrolment{CourseID: st.c, UserID: st.u3, Method: "cohort"}, moodlesim.RoleTeacher); err != nil {
		t.Fatal(err)
	}

	t.Run("not enrolled", func(t *testing.T) {
		before := st.s.State()
		if a := unenrol(t, st.base, []int{st.u4, st.c}); a.body != "null" {
			t.Errorf("unenrol someone not enrolled: %s", a.body)
		}
		if !reflect.DeepEqual(st.s.State(), before) {
			t.Errorf("the site changed")
		}
	})
	t.Run("last enrolment, with a roleid", func(t *testing.T) {
		if err := st.s.EnrolUser(moodlesim.UserEnrolment{CourseID: st.c, UserID: st.u1}, moodlesim.RoleTeacher); err != nil {
			t.Fatal(err)
		}
		if a := unenrol(t, st.base, []int{st.u1, st.c, moodlesim.RoleTeacher}); a.body != "null" {
			t.Fatalf("unenrol: %s", a.body)
		}
		if ues, roles := enrolmentsOf(st.s, st.c, st.u1); len(ues) != 0 || len(roles) != 0 {
			t.Errorf("after unenrolling with a roleid: enrolments %+v, roles %v; want none (roleid is not used)", ues, roles)
		}
		if m1, m2 := members(t, st.s, g1), members(t, st.s, g2); !reflect.DeepEqual(m1, []int{st.u2, st.u3}) || !reflect.DeepEqual(m2, []int{st.u3}) {
			t.Errorf("members %v, %v: want u1 out of both groups", m1, m2)
		}
		// Enrolled again, the user is in no group: the memberships are gone.
		if a := enrol(t, st.base, []int{5, st.u1, st.c}); a.body != "null" {
			t.Fatal(a.body)
		}
		if m1 := members(t, st.s, g1); !reflect.DeepEqual(m1, []int{st.u2, st.u3}) {
			t.Errorf("members after enrolling again: %v", m1)
		}
	})
	t.Run("another enrolment left", func(t *testing.T) {
		if a := unenrol(t, st.base, []int{st.u3, st.c}); a.body != "null" {
			t.Fatalf("unenrol: %s", a.body)
		}
		ues, roles := enrolmentsOf(st.s, st.c, st.u3)
		if want := []moodlesim.UserEnrolment{{CourseID: st.c, UserID: st.u3, Method: "cohort"}}; !reflect.DeepEqual(ues, want) ||
			!reflect.DeepEqual(roles, []int{4, 5}) {
			t.Errorf("enrolments %+v, roles %v; want the cohort enrolment and both roles", ues, roles)
		}
		if m1, m2 := members(t, st.s, g1), members(t, st.s, g2); !reflect.DeepEqual(m1, []int{st.u2, st.u3}) || !reflect.DeepEqual(m2, []int{st.u3}) {
			t.Errorf("members %v, %v: want u3 kept", m1, m2)
		}
		// No manual enrolment left: nothing to do.
		before := st.s.State()
		if a := unenrol(t, st.base, []int{st.u3, st.c}); a.body != "null" || !reflect.DeepEqual(st.s.State(), before) {
			t.Errorf("unenrol without a manual enrolment: %s, or the site changed", a.body)
		}
	})
	t.Run("one bad entry rolls back", func(t *testing.T) {
		bodyNoUser := `{"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected"}`
		for _, tc := range []struct {
			name string
			bad  []int
			want string
		}{
			{"a user that does not exist", []int{999999, st.c}, bodyNoUser},
			{"a course that does not exist", []int{st.u2, 999999}, bodyNoCourse},
		} {
			before := st.s.State()
			if a := unenrol(t, st.base, []int{st.u2, st.c}, tc.bad); a.body != tc.want {
				t.Errorf("%s:\n got %s\nwant %s", tc.name, a.body, tc.want)
			}
			if !reflect.DeepEqual(st.s.State(), before) {
				t.Errorf("%s: the refused call changed the site (memberships included)", tc.name)
			}
		}
	})
}

// TestEnrolmentCourseStates: a course the service user may not access, and
// a course whose manual enrolment method is disabled.
func TestEnrolmentCourseStates(t *testing.T) {
	st := newSite(t, moodlesim.Options{Debug: true})
	if err := st.s.SetCourseAccessible(st.d, false); err != nil {
		t.Fatal(err)
	}
	const bodyRequireLogin = `{"exception":"core\\exception\\require_login_exception","errorcode":"requireloginerror","message":"Course or activity not accessible.","debuginfo":"Not enrolled"}`
	if a := enrol(t, st.base, []int{5, st.u4, st.d}); a.body != bodyRequireLogin {
		t.Errorf("enrol in an inaccessible course: %s", a.body)
	}
	if a := unenrol(t, st.base, []int{st.u4, st.d}); a.body != bodyRequireLogin {
		t.Errorf("unenrol from an inaccessible course: %s", a.body)
	}

	if err := st.s.SetManualEnrolEnabled(st.c, false); err != nil {
		t.Fatal(err)
	}
	if a := enrol(t, st.base, []int{5, st.u4, st.c}); !strings.Contains(a.body, `"errorcode":"wsnoinstance"`) ||
		!strings.Contains(a.body, "(id = "+itoa(st.c)+")") {
		t.Errorf("enrol with the manual method disabled: %s", a.body)
	}
	if got := enrolledIDs(t, st.base, st.c, true); len(got) != 0 {
		t.Errorf("active users %v: enrolments of a disabled method are not active", got)
	}
	if got := enrolledIDs(t, st.base, st.c, false); len(got) != 3 {
		t.Errorf("enrolled users %v: a disabled method's users are still listed", got)
	}
	if a := unenrol(t, st.base, []int{st.u1, st.c}); a.body != "null" {
		t.Errorf("unenrol with the manual method disabled: %s", a.body)
	}
	if got := enrolledIDs(t, st.base, st.c, false); len(got) != 2 {
		t.Errorf("enrolled users after unenrol: %v", got)
	}
	if err := st.s.SetManualEnrolEnabled(st.c, true); err != nil {
		t.Fatal(err)
	}
	if got := enrolledIDs(t, st.base, st.c, true); len(got) != 2 {
		t.Errorf("active users once enabled: %v", got)
	}
}

// TestEnrolmentTimes: onlyactive leaves out enrolments outside their time
// window.
func TestEnrolmentTimes(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	now := time.Now().Unix()
	for u, ue := range map[int]moodlesim.UserEnrolment{
		st.u1: {TimeEnd: now - 3600},
		st.u2: {TimeStart: now + 3600},
		st.u3: {TimeStart: now - 3600, TimeEnd: now + 3600},
	} {
		ue.CourseID, ue.UserID = st.c, u
		if err := st.s.EnrolUser(ue); err != nil {
			t.Fatal(err)
		}
	}
	if got := enrolledIDs(t, st.base, st.c, true); !reflect.DeepEqual(got, []int{st.u3}) {
		t.Errorf("active %v, want only u3", got)
	}
	if got := enrolledIDs(t, st.base, st.c, false); len(got) != 3 {
		t.Errorf("listed %v, want all three", got)
	}
}

// TestEnrolUserByHand checks the seeding API's checks.
func TestEnrolUserByHand(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	for name, tc := range map[string]struct {
		e     moodlesim.UserEnrolment
		roles []int
		want  error
	}{
		"no course":     {moodlesim.UserEnrolment{CourseID: 999, UserID: st.u1}, nil, moodlesim.ErrNotFound},
		"no user":       {moodlesim.UserEnrolment{CourseID: st.c, UserID: 999}, nil, moodlesim.ErrNotFound},
		"unknown role":  {moodlesim.UserEnrolment{CourseID: st.c, UserID: st.u4}, []int{42}, moodlesim.ErrInvalid},
		"without roles": {moodlesim.UserEnrolment{CourseID: st.c, UserID: st.u4}, nil, nil},
	} {
		if err := st.s.EnrolUser(tc.e, tc.roles...); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if ues, roles := enrolmentsOf(st.s, st.c, st.u4); len(ues) != 1 || len(roles) != 0 {
		t.Errorf("enrolled without roles: %+v %v", ues, roles)
	}
	// Enrol leaves an existing enrolment alone, suspended or not.
	if err := st.s.EnrolUser(moodlesim.UserEnrolment{CourseID: st.c, UserID: st.u1, Suspended: true}); err != nil {
		t.Fatal(err)
	}
	before := st.s.State()
	if err := st.s.Enrol(st.c, st.u1); err != nil || !reflect.DeepEqual(st.s.State(), before) {
		t.Errorf("Enrol of an enrolled user: %v, or it changed the site", err)
	}
}

// TestCourseDates: core_course_get_courses_by_field reports the start and
// end dates of a course the service user may access, and only the public
// fields of one it may not.
func TestCourseDates(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	if err := st.s.SetCourseEndDate(st.d, 1767225600); err != nil {
		t.Fatal(err)
	}
	if err := st.s.SetCourseEndDate(999, 1); !errors.Is(err, moodlesim.ErrNotFound) {
		t.Errorf("end date of a missing course: %v", err)
	}
	e := st.s.AddCourse(moodlesim.Course{ShortName: "E", StartDate: 1600000000, EndDate: 1610000000})
	h := st.s.AddCourse(moodlesim.Course{ShortName: "H", EndDate: 1610000000, Inaccessible: true})
	a := call(t, st.base, "core_course_get_courses_by_field", "field", "ids",
		"value", itoa(st.c)+","+itoa(st.d)+","+itoa(e)+","+itoa(h))
	var out struct{ Courses []map[string]any }
	if err := json.Unmarshal([]byte(a.body), &out); err != nil || len(out.Courses) != 4 {
		t.Fatalf("courses: %v %s", err, a.body)
	}
	for i, want := range [][2]float64{{1735689600, 0}, {1735689600, 1767225600}, {1600000000, 1610000000}} {
		co := out.Courses[i]
		if co["startdate"] != want[0] || co["enddate"] != want[1] {
			t.Errorf("course %v: startdate %v, enddate %v; want %v", co["id"], co["startdate"], co["enddate"], want)
		}
	}
	hidden := out.Courses[3]
	for _, k := range []string{"startdate", "enddate", "idnumber", "format", "visible"} {
		if _, ok := hidden[k]; ok {
			t.Errorf("inaccessible course has %q: %v", k, hidden)
		}
	}
	if hidden["shortname"] != "H" || hidden["fullname"] != "" {
		t.Errorf("inaccessible course: %v", hidden)
	}
	if got := st.s.State().Courses[1]; got.EndDate != 1767225600 || got.StartDate != 0 {
		t.Errorf("State: %+v", got)
	}
}

// TestUnimplementedFunctionIsOutsideTheService: a function Moodle has and
// the simulator does not implement answers as one left out of the service.
func TestUnimplementedFunctionIsOutsideTheService(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	if a := call(t, st.base, "core_course_update_courses"); a.body != bodyAccess {
		t.Errorf("answer %s, want %s", a.body, bodyAccess)
	}
}
