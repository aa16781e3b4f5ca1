package moodle_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
)

const secret = "s3cr3t-token-value"

// startSim runs a simulator that accepts the test token on a loopback port.
func startSim(t *testing.T) (*moodlesim.Server, string) {
	t.Helper()
	sim := moodlesim.New(moodlesim.Options{Token: secret})
	base, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim, base
}

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
		{"http 500", 500, `<h1>Internal Server Error</h1>`, "", true, false},
		{"http 404", 404, `not found`, "", true, false},
		{"xml after truncation", 200, "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<EXCEPTION class=\"moodle_exception\">\n<ERRORCODE>invalidtoken</ERRORCODE>\n<MESSAGE>Invalid token - token not found</MESSAGE>\n</EXCEPTION>", "invalidtoken", false, true},
		{"redirect to the wwwroot", 303, ``, moodle.CodeWrongWWWRoot, false, true},
	}
	const retries = 3
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if tc.status == 303 {
					w.Header().Set("Location", "https://moodle.example/")
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}, func(o *moodle.Options) { o.Retries = retries })
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
			// A permanent error is never retried; a transient one is, up to
			// the limit.
			wantCalls := int32(1)
			if tc.transient {
				wantCalls = retries + 1
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

// TestRetriesAreBounded: a persistent HTTP 5xx is tried Retries+1 times, and
// the waits between attempts grow.
func TestRetriesAreBounded(t *testing.T) {
	const wait = 5 * time.Millisecond
	for _, retries := range []int{-1, 0, 1, 3} {
		t.Run(fmt.Sprintf("retries=%d", retries), func(t *testing.T) {
			var (
				mu    sync.Mutex
				times []time.Time
			)
			c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
				w.WriteHeader(http.StatusServiceUnavailable)
			}, func(o *moodle.Options) { o.Retries = retries; o.RetryWait = wait })
			err := c.AddMembers(context.Background(), []moodle.Pair{{A: 1, B: 2}})
			if !moodle.IsTransient(err) {
				t.Fatalf("err = %v, want a transient error", err)
			}
			var te *moodle.TransportError
			if !errors.As(err, &te) || te.Status != http.StatusServiceUnavailable {
				t.Errorf("err = %#v, want a TransportError with HTTP 503", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := max(retries, 0) + 1; len(times) != want {
				t.Fatalf("%d attempts, want %d", len(times), want)
			}
			// Lower bounds only: backoff doubles from RetryWait.
			for i := 1; i < len(times); i++ {
				if gap, least := times[i].Sub(times[i-1]), wait<<(i-1); gap < least {
					t.Errorf("wait before attempt %d: %v, want at least %v", i+1, gap, least)
				}
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

// TestTimeout: Options.Timeout ends a call that gets no answer, as a
// transient error that is retried. Only the outcome is checked, never how
// long it took.
func TestTimeout(t *testing.T) {
	t.Run("simulator hangs", func(t *testing.T) {
		sim, base := startSim(t)
		sim.SetFaults(moodlesim.Faults{TimeoutRate: 1, Functions: []string{moodle.FnSiteInfo}})
		c, err := moodle.New(moodle.Options{URL: base, Token: secret, Timeout: 50 * time.Millisecond, Retries: 1, RetryWait: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.SiteInfo(context.Background())
		if !moodle.IsTransient(err) || moodle.IsFatal(err) {
			t.Fatalf("err = %v, want a transient, non-fatal error", err)
		}
		if n := sim.Calls()[moodle.FnSiteInfo]; n != 2 {
			t.Errorf("%d attempts reached the simulator, want 2 (one retry)", n)
		}
		// The site itself is fine: other functions answer.
		if _, err := c.CourseGroups(context.Background(), 2); moodle.ErrorCode(err) != moodle.CodeCourseContext {
			t.Errorf("CourseGroups after the timeouts: %v", err)
		}
	})
	t.Run("handler never answers", func(t *testing.T) {
		c := newClient(t, hangUntilClientGivesUp, func(o *moodle.Options) { o.Timeout = 20 * time.Millisecond; o.Retries = -1 })
		err := c.DeleteGroups(context.Background(), []int64{1})
		var te *moodle.TransportError
		if !moodle.IsTransient(err) || !errors.As(err, &te) {
			t.Fatalf("err = %#v, want a TransportError", err)
		}
	})
}

// typeErrorBody is the reference's answer of enrol_manual_enrol_users for a
// user id that does not exist: an exception without an errorcode.
const typeErrorBody = `{"exception":"TypeError","message":"core\\user::get_name_placeholders(): Argument #1 ($user) must be of type stdClass, bool given, ..."}`

// TestExceptionWithoutErrorcode: an answer with an exception and no
// errorcode is a permanent Moodle error, never decoded as a result, never
// retried, whatever the call expected.
func TestExceptionWithoutErrorcode(t *testing.T) {
	var calls atomic.Int32
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprint(w, typeErrorBody)
	})
	for _, tc := range []struct {
		name string
		out  any
	}{{"no answer expected", nil}, {"a list expected", &[]moodle.Group{}}, {"an object expected", &map[string]any{}}} {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			err := c.Call(context.Background(), moodle.FnManualEnrolUsers, nil, tc.out)
			checkTypeError(t, err)
			if n := calls.Load(); n != 1 {
				t.Errorf("%d calls, want 1: a Moodle error is not retried", n)
			}
		})
	}
	t.Run("simulator", func(t *testing.T) {
		sim, base := startSim(t)
		course := sim.AddCourse(moodlesim.Course{ShortName: "C"})
		c, err := moodle.New(moodle.Options{URL: base, Token: secret})
		if err != nil {
			t.Fatal(err)
		}
		f := &moodle.Form{}
		f.Add("enrolments[0][roleid]", "5")
		f.Add("enrolments[0][userid]", "999999")
		f.AddInt("enrolments[0][courseid]", int64(course))
		checkTypeError(t, c.Call(context.Background(), moodle.FnManualEnrolUsers, f, nil))
	})
}

func checkTypeError(t *testing.T, err error) {
	t.Helper()
	var me *moodle.Error
	if !errors.As(err, &me) || me.Exception != "TypeError" || me.ErrorCode != "" || !strings.Contains(me.Message, "get_name_placeholders") {
		t.Fatalf("err = %#v, want a Moodle error TypeError without errorcode", err)
	}
	if moodle.IsTransient(err) || moodle.IsFatal(err) || moodle.ErrorCode(err) != "" {
		t.Errorf("IsTransient %v, IsFatal %v, ErrorCode %q: want a permanent error of one item without code",
			moodle.IsTransient(err), moodle.IsFatal(err), moodle.ErrorCode(err))
	}
	if !strings.Contains(err.Error(), "(TypeError)") {
		t.Errorf("error text %q does not name the exception", err)
	}
}

// TestLimitedBoundsRequestsInFlight: a Limited client never has more
// requests in flight than its slots, however many goroutines call it; the
// client it came from is not limited; a call waiting for a slot stops
// when its context is cancelled.
func TestLimitedBoundsRequestsInFlight(t *testing.T) {
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		fmt.Fprint(w, `null`)
	})
	run := func(c *moodle.Client, calls int) {
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				if err := c.DeleteGroups(context.Background(), []int64{1}); err != nil {
					t.Error(err)
				}
			})
		}
		// Let the calls pile up, then answer them all.
		for inFlight.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		close(release)
		wg.Wait()
	}
	run(c.Limited(3), 12)
	if got := most.Load(); got != 3 {
		t.Fatalf("most requests in flight through Limited(3): %d, want 3", got)
	}
	release = make(chan struct{})
	most.Store(0)
	run(c, 12)
	if got := most.Load(); got <= 3 {
		t.Fatalf("most requests in flight unlimited: %d, want more than 3", got)
	}

	// A call waiting for a slot gives up with its context.
	release = make(chan struct{})
	defer close(release)
	one := c.Limited(1)
	go func() { _ = one.DeleteGroups(context.Background(), []int64{1}) }()
	for inFlight.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := one.DeleteGroups(ctx, []int64{1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call waiting for a slot: %v, want the context's deadline", err)
	}
}
