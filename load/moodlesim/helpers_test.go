package moodlesim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodlesim"
)

const token = "test-token"

// kv builds an ordered form body from name, value pairs.
func kv(pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(pairs[i]) + "=" + url.QueryEscape(pairs[i+1]))
	}
	return b.String()
}

// join joins form bodies with '&', skipping empty ones.
func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "&")
}

func wsParams(fn string) string {
	return kv("wstoken", token, "wsfunction", fn, "moodlewsrestformat", "json")
}

type answer struct {
	status int
	ctype  string
	body   string
}

// postRaw posts a form body to the REST endpoint; query is appended to the URL.
func postRaw(t *testing.T, base, query, body string) answer {
	t.Helper()
	u := base + moodlesim.RESTPath
	if query != "" {
		u += "?" + query
	}
	resp, err := http.Post(u, "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: string(b)}
}

// call posts wstoken, wsfunction and moodlewsrestformat first, then params.
func call(t *testing.T, base, fn string, params ...string) answer {
	t.Helper()
	return postRaw(t, base, "", join(wsParams(fn), kv(params...)))
}

// start runs a simulator on a loopback port for the test.
func start(t *testing.T, opts moodlesim.Options) (*moodlesim.Server, string) {
	t.Helper()
	if opts.Token == "" {
		opts.Token = token
	}
	s := moodlesim.New(opts)
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, base
}

// site is a small standard site: two courses, four users, u1..u3 enrolled in
// course c (u4 in none).
type site struct {
	s              *moodlesim.Server
	base           string
	c, d           int
	u1, u2, u3, u4 int
}

func newSite(t *testing.T, opts moodlesim.Options) site {
	t.Helper()
	s, base := start(t, opts)
	st := site{s: s, base: base}
	st.c = s.AddCourse(moodlesim.Course{ShortName: "MOD001", FullName: "Module 001", IDNumber: "MOD001"})
	st.d = s.AddCourse(moodlesim.Course{ShortName: "MOD002", FullName: "Module 002", IDNumber: "MOD002"})
	st.u1 = s.AddUser(moodlesim.User{Username: "s001", IDNumber: "100001", Email: "s001@example.org", FirstName: "Student", LastName: "001"})
	st.u2 = s.AddUser(moodlesim.User{Username: "s002", IDNumber: "100002", Email: "s002@example.org", FirstName: "Student", LastName: "002"})
	st.u3 = s.AddUser(moodlesim.User{Username: "t001", IDNumber: "", Email: "t001@example.org", FirstName: "Tutor", LastName: "001"})
	st.u4 = s.AddUser(moodlesim.User{Username: "x001", IDNumber: "100004", Email: "x001@example.org", FirstName: "Outside", LastName: "User"})
	for _, u := range []int{st.u1, st.u2, st.u3} {
		if err := s.Enrol(st.c, u); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func itoa(n int) string { return strconv.Itoa(n) }

// mustGroup creates a group through the WS and returns its id.
func mustGroup(t *testing.T, base string, course int, name, idnumber string) int {
	t.Helper()
	a := call(t, base, "core_group_create_groups",
		"groups[0][courseid]", itoa(course), "groups[0][name]", name,
		"groups[0][description]", "", "groups[0][idnumber]", idnumber)
	var out []struct{ ID int }
	if err := json.Unmarshal([]byte(a.body), &out); err != nil || len(out) != 1 {
		t.Fatalf("create group %q: %s", name, a.body)
	}
	return out[0].ID
}

func members(t *testing.T, s *moodlesim.Server, groupID int) []int {
	t.Helper()
	for _, g := range s.State().Groups {
		if g.ID == groupID {
			return g.Members
		}
	}
	t.Fatalf("group %d not found", groupID)
	return nil
}

// Exact error bodies from the reference notes (debugging off).
const (
	bodyInvalidParam  = `{"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected"}`
	bodyIDNumberTaken = `{"exception":"core\\exception\\moodle_exception","errorcode":"idnumbertaken","message":"This ID number is already in use"}`
	bodyInvalidUser   = `{"exception":"dml_missing_record_exception","errorcode":"invaliduser","message":"Invalid user"}`
	bodyNoGroup       = `{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table groups."}`
	bodyNoCourseCtx   = `{"exception":"core\\exception\\moodle_exception","errorcode":"errorcoursecontextnotvalid","message":"You cannot execute functions in the course context (course id:999999). The context error message was: Invalid parameter value detected"}`
	bodyNoCourse      = `{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table course."}`
	bodyInvalidToken  = `{"exception":"core\\exception\\moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}`
	bodyNoFunction    = `{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table external_functions."}`
	bodyAccess        = `{"exception":"webservice_access_exception","errorcode":"accessexception","message":"Access control exception"}`
	xmlInvalidToken   = "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<EXCEPTION class=\"core\\exception\\moodle_exception\">\n" +
		"<ERRORCODE>invalidtoken</ERRORCODE>\n<MESSAGE>Invalid token - token not found</MESSAGE>\n</EXCEPTION>\n"
)
