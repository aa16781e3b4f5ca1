package moodle_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
)

// TestEnrolForms: suspend is always sent; roleid of an unenrolment only when
// set.
func TestEnrolForms(t *testing.T) {
	f := moodle.EnrolForm([]moodle.Enrolment{{RoleID: 5, UserID: 41, CourseID: 2}, {RoleID: 4, UserID: 42, CourseID: 3, Suspend: true}})
	want := "enrolments[0][roleid]=5&enrolments[0][userid]=41&enrolments[0][courseid]=2&enrolments[0][suspend]=0&" +
		"enrolments[1][roleid]=4&enrolments[1][userid]=42&enrolments[1][courseid]=3&enrolments[1][suspend]=1"
	if f.String() != want || f.Len() != 2*moodle.VarsPerEnrolment {
		t.Errorf("EnrolForm = %s", f)
	}
	f = moodle.UnenrolForm([]moodle.Unenrolment{{UserID: 41, CourseID: 2}, {UserID: 42, CourseID: 3, RoleID: 5}})
	want = "enrolments[0][userid]=41&enrolments[0][courseid]=2&enrolments[1][userid]=42&enrolments[1][courseid]=3&enrolments[1][roleid]=5"
	if f.String() != want || f.Len() > 2*moodle.VarsPerUnenrolment {
		t.Errorf("UnenrolForm = %s", f)
	}
}

// TestEnrolFunctionsFor: each use asks for the function it calls, and none
// is a required function.
func TestEnrolFunctionsFor(t *testing.T) {
	for _, tc := range []struct {
		enrol, suspend, unenrol bool
		want                    []string
	}{
		{false, false, false, nil},
		{true, false, false, []string{moodle.FnManualEnrolUsers}},
		{false, true, false, []string{moodle.FnManualEnrolUsers}},
		{false, false, true, []string{moodle.FnManualUnenrolUsers}},
		{true, true, true, moodle.EnrolFunctions},
	} {
		if got := moodle.EnrolFunctionsFor(tc.enrol, tc.suspend, tc.unenrol); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("EnrolFunctionsFor(%v, %v, %v) = %v, want %v", tc.enrol, tc.suspend, tc.unenrol, got, tc.want)
		}
	}
	for _, f := range moodle.EnrolFunctions {
		if slices.Contains(moodle.RequiredFunctions, f) {
			t.Errorf("%s is required of every site", f)
		}
	}
}

// enrolSite is a simulator with a course, two users enrolled as students
// and one not enrolled.
type enrolSite struct {
	sim              *moodlesim.Server
	c                *moodle.Client
	course, hidden   int64
	u1, u2, outsider int64
}

func newEnrolSite(t *testing.T) enrolSite {
	t.Helper()
	sim, base := startSim(t)
	c, err := moodle.New(moodle.Options{URL: base, Token: secret})
	if err != nil {
		t.Fatal(err)
	}
	s := enrolSite{sim: sim, c: c}
	s.course = int64(sim.AddCourse(moodlesim.Course{ShortName: "C", FullName: "Course"}))
	s.hidden = int64(sim.AddCourse(moodlesim.Course{ShortName: "H", FullName: "Hidden", Inaccessible: true}))
	for _, p := range []*int64{&s.u1, &s.u2, &s.outsider} {
		*p = int64(sim.AddUser(moodlesim.User{Username: fmt.Sprintf("u%d", len(sim.State().Users)), FirstName: "U", LastName: "Ser"}))
	}
	for _, u := range []int64{s.u1, s.u2} {
		if err := sim.Enrol(int(s.course), int(u)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s enrolSite) ids(t *testing.T, o moodle.EnrolledOptions) []int64 {
	t.Helper()
	users, err := s.c.EnrolledUsersWith(context.Background(), s.course, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, u := range users {
		out = append(out, u.ID)
	}
	return out
}

// TestEnrolUsersAndOnlyActive goes through the client against the
// simulator: enrol, suspend, read with and without onlyactive, with roles,
// reactivate, unenrol.
func TestEnrolUsersAndOnlyActive(t *testing.T) {
	s := newEnrolSite(t)
	ctx := context.Background()
	all := moodle.EnrolledOptions{Fields: []string{"roles"}}
	active := moodle.EnrolledOptions{OnlyActive: true}

	if err := s.c.EnrolUsers(ctx, []moodle.Enrolment{{RoleID: 5, UserID: s.outsider, CourseID: s.course}}); err != nil {
		t.Fatal(err)
	}
	if got := s.ids(t, all); !reflect.DeepEqual(got, []int64{s.u1, s.u2, s.outsider}) {
		t.Errorf("enrolled %v", got)
	}
	if err := s.c.EnrolUsers(ctx, []moodle.Enrolment{{RoleID: 5, UserID: s.outsider, CourseID: s.course, Suspend: true},
		{RoleID: 4, UserID: s.u1, CourseID: s.course}}); err != nil {
		t.Fatal(err)
	}
	if got := s.ids(t, active); !reflect.DeepEqual(got, []int64{s.u1, s.u2}) {
		t.Errorf("active %v, want the suspended user left out", got)
	}
	users, err := s.c.EnrolledUsersWith(ctx, s.course, all)
	if err != nil || len(users) != 3 {
		t.Fatalf("EnrolledUsersWith: %+v, %v", users, err)
	}
	if u := users[0]; !u.HasRole(4) || !u.HasRole(5) || u.HasRole(3) || u.Roles[0] != (moodle.Role{ID: 4, ShortName: "teacher", SortOrder: 4}) {
		t.Errorf("roles of %d: %+v", u.ID, u.Roles)
	}
	plain, err := s.c.EnrolledUsersWith(ctx, s.course, moodle.EnrolledOptions{Fields: []string{"username"}})
	if err != nil || len(plain) != 3 || plain[0].Roles != nil || plain[0].Username == "" {
		t.Errorf("without roles asked: %+v, %v", plain, err)
	}

	if err := s.c.EnrolUsers(ctx, []moodle.Enrolment{{RoleID: 5, UserID: s.outsider, CourseID: s.course}}); err != nil {
		t.Fatal(err)
	}
	if got := s.ids(t, active); len(got) != 3 {
		t.Errorf("active %v after Suspend false, want the user active again", got)
	}
	if err := s.c.UnenrolUsers(ctx, []moodle.Unenrolment{{UserID: s.outsider, CourseID: s.course}, {UserID: s.outsider, CourseID: s.course}}); err != nil {
		t.Fatal(err)
	}
	if got := s.ids(t, all); !reflect.DeepEqual(got, []int64{s.u1, s.u2}) {
		t.Errorf("after unenrol: %v", got)
	}
}

// TestEnrolErrors: each refusal the client meets, classified.
func TestEnrolErrors(t *testing.T) {
	s := newEnrolSite(t)
	ctx := context.Background()
	good := moodle.Enrolment{RoleID: 5, UserID: s.outsider, CourseID: s.course}
	for _, tc := range []struct {
		name string
		bad  moodle.Enrolment
		code string
	}{
		{"role", moodle.Enrolment{RoleID: 999, UserID: s.u1, CourseID: s.course}, moodle.CodeCannotAssign},
		{"course", moodle.Enrolment{RoleID: 5, UserID: s.u1, CourseID: 999999}, moodle.CodeInvalidParameter},
		{"user", moodle.Enrolment{RoleID: 5, UserID: 999999, CourseID: s.course}, ""},
		{"inaccessible course", moodle.Enrolment{RoleID: 5, UserID: s.u1, CourseID: s.hidden}, moodle.CodeRequireLogin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.c.EnrolUsers(ctx, []moodle.Enrolment{good, tc.bad})
			if err == nil || moodle.ErrorCode(err) != tc.code || moodle.IsTransient(err) || moodle.IsFatal(err) {
				t.Fatalf("err = %v (code %q), want a permanent error %q", err, moodle.ErrorCode(err), tc.code)
			}
			if moodle.IsUncaught(err) != (tc.code == "") {
				t.Errorf("IsUncaught = %v", moodle.IsUncaught(err))
			}
			if got := s.ids(t, moodle.EnrolledOptions{}); len(got) != 2 {
				t.Errorf("enrolled %v after a refused call, want nobody added", got)
			}
		})
	}
	if err := s.sim.SetManualEnrolEnabled(int(s.course), false); err != nil {
		t.Fatal(err)
	}
	if err := s.c.EnrolUsers(ctx, []moodle.Enrolment{good}); moodle.ErrorCode(err) != moodle.CodeNoManualInstance {
		t.Errorf("manual method disabled: %v", err)
	}
	if err := s.c.UnenrolUsers(ctx, []moodle.Unenrolment{{UserID: 999999, CourseID: s.course}}); moodle.ErrorCode(err) != moodle.CodeInvalidParameter {
		t.Errorf("unenrol a user that does not exist: %v", err)
	}
	if moodle.IsUncaught(nil) || moodle.IsUncaught(&moodle.Error{Exception: "cmissync"}) {
		t.Error("IsUncaught of nil or of cmissync's own error")
	}
}

// TestEnrolBatchesFitMaxInputVars: a batch sized with Capacity reaches
// Moodle whole under PHP's max_input_vars, with the web-service parameters.
func TestEnrolBatchesFitMaxInputVars(t *testing.T) {
	for _, limit := range []int{100, 1000} {
		var got int
		c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			v, _ := url.ParseQuery(string(b))
			got = len(v)
			fmt.Fprint(w, "null")
		}, func(o *moodle.Options) { o.MaxInputVars = limit })
		n := c.Capacity(moodle.VarsPerEnrolment)
		batch := make([]moodle.Enrolment, n)
		if err := c.EnrolUsers(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		if got > limit || got < limit*8/10 {
			t.Errorf("max_input_vars %d: a full batch of %d sent %d variables", limit, n, got)
		}
		m := c.Capacity(moodle.VarsPerUnenrolment)
		un := make([]moodle.Unenrolment, m)
		for i := range un {
			un[i].RoleID = 5
		}
		if err := c.UnenrolUsers(context.Background(), un); err != nil {
			t.Fatal(err)
		}
		if got > limit {
			t.Errorf("max_input_vars %d: a full unenrol batch of %d sent %d variables", limit, m, got)
		}
	}
}

// TestCourseDates: CoursesByID gives the dates of a course the service user
// may access and says when Moodle did not give them.
func TestCourseDates(t *testing.T) {
	s := newEnrolSite(t)
	ended := int64(s.sim.AddCourse(moodlesim.Course{ShortName: "E", StartDate: 1600000000, EndDate: 1610000000}))
	if err := s.sim.SetCourseEndDate(int(s.course), 4102444800); err != nil { // 2100-01-01
		t.Fatal(err)
	}
	if err := s.sim.SetCourseEndDate(int(s.hidden), 1610000000); err != nil {
		t.Fatal(err)
	}
	cs, err := s.c.CoursesByID(context.Background(), []int64{s.course, s.hidden, ended})
	if err != nil || len(cs) != 3 {
		t.Fatalf("CoursesByID: %+v, %v", cs, err)
	}
	now := time.Now()
	for i, want := range []struct {
		known       bool
		start, end  int64
		ended       bool
		name, short string
	}{
		{true, 1735689600, 4102444800, false, "Course", "C"},
		{false, 0, 0, false, "Hidden", "H"},
		{true, 1600000000, 1610000000, true, "", "E"},
	} {
		c := cs[i]
		if c.DatesKnown != want.known || c.StartDate != want.start || c.EndDate != want.end || c.Ended(now) != want.ended ||
			c.FullName != want.name || c.ShortName != want.short {
			t.Errorf("course %d: %+v, Ended %v; want %+v", c.ID, c, c.Ended(now), want)
		}
		if end, ok := c.End(); ok != (want.end != 0) || ok && end.Unix() != want.end {
			t.Errorf("course %d: End() = %v, %v", c.ID, end, ok)
		}
	}
	// No end date: never ended, whatever the time.
	var none moodle.Course
	if err := json.Unmarshal([]byte(`{"id":9,"shortname":"N","startdate":1,"enddate":0}`), &none); err != nil ||
		!none.DatesKnown || none.Ended(time.Unix(1<<40, 0)) {
		t.Errorf("no end date: %+v, %v", none, err)
	}
	if err := json.Unmarshal([]byte(`{"id":9,"enddate":"x"}`), &none); err == nil {
		t.Error("a malformed enddate was accepted")
	}
}
