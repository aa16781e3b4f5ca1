package moodlesim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodlesim"
)

// bigCourse makes a course with n enrolled users and one group.
func bigCourse(t *testing.T, opts moodlesim.Options, n int) (*moodlesim.Server, string, int, []int) {
	t.Helper()
	s, base := start(t, opts)
	c := s.AddCourse(moodlesim.Course{ShortName: "BIG"})
	users := make([]int, n)
	for i := range users {
		users[i] = s.AddUser(moodlesim.User{Username: fmt.Sprintf("u%04d", i), FirstName: "U", LastName: fmt.Sprintf("%04d", i)})
		if err := s.Enrol(c, users[i]); err != nil {
			t.Fatal(err)
		}
	}
	g, err := s.AddGroup(moodlesim.Group{CourseID: c, Name: "All"})
	if err != nil {
		t.Fatal(err)
	}
	return s, base, g, users
}

func memberBody(g int, users []int) string {
	var pairs []string
	for i, u := range users {
		pairs = append(pairs, fmt.Sprintf("members[%d][groupid]", i), itoa(g), fmt.Sprintf("members[%d][userid]", i), itoa(u))
	}
	return kv(pairs...)
}

// TestMaxInputVars reproduces the three scenarios recorded against a real
// Moodle with max_input_vars=1000, and the fix of raising it.
func TestMaxInputVars(t *testing.T) {
	ws := wsParams("core_group_add_group_members")
	tests := []struct {
		name      string
		maxVars   int
		n         int
		layout    string // "first", "url", "last"
		wantBody  string
		wantAdded int
	}{
		{"params first, 600 members", 0, 600, "first", "null", 499},
		{"params first, 500 members", 0, 500, "first", "null", 499},
		{"params first, 499 members fit exactly", 0, 499, "first", "null", 499},
		{"params in URL, 600 members", 0, 600, "url", bodyInvalidParam, 0},
		{"params in URL, 500 members fit (N+1 body vars)", 0, 500, "url", "null", 500},
		{"params last, 600 members", 0, 600, "last", xmlInvalidToken, 0},
		{"max_input_vars 5000", 5000, 600, "first", "null", 600},
		{"small limit", 10, 600, "first", "null", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, base, g, users := bigCourse(t, moodlesim.Options{MaxInputVars: tc.maxVars}, tc.n)
			body := memberBody(g, users)
			var a answer
			switch tc.layout {
			case "first":
				a = postRaw(t, base, "", ws+"&"+body)
			case "url":
				a = postRaw(t, base, ws, body)
			case "last":
				a = postRaw(t, base, "", body+"&"+ws)
			}
			if a.body != tc.wantBody {
				t.Errorf("answer %q, want %q", a.body, tc.wantBody)
			}
			if got := len(members(t, s, g)); got != tc.wantAdded {
				t.Errorf("%d members added, want %d", got, tc.wantAdded)
			}
		})
	}
}

func TestMaxInputVarsQueryString(t *testing.T) {
	// GET keeps exactly N variables: with N=5, wstoken..format plus two
	// member keys survive; the third member key is dropped.
	s, base, g, users := bigCourse(t, moodlesim.Options{MaxInputVars: 5}, 3)
	q := join(wsParams("core_group_add_group_members"), memberBody(g, users[:1]), kv("members[1][groupid]", itoa(g)))
	resp, err := http.Get(base + moodlesim.RESTPath + "?" + q)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := members(t, s, g); len(got) != 1 {
		t.Errorf("members %v", got)
	}
}

func TestFaults(t *testing.T) {
	t.Run("latency", func(t *testing.T) {
		st := newSite(t, moodlesim.Options{})
		st.s.SetFaults(moodlesim.Faults{Latency: 50 * time.Millisecond})
		t0 := time.Now()
		a := call(t, st.base, "core_webservice_get_site_info")
		if d := time.Since(t0); d < 50*time.Millisecond || a.status != http.StatusOK {
			t.Errorf("took %v, status %d", d, a.status)
		}
	})
	t.Run("fail", func(t *testing.T) {
		st := newSite(t, moodlesim.Options{})
		st.s.SetFaults(moodlesim.Faults{FailRate: 1})
		a := call(t, st.base, "core_group_create_groups", "groups[0][courseid]", itoa(st.c), "groups[0][name]", "G", "groups[0][description]", "")
		if a.status != http.StatusInternalServerError || !strings.HasPrefix(a.ctype, "text/html") || !strings.Contains(a.body, "Internal Server Error") {
			t.Errorf("fail: %d %q %q", a.status, a.ctype, a.body)
		}
		if n := len(st.s.State().Groups); n != 0 {
			t.Errorf("failed call applied: %d groups", n)
		}
		if st.s.Calls()["core_group_create_groups"] != 1 {
			t.Errorf("calls: %v", st.s.Calls())
		}
	})
	t.Run("fail after apply", func(t *testing.T) {
		st := newSite(t, moodlesim.Options{})
		st.s.SetFaults(moodlesim.Faults{FailRate: 1, ApplyBeforeFault: true})
		a := call(t, st.base, "core_group_create_groups", "groups[0][courseid]", itoa(st.c), "groups[0][name]", "G", "groups[0][description]", "")
		if a.status != http.StatusInternalServerError || len(st.s.State().Groups) != 1 {
			t.Errorf("status %d, groups %d", a.status, len(st.s.State().Groups))
		}
	})
	t.Run("only listed functions", func(t *testing.T) {
		st := newSite(t, moodlesim.Options{})
		st.s.SetFaults(moodlesim.Faults{FailRate: 1, Functions: []string{"core_group_create_groups"}})
		if a := call(t, st.base, "core_webservice_get_site_info"); a.status != http.StatusOK {
			t.Errorf("unlisted function faulted: %d", a.status)
		}
		if a := call(t, st.base, "core_group_create_groups"); a.status != http.StatusInternalServerError {
			t.Errorf("listed function not faulted: %d", a.status)
		}
	})
	t.Run("drop", func(t *testing.T) {
		st := newSite(t, moodlesim.Options{})
		st.s.SetFaults(moodlesim.Faults{DropRate: 1})
		resp, err := http.Post(st.base+moodlesim.RESTPath, "application/x-www-form-urlencoded",
			strings.NewReader(wsParams("core_webservice_get_site_info")))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("expected a transport error, got %d", resp.StatusCode)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		st := newSite(t, moodlesim.Options{})
		st.s.SetFaults(moodlesim.Faults{TimeoutRate: 1})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, st.base+moodlesim.RESTPath,
			strings.NewReader(join(wsParams("core_group_create_groups"), kv("groups[0][courseid]", itoa(st.c), "groups[0][name]", "G", "groups[0][description]", ""))))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("expected a timeout, got %d", resp.StatusCode)
		}
		if n := len(st.s.State().Groups); n != 0 {
			t.Errorf("hung call applied: %d groups", n)
		}
	})
	t.Run("bounded hang then answer", func(t *testing.T) {
		st := newSite(t, moodlesim.Options{})
		st.s.SetFaults(moodlesim.Faults{TimeoutRate: 1, Hang: 30 * time.Millisecond})
		t0 := time.Now()
		a := call(t, st.base, "core_webservice_get_site_info")
		if a.status != http.StatusOK || time.Since(t0) < 30*time.Millisecond {
			t.Errorf("status %d after %v", a.status, time.Since(t0))
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		pattern := func() string {
			st := newSite(t, moodlesim.Options{})
			st.s.SetFaults(moodlesim.Faults{FailRate: 0.5, Seed: 42})
			var b strings.Builder
			for i := 0; i < 40; i++ {
				if call(t, st.base, "core_webservice_get_site_info").status == http.StatusOK {
					b.WriteByte('.')
				} else {
					b.WriteByte('X')
				}
			}
			return b.String()
		}
		p1, p2 := pattern(), pattern()
		if p1 != p2 || !strings.Contains(p1, "X") || !strings.Contains(p1, ".") {
			t.Errorf("patterns differ or are degenerate:\n%s\n%s", p1, p2)
		}
	})
}

func TestConcurrency(t *testing.T) {
	s, base, _, users := bigCourse(t, moodlesim.Options{}, 40)
	s.SetFaults(moodlesim.Faults{Latency: time.Millisecond})
	const workers = 8
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			a := call(t, base, "core_group_create_groups", "groups[0][courseid]", "2",
				"groups[0][name]", fmt.Sprintf("W%d", w), "groups[0][description]", "", "groups[0][idnumber]", fmt.Sprintf("w%d", w))
			var out []struct{ ID int }
			if err := json.Unmarshal([]byte(a.body), &out); err != nil || len(out) != 1 {
				t.Errorf("create: %s", a.body)
				return
			}
			for i := w; i < len(users); i += workers {
				if a := call(t, base, "core_group_add_group_members", "members[0][groupid]", itoa(out[0].ID), "members[0][userid]", itoa(users[i])); a.body != "null" {
					t.Errorf("add: %s", a.body)
				}
				_ = s.State()
				_ = s.Calls()
			}
		}(w)
	}
	wg.Wait()
	state := s.State()
	total := 0
	for _, g := range state.Groups {
		total += len(g.Members)
	}
	if len(state.Groups) != workers+1 || total != len(users) {
		t.Errorf("groups %d, members %d", len(state.Groups), total)
	}
	if c := s.Calls(); c["core_group_create_groups"] != workers || c["core_group_add_group_members"] != len(users) {
		t.Errorf("calls %v", c)
	}
}

const seedJSON = `{
  "courses": [{"shortname": "MOD001", "fullname": "Module 001", "idnumber": "MOD001"},
              {"id": 7, "shortname": "MOD002", "fullname": "Module 002", "startdate": 1700000000, "enddate": 1720000000,
               "manualdisabled": true}],
  "users": [{"username": "s001", "idnumber": "100001", "firstname": "Student", "lastname": "One"},
            {"username": "s002", "firstname": "Student", "lastname": "Two"}],
  "enrolments": [{"course": "MOD001", "user": "s001"}, {"course": "MOD001", "user": "s002", "roles": []},
                 {"course": 7, "user": 3, "method": "self", "suspended": true, "timeend": 1720000000, "roles": [4]},
                 {"course": 7, "user": 3, "roles": [5, 4]}],
  "groups": [{"course": "MOD001", "name": "Lab A", "idnumber": "cmis:MOD001:A", "members": ["s001", 4]},
             {"course": 7, "name": "Hand made"}],
  "groupings": [{"course": "MOD001", "name": "MOD001", "idnumber": "cmis:MOD001", "groups": ["cmis:MOD001:A"]}]
}`

func TestSeed(t *testing.T) {
	s := moodlesim.New(moodlesim.Options{})
	if err := s.LoadSeed(strings.NewReader(seedJSON)); err != nil {
		t.Fatal(err)
	}
	want := moodlesim.State{
		Courses: []moodlesim.Course{{ID: 2, ShortName: "MOD001", FullName: "Module 001", IDNumber: "MOD001"},
			{ID: 7, ShortName: "MOD002", FullName: "Module 002", StartDate: 1700000000, EndDate: 1720000000, ManualDisabled: true}},
		Users: []moodlesim.User{{ID: 3, Username: "s001", IDNumber: "100001", FirstName: "Student", LastName: "One"},
			{ID: 4, Username: "s002", FirstName: "Student", LastName: "Two"}},
		Enrolments: map[int][]int{2: {3, 4}, 7: {3}},
		UserEnrolments: []moodlesim.UserEnrolment{{CourseID: 2, UserID: 3, Method: "manual"}, {CourseID: 2, UserID: 4, Method: "manual"},
			{CourseID: 7, UserID: 3, Method: "manual"}, {CourseID: 7, UserID: 3, Method: "self", Suspended: true, TimeEnd: 1720000000}},
		RoleAssignments: []moodlesim.RoleAssignment{{CourseID: 2, UserID: 3, RoleID: 5}, {CourseID: 7, UserID: 3, RoleID: 4},
			{CourseID: 7, UserID: 3, RoleID: 5}},
		Groups: []moodlesim.Group{{ID: 1, CourseID: 2, Name: "Lab A", IDNumber: "cmis:MOD001:A", Members: []int{3, 4}},
			{ID: 2, CourseID: 7, Name: "Hand made", Members: []int{}}},
		Groupings: []moodlesim.Grouping{{ID: 1, CourseID: 2, Name: "MOD001", IDNumber: "cmis:MOD001", Groups: []int{1}}},
	}
	if got := s.State(); !reflect.DeepEqual(got, want) {
		t.Fatalf("state\n got %+v\nwant %+v", got, want)
	}
	// Ids stay unused after deletes, across a save and load.
	if err := s.DeleteGroup(2); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.SaveSeed(&buf); err != nil {
		t.Fatal(err)
	}
	s2 := moodlesim.New(moodlesim.Options{})
	if err := s2.LoadSeed(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("reload: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(s.State(), s2.State()) {
		t.Errorf("round trip\n got %+v\nwant %+v", s2.State(), s.State())
	}
	id1, err1 := s.AddGroup(moodlesim.Group{CourseID: 2, Name: "Next"})
	id2, err2 := s2.AddGroup(moodlesim.Group{CourseID: 2, Name: "Next"})
	if err1 != nil || err2 != nil || id1 != 3 || id2 != 3 {
		t.Errorf("next ids: %d %v, %d %v", id1, err1, id2, err2)
	}

	// A bad seed changes nothing.
	before := s2.State()
	bad := `{"users": [{"username": "new"}], "enrolments": [{"course": "NOPE", "user": "new"}]}`
	if err := s2.LoadSeed(strings.NewReader(bad)); !errors.Is(err, moodlesim.ErrNotFound) {
		t.Errorf("bad seed: %v", err)
	}
	if !reflect.DeepEqual(before, s2.State()) {
		t.Errorf("bad seed changed the site")
	}
	// Members must be enrolled.
	bad = `{"groups": [{"course": 7, "name": "X", "members": ["s002"]}]}`
	if err := s2.LoadSeed(strings.NewReader(bad)); !errors.Is(err, moodlesim.ErrNotEnrolled) {
		t.Errorf("unenrolled member: %v", err)
	}
}

func TestCalls(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	call(t, st.base, "core_webservice_get_site_info")
	call(t, st.base, "core_group_get_course_groups", "courseid", "abc")
	call(t, st.base, "core_group_get_course_groups", "courseid", itoa(st.c))
	postRaw(t, st.base, "", kv("wstoken", "bad", "wsfunction", "core_group_get_groups", "moodlewsrestformat", "json"))
	call(t, st.base, "no_such_function")
	want := map[string]int{"core_webservice_get_site_info": 1, "core_group_get_course_groups": 2, "core_group_get_groups": 1, "no_such_function": 1}
	if got := st.s.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	st.s.ResetCalls()
	if got := st.s.Calls(); len(got) != 0 {
		t.Errorf("after reset: %v", got)
	}
}

func TestHandChanges(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	g := mustGroup(t, st.base, st.c, "G1", "cmis:1")
	g2 := mustGroup(t, st.base, st.c, "G2", "cmis:2")
	for _, u := range []int{st.u1, st.u2} {
		if err := st.s.AddMember(g, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.s.AddMember(g, st.u4); !errors.Is(err, moodlesim.ErrNotEnrolled) {
		t.Errorf("AddMember unenrolled: %v", err)
	}
	if err := st.s.RenameGroup(g2, "g1"); !errors.Is(err, moodlesim.ErrConflict) {
		t.Errorf("RenameGroup to a used name: %v", err)
	}
	if err := st.s.RenameGroup(g2, "Renamed"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.s.AddGroup(moodlesim.Group{CourseID: st.c, Name: "Other", IDNumber: "cmis:1"}); !errors.Is(err, moodlesim.ErrConflict) {
		t.Errorf("AddGroup with a used idnumber: %v", err)
	}
	if _, err := st.s.AddGrouping(moodlesim.Grouping{CourseID: st.d, Name: "X", Groups: []int{g}}); !errors.Is(err, moodlesim.ErrInvalid) {
		t.Errorf("AddGrouping across courses: %v", err)
	}
	// Unenrolling removes the user's memberships in the course.
	if err := st.s.Unenrol(st.c, st.u1); err != nil {
		t.Fatal(err)
	}
	if m := members(t, st.s, g); !reflect.DeepEqual(m, []int{st.u2}) {
		t.Errorf("members after unenrol: %v", m)
	}
	if err := st.s.RemoveMember(g, st.u2); err != nil || len(members(t, st.s, g)) != 0 {
		t.Errorf("RemoveMember: %v", err)
	}
	if err := st.s.DeleteGroup(g); err != nil {
		t.Fatal(err)
	}
	if err := st.s.DeleteGroup(g); !errors.Is(err, moodlesim.ErrNotFound) {
		t.Errorf("second DeleteGroup: %v", err)
	}
	// A deleted course takes its groups and enrolments with it; the WS then
	// reports the course missing.
	if err := st.s.DeleteCourse(st.c); err != nil {
		t.Fatal(err)
	}
	state := st.s.State()
	if len(state.Groups) != 0 || len(state.Enrolments) != 0 || len(state.Courses) != 1 {
		t.Errorf("after DeleteCourse: %+v", state)
	}
	if a := call(t, st.base, "core_group_get_groups", "groupids[0]", itoa(g2)); a.body != bodyNoGroup {
		t.Errorf("group of deleted course: %s", a.body)
	}
	if a := call(t, st.base, "core_enrol_get_enrolled_users", "courseid", itoa(st.c)); a.body != bodyNoCourse {
		t.Errorf("deleted course: %s", a.body)
	}
}

func TestNotFoundPath(t *testing.T) {
	_, base := start(t, moodlesim.Options{})
	resp, err := http.Get(base + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d", resp.StatusCode)
	}
}
