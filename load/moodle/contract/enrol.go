package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
)

// The enrolment cases. They enrol the target's Unenrolled user in the
// scratch course (with Role, and OtherRole in one case) and unenrol them
// when the case ends, so the user is again not enrolled there; nobody else's
// enrolment is touched. Cases marked "Moodle's code" check what Moodle's
// source does where the reference notes are silent; the simulator models
// the same.

// errCannotAssign is the reference's answer for a role the service user may
// not assign.
func errCannotAssign(role, user, course int64) moodleErr {
	return moodleErr{`core\exception\moodle_exception`, moodle.CodeCannotAssign, fmt.Sprintf(
		"You don't have the permission to assign this role (%d) to this user (%d) in this course (%d).", role, user, course)}
}

// typeErrorMessage starts the reference's answer for a user id that does
// not exist; a real site adds where the error happened.
const typeErrorMessage = `core\user::get_name_placeholders(): Argument #1 ($user) must be of type stdClass, bool given`

// newEnrolFixture is a fixture for a case that enrols the Unenrolled user:
// it needs both enrolment functions (the second to clean up), and
// unenrols the user from the scratch course when the case ends.
func newEnrolFixture(t testing.TB, tg *Target) *fixture {
	t.Helper()
	tg.need(t, moodle.FnManualEnrolUsers, moodle.FnManualUnenrolUsers)
	f := newFixture(t, tg)
	t.Cleanup(f.unenrolOutsider) // runs before the fixture's own clean-up
	return f
}

// unenrolOutsider unenrols the Unenrolled user from the scratch course and
// checks that they are not enrolled there any more.
func (f *fixture) unenrolOutsider() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), 2*time.Minute)
	defer cancel()
	u, course := f.tg.Unenrolled, f.tg.Course
	if err := f.c.UnenrolUsers(ctx, []moodle.Unenrolment{{UserID: u, CourseID: course}}); err != nil {
		f.t.Errorf("clean-up: unenrol user %d from course %d: %v", u, course, err)
		return
	}
	users, err := f.c.EnrolledUsers(ctx, course)
	if err != nil {
		f.t.Errorf("clean-up: list the users of course %d: %v", course, err)
		return
	}
	for _, x := range users {
		if x.ID == u {
			f.t.Errorf("clean-up: user %d is still enrolled in course %d: unenrol them by hand", u, course)
		}
	}
}

// enrolment is what the course says of a user: listed (suspended or not),
// listed with onlyactive=1, and the user's roles.
type enrolment struct {
	listed, active bool
	roles          []int64
}

func (e enrolment) String() string {
	return fmt.Sprintf("listed %v, active %v, roles %v", e.listed, e.active, e.roles)
}

// enrolmentOf reads what the scratch course says of a user.
func (f *fixture) enrolmentOf(t testing.TB, user int64) enrolment {
	t.Helper()
	var e enrolment
	all, err := f.c.EnrolledUsersWith(f.ctx, f.tg.Course, moodle.EnrolledOptions{Fields: []string{"roles"}})
	if err != nil {
		t.Fatalf("enrolled users: %v", err)
	}
	for _, u := range all {
		if u.ID == user {
			if e.listed {
				t.Errorf("user %d is listed twice", user)
			}
			e.listed = true
			for _, r := range u.Roles {
				e.roles = append(e.roles, r.ID)
			}
		}
	}
	active, err := f.c.EnrolledUsersWith(f.ctx, f.tg.Course, moodle.EnrolledOptions{OnlyActive: true})
	if err != nil {
		t.Fatalf("enrolled users with onlyactive=1 (the service user needs moodle/course:enrolreview): %v", err)
	}
	for _, u := range active {
		e.active = e.active || u.ID == user
	}
	return e
}

// wantEnrolment checks what the course says of the Unenrolled user.
func (f *fixture) wantEnrolment(t testing.TB, step string, want enrolment) {
	t.Helper()
	got := f.enrolmentOf(t, f.tg.Unenrolled)
	if got.listed != want.listed || got.active != want.active || !sameSet(got.roles, want.roles) {
		t.Errorf("%s: user %d is %v; want %v", step, f.tg.Unenrolled, got, want)
	}
}

// enrol enrols, failing the case on error.
func (f *fixture) enrol(t testing.TB, es ...moodle.Enrolment) {
	t.Helper()
	if err := f.c.EnrolUsers(f.ctx, es); err != nil {
		t.Fatalf("enrol %+v: %v", es, err)
	}
}

// outsider is an enrolment of the Unenrolled user in the scratch course.
func (f *fixture) outsider(role int64, suspend bool) moodle.Enrolment {
	return moodle.Enrolment{RoleID: role, UserID: f.tg.Unenrolled, CourseID: f.tg.Course, Suspend: suspend}
}

// rawEnrol posts enrol_manual_enrol_users with one entry per (role, user,
// course) triple, without suspend.
func (tg *Target) rawEnrol(t testing.TB, entries ...[3]int64) Answer {
	t.Helper()
	var pairs []string
	for i, e := range entries {
		k := fmt.Sprintf("enrolments[%d]", i)
		pairs = append(pairs, k+"[roleid]", itoa(e[0]), k+"[userid]", itoa(e[1]), k+"[courseid]", itoa(e[2]))
	}
	return tg.Post(t, "", join(tg.WSParams(moodle.FnManualEnrolUsers), Form(pairs...)))
}

// wantNull checks a raw answer: HTTP 200 and the JSON literal null.
func wantNull(t testing.TB, a Answer) {
	t.Helper()
	wantOK(t, a)
	if strings.TrimSpace(a.Body) != "null" {
		t.Errorf("answer %.300s, want null", a.Body)
	}
}

// enrolTwice: enrolling answers null; enrolling someone already enrolled
// answers null and changes nothing (the reference).
func enrolTwice(t testing.TB, tg *Target) {
	f := newEnrolFixture(t, tg)
	u, c := tg.Unenrolled, tg.Course
	wantNull(t, tg.rawEnrol(t, [3]int64{tg.Role, u, c}))
	want := enrolment{listed: true, active: true, roles: []int64{tg.Role}}
	f.wantEnrolment(t, "enrolled", want)
	wantNull(t, tg.rawEnrol(t, [3]int64{tg.Role, u, c}))
	f.wantEnrolment(t, "enrolled again", want)
	// The typed method, as cmissync sends it (suspend=0), is the same.
	f.enrol(t, f.outsider(tg.Role, false))
	f.wantEnrolment(t, "enrolled again with suspend=0", want)
}

// enrolSuspend: suspend=1 suspends; a suspended user is listed, not with
// onlyactive=1, and can be added to groups (the reference). Enrolling again
// with suspend=0 makes the enrolment active again (Moodle's code).
func enrolSuspend(t testing.TB, tg *Target) {
	f := newEnrolFixture(t, tg)
	f.enrol(t, f.outsider(tg.Role, true))
	suspended := enrolment{listed: true, roles: []int64{tg.Role}}
	f.wantEnrolment(t, "enrolled suspended", suspended)
	g := f.createGroup("G")
	if err := f.c.AddMembers(f.ctx, []moodle.Pair{{A: g, B: tg.Unenrolled}}); err != nil {
		t.Errorf("add a suspended user to a group: %v, want null", err)
	}
	if m := f.members(g); !sameSet(m[g], []int64{tg.Unenrolled}) {
		t.Errorf("members %v, want the suspended user", m[g])
	}
	f.enrol(t, f.outsider(tg.Role, false))
	f.wantEnrolment(t, "enrolled again with suspend=0", enrolment{listed: true, active: true, roles: []int64{tg.Role}})
	f.enrol(t, f.outsider(tg.Role, true))
	f.wantEnrolment(t, "an enrolled user with suspend=1", suspended)
	if m := f.members(g); !sameSet(m[g], []int64{tg.Unenrolled}) {
		t.Errorf("members %v after suspending, want the user kept", m[g])
	}
}

// enrolRefusal is an entry enrol_manual_enrol_users refuses.
type enrolRefusal string

const (
	refuseRole   enrolRefusal = "role the service user may not assign"
	refuseCourse enrolRefusal = "course that does not exist"
	refuseUser   enrolRefusal = "user that does not exist"
)

// enrolTransaction: one bad entry rolls the whole call back (the
// reference), with each refusal's answer.
func enrolTransaction(t *testing.T, tg *Target) {
	for _, r := range []enrolRefusal{refuseRole, refuseCourse, refuseUser} {
		t.Run(string(r), func(t *testing.T) { enrolRollback(t, tg, r) })
	}
}

// enrolRollback sends a good entry, then one refused for reason r: the
// answer is the refusal's (wsusercannotassign, the invalidparameter body,
// and for a user id that does not exist an exception without errorcode),
// and the good entry is not applied.
func enrolRollback(t testing.TB, tg *Target, r enrolRefusal) {
	f := newEnrolFixture(t, tg)
	u, c := tg.Unenrolled, tg.Course
	good := [3]int64{tg.Role, u, c}
	notEnrolled := func() {
		t.Helper()
		f.wantEnrolment(t, "after a refused call", enrolment{})
	}
	switch r {
	case refuseRole:
		tg.wantErrBody(t, tg.rawEnrol(t, good, [3]int64{tg.UnassignableRole, u, c}), errCannotAssign(tg.UnassignableRole, u, c))
		notEnrolled()
		err := f.c.EnrolUsers(f.ctx, []moodle.Enrolment{f.outsider(tg.Role, false), f.outsider(tg.UnassignableRole, false)})
		tg.wantErr(t, err, errCannotAssign(tg.UnassignableRole, u, c))
		notEnrolled()
	case refuseCourse:
		if tg.MissingCourse == 0 {
			t.Skipf("needs a course id that does not exist (found with %s)", moodle.FnCoursesByField)
		}
		tg.wantErrBody(t, tg.rawEnrol(t, good, [3]int64{tg.Role, u, tg.MissingCourse}), errInvalidParameter)
		notEnrolled()
	case refuseUser:
		if tg.MissingUser == 0 {
			t.Skipf("needs a user id that does not exist (found with %s)", moodle.FnUsersByField)
		}
		tg.wantUncaught(t, tg.rawEnrol(t, good, [3]int64{tg.Role, tg.MissingUser, c}), "TypeError", typeErrorMessage)
		notEnrolled()
		err := f.c.EnrolUsers(f.ctx, []moodle.Enrolment{{RoleID: tg.Role, UserID: tg.MissingUser, CourseID: c}})
		if !moodle.IsUncaught(err) || moodle.IsTransient(err) || moodle.IsFatal(err) {
			t.Errorf("client: %v; want an uncaught exception, neither transient nor fatal", err)
		}
	}
}

// wantUncaught checks a raw answer for an exception Moodle did not catch:
// HTTP 200, a JSON object with exception and message and no errorcode.
func (tg *Target) wantUncaught(t testing.TB, a Answer, exception, messagePrefix string) {
	t.Helper()
	wantOK(t, a)
	var m map[string]any
	if err := json.Unmarshal([]byte(a.Body), &m); err != nil {
		t.Fatalf("answer is not a JSON object (%v): %.300s", err, a.Body)
	}
	if _, ok := m["errorcode"]; ok {
		t.Errorf("answer has an errorcode: %s", a.Body)
	}
	allowed := map[string]bool{"exception": true, "message": true, "debuginfo": !tg.Strict}
	for k := range m {
		if !allowed[k] {
			t.Errorf("answer has key %q: %s", k, a.Body)
		}
	}
	if m["exception"] != exception {
		t.Errorf("exception %v, want %s: %s", m["exception"], exception, a.Body)
	}
	msg, _ := m["message"].(string)
	if !strings.HasPrefix(msg, messagePrefix) {
		tg.checkMessage(t, msg, messagePrefix)
	}
}

// unenrolRemovesMemberships: unenrolling answers null and removes the user
// from every group of the course (the reference); enrolled again, the user
// is in none: the memberships are gone, not hidden.
func unenrolRemovesMemberships(t testing.TB, tg *Target) {
	f := newEnrolFixture(t, tg)
	u := tg.Unenrolled
	f.enrol(t, f.outsider(tg.Role, false))
	gs := f.createGroups("A", "B")
	a, b := gs[0].ID, gs[1].ID
	f.addMembers(moodle.Pair{A: a, B: u}, moodle.Pair{A: b, B: u}, moodle.Pair{A: a, B: tg.Users[0]})
	a2 := tg.Post(t, "", join(tg.WSParams(moodle.FnManualUnenrolUsers),
		Form("enrolments[0][userid]", itoa(u), "enrolments[0][courseid]", itoa(tg.Course))))
	wantNull(t, a2)
	f.wantEnrolment(t, "unenrolled", enrolment{})
	m := f.members(a, b)
	if !sameSet(m[a], []int64{tg.Users[0]}) || len(m[b]) != 0 {
		t.Errorf("members %v: want the unenrolled user out of both groups, the other member kept", m)
	}
	f.enrol(t, f.outsider(tg.Role, false))
	if m := f.members(a, b); !sameSet(m[a], []int64{tg.Users[0]}) || len(m[b]) != 0 {
		t.Errorf("members %v after enrolling again: want the memberships gone", m)
	}
}

// unenrolNotEnrolled: unenrolling someone not enrolled answers null and
// changes nothing (the reference).
func unenrolNotEnrolled(t testing.TB, tg *Target) {
	f := newEnrolFixture(t, tg)
	before := f.enrolledIDs(t)
	a := tg.Post(t, "", join(tg.WSParams(moodle.FnManualUnenrolUsers),
		Form("enrolments[0][userid]", itoa(tg.Unenrolled), "enrolments[0][courseid]", itoa(tg.Course))))
	wantNull(t, a)
	if after := f.enrolledIDs(t); !sameSet(after, before) {
		t.Errorf("enrolled users %v, before %v", after, before)
	}
}

// enrolledIDs lists the ids of the scratch course's enrolled users.
func (f *fixture) enrolledIDs(t testing.TB) []int64 {
	t.Helper()
	users, err := f.c.EnrolledUsers(f.ctx, f.tg.Course)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	return ids
}

// unenrolRoleID: a user enrolled with two roles and unenrolled with one of
// them as roleid loses the whole manual enrolment (Moodle's code: roleid is
// accepted and not used). Enrolling with a second role adds it (Moodle's
// code).
func unenrolRoleID(t testing.TB, tg *Target) {
	f := newEnrolFixture(t, tg)
	f.enrol(t, f.outsider(tg.Role, false))
	f.enrol(t, f.outsider(tg.OtherRole, false))
	f.wantEnrolment(t, "enrolled with two roles", enrolment{listed: true, active: true, roles: []int64{tg.Role, tg.OtherRole}})
	if err := f.c.UnenrolUsers(f.ctx, []moodle.Unenrolment{{UserID: tg.Unenrolled, CourseID: tg.Course, RoleID: tg.OtherRole}}); err != nil {
		t.Fatalf("unenrol with roleid: %v, want null", err)
	}
	f.wantEnrolment(t, "unenrolled with a roleid", enrolment{})
}

// unenrolTransaction: one bad entry rolls an unenrol call back, group
// memberships included. The answers are Moodle's code's: a user id that
// does not exist is invalidparameter, a course that does not exist
// invalidrecord on table course.
func unenrolTransaction(t *testing.T, tg *Target) {
	f := newEnrolFixture(t, tg)
	u := tg.Unenrolled
	f.enrol(t, f.outsider(tg.Role, false))
	g := f.createGroup("G")
	f.addMembers(moodle.Pair{A: g, B: u})
	ok := moodle.Unenrolment{UserID: u, CourseID: tg.Course}
	kept := func(t *testing.T) {
		t.Helper()
		f.wantEnrolment(t, "after a refused unenrol", enrolment{listed: true, active: true, roles: []int64{tg.Role}})
		if m := f.members(g); !sameSet(m[g], []int64{u}) {
			t.Errorf("members %v after a refused unenrol, want the user kept", m[g])
		}
	}
	t.Run("user that does not exist", func(t *testing.T) {
		if tg.MissingUser == 0 {
			t.Skipf("needs a user id that does not exist (found with %s)", moodle.FnUsersByField)
		}
		err := f.c.UnenrolUsers(f.ctx, []moodle.Unenrolment{ok, {UserID: tg.MissingUser, CourseID: tg.Course}})
		tg.wantErr(t, err, errInvalidParameter)
		kept(t)
	})
	t.Run("course that does not exist", func(t *testing.T) {
		if tg.MissingCourse == 0 {
			t.Skipf("needs a course id that does not exist (found with %s)", moodle.FnCoursesByField)
		}
		err := f.c.UnenrolUsers(f.ctx, []moodle.Unenrolment{ok, {UserID: u, CourseID: tg.MissingCourse}})
		tg.wantErr(t, err, errNoCourse)
		kept(t)
	})
}

// courseDates: core_course_get_courses_by_field gives a course's start and
// end dates; for a course the service user may not access, only its public
// fields (Moodle's code), so the dates are not known.
func courseDates(t *testing.T, tg *Target) {
	tg.need(t, moodle.FnCoursesByField)
	f := newFixture(t, tg)
	courses := f.coursesByFieldID(t, tg.Course)
	if len(courses) != 1 {
		t.Fatalf("courses %v, want the scratch course", courses)
	}
	raw, _ := courses[0].(map[string]any)
	for _, k := range []string{"startdate", "enddate"} {
		if _, isNum := raw[k].(float64); !isNum {
			t.Errorf("course %d: %s %v, want a number", tg.Course, k, raw[k])
		}
	}
	cs, err := f.c.CoursesByID(f.ctx, []int64{tg.Course})
	if err != nil || len(cs) != 1 {
		t.Fatalf("CoursesByID: %+v, %v", cs, err)
	}
	c := cs[0]
	if !c.DatesKnown || c.StartDate <= 0 || c.EndDate < 0 {
		t.Errorf("course %+v: want known dates, a start date", c)
	}
	if tg.CourseEndKnown && c.EndDate != tg.CourseEnd {
		t.Errorf("end date %d, want %d", c.EndDate, tg.CourseEnd)
	}
	if end, ok := c.End(); ok {
		t.Logf("course %d ends %s; ended now: %v", c.ID, end.UTC().Format(time.RFC3339), c.Ended(time.Now()))
	}
	if tg.InaccessibleCourse == 0 {
		t.Logf("inaccessible course: not checked, set %s", EnvInaccessibleCourse)
		return
	}
	cs, err = f.c.CoursesByID(f.ctx, []int64{tg.InaccessibleCourse})
	if err != nil || len(cs) != 1 {
		t.Fatalf("CoursesByID(%d): %+v, %v; want the course listed", tg.InaccessibleCourse, cs, err)
	}
	if cs[0].DatesKnown || cs[0].Ended(time.Now()) {
		t.Errorf("inaccessible course %+v: want no dates (only its public fields)", cs[0])
	}
}
