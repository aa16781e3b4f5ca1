package moodlesim_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodlesim"
)

// TestErrorTable checks every row of the reference's error table, body for
// body, plus the null answers it lists.
func TestErrorTable(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	g := mustGroup(t, st.base, st.c, "G1", "cmis:G1")
	if err := st.s.AddMember(g, st.u1); err != nil {
		t.Fatal(err)
	}
	gg := call(t, st.base, "core_group_create_groupings", "groupings[0][courseid]", itoa(st.c),
		"groupings[0][name]", "GG", "groupings[0][description]", "", "groupings[0][idnumber]", "cmis:GG")
	if !strings.HasPrefix(gg.body, `[{"id":1,`) {
		t.Fatalf("create grouping: %s", gg.body)
	}

	tests := []struct {
		name   string
		fn     string
		params []string
		want   string
	}{
		{"create group: name used", "core_group_create_groups",
			[]string{"groups[0][courseid]", itoa(st.c), "groups[0][name]", "G1", "groups[0][description]", ""}, bodyInvalidParam},
		{"create group: name used, other case", "core_group_create_groups",
			[]string{"groups[0][courseid]", itoa(st.c), "groups[0][name]", "g1", "groups[0][description]", ""}, bodyInvalidParam},
		{"create group: idnumber used", "core_group_create_groups",
			[]string{"groups[0][courseid]", itoa(st.c), "groups[0][name]", "G2", "groups[0][description]", "", "groups[0][idnumber]", "cmis:G1"}, bodyIDNumberTaken},
		{"create group: blank name", "core_group_create_groups",
			[]string{"groups[0][courseid]", itoa(st.c), "groups[0][name]", "  ", "groups[0][description]", ""}, bodyInvalidParam},
		{"add member not enrolled", "core_group_add_group_members",
			[]string{"members[0][groupid]", itoa(g), "members[0][userid]", itoa(st.u4)}, bodyInvalidParam},
		{"add member: no such user", "core_group_add_group_members",
			[]string{"members[0][groupid]", itoa(g), "members[0][userid]", "999999"}, bodyInvalidUser},
		{"add members: no such group", "core_group_add_group_members",
			[]string{"members[0][groupid]", "70373", "members[0][userid]", itoa(st.u1)}, bodyNoGroup},
		{"delete members: no such group", "core_group_delete_group_members",
			[]string{"members[0][groupid]", "70373", "members[0][userid]", itoa(st.u1)}, bodyNoGroup},
		{"get members: no such group", "core_group_get_group_members", []string{"groupids[0]", "70373"}, bodyNoGroup},
		{"get groups: no such group", "core_group_get_groups", []string{"groupids[0]", "70373"}, bodyNoGroup},
		{"delete groups: no such group", "core_group_delete_groups", []string{"groupids[0]", "70373"}, "null"},
		{"delete groupings: no such grouping", "core_group_delete_groupings", []string{"groupingids[0]", "70373"}, "null"},
		{"delete member who is not a member", "core_group_delete_group_members",
			[]string{"members[0][groupid]", itoa(g), "members[0][userid]", itoa(st.u2)}, "null"},
		{"add member who is already a member", "core_group_add_group_members",
			[]string{"members[0][groupid]", itoa(g), "members[0][userid]", itoa(st.u1)}, "null"},
		{"create groups: no such course", "core_group_create_groups",
			[]string{"groups[0][courseid]", "999999", "groups[0][name]", "X", "groups[0][description]", ""}, bodyNoCourseCtx},
		{"get course groups: no such course", "core_group_get_course_groups", []string{"courseid", "999999"}, bodyNoCourseCtx},
		{"get enrolled users: no such course", "core_enrol_get_enrolled_users", []string{"courseid", "999999"}, bodyNoCourse},
		{"create groupings: no such course (MUST_EXIST context)", "core_group_create_groupings",
			[]string{"groupings[0][courseid]", "999999", "groupings[0][name]", "X", "groupings[0][description]", "", "groupings[0][idnumber]", "x"}, bodyNoCourse},
		{"get course groupings: no such course", "core_group_get_course_groupings", []string{"courseid", "999999"}, bodyNoCourseCtx},
		{"create grouping: name used", "core_group_create_groupings",
			[]string{"groupings[0][courseid]", itoa(st.c), "groupings[0][name]", "GG", "groupings[0][description]", "", "groupings[0][idnumber]", "other"}, bodyInvalidParam},
		{"create grouping: idnumber used", "core_group_create_groupings",
			[]string{"groupings[0][courseid]", itoa(st.c), "groupings[0][name]", "GG2", "groupings[0][description]", "", "groupings[0][idnumber]", "cmis:GG"}, bodyIDNumberTaken},
		{"missing required parameter", "core_group_get_course_groups", nil, bodyInvalidParam},
		{"wrong type: courseid=abc", "core_group_get_course_groups", []string{"courseid", "abc"}, bodyInvalidParam},
		{"wrong type: courseid=012", "core_group_get_course_groups", []string{"courseid", "012"}, bodyInvalidParam},
		{"member without userid", "core_group_add_group_members", []string{"members[0][groupid]", itoa(g)}, bodyInvalidParam},
		{"unexpected key", "core_group_get_course_groups", []string{"courseid", itoa(st.c), "foo", "1"}, bodyInvalidParam},
		{"scalar where list expected", "core_group_get_groups", []string{"groupids", "1"}, bodyInvalidParam},
		{"unknown wsfunction", "core_group_no_such_function", nil, bodyNoFunction},
		{"enrol: no such user, an uncaught TypeError", "enrol_manual_enrol_users",
			[]string{"enrolments[0][roleid]", "5", "enrolments[0][userid]", "999999", "enrolments[0][courseid]", itoa(st.c)},
			`{"exception":"TypeError","message":"core\\user::get_name_placeholders(): Argument #1 ($user) must be of type stdClass, bool given"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, st.base, tc.fn, tc.params...)
			if a.status != http.StatusOK || a.ctype != "application/json" {
				t.Errorf("status %d, Content-Type %q", a.status, a.ctype)
			}
			if a.body != tc.want {
				t.Errorf("body\n got %s\nwant %s", a.body, tc.want)
			}
		})
	}

	// Nothing above changed the site except the one grouping and group.
	state := st.s.State()
	if len(state.Groups) != 1 || len(state.Groupings) != 1 || len(state.Groups[0].Members) != 1 {
		t.Errorf("site changed by failing calls: %+v", state)
	}
}

func TestTokens(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	for name, body := range map[string]string{
		"bad token":                     kv("wstoken", "nope", "wsfunction", "core_webservice_get_site_info", "moodlewsrestformat", "json"),
		"empty token":                   kv("wstoken", "", "wsfunction", "core_webservice_get_site_info", "moodlewsrestformat", "json"),
		"no token":                      kv("wsfunction", "core_webservice_get_site_info", "moodlewsrestformat", "json"),
		"token first, unknown function": kv("wstoken", "bad", "wsfunction", "nope", "moodlewsrestformat", "json"),
	} {
		if a := postRaw(t, st.base, "", body); a.body != bodyInvalidToken {
			t.Errorf("%s: %s", name, a.body)
		}
	}
	// Without moodlewsrestformat the answer is XML.
	a := postRaw(t, st.base, "", kv("wstoken", "nope", "wsfunction", "core_webservice_get_site_info"))
	if a.body != xmlInvalidToken || !strings.HasPrefix(a.ctype, "application/xml") {
		t.Errorf("XML error: %q %q", a.ctype, a.body)
	}
	// Missing wsfunction with a good token.
	a = postRaw(t, st.base, "", kv("wstoken", token, "moodlewsrestformat", "json"))
	if a.body != bodyInvalidParam {
		t.Errorf("missing wsfunction: %s", a.body)
	}
}

func TestAccessException(t *testing.T) {
	s, base := start(t, moodlesim.Options{Functions: []string{"core_webservice_get_site_info", "core_group_get_course_groups"}})
	s.AddCourse(moodlesim.Course{ShortName: "C"})
	if a := call(t, base, "core_group_create_groups"); a.body != bodyAccess {
		t.Errorf("not in service: %s", a.body)
	}
	if a := call(t, base, "core_group_nope"); a.body != bodyNoFunction {
		t.Errorf("unknown: %s", a.body)
	}
	if a := call(t, base, "core_group_get_course_groups", "courseid", "2"); a.body != "[]" {
		t.Errorf("allowed: %s", a.body)
	}
	var info struct {
		Functions []struct{ Name, Version string }
	}
	a := call(t, base, "core_webservice_get_site_info")
	if err := json.Unmarshal([]byte(a.body), &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Functions) != 2 || info.Functions[0].Name != "core_group_get_course_groups" ||
		info.Functions[1].Name != "core_webservice_get_site_info" || info.Functions[0].Version != "2024100706" {
		t.Errorf("functions: %+v", info.Functions)
	}
}

func TestDebugInfo(t *testing.T) {
	st := newSite(t, moodlesim.Options{Debug: true})
	mustGroup(t, st.base, st.c, "G1", "")
	tests := []struct {
		name   string
		fn     string
		params []string
		want   string
	}{
		{"duplicate name", "core_group_create_groups",
			[]string{"groups[0][courseid]", itoa(st.c), "groups[0][name]", "G1", "groups[0][description]", ""},
			`{"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected","debuginfo":"Group with the same name already exists in the course"}`},
		{"not enrolled", "core_group_add_group_members",
			[]string{"members[0][groupid]", "1", "members[0][userid]", itoa(st.u4)},
			`{"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected","debuginfo":"Only enrolled users may be members of groups"}`},
		{"missing group", "core_group_get_group_members", []string{"groupids[0]", "70373"},
			`{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table groups.","debuginfo":"SELECT id, courseid, name, enrolmentkey FROM {groups} WHERE id = ?\n[array (\n  0 => 70373,\n)]"}`},
		{"bad type", "core_group_get_course_groups", []string{"courseid", "abc"},
			`{"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected","debuginfo":"courseid => Invalid parameter value detected: Invalid external api parameter: the value is \"abc\", the server was expecting \"int\" type"}`},
		{"missing key", "core_group_add_group_members", []string{"members[0][groupid]", "1"},
			`{"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected","debuginfo":"members => Invalid parameter value detected: Missing required key in single structure: userid"}`},
		{"context error has no debuginfo", "core_group_get_course_groups", []string{"courseid", "999999"}, bodyNoCourseCtx},
	}
	for _, tc := range tests {
		if a := call(t, st.base, tc.fn, tc.params...); a.body != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, a.body, tc.want)
		}
	}
	if a := call(t, st.base, "core_group_create_groups"); !strings.Contains(a.body, `"debuginfo":"Missing required key in single structure: groups"`) {
		t.Errorf("missing groups: %s", a.body)
	}
}

func TestSuccessShapes(t *testing.T) {
	st := newSite(t, moodlesim.Options{ShowIdnumber: true, SiteName: "Test site"})
	c := itoa(st.c)

	a := call(t, st.base, "core_group_create_groups", "groups[0][courseid]", c, "groups[0][name]", "G1",
		"groups[0][description]", "x", "groups[0][idnumber]", "cmis:G1")
	if want := `[{"id":1,"courseid":2,"name":"G1","description":"x","descriptionformat":1,"enrolmentkey":"","idnumber":"cmis:G1","visibility":0,"participation":true}]`; a.body != want {
		t.Errorf("create_groups:\n got %s\nwant %s", a.body, want)
	}
	a = call(t, st.base, "core_group_create_groups", "groups[0][courseid]", c, "groups[0][name]", " A & B ",
		"groups[0][description]", "", "groups[0][idnumber]", " cmis:AB ", "groups[0][enrolmentkey]", "k")
	if want := `[{"id":2,"courseid":2,"name":"A & B","description":"","descriptionformat":1,"enrolmentkey":"k","idnumber":"cmis:AB","visibility":0,"participation":true}]`; a.body != want {
		t.Errorf("create_groups (trimmed):\n got %s\nwant %s", a.body, want)
	}
	a = call(t, st.base, "core_group_get_course_groups", "courseid", c)
	if want := `[{"id":2,"courseid":2,"name":"A &amp; B","description":"","descriptionformat":1,"enrolmentkey":"k","idnumber":"cmis:AB","visibility":0,"participation":true},` +
		`{"id":1,"courseid":2,"name":"G1","description":"x","descriptionformat":1,"enrolmentkey":null,"idnumber":"cmis:G1","visibility":0,"participation":true}]`; a.body != want {
		t.Errorf("get_course_groups:\n got %s\nwant %s", a.body, want)
	}
	a = call(t, st.base, "core_group_get_groups", "groupids[0]", "1")
	if want := `[{"id":1,"courseid":2,"name":"G1","description":"x","descriptionformat":1,"enrolmentkey":null,"idnumber":"cmis:G1","visibility":0,"participation":true,"customfields":[]}]`; a.body != want {
		t.Errorf("get_groups:\n got %s\nwant %s", a.body, want)
	}

	a = call(t, st.base, "core_group_add_group_members",
		"members[0][groupid]", "1", "members[0][userid]", itoa(st.u3),
		"members[1][groupid]", "1", "members[1][userid]", itoa(st.u1))
	if a.body != "null" {
		t.Fatalf("add members: %s", a.body)
	}
	a = call(t, st.base, "core_group_get_group_members", "groupids[0]", "1")
	// Ordered by lastname, firstname: Student 001, Tutor 001.
	if want := `[{"groupid":1,"userids":[3,5]}]`; a.body != want {
		t.Errorf("get_group_members: %s, want %s", a.body, want)
	}

	a = call(t, st.base, "core_group_create_groupings", "groupings[0][courseid]", c, "groupings[0][name]", "GG",
		"groupings[0][description]", "x", "groupings[0][idnumber]", "cmis:GG1")
	if want := `[{"id":1,"courseid":2,"name":"GG","description":"x","descriptionformat":1,"idnumber":"cmis:GG1"}]`; a.body != want {
		t.Errorf("create_groupings: %s", a.body)
	}
	a = call(t, st.base, "core_group_get_course_groupings", "courseid", c)
	if want := `[{"id":1,"courseid":2,"name":"GG","description":"x","descriptionformat":1,"idnumber":"cmis:GG1"}]`; a.body != want {
		t.Errorf("get_course_groupings: %s", a.body)
	}
	a = call(t, st.base, "core_group_get_groupings", "groupingids[0]", "1", "returngroups", "1")
	if want := `[{"id":1,"courseid":2,"name":"GG","description":"x","descriptionformat":1,"idnumber":"cmis:GG1","customfields":[]}]`; a.body != want {
		t.Errorf("get_groupings without groups: %s", a.body)
	}
	for i := 0; i < 2; i++ { // assigning twice is a no-op
		if a = call(t, st.base, "core_group_assign_grouping", "assignments[0][groupingid]", "1", "assignments[0][groupid]", "1"); a.body != "null" {
			t.Fatalf("assign: %s", a.body)
		}
	}
	a = call(t, st.base, "core_group_get_groupings", "groupingids[0]", "1", "returngroups", "1")
	if want := `[{"id":1,"courseid":2,"name":"GG","description":"x","descriptionformat":1,"idnumber":"cmis:GG1","customfields":[],` +
		`"groups":[{"id":1,"courseid":2,"name":"G1","description":"x","descriptionformat":1,"enrolmentkey":null,"idnumber":"cmis:G1","customfields":[]}]}]`; a.body != want {
		t.Errorf("get_groupings:\n got %s\nwant %s", a.body, want)
	}

	a = call(t, st.base, "core_enrol_get_enrolled_users", "courseid", c,
		"options[0][name]", "userfields", "options[0][value]", "id,username,idnumber")
	if want := `[{"id":3,"username":"s001","fullname":"Student 001","idnumber":"100001"},{"id":4,"username":"s002","fullname":"Student 002","idnumber":"100002"},{"id":5,"username":"t001","fullname":"Tutor 001"}]`; a.body != want {
		t.Errorf("get_enrolled_users:\n got %s\nwant %s", a.body, want)
	}
	a = call(t, st.base, "core_user_get_users_by_field", "field", "idnumber", "values[0]", "100001", "values[1]", "nobody")
	if want := `[{"id":3,"username":"s001","firstname":"Student","lastname":"001","fullname":"Student 001","email":"s001@example.org","idnumber":"100001"}]`; a.body != want {
		t.Errorf("get_users_by_field:\n got %s\nwant %s", a.body, want)
	}
	if a = call(t, st.base, "core_user_get_users_by_field", "field", "username", "values[0]", "nobody"); a.body != "[]" {
		t.Errorf("get_users_by_field none: %s", a.body)
	}
	if a = call(t, st.base, "core_user_get_users_by_field", "field", "shoesize", "values[0]", "1"); !strings.Contains(a.body, `"errorcode":"codingerror"`) {
		t.Errorf("get_users_by_field bad field: %s", a.body)
	}

	a = call(t, st.base, "core_course_get_courses_by_field", "field", "idnumber", "value", "MOD001")
	var courses struct {
		Courses []struct {
			ID                  int
			Shortname, Idnumber string
			Fullname            string
		}
		Warnings []any
	}
	if err := json.Unmarshal([]byte(a.body), &courses); err != nil || len(courses.Courses) != 1 || courses.Courses[0].ID != st.c ||
		courses.Courses[0].Shortname != "MOD001" || courses.Warnings == nil || !strings.HasSuffix(a.body, `"warnings":[]}`) {
		t.Errorf("get_courses_by_field: %v %s", err, a.body)
	}

	a = call(t, st.base, "core_webservice_get_site_info")
	var info struct {
		Sitename, Username, Siteurl, Release, Version string
		Userid                                        int
		Functions                                     []struct{ Name, Version string }
	}
	if err := json.Unmarshal([]byte(a.body), &info); err != nil {
		t.Fatal(err)
	}
	if info.Sitename != "Test site" || info.Release != "4.5.6+ (Build: 20250101)" || info.Version != "2024100706" ||
		info.Siteurl != st.base || info.Userid == 0 || info.Username == "" || len(info.Functions) != len(moodlesim.FunctionNames()) {
		t.Errorf("site info: %+v", info)
	}

	if a = call(t, st.base, "enrol_manual_enrol_users", "enrolments[0][roleid]", "5", "enrolments[0][userid]", itoa(st.u4),
		"enrolments[0][courseid]", c); a.body != "null" {
		t.Errorf("enrol: %s", a.body)
	}
	if got := st.s.State().Enrolments[st.c]; len(got) != 4 {
		t.Errorf("enrolments after enrol: %v", got)
	}

	// update_groups and update_groupings answer null.
	if a = call(t, st.base, "core_group_update_groups", "groups[0][id]", "1", "groups[0][name]", "G1 renamed",
		"groups[0][idnumber]", "cmis:G1b"); a.body != "null" {
		t.Errorf("update_groups: %s", a.body)
	}
	if a = call(t, st.base, "core_group_update_groupings", "groupings[0][id]", "1", "groupings[0][name]", "GG2",
		"groupings[0][description]", ""); a.body != "null" {
		t.Errorf("update_groupings: %s", a.body)
	}
	state := st.s.State()
	if state.Groups[0].Name != "G1 renamed" || state.Groups[0].IDNumber != "cmis:G1b" || state.Groupings[0].Name != "GG2" {
		t.Errorf("after updates: %+v %+v", state.Groups[0], state.Groupings[0])
	}
	if a = call(t, st.base, "core_group_unassign_grouping", "unassignments[0][groupingid]", "1", "unassignments[0][groupid]", "1"); a.body != "null" {
		t.Errorf("unassign: %s", a.body)
	}
	if got := st.s.State().Groupings[0].Groups; len(got) != 0 {
		t.Errorf("after unassign: %v", got)
	}
}

func TestIdnumberHiddenByDefault(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	a := call(t, st.base, "core_enrol_get_enrolled_users", "courseid", itoa(st.c),
		"options[0][name]", "userfields", "options[0][value]", "id,username,idnumber")
	if strings.Contains(a.body, "idnumber") || !strings.Contains(a.body, `"username":"s001"`) {
		t.Errorf("idnumber shown without ShowIdnumber: %s", a.body)
	}
}

func TestXMLAndGET(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	mustGroup(t, st.base, st.c, "G1", "")
	// No moodlewsrestformat: Moodle answers XML.
	a := postRaw(t, st.base, "", kv("wstoken", token, "wsfunction", "core_group_get_group_members", "groupids[0]", "1"))
	want := "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<RESPONSE>\n<MULTIPLE>\n<SINGLE>\n" +
		"<KEY name=\"groupid\"><VALUE>1</VALUE>\n</KEY>\n<KEY name=\"userids\"><MULTIPLE>\n</MULTIPLE>\n</KEY>\n" +
		"</SINGLE>\n</MULTIPLE>\n</RESPONSE>\n"
	if a.body != want || !strings.HasPrefix(a.ctype, "application/xml") {
		t.Errorf("XML:\n got %q\nwant %q", a.body, want)
	}
	// GET with everything in the query string.
	resp, err := http.Get(st.base + moodlesim.RESTPath + "?" + join(wsParams("core_group_get_course_groups"), kv("courseid", itoa(st.c))))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var groups []struct{ Name string }
	if err := json.NewDecoder(resp.Body).Decode(&groups); err != nil || len(groups) != 1 || groups[0].Name != "G1" {
		t.Errorf("GET: %v %+v", err, groups)
	}
}

func TestCreateGroupingWithoutIdnumber(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	a := call(t, st.base, "core_group_create_groupings", "groupings[0][courseid]", itoa(st.c),
		"groupings[0][name]", "GG", "groupings[0][description]", "")
	if !strings.Contains(a.body, `"errorcode":"invalidresponse"`) {
		t.Errorf("answer: %s", a.body)
	}
	if n := len(st.s.State().Groupings); n != 1 {
		t.Errorf("grouping should be created before the answer fails; have %d", n)
	}
}

func TestTransactions(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	g := mustGroup(t, st.base, st.c, "G1", "")

	// One enrolled and one unenrolled member: nobody is added.
	a := call(t, st.base, "core_group_add_group_members",
		"members[0][groupid]", itoa(g), "members[0][userid]", itoa(st.u1),
		"members[1][groupid]", itoa(g), "members[1][userid]", itoa(st.u4))
	if a.body != bodyInvalidParam {
		t.Errorf("answer: %s", a.body)
	}
	if m := members(t, st.s, g); len(m) != 0 {
		t.Errorf("members after failed call: %v", m)
	}

	// A valid group then a duplicate: nothing created, and the id the
	// rolled-back group took is not reused.
	a = call(t, st.base, "core_group_create_groups",
		"groups[0][courseid]", itoa(st.c), "groups[0][name]", "New", "groups[0][description]", "",
		"groups[1][courseid]", itoa(st.c), "groups[1][name]", "G1", "groups[1][description]", "")
	if a.body != bodyInvalidParam {
		t.Errorf("answer: %s", a.body)
	}
	if n := len(st.s.State().Groups); n != 1 {
		t.Errorf("groups after failed call: %d", n)
	}
	if id := mustGroup(t, st.base, st.c, "New", ""); id != g+2 {
		t.Errorf("new group id %d, want %d (ids are never reused)", id, g+2)
	}

	// Same name twice in one call.
	a = call(t, st.base, "core_group_create_groups",
		"groups[0][courseid]", itoa(st.c), "groups[0][name]", "Twin", "groups[0][description]", "",
		"groups[1][courseid]", itoa(st.c), "groups[1][name]", "Twin", "groups[1][description]", "")
	if a.body != bodyInvalidParam {
		t.Errorf("twin: %s", a.body)
	}
	// A bad second assignment undoes the first.
	gg := call(t, st.base, "core_group_create_groupings", "groupings[0][courseid]", itoa(st.c),
		"groupings[0][name]", "GG", "groupings[0][description]", "", "groupings[0][idnumber]", "gg")
	if !strings.HasPrefix(gg.body, "[{") {
		t.Fatal(gg.body)
	}
	a = call(t, st.base, "core_group_assign_grouping",
		"assignments[0][groupingid]", "1", "assignments[0][groupid]", itoa(g),
		"assignments[1][groupingid]", "1", "assignments[1][groupid]", "999")
	if a.body != bodyNoGroup {
		t.Errorf("assign: %s", a.body)
	}
	if got := st.s.State().Groupings[0].Groups; len(got) != 0 {
		t.Errorf("grouping groups after failed call: %v", got)
	}
}

func TestUniqueness(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	mustGroup(t, st.base, st.c, "Lab A", "cmis:MOD:A")
	// Same name and idnumber in another course are fine.
	mustGroup(t, st.base, st.d, "Lab A", "cmis:MOD:A")
	b := mustGroup(t, st.base, st.c, "Lab B", "cmis:MOD:B")
	// Empty idnumbers never collide.
	mustGroup(t, st.base, st.c, "Lab C", "")
	mustGroup(t, st.base, st.c, "Lab D", "")

	tests := []struct {
		name   string
		fn     string
		params []string
		want   string
	}{
		{"trailing space name", "core_group_create_groups",
			[]string{"groups[0][courseid]", itoa(st.c), "groups[0][name]", "lab a ", "groups[0][description]", ""}, bodyInvalidParam},
		{"update to a used idnumber", "core_group_update_groups",
			[]string{"groups[0][id]", itoa(b), "groups[0][name]", "Lab B", "groups[0][idnumber]", "cmis:MOD:A"}, bodyIDNumberTaken},
		{"update to a used name", "core_group_update_groups",
			[]string{"groups[0][id]", itoa(b), "groups[0][name]", "Lab A"}, bodyInvalidParam},
		{"update a missing group", "core_group_update_groups",
			[]string{"groups[0][id]", "999", "groups[0][name]", "X"}, bodyInvalidParam},
		{"update keeping own idnumber", "core_group_update_groups",
			[]string{"groups[0][id]", itoa(b), "groups[0][name]", "Lab B", "groups[0][idnumber]", "cmis:MOD:B"}, "null"},
		{"idnumber too long", "core_group_create_groups",
			[]string{"groups[0][courseid]", itoa(st.c), "groups[0][name]", "Long", "groups[0][description]", "", "groups[0][idnumber]", strings.Repeat("x", 101)},
			`{"exception":"dml_write_exception","errorcode":"dmlwriteexception","message":"Error writing to database"}`},
	}
	for _, tc := range tests {
		if a := call(t, st.base, tc.fn, tc.params...); a.body != tc.want {
			t.Errorf("%s: %s", tc.name, a.body)
		}
	}
}

func TestDeletes(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	g1 := mustGroup(t, st.base, st.c, "G1", "")
	g2 := mustGroup(t, st.base, st.c, "G2", "")
	if err := st.s.AddMember(g1, st.u1); err != nil {
		t.Fatal(err)
	}
	gid, err := st.s.AddGrouping(moodlesim.Grouping{CourseID: st.c, Name: "GG", Groups: []int{g1, g2}})
	if err != nil {
		t.Fatal(err)
	}
	if a := call(t, st.base, "core_group_delete_groups", "groupids[0]", itoa(g1), "groupids[1]", "4242"); a.body != "null" {
		t.Fatalf("delete: %s", a.body)
	}
	state := st.s.State()
	if len(state.Groups) != 1 || state.Groups[0].ID != g2 || len(state.Groupings[0].Groups) != 1 || state.Groupings[0].Groups[0] != g2 {
		t.Errorf("after group delete: %+v", state)
	}
	if a := call(t, st.base, "core_group_delete_groupings", "groupingids[0]", itoa(gid)); a.body != "null" {
		t.Fatalf("delete grouping: %s", a.body)
	}
	state = st.s.State()
	if len(state.Groupings) != 0 || len(state.Groups) != 1 {
		t.Errorf("deleting a grouping must keep its groups: %+v", state)
	}
	if a := call(t, st.base, "core_group_get_groups", "groupids[0]", itoa(g1)); a.body != bodyNoGroup {
		t.Errorf("deleted group: %s", a.body)
	}
}

func TestWrongHost(t *testing.T) {
	s := moodlesim.New(moodlesim.Options{Token: token, WWWRoot: "http://moodle.example.test"})
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Post(base+moodlesim.RESTPath, "application/x-www-form-urlencoded", strings.NewReader(wsParams("core_webservice_get_site_info")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "http://moodle.example.test" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("wrong host: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest(http.MethodPost, base+moodlesim.RESTPath, strings.NewReader(wsParams("core_webservice_get_site_info")))
	req.Host = "moodle.example.test"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Siteurl string }
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || info.Siteurl != "http://moodle.example.test" {
		t.Errorf("right host: %d %v %+v", resp.StatusCode, err, info)
	}
}

func TestMoreFunctions(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	g := mustGroup(t, st.base, st.c, "G1", "")
	if err := st.s.AddMember(g, st.u2); err != nil {
		t.Fatal(err)
	}
	ids := func(body string) []int {
		var out []struct{ ID int }
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			var wrapped struct{ Courses []struct{ ID int } }
			if err := json.Unmarshal([]byte(body), &wrapped); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			for _, c := range wrapped.Courses {
				out = append(out, struct{ ID int }{c.ID})
			}
		}
		var r []int
		for _, o := range out {
			r = append(r, o.ID)
		}
		return r
	}
	tests := []struct {
		name   string
		fn     string
		params []string
		want   []int
	}{
		{"enrolled users in a group", "core_enrol_get_enrolled_users",
			[]string{"courseid", itoa(st.c), "options[0][name]", "groupid", "options[0][value]", itoa(g)}, []int{st.u2}},
		{"enrolled users paged", "core_enrol_get_enrolled_users",
			[]string{"courseid", itoa(st.c), "options[0][name]", "limitfrom", "options[0][value]", "1", "options[1][name]", "limitnumber", "options[1][value]", "1"}, []int{st.u2}},
		{"users by id", "core_user_get_users_by_field", []string{"field", "id", "values[0]", itoa(st.u4), "values[1]", itoa(st.u1)}, []int{st.u1, st.u4}},
		{"users by username", "core_user_get_users_by_field", []string{"field", "username", "values[0]", "s002"}, []int{st.u2}},
		{"users by email", "core_user_get_users_by_field", []string{"field", "email", "values[0]", "T001@example.org"}, []int{st.u3}},
		{"all courses", "core_course_get_courses_by_field", nil, []int{st.c, st.d}},
		{"course by id", "core_course_get_courses_by_field", []string{"field", "id", "value", itoa(st.d)}, []int{st.d}},
		{"courses by ids", "core_course_get_courses_by_field", []string{"field", "ids", "value", itoa(st.c) + "," + itoa(st.d)}, []int{st.c, st.d}},
		{"course by shortname", "core_course_get_courses_by_field", []string{"field", "shortname", "value", "mod002"}, []int{st.d}},
		{"no course", "core_course_get_courses_by_field", []string{"field", "idnumber", "value", "NOPE"}, nil},
	}
	for _, tc := range tests {
		a := call(t, st.base, tc.fn, tc.params...)
		if got := ids(a.body); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v (%s)", tc.name, got, tc.want, a.body)
		}
	}

	errs := []struct {
		name, fn string
		params   []string
		code     string
	}{
		{"username not clean", "core_user_get_users_by_field", []string{"field", "username", "values[0]", "S002"}, "invalidparameter"},
		{"id not an integer", "core_user_get_users_by_field", []string{"field", "id", "values[0]", "x"}, "invalidparameter"},
		{"bad course field", "core_course_get_courses_by_field", []string{"field", "colour", "value", "x"}, "invalidparameter"},
		{"bad description format", "core_group_create_groups", []string{"groups[0][courseid]", itoa(st.c), "groups[0][name]", "F",
			"groups[0][description]", "", "groups[0][descriptionformat]", "3"}, "formatnotsupported"},
		{"bad visibility", "core_group_create_groups", []string{"groups[0][courseid]", itoa(st.c), "groups[0][name]", "F",
			"groups[0][description]", "", "groups[0][visibility]", "7"}, "invalidparameter"},
		{"visibility of a group with members", "core_group_update_groups", []string{"groups[0][id]", itoa(g), "groups[0][name]", "G1",
			"groups[0][visibility]", "2"}, "invalidparameter"},
		{"enrol: no such role", "enrol_manual_enrol_users", []string{"enrolments[0][roleid]", "2", "enrolments[0][userid]", itoa(st.u4),
			"enrolments[0][courseid]", itoa(st.c)}, "wsusercannotassign"},
		{"enrol: no such course", "enrol_manual_enrol_users", []string{"enrolments[0][roleid]", "5", "enrolments[0][userid]", itoa(st.u4),
			"enrolments[0][courseid]", "999"}, "invalidparameter"},
		{"get groupings: missing", "core_group_get_groupings", []string{"groupingids[0]", "999"}, "invalidrecord"},
		{"update groupings: missing", "core_group_update_groupings", []string{"groupings[0][id]", "999", "groupings[0][name]", "X",
			"groupings[0][description]", ""}, "invalidparameter"},
		{"assign: missing grouping", "core_group_assign_grouping", []string{"assignments[0][groupingid]", "999", "assignments[0][groupid]", itoa(g)}, "invalidrecord"},
	}
	for _, tc := range errs {
		a := call(t, st.base, tc.fn, tc.params...)
		var e struct{ Errorcode string }
		if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Errorcode != tc.code {
			t.Errorf("%s: %s, want errorcode %s", tc.name, a.body, tc.code)
		}
	}
}

func TestMultipartBody(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range [][2]string{{"wstoken", token}, {"wsfunction", "core_group_get_course_groups"},
		{"moodlewsrestformat", "json"}, {"courseid", itoa(st.c)}} {
		if err := mw.WriteField(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	mw.Close()
	resp, err := http.Post(st.base+moodlesim.RESTPath, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "[]" {
		t.Errorf("multipart: %s", b)
	}
}

func TestDeleteGroupingByHand(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	id, err := st.s.AddGrouping(moodlesim.Grouping{CourseID: st.c, Name: "GG", IDNumber: "gg"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.s.AddGrouping(moodlesim.Grouping{CourseID: st.c, Name: "gg"}); !errors.Is(err, moodlesim.ErrConflict) {
		t.Errorf("duplicate grouping name: %v", err)
	}
	if err := st.s.DeleteGrouping(id); err != nil {
		t.Fatal(err)
	}
	if err := st.s.DeleteGrouping(id); !errors.Is(err, moodlesim.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}
