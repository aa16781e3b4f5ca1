package moodlesim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultToken is the web-service token accepted when Options.Token is empty.
const DefaultToken = "cmissync-moodlesim-token"

// DefaultMaxInputVars is PHP's default max_input_vars.
const DefaultMaxInputVars = 1000

// DefaultSiteName is the site name reported when Options.SiteName is empty.
const DefaultSiteName = "Moodle simulator"

// RESTPath is the path of Moodle's REST web-service endpoint.
const RESTPath = "/webservice/rest/server.php"

// Options configures a simulated site. The zero value is usable.
type Options struct {
	// Token is the only web-service token accepted (DefaultToken if empty).
	Token string
	// MaxInputVars is PHP's max_input_vars: 0 means DefaultMaxInputVars, a
	// negative value means no limit.
	MaxInputVars int
	// Functions is the token's service: the functions it may call. Nil means
	// every implemented function; unknown names are ignored.
	Functions []string
	// ShowIdnumber reports users' idnumber, as when Moodle's
	// showuseridentity setting includes idnumber.
	ShowIdnumber bool
	// Debug adds Moodle's "debuginfo" to error answers, as a site with
	// developer debugging does.
	Debug bool
	// SiteName is reported by core_webservice_get_site_info.
	SiteName string
	// WWWRoot is the site's configured address (e.g. "http://127.0.0.1:8080").
	// When set, a request for another host is answered with HTTP 303 and an
	// HTML redirect page, as Moodle does, and its path prefixes the endpoint.
	WWWRoot string
	// NoGroupCache turns the model of Moodle's per-course group cache off:
	// course listings and idnumber checks read the database, so a refused
	// create call leaves no phantom. A real Moodle always has the cache;
	// this exists so that tests can show that they notice it.
	NoGroupCache bool
	// Costs charges each call what it would cost a real Moodle, and may
	// make the simulator as slow (see CostModel, ReferenceCosts); the
	// zero value charges nothing. Server.Work reports the charges.
	Costs CostModel
}

// Faults makes a share of calls misbehave. The zero value disables faults.
type Faults struct {
	// Latency delays every affected call before it is handled.
	Latency time.Duration
	// FailRate is the share of affected calls answered with HTTP 500 and an
	// HTML error page.
	FailRate float64
	// TimeoutRate is the share of affected calls that hang until the client
	// gives up, the server closes, or Hang has passed (then they are handled
	// normally).
	TimeoutRate float64
	// Hang bounds a TimeoutRate hang; 0 hangs until the client gives up.
	Hang time.Duration
	// DropRate is the share of affected calls whose connection is closed
	// without an answer.
	DropRate float64
	// ApplyBeforeFault runs the call before a FailRate, TimeoutRate or
	// DropRate fault, so that its changes are applied although the client
	// never learns the outcome. By default a faulted call changes nothing.
	ApplyBeforeFault bool
	// Seed seeds the random choice of faulted calls.
	Seed int64
	// Functions limits faults to these wsfunction names; empty means all.
	Functions []string
}

// Server is a simulated Moodle site. It implements http.Handler and is safe
// for concurrent use.
type Server struct {
	opts     Options
	allowed  map[string]*wsFunc // the token's service
	maxVars  int
	wwwroot  *url.URL
	basePath string

	mu sync.Mutex // guards st
	st *state

	callsMu sync.Mutex
	calls   map[string]int
	work    work

	faultMu sync.Mutex
	faults  Faults
	rng     *rand.Rand

	closing   chan struct{}
	closeOnce sync.Once
	srvMu     sync.Mutex
	srv       *http.Server
}

// New returns an empty site configured by opts.
func New(opts Options) *Server {
	if opts.Token == "" {
		opts.Token = DefaultToken
	}
	if opts.SiteName == "" {
		opts.SiteName = DefaultSiteName
	}
	s := &Server{opts: opts, st: newState(), calls: map[string]int{}, closing: make(chan struct{}),
		maxVars: opts.MaxInputVars, rng: rand.New(rand.NewSource(0))}
	s.st.noGroupCache = opts.NoGroupCache
	s.work.byFn = map[string]Work{}
	if opts.Costs.Workers > 0 {
		s.work.workers = make(chan struct{}, opts.Costs.Workers)
	}
	if s.maxVars == 0 {
		s.maxVars = DefaultMaxInputVars
	}
	s.allowed = map[string]*wsFunc{}
	if opts.Functions == nil {
		for name, f := range functionsByName {
			s.allowed[name] = f
		}
	} else {
		for _, name := range opts.Functions {
			if f := functionsByName[name]; f != nil {
				s.allowed[name] = f
			}
		}
	}
	if opts.WWWRoot != "" {
		if u, err := url.Parse(strings.TrimRight(opts.WWWRoot, "/")); err == nil && u.Host != "" {
			s.wwwroot = u
			s.basePath = u.Path
		}
	}
	return s
}

// allowedNames lists the functions of the token's service, sorted.
func (s *Server) allowedNames() []string {
	out := make([]string, 0, len(s.allowed))
	for name := range s.allowed {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Start serves the site on addr (e.g. "127.0.0.1:0") in the background and
// returns its base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) Start(addr string) (string, error) {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return "", errors.New("moodlesim: already started")
	}
	select {
	case <-s.closing:
		return "", errors.New("moodlesim: closed")
	default:
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("moodlesim: %w", err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(s.srv)
	return "http://" + ln.Addr().String(), nil
}

// Close stops serving, releases hanging calls and closes open connections.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Calls returns how many calls each wsfunction received, failed and faulted
// calls included.
func (s *Server) Calls() map[string]int {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// ResetCalls sets every call count to zero.
func (s *Server) ResetCalls() {
	s.callsMu.Lock()
	s.calls = map[string]int{}
	s.callsMu.Unlock()
	s.work.mu.Lock()
	s.work.byFn = map[string]Work{}
	s.work.mu.Unlock()
}

// SetFaults replaces the fault settings and reseeds the fault choice.
func (s *Server) SetFaults(f Faults) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	f.Functions = append([]string(nil), f.Functions...)
	s.faults = f
	s.rng = rand.New(rand.NewSource(f.Seed))
}

type faultKind int

const (
	faultNone faultKind = iota
	faultFail
	faultHang
	faultDrop
)

// pickFault decides the fault of one call to function.
func (s *Server) pickFault(function string) (faultKind, Faults) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	f := s.faults
	if len(f.Functions) > 0 {
		match := false
		for _, name := range f.Functions {
			if name == function {
				match = true
				break
			}
		}
		if !match {
			return faultNone, Faults{}
		}
	}
	if f.FailRate <= 0 && f.TimeoutRate <= 0 && f.DropRate <= 0 {
		return faultNone, f
	}
	u := s.rng.Float64()
	switch {
	case u < f.FailRate:
		return faultFail, f
	case u < f.FailRate+f.TimeoutRate:
		return faultHang, f
	case u < f.FailRate+f.TimeoutRate+f.DropRate:
		return faultDrop, f
	}
	return faultNone, f
}

// wait sleeps for d (forever if d == 0) unless the request ends or the
// server closes first. It reports whether the request is still live.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	case <-timer:
		return true
	}
}

// request is one parsed web-service request.
type request struct {
	function string
	token    string
	json     bool
	raw      bool
	params   *phpArray
	siteURL  string
	funcName any // wsfunction as PHP saw it (string or *phpArray), nil if absent

	// Filled by execute, for the cost model: the items the call touched,
	// the expensive user fields it asked for, and whether it answered an
	// error.
	items   int
	fields  []string
	refused bool
}

// ServeHTTP answers Moodle REST web-service requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Inspection is the simulator's own, so it comes before Moodle's
	// wwwroot check: any loopback host name may ask.
	if what, ok := s.inspectPath(r.URL.Path); ok {
		s.inspect(w, r, what)
		return
	}
	if s.wwwroot != nil && !sameHost(r.Host, s.wwwroot) {
		s.redirect(w)
		return
	}
	if r.URL.Path != s.basePath+RESTPath {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>" +
			"<p>The requested URL was not found on this server.</p></body></html>\n"))
		return
	}
	req := s.parseRequest(r)
	if req.function != "" {
		s.callsMu.Lock()
		s.calls[req.function]++
		s.callsMu.Unlock()
	}

	kind, f := s.pickFault(req.function)
	if f.Latency > 0 && !s.wait(r.Context(), f.Latency) {
		return
	}
	if kind != faultNone && !f.ApplyBeforeFault {
		if !s.fault(w, r, kind, f) {
			return
		}
		kind = faultNone // a hang that ended: handle the call normally
	}
	if s.work.workers != nil {
		select {
		case s.work.workers <- struct{}{}:
			defer func() { <-s.work.workers }()
		case <-r.Context().Done():
			return
		}
	}
	body, contentType := s.handle(req)
	if req.function != "" {
		d := s.opts.Costs.charge(req.function, req.items, req.fields)
		s.work.add(req.function, req.items, d, req.refused)
		if scaled := time.Duration(float64(d)*s.opts.Costs.Scale) + s.opts.Costs.Latency; scaled > 0 && !s.wait(r.Context(), scaled) {
			return
		}
	}
	if kind != faultNone {
		if !s.fault(w, r, kind, f) {
			return
		}
	}
	w.Header().Set("Content-Type", contentType)
	if !req.json {
		w.Header().Set("Content-Disposition", `inline; filename="response.xml"`)
	}
	w.Header().Set("Cache-Control", "private, must-revalidate, pre-check=0, post-check=0, max-age=0")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// fault performs a fault. It reports true when the call should go on (a hang
// that ran out).
func (s *Server) fault(w http.ResponseWriter, r *http.Request, kind faultKind, f Faults) bool {
	switch kind {
	case faultFail:
		w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n" +
			"<title>500 Internal Server Error</title>\n</head><body>\n<h1>Internal Server Error</h1>\n" +
			"<p>The server encountered an internal error or\nmisconfiguration and was unable to complete\n" +
			"your request.</p>\n</body></html>\n"))
		return false
	case faultHang:
		return s.wait(r.Context(), f.Hang)
	case faultDrop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return false
			}
		}
		panic(http.ErrAbortHandler)
	}
	return true
}

func sameHost(host string, root *url.URL) bool {
	norm := func(h, scheme string) string {
		h = strings.ToLower(h)
		if hst, port, err := net.SplitHostPort(h); err == nil &&
			((scheme == "http" && port == "80") || (scheme == "https" && port == "443")) {
			return hst
		}
		return h
	}
	return norm(host, root.Scheme) == norm(root.Host, root.Scheme)
}

// redirect answers a request for the wrong host as Moodle's redirect() does.
func (s *Server) redirect(w http.ResponseWriter) {
	target := s.wwwroot.String()
	enc := html.EscapeString(target)
	w.Header().Set("Location", target)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusSeeOther)
	_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>Redirect</title>" +
		"<meta http-equiv=\"content-type\" content=\"text/html; charset=utf-8\" /></head><body>" +
		"<div style=\"margin-top: 3em; margin-left:auto; margin-right:auto; text-align:center;\">" +
		"This page should automatically redirect. If nothing is happening please use the continue link below." +
		"<br /><a href=\"" + enc + "\">Continue</a></div></body></html>"))
}

// parseRequest builds $_GET and $_POST as PHP would (max_input_vars
// included) and does webservice_rest_server::parse_request().
func (s *Server) parseRequest(r *http.Request) *request {
	get := parseQueryVars(r.URL.RawQuery, s.maxVars)
	post := newPHPArray()
	if r.Method == http.MethodPost && r.Body != nil {
		post = readBody(r.Body, r.Header.Get("Content-Type"), s.maxVars)
	}
	// set_web_service_call_settings(): the moodlewssetting* parameters.
	req := &request{}
	for _, name := range []string{"raw", "fileurl", "filter", "lang", "timezone"} {
		k := "moodlewssetting" + name
		v, inPost := post.get(k)
		if !inPost {
			v, _ = get.get(k)
		}
		if name == "raw" {
			if sv, ok := v.(string); ok && (sv == "1" || strings.EqualFold(sv, "true")) {
				req.raw = true
			}
		}
		get.del(k)
		post.del(k)
	}
	vars := arrayMerge(get, post)
	if v, ok := vars.get("moodlewsrestformat"); ok {
		if sv, isStr := v.(string); isStr && sv == "json" {
			req.json = true
		}
		vars.del("moodlewsrestformat")
	}
	if v, ok := vars.get("wstoken"); ok {
		if sv, isStr := v.(string); isStr {
			req.token = sv
		}
		vars.del("wstoken")
	}
	if v, ok := vars.get("wsfunction"); ok {
		req.funcName = v
		if sv, isStr := v.(string); isStr {
			req.function = sv
		}
		vars.del("wsfunction")
	}
	req.params = vars
	if s.wwwroot != nil {
		req.siteURL = s.wwwroot.String()
	} else {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		req.siteURL = scheme + "://" + r.Host
	}
	return req
}

// handle runs one web-service request and returns the answer body and its
// Content-Type.
func (s *Server) handle(req *request) ([]byte, string) {
	f, out, werr := s.execute(req)
	var b bytes.Buffer
	if werr != nil {
		req.refused = true
		if req.json {
			return werr.json(s.opts.Debug), "application/json"
		}
		return werr.xml(s.opts.Debug), "application/xml; charset=utf-8"
	}
	if req.json {
		writeJSON(&b, out)
		return b.Bytes(), "application/json"
	}
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<RESPONSE>\n")
	writeXML(&b, f.returns, out)
	b.WriteString("</RESPONSE>\n")
	return b.Bytes(), "application/xml; charset=utf-8"
}

func (s *Server) execute(req *request) (*wsFunc, *onode, *wsError) {
	// authenticate_user()
	if req.token == "" || req.token != s.opts.Token {
		return nil, nil, invalidToken()
	}
	// load_function_info()
	if req.funcName == nil || req.function == "" && !isArray(req.funcName) {
		return nil, nil, invalidParam("Missing function name")
	}
	f := functionsByName[req.function]
	if f == nil && unimplementedFunctions[req.function] {
		return nil, nil, accessErr(req.function)
	}
	if f == nil {
		name := req.function
		if isArray(req.funcName) {
			name = "Array"
		}
		return nil, nil, missingRecord("external_functions", "SELECT * FROM {external_functions} WHERE name = ?", name)
	}
	if s.allowed[f.name] == nil {
		return nil, nil, accessErr(f.name)
	}
	// execute(): validate_parameters() then the function.
	pv, werr := validate(f.params, req.params)
	if werr != nil {
		return nil, nil, werr
	}
	params := pv.(map[string]any)

	s.mu.Lock()
	defer s.mu.Unlock()
	c := &callCtx{s: s, st: s.st, raw: req.raw, siteURL: req.siteURL, done: -1}
	if f.name == "core_group_add_group_members" || f.name == "core_group_delete_group_members" {
		c.done = 0 // counted by changeMembers
	}
	if f.write {
		// On an error (or a panic) the deferred rollback undoes the call's
		// changes before the lock is released; like InnoDB's auto-increment
		// the id counters are not rolled back. After commit it does nothing.
		s.st.begin()
		defer s.st.rollback()
	}
	result, werr := f.run(c, params)
	req.items, req.fields = itemsOf(f.name, params, result), userFields(f.name, params)
	if werr != nil {
		if c.done >= 0 {
			// Refused part-way: Moodle did the work of the items before
			// the one it refused (then rolled it back), no more.
			req.items = c.done
		}
		return nil, nil, werr
	}
	if f.write {
		s.st.commit()
	}
	if f.returns == nil {
		return f, nil, nil
	}
	// send_response(): clean_returnvalue() after the commit.
	out, werr := clean(f.returns, result)
	if werr != nil {
		return nil, nil, werr
	}
	return f, out, nil
}

func isArray(v any) bool { _, ok := v.(*phpArray); return ok }
