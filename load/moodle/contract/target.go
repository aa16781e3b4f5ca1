package contract

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
)

// Target is a Moodle site the suite runs against: the simulator or a real
// Moodle. It names the scratch course and users the cases may use.
type Target struct {
	// Name is "simulator" or "moodle".
	Name string
	// URL is the site's wwwroot; Token a web-service token.
	URL, Token string
	// CAFile is a PEM file of extra CAs for an https URL (optional).
	CAFile string
	// Course is a scratch course; Users are at least 3 users enrolled in
	// it; Unenrolled is a user who exists and is not enrolled in it.
	Course     int64
	Users      []int64
	Unenrolled int64
	// OtherCourse is a second course groups may be made in (0: cases that
	// need it are skipped).
	OtherCourse int64
	// InaccessibleCourse is a course that exists but that the token's user
	// may not access, e.g. with moodle/course:view prohibited there. The
	// suite only reads it (0: the case is skipped).
	InaccessibleCourse int64
	// MissingCourse and MissingUser are ids that do not exist (0: unknown,
	// cases that need them are skipped).
	MissingCourse, MissingUser int64
	// MaxInputVars is the site's PHP max_input_vars. MaxInputVarsKnown says
	// it was given, so that the truncation cases can predict PHP.
	MaxInputVars      int
	MaxInputVarsKnown bool
	// OutsideFunction is a function that exists but is not in the token's
	// service ("": the accessexception case is skipped).
	OutsideFunction string
	// OtherHost is another Host header naming the same server ("": the
	// wrong-host case is skipped).
	OtherHost string
	// Strict requires messages to equal the reference text exactly and
	// error bodies to carry no debuginfo (a site with debugging off).
	Strict bool
	// UserIDNumbers are the idnumbers the site shows for Users (nil:
	// unknown, not checked).
	UserIDNumbers map[int64]string
	// Role and OtherRole are two roles the service user may assign in
	// Course (the enrolment cases give them to Unenrolled, for the length
	// of a case); UnassignableRole is one it may not (a role id that does
	// not exist will do).
	Role, OtherRole, UnassignableRole int64
	// CourseEnd is Course's end date (0: none) when CourseEndKnown; the
	// dates case then checks it.
	CourseEnd      int64
	CourseEndKnown bool

	prefix    string
	functions map[string]bool // the token's service
	http      *http.Client
	retries   int
}

// Has reports whether the token's service includes function.
func (tg *Target) Has(function string) bool { return tg.functions[function] }

// need skips the test when the service lacks a function.
func (tg *Target) need(t testing.TB, functions ...string) {
	t.Helper()
	for _, f := range functions {
		if !tg.Has(f) {
			t.Skipf("the token's service lacks %s: add it to run this case", f)
		}
	}
}

// Client returns a cmissync client for the target.
func (tg *Target) Client(t testing.TB, mut ...func(*moodle.Options)) *moodle.Client {
	t.Helper()
	o := moodle.Options{URL: tg.URL, Token: tg.Token, MaxInputVars: tg.MaxInputVars, CAFile: tg.CAFile,
		Retries: tg.retries, RetryWait: 200 * time.Millisecond, Timeout: 2 * time.Minute, UserAgent: "cmissync-contract"}
	for _, m := range mut {
		m(&o)
	}
	c, err := moodle.New(o)
	if err != nil {
		t.Fatalf("moodle client: %v", err)
	}
	return c
}

// Answer is the raw HTTP answer to a POST.
type Answer struct {
	Status      int
	ContentType string
	Location    string
	Body        string
}

// Post sends body (form-encoded) to the REST endpoint, with query appended
// to the URL when not empty. It never follows redirects.
func (tg *Target) Post(t testing.TB, query, body string) Answer {
	t.Helper()
	return tg.PostHost(t, "", query, body)
}

// PostHost is Post with another Host header ("" keeps the URL's).
func (tg *Target) PostHost(t testing.TB, host, query, body string) Answer {
	t.Helper()
	u := strings.TrimRight(tg.URL, "/") + moodle.Endpoint
	if query != "" {
		u += "?" + query
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if host != "" {
		req.Host = host
	}
	resp, err := tg.http.Do(req)
	if err != nil {
		// The error quotes the URL, which never holds the token except in
		// the parameters-in-the-URL cases: do not print it there.
		if query != "" {
			t.Fatalf("POST with parameters in the URL failed")
		}
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return Answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"),
		Location: resp.Header.Get("Location"), Body: string(b)}
}

// WSParams renders wstoken, wsfunction and moodlewsrestformat=json.
func (tg *Target) WSParams(function string) string {
	return Form("wstoken", tg.Token, "wsfunction", function, "moodlewsrestformat", "json")
}

// Form renders name, value pairs as a form body, in order.
func Form(pairs ...string) string {
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

// newPrefix is unique to one run of the suite: objects are found (and
// deleted) by it, and nothing without it is touched.
func newPrefix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "cmissync-contract-" + time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b) + "-"
}

func rawHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", caFile)
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// SimulatorOptions configure NewSimulator.
type SimulatorOptions struct {
	// MaxInputVars is the simulated PHP limit (0: 1000).
	MaxInputVars int
	// NoGroupCache turns the simulator's model of Moodle's group cache off
	// (moodlesim.Options.NoGroupCache): a site unlike Moodle 4.5, on which
	// the phantom cases must fail.
	NoGroupCache bool
}

// HandMadeGroup is the name of the group NewSimulator makes by hand in the
// scratch course; the suite must leave it as it is.
const HandMadeGroup = "Hand made"

// OutsideFunction is a function the simulator target's service lacks: a
// real site has it, cmissync never calls it, and the simulator does not
// implement it, so it is in no simulated service.
const OutsideFunction = "core_course_update_courses"

// Stock role ids (the reference notes: 5 student, 4 teacher), the defaults
// of MOODLE_TEST_ROLE and MOODLE_TEST_OTHER_ROLE, and a role id that does
// not exist, as in the reference's wsusercannotassign answer.
const (
	defaultRole      = 5
	defaultOtherRole = 4
	unassignableRole = 999
	simCourseEndDate = 4102444800 // 2100-01-01: the simulator's scratch course ends then
)

// NewSimulator starts a simulated site on a loopback port for the test: a
// scratch course with four enrolled users, a user enrolled elsewhere, a
// second course, and a hand-made group (which the suite must leave alone).
// Its wwwroot is http://127.0.0.1:PORT, so that another host name for the
// same server is redirected, as Moodle does.
func NewSimulator(t testing.TB, o SimulatorOptions) (*Target, *moodlesim.Server) {
	t.Helper()
	if o.MaxInputVars == 0 {
		o.MaxInputVars = moodlesim.DefaultMaxInputVars
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	functions := moodlesim.FunctionNames()
	token := newPrefix() + "token"
	sim := moodlesim.New(moodlesim.Options{Token: token, MaxInputVars: o.MaxInputVars, Functions: functions,
		ShowIdnumber: true, SiteName: "cmissync contract simulator", WWWRoot: base, NoGroupCache: o.NoGroupCache})
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = sim.Close() // releases hanging calls first
		_ = srv.Close()
	})

	course := sim.AddCourse(moodlesim.Course{ShortName: "CONTRACT", FullName: "Contract scratch course", IDNumber: "CONTRACT",
		EndDate: simCourseEndDate})
	other := sim.AddCourse(moodlesim.Course{ShortName: "CONTRACT2", FullName: "Second scratch course"})
	hidden := sim.AddCourse(moodlesim.Course{ShortName: "CONTRACT-HIDDEN", FullName: "Course the service user may not access"})
	tg := &Target{Name: "simulator", URL: base, Token: token, Course: int64(course), OtherCourse: int64(other), InaccessibleCourse: int64(hidden),
		MissingCourse: 999999, MissingUser: 999999, MaxInputVars: o.MaxInputVars, MaxInputVarsKnown: true,
		OutsideFunction: OutsideFunction, OtherHost: "localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port),
		Strict: true, UserIDNumbers: map[int64]string{}, Role: defaultRole, OtherRole: defaultOtherRole, UnassignableRole: unassignableRole,
		CourseEnd: simCourseEndDate, CourseEndKnown: true, prefix: newPrefix(), functions: map[string]bool{}}
	for _, f := range functions {
		tg.functions[f] = true
	}
	for i := range 4 {
		n := fmt.Sprintf("%03d", i+1)
		id := sim.AddUser(moodlesim.User{Username: "s" + n, IDNumber: "100" + n, Email: "s" + n + "@example.org", FirstName: "Student", LastName: n})
		if err := sim.Enrol(course, id); err != nil {
			t.Fatal(err)
		}
		tg.Users = append(tg.Users, int64(id))
		tg.UserIDNumbers[int64(id)] = "100" + n
	}
	out := sim.AddUser(moodlesim.User{Username: "x001", IDNumber: "900001", FirstName: "Not", LastName: "Enrolled"})
	if err := sim.Enrol(other, out); err != nil {
		t.Fatal(err)
	}
	tg.Unenrolled = int64(out)
	if _, err := sim.AddGroup(moodlesim.Group{CourseID: course, Name: HandMadeGroup, IDNumber: "hand", Members: []int{int(tg.Users[0])}}); err != nil {
		t.Fatal(err)
	}
	// The inaccessible course has a group and an enrolment, which an
	// accessible course would list.
	if err := sim.Enrol(hidden, int(tg.Users[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.AddGroup(moodlesim.Group{CourseID: hidden, Name: "Hidden", IDNumber: "hidden"}); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetCourseAccessible(hidden, false); err != nil {
		t.Fatal(err)
	}
	tg.http, err = rawHTTPClient("")
	if err != nil {
		t.Fatal(err)
	}
	return tg, sim
}

// Environment variables that point the suite at a real Moodle.
const (
	EnvURL                = "MOODLE_URL"
	EnvToken              = "MOODLE_TOKEN"
	EnvCourse             = "MOODLE_TEST_COURSE"
	EnvUsers              = "MOODLE_TEST_USERS"
	EnvUnenrolled         = "MOODLE_TEST_UNENROLLED_USER"
	EnvMaxInputVars       = "MOODLE_MAX_INPUT_VARS"
	EnvOtherCourse        = "MOODLE_TEST_OTHER_COURSE"
	EnvInaccessibleCourse = "MOODLE_TEST_INACCESSIBLE_COURSE"
	EnvOutsideFunction    = "MOODLE_TEST_OUTSIDE_FUNCTION"
	EnvCAFile             = "MOODLE_CA_FILE"
	EnvRole               = "MOODLE_TEST_ROLE"
	EnvOtherRole          = "MOODLE_TEST_OTHER_ROLE"
)

// FromEnv returns the real Moodle named by the environment, or skips the
// test when MOODLE_URL or MOODLE_TOKEN is unset. Other missing or wrong
// variables fail the test: the run was meant to happen.
func FromEnv(t testing.TB) *Target {
	t.Helper()
	u, tok := os.Getenv(EnvURL), os.Getenv(EnvToken)
	if u == "" || tok == "" {
		t.Skipf("contract suite against a real Moodle: skipped, set %s and %s (and %s, %s, %s) to run it",
			EnvURL, EnvToken, EnvCourse, EnvUsers, EnvUnenrolled)
	}
	tg := &Target{Name: "moodle", URL: strings.TrimRight(u, "/"), Token: tok, CAFile: os.Getenv(EnvCAFile),
		MaxInputVars: 1000, OutsideFunction: os.Getenv(EnvOutsideFunction), UnassignableRole: unassignableRole,
		prefix: newPrefix(), retries: 2}
	idVar := func(name string, required bool) int64 {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			if required {
				t.Fatalf("%s is set, so %s must be too (see the contract package documentation)", EnvURL, name)
			}
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive id", name, v)
		}
		return n
	}
	tg.Course = idVar(EnvCourse, true)
	tg.Role, tg.OtherRole = idVar(EnvRole, false), idVar(EnvOtherRole, false)
	if tg.Role == 0 {
		tg.Role = defaultRole
	}
	if tg.OtherRole == 0 {
		tg.OtherRole = defaultOtherRole
	}
	if tg.Role == tg.OtherRole || tg.Role == unassignableRole || tg.OtherRole == unassignableRole {
		t.Fatalf("%s=%d and %s=%d: want two different roles the token's user may assign, not %d", EnvRole, tg.Role,
			EnvOtherRole, tg.OtherRole, unassignableRole)
	}
	tg.Unenrolled = idVar(EnvUnenrolled, true)
	tg.OtherCourse = idVar(EnvOtherCourse, false)
	tg.InaccessibleCourse = idVar(EnvInaccessibleCourse, false)
	if c := tg.InaccessibleCourse; c != 0 && (c == tg.Course || c == tg.OtherCourse) {
		t.Fatalf("%s=%d is a scratch course; name one the token's user may not access", EnvInaccessibleCourse, c)
	}
	for _, s := range strings.Split(os.Getenv(EnvUsers), ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want comma-separated user ids", EnvUsers, os.Getenv(EnvUsers))
		}
		tg.Users = append(tg.Users, n)
	}
	if len(tg.Users) < 3 || slices.Contains(tg.Users, tg.Unenrolled) {
		t.Fatalf("%s needs at least 3 users enrolled in course %d, and not %s", EnvUsers, tg.Course, EnvUnenrolled)
	}
	if v := os.Getenv(EnvMaxInputVars); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("%s=%q: want the site's max_input_vars (at least 100)", EnvMaxInputVars, v)
		}
		tg.MaxInputVars, tg.MaxInputVarsKnown = n, true
	}
	var err error
	if tg.http, err = rawHTTPClient(tg.CAFile); err != nil {
		t.Fatalf("%s: %v", EnvCAFile, err)
	}

	ctx := t.Context()
	c := tg.Client(t)
	si, err := c.CheckFunctions(ctx, moodle.RequiredFunctions)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	tg.functions = map[string]bool{}
	for _, f := range si.Functions {
		tg.functions[f.Name] = true
	}
	if tg.OutsideFunction != "" && tg.functions[tg.OutsideFunction] {
		t.Fatalf("%s=%s is in the token's service; name one that is not", EnvOutsideFunction, tg.OutsideFunction)
	}
	// The fixtures must be what the variables say.
	enrolled, err := c.EnrolledUsers(ctx, tg.Course)
	if err != nil {
		t.Fatalf("%s=%d: %v", EnvCourse, tg.Course, err)
	}
	in := map[int64]bool{}
	for _, u := range enrolled {
		in[u.ID] = true
	}
	for _, u := range tg.Users {
		if !in[u] {
			t.Fatalf("%s: user %d is not enrolled in course %d", EnvUsers, u, tg.Course)
		}
	}
	if in[tg.Unenrolled] {
		t.Fatalf("%s: user %d is enrolled in course %d", EnvUnenrolled, tg.Unenrolled, tg.Course)
	}
	if tg.Has(moodle.FnUsersByField) {
		if us, err := c.UsersByField(ctx, "id", []string{strconv.FormatInt(tg.Unenrolled, 10)}); err != nil || len(us) != 1 {
			t.Fatalf("%s: user %d not found (%v)", EnvUnenrolled, tg.Unenrolled, err)
		}
		for _, cand := range []int64{999999, 99999999, 2147483000} {
			if us, err := c.UsersByField(ctx, "id", []string{strconv.FormatInt(cand, 10)}); err == nil && len(us) == 0 {
				tg.MissingUser = cand
				break
			}
		}
	}
	if tg.Has(moodle.FnCoursesByField) {
		for _, cand := range []int64{999999, 99999999, 2147483000} {
			if cs, err := c.CoursesByID(ctx, []int64{cand}); err == nil && len(cs) == 0 {
				tg.MissingCourse = cand
				break
			}
		}
	}
	return tg
}
