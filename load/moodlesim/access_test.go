package moodlesim_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodlesim"
)

// notAccessible is the answer for a course the web-service user may not
// access.
func notAccessible(course int) string {
	return `{"exception":"core\\exception\\moodle_exception","errorcode":"errorcoursecontextnotvalid","message":"You cannot execute functions in the course context (course id:` +
		itoa(course) + `). The context error message was: Course or activity not accessible."}`
}

// TestInaccessibleCourse: every course-context function answers
// errorcoursecontextnotvalid for a course the web-service user may not
// access, reads by id of its objects fail the whole call, nothing is
// changed, and the course is still listed by core_course_get_courses_by_field.
func TestInaccessibleCourse(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	g := mustGroup(t, st.base, st.c, "G1", "g1")
	other := mustGroup(t, st.base, st.d, "D1", "d1")
	if err := st.s.AddMember(g, st.u1); err != nil {
		t.Fatal(err)
	}
	gg, err := st.s.AddGrouping(moodlesim.Grouping{CourseID: st.c, Name: "GG", IDNumber: "gg", Groups: []int{g}})
	if err != nil {
		t.Fatal(err)
	}
	ggOther, err := st.s.AddGrouping(moodlesim.Grouping{CourseID: st.d, Name: "DD", IDNumber: "dd"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.s.SetCourseAccessible(st.c, false); err != nil {
		t.Fatal(err)
	}
	before := st.s.State()
	c := itoa(st.c)
	tests := []struct {
		name   string
		fn     string
		params []string
		want   string
	}{
		{"course groups", "core_group_get_course_groups", []string{"courseid", c}, notAccessible(st.c)},
		{"course groupings", "core_group_get_course_groupings", []string{"courseid", c}, notAccessible(st.c)},
		{"enrolled users", "core_enrol_get_enrolled_users", []string{"courseid", c}, notAccessible(st.c)},
		{"create groups", "core_group_create_groups",
			[]string{"groups[0][courseid]", c, "groups[0][name]", "New", "groups[0][description]", ""}, notAccessible(st.c)},
		// The name check reads the database before the context is validated.
		{"create groups, a taken name", "core_group_create_groups",
			[]string{"groups[0][courseid]", c, "groups[0][name]", "G1", "groups[0][description]", ""}, bodyInvalidParam},
		{"update groups", "core_group_update_groups", []string{"groups[0][id]", itoa(g), "groups[0][name]", "G1"}, notAccessible(st.c)},
		{"delete groups, after one of an accessible course", "core_group_delete_groups",
			[]string{"groupids[0]", itoa(other), "groupids[1]", itoa(g)}, notAccessible(st.c)},
		{"get groups, one of them inaccessible", "core_group_get_groups",
			[]string{"groupids[0]", itoa(other), "groupids[1]", itoa(g)}, notAccessible(st.c)},
		{"get group members", "core_group_get_group_members", []string{"groupids[0]", itoa(g), "groupids[1]", itoa(other)}, notAccessible(st.c)},
		{"add members", "core_group_add_group_members", []string{"members[0][groupid]", itoa(g), "members[0][userid]", itoa(st.u2)}, notAccessible(st.c)},
		{"delete members", "core_group_delete_group_members", []string{"members[0][groupid]", itoa(g), "members[0][userid]", itoa(st.u1)}, notAccessible(st.c)},
		{"create groupings", "core_group_create_groupings",
			[]string{"groupings[0][courseid]", c, "groupings[0][name]", "New", "groupings[0][description]", "", "groupings[0][idnumber]", "new"}, notAccessible(st.c)},
		{"update groupings", "core_group_update_groupings",
			[]string{"groupings[0][id]", itoa(gg), "groupings[0][name]", "GG", "groupings[0][description]", ""}, notAccessible(st.c)},
		{"delete groupings", "core_group_delete_groupings", []string{"groupingids[0]", itoa(gg)}, notAccessible(st.c)},
		{"get groupings", "core_group_get_groupings", []string{"groupingids[0]", itoa(ggOther), "groupingids[1]", itoa(gg)}, notAccessible(st.c)},
		{"unassign grouping", "core_group_unassign_grouping",
			[]string{"unassignments[0][groupingid]", itoa(gg), "unassignments[0][groupid]", itoa(g)}, notAccessible(st.c)},
		// The grouping's course is validated, the group's is named.
		{"assign a group of another course", "core_group_assign_grouping",
			[]string{"assignments[0][groupingid]", itoa(gg), "assignments[0][groupid]", itoa(other)}, notAccessible(st.d)},
		// Already assigned: Moodle continues before validating the context.
		{"assign grouping already assigned", "core_group_assign_grouping",
			[]string{"assignments[0][groupingid]", itoa(gg), "assignments[0][groupid]", itoa(g)}, "null"},
		{"an accessible course's groups", "core_group_get_course_groups", []string{"courseid", itoa(st.d)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, st.base, tc.fn, tc.params...)
			if tc.want == "" {
				if !strings.HasPrefix(a.body, "[") {
					t.Errorf("answer %s, want a list", a.body)
				}
				return
			}
			if a.body != tc.want {
				t.Errorf("body\n got %s\nwant %s", a.body, tc.want)
			}
		})
	}
	if after := st.s.State(); !reflect.DeepEqual(after, before) {
		t.Errorf("calls on an inaccessible course changed the site:\n got %+v\nwant %+v", after, before)
	}
	if a := call(t, st.base, "core_course_get_courses_by_field", "field", "id", "value", c); !strings.Contains(a.body, `"id":`+c+`,`) {
		t.Errorf("courses by field: %s, want the course listed", a.body)
	}
	for _, co := range before.Courses {
		if co.Inaccessible != (co.ID == st.c) {
			t.Errorf("State: course %+v", co)
		}
	}

	// Access given back: the course's groups are as they were.
	if err := st.s.SetCourseAccessible(st.c, true); err != nil {
		t.Fatal(err)
	}
	if got := groupKind.listed(t, st.base, st.c); !reflect.DeepEqual(got, map[string]int{"g1": g}) {
		t.Errorf("groups after access came back: %v", got)
	}
	if err := st.s.SetCourseAccessible(999999, false); !errors.Is(err, moodlesim.ErrNotFound) {
		t.Errorf("SetCourseAccessible of a missing course: %v", err)
	}
}

// TestInaccessibleCourseSeed: the seed key "inaccessible" is read, and
// written by SaveSeed.
func TestInaccessibleCourseSeed(t *testing.T) {
	s := moodlesim.New(moodlesim.Options{})
	if err := s.LoadSeed(strings.NewReader(`{"courses": [{"shortname": "A"}, {"shortname": "B", "inaccessible": true}]}`)); err != nil {
		t.Fatal(err)
	}
	if cs := s.State().Courses; len(cs) != 2 || cs[0].Inaccessible || !cs[1].Inaccessible {
		t.Fatalf("courses %+v", cs)
	}
	var buf bytes.Buffer
	if err := s.SaveSeed(&buf); err != nil {
		t.Fatal(err)
	}
	s2 := moodlesim.New(moodlesim.Options{})
	if err := s2.LoadSeed(&buf); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.State(), s2.State()) {
		t.Errorf("round trip: %+v, want %+v", s2.State(), s.State())
	}
}

// TestDeletedCourse: the reference's answers for a course that was deleted.
func TestDeletedCourse(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	mustGroup(t, st.base, st.c, "G1", "g1")
	if err := st.s.DeleteCourse(st.c); err != nil {
		t.Fatal(err)
	}
	c := itoa(st.c)
	noCourseCtx := strings.Replace(bodyNoCourseCtx, "999999", c, 1)
	for _, tc := range []struct {
		fn     string
		params []string
		want   string
	}{
		{"core_group_get_course_groups", []string{"courseid", c}, noCourseCtx},
		{"core_group_get_course_groupings", []string{"courseid", c}, noCourseCtx},
		{"core_enrol_get_enrolled_users", []string{"courseid", c}, bodyNoCourse},
		{"core_course_get_courses_by_field", []string{"field", "id", "value", c}, `{"courses":[],"warnings":[]}`},
	} {
		if a := call(t, st.base, tc.fn, tc.params...); a.body != tc.want {
			t.Errorf("%s: %s, want %s", tc.fn, a.body, tc.want)
		}
	}
}
