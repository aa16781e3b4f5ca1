package moodlesim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/cmissync/cmissync/load/moodlesim"
)

func TestInspection(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	g := mustGroup(t, st.base, st.c, "G1", "cmis:G1")
	if a := call(t, st.base, "core_group_add_group_members", "members[0][groupid]", itoa(g), "members[0][userid]", itoa(st.u1)); a.body != "null" {
		t.Fatalf("add member: %s", a.body)
	}
	get := func(t *testing.T, method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, st.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}

	t.Run("state", func(t *testing.T) {
		code, body := get(t, http.MethodGet, "/_sim/state")
		var got moodlesim.State
		if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil {
			t.Fatalf("HTTP %d, %v: %s", code, err, body)
		}
		if want := st.s.State(); !reflect.DeepEqual(got, want) {
			t.Errorf("state\n got %+v\nwant %+v", got, want)
		}
		for _, key := range []string{`"courses"`, `"enrolments"`, `"members"`, `"idnumber": "cmis:G1"`} {
			if !strings.Contains(body, key) {
				t.Errorf("state JSON lacks %s:\n%s", key, body)
			}
		}
	})
	t.Run("calls", func(t *testing.T) {
		code, body := get(t, http.MethodGet, "/_sim/calls")
		var got map[string]int
		if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil {
			t.Fatalf("HTTP %d, %v: %s", code, err, body)
		}
		want := map[string]int{"core_group_create_groups": 1, "core_group_add_group_members": 1}
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(st.s.Calls(), want) {
			t.Errorf("calls %v (server %v), want %v", got, st.s.Calls(), want)
		}
	})
	for _, tc := range []struct {
		name, method, path string
		want               int
	}{
		{"unknown resource", http.MethodGet, "/_sim/nope", http.StatusNotFound},
		{"write method", http.MethodPost, "/_sim/state", http.StatusMethodNotAllowed},
		{"head", http.MethodHead, "/_sim/calls", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := get(t, tc.method, tc.path); code != tc.want {
				t.Errorf("HTTP %d, want %d: %s", code, tc.want, body)
			}
		})
	}
	t.Run("not loopback", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/_sim/state", nil)
		req.RemoteAddr = "192.0.2.7:40000"
		rec := httptest.NewRecorder()
		st.s.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "s001") {
			t.Errorf("HTTP %d: %s", rec.Code, rec.Body.String())
		}
	})
}

// TestInspectionBypassesWWWRoot: a loopback client may ask under any host
// name and under WWWRoot's path, where the web service itself redirects.
func TestInspectionBypassesWWWRoot(t *testing.T) {
	s := moodlesim.New(moodlesim.Options{WWWRoot: "https://moodle.example/lms"})
	s.AddCourse(moodlesim.Course{ShortName: "C"})
	for _, path := range []string{"/_sim/state", "/lms/_sim/state"} {
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8088"+path, nil)
		req.RemoteAddr = "127.0.0.1:40000"
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"shortname": "C"`) {
			t.Errorf("%s: HTTP %d: %s", path, rec.Code, rec.Body.String())
		}
	}
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8088/lms"+moodlesim.RESTPath, nil)
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Errorf("web service under the wrong host: HTTP %d, want 303", rec.Code)
	}
}

// TestInspectionUnderLoad reads /_sim/state and /_sim/calls while calls
// change the site (run with -race).
func TestInspectionUnderLoad(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 10 {
				// Not mustGroup: t.Fatal may not be called off the test's goroutine.
				body := join(wsParams("core_group_create_groups"), kv("groups[0][courseid]", itoa(st.c),
					"groups[0][name]", fmt.Sprintf("W%d-%d", w, i), "groups[0][description]", ""))
				resp, err := http.Post(st.base+moodlesim.RESTPath, "application/x-www-form-urlencoded", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
		go func() {
			defer wg.Done()
			for range 10 {
				for _, p := range []string{"/_sim/state", "/_sim/calls"} {
					resp, err := http.Get(st.base + p)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("%s: HTTP %d", p, resp.StatusCode)
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := len(st.s.State().Groups); n != 40 {
		t.Errorf("%d groups, want 40", n)
	}
}
