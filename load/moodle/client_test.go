package moodle_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
)

const secret = "s3cr3t-token-value"

func newClient(t *testing.T, h http.HandlerFunc, mut ...func(*moodle.Options)) *moodle.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	o := moodle.Options{URL: srv.URL, Token: secret, RetryWait: time.Millisecond, Retries: 2}
	for _, m := range mut {
		m(&o)
	}
	c, err := moodle.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRequestShape(t *testing.T) {
	var body string
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != moodle.Endpoint || r.Method != http.MethodPost || r.URL.RawQuery != "" {
			t.Errorf("request %s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery)
		}
		b := make([]byte, r.ContentLength)
		_, _ = r.Body.Read(b)
		body = string(b)
		fmt.Fprint(w, "null")
	})
	if err := c.AddMembers(context.Background(), []moodle.Pair{{A: 7, B: 41}, {A: 7, B: 42}}); err != nil {
		t.Fatal(err)
	}
	want := "wstoken=" + secret + "&wsfunction=core_group_add_group_members&moodlewsrestformat=json" +
		"&members%5B0%5D%5Bgroupid%5D=7&members%5B0%5D%5Buserid%5D=41&members%5B1%5D%5Bgroupid%5D=7&members%5B1%5D%5Buserid%5D=42"
	if body != want {
		t.Fatalf("body\n got %s\nwant %s", body, want)
	}
}

func TestErrorClassification(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		body      string
		code      string
		transient bool
		fatal     bool
	}{
		{"invalidparameter", 200, `{"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected"}`, "invalidparameter", false, false},
		{"invalidrecord", 200, `{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table groups."}`, "invalidrecord", false, false},
		{"invalidtoken", 200, `{"exception":"core\\exception\\moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}`, "invalidtoken", false, true},
		{"accessexception", 200, `{"exception":"webservice_access_exception","errorcode":"accessexception","message":"Access control exception"}`, "accessexception", false, true},
		{"html error page", 200, `<html><body>Proxy error</body></html>`, "", true, false},
		{"http 502", 502, `bad gateway`, "", true, false},
		{"xml after truncation", 200, "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<EXCEPTION class=\"moodle_exception\">\n<ERRORCODE>invalidtoken</ERRORCODE>\n<MESSAGE>Invalid token - token not found</MESSAGE>\n</EXCEPTION>", "invalidtoken", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			})
			err := c.DeleteGroups(context.Background(), []int64{1})
			if err == nil {
				t.Fatal("no error")
			}
			if got := moodle.ErrorCode(err); got != tc.code {
				t.Errorf("ErrorCode = %q, want %q (%v)", got, tc.code, err)
			}
			if moodle.IsTransient(err) != tc.transient {
				t.Errorf("IsTransient = %v, want %v", !tc.transient, tc.transient)
			}
			if moodle.IsFatal(err) != tc.fatal {
				t.Errorf("IsFatal = %v, want %v", !tc.fatal, tc.fatal)
			}
			wantCalls := int32(1)
			if tc.transient {
				wantCalls = 3 // one try and two retries
			}
			if calls.Load() != wantCalls {
				t.Errorf("calls = %d, want %d", calls.Load(), wantCalls)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error text contains the token: %v", err)
			}
		})
	}
}

func TestTransientThenSuccess(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(503)
			return
		}
		fmt.Fprint(w, `[{"id":5,"courseid":2,"name":"G","description":"","idnumber":"cmis:M:G"}]`)
	})
	gs, err := c.CreateGroups(context.Background(), []moodle.Group{{CourseID: 2, Name: "G", IDNumber: "cmis:M:G"}})
	if err != nil || len(gs) != 1 || gs[0].ID != 5 {
		t.Fatalf("CreateGroups = %+v, %v", gs, err)
	}
}

func TestCancellationStopsRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		cancel()
		w.WriteHeader(500)
	}, func(o *moodle.Options) { o.Retries = 10; o.RetryWait = time.Hour })
	err := c.DeleteGroups(ctx, []int64{1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("calls = %d after cancellation, want 1", calls.Load())
	}
}

func TestNetworkErrorIsTransientAndHidesToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	url := srv.URL
	srv.Close() // nothing listens any more
	c, err := moodle.New(moodle.Options{URL: url, Token: secret, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	err = c.DeleteGroups(context.Background(), []int64{1})
	if !moodle.IsTransient(err) {
		t.Fatalf("connection refused is not transient: %v", err)
	}
	if strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), secret) {
		t.Fatalf("error contains the token: %#v", err)
	}
}

func TestCapacityStaysUnderMaxInputVars(t *testing.T) {
	for _, maxVars := range []int{100, 1000, 5000} {
		c, err := moodle.New(moodle.Options{URL: "http://127.0.0.1:1", Token: "x", MaxInputVars: maxVars})
		if err != nil {
			t.Fatal(err)
		}
		for _, per := range []int{moodle.VarsPerID, moodle.VarsPerPair, moodle.VarsPerNewGroup} {
			n := c.Capacity(per)
			if total := n*per + 3; total > maxVars || n < 1 {
				t.Errorf("max_input_vars %d, %d vars per item: capacity %d makes %d variables", maxVars, per, n, total)
			}
			if float64(n*per+3) < 0.9*float64(maxVars) {
				t.Errorf("max_input_vars %d, %d vars per item: capacity %d wastes more than 10%%", maxVars, per, n)
			}
		}
	}
}

func TestOversizeRequestIsRefusedLocally(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1); fmt.Fprint(w, "null") },
		func(o *moodle.Options) { o.MaxInputVars = 100 })
	pairs := make([]moodle.Pair, 60) // 120 variables
	err := c.AddMembers(context.Background(), pairs)
	if err == nil || calls.Load() != 0 {
		t.Fatalf("oversize request: err %v, calls %d", err, calls.Load())
	}
}

func TestCheckFunctionsNamesMissing(t *testing.T) {
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"sitename":"S","functions":[{"name":"core_webservice_get_site_info","version":"1"},{"name":"core_group_create_groups","version":"1"}]}`)
	})
	_, err := c.CheckFunctions(context.Background(), []string{moodle.FnSiteInfo, moodle.FnCreateGroups, moodle.FnDeleteGroups})
	var mf *moodle.MissingFunctionsError
	if !errors.As(err, &mf) || len(mf.Missing) != 1 || mf.Missing[0] != moodle.FnDeleteGroups {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "External services") {
		t.Fatalf("error does not say where to add the function: %v", err)
	}
}

func TestRedirectMeansWrongWWWRoot(t *testing.T) {
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://moodle.example/webservice/rest/server.php", http.StatusSeeOther)
	})
	err := c.DeleteGroups(context.Background(), []int64{1})
	if !moodle.IsFatal(err) || !strings.Contains(err.Error(), "wwwroot") {
		t.Fatalf("err = %v", err)
	}
}
