// Package moodle is the Moodle web-service client used by the load step. It
// speaks Moodle's REST protocol (form-encoded arrays, JSON answers that are
// HTTP 200 even on failure), classifies errors by errorcode into permanent
// and transient, retries only the transient ones, and sizes batches so that
// no request exceeds the site's PHP max_input_vars, past which PHP silently
// drops parameters. The token is sent only in the request body and never
// appears in errors or logs.
//
// The contract suite in load/moodle/contract checks this client and the
// Moodle simulator (load/moodlesim) against the same expectations, and can be
// pointed at a real Moodle.
package moodle

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-resty/resty/v2"
	"github.com/sirupsen/logrus"
)

// Options configure a Client.
type Options struct {
	URL   string // the site's wwwroot, exactly as configured in Moodle
	Token string
	// MaxInputVars is the site's PHP max_input_vars (default 1000). Every
	// request stays under it with a margin.
	MaxInputVars int
	Timeout      time.Duration // per request (0: 60s)
	// Retries is the number of extra attempts after a transient failure
	// (network error, timeout, HTTP 5xx); 0 or negative: none.
	Retries   int
	RetryWait time.Duration // first backoff (0: 1s), doubled each attempt up to MaxRetryWait, plus up to half again as jitter
	// CAFile is a PEM file of extra certificate authorities to trust (an
	// internal CA), on top of the system's.
	CAFile string
	// InsecureSkipVerify turns TLS verification off. Only for test sites.
	InsecureSkipVerify bool
	UserAgent          string
	// Log, when set, receives one debug entry per HTTP request: function,
	// number of form variables, attempt, duration, outcome and errorcode.
	// Never the token or the parameters.
	Log logrus.FieldLogger
}

// MaxRetryWait caps the backoff between two attempts.
const MaxRetryWait = 30 * time.Second

// Client calls Moodle web-service functions.
type Client struct {
	http     *resty.Client
	endpoint string
	token    string
	maxVars  int
	retries  int
	wait     time.Duration
	log      logrus.FieldLogger
	// secrets are the forms of the token that could show up in an answer
	// (raw and URL-encoded); they are cut out of every error.
	secrets []string
	// slots, when set, bounds the requests in flight (Limited): a request
	// holds one while it is sent and answered, not while it waits to be
	// tried again.
	slots chan struct{}
}

// Limited returns a client that shares this one's connections and
// settings and keeps at most n requests in flight at once, however many
// goroutines call it: the load reads, adds and reads back at the same
// time, and the site sees no more than load.concurrency requests. n < 1
// means 1.
func (c *Client) Limited(n int) *Client {
	l := *c
	l.slots = make(chan struct{}, max(n, 1))
	return &l
}

// Endpoint is the REST server path under wwwroot.
const Endpoint = "/webservice/rest/server.php"

// New returns a client for the site.
func New(o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("moodle url %q: want http(s)://host[/path]", o.URL)
	}
	if o.Token == "" {
		return nil, errors.New("moodle token is empty: set it in the config file, CMISSYNC_MOODLE_TOKEN or CMISSYNC_MOODLE_TOKEN_FILE")
	}
	if o.MaxInputVars == 0 {
		o.MaxInputVars = 1000
	}
	if o.MaxInputVars < 20 {
		return nil, fmt.Errorf("moodle max_input_vars %d is too small (PHP's default is 1000)", o.MaxInputVars)
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryWait <= 0 {
		o.RetryWait = time.Second
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // opt-in, documented
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("moodle ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("moodle ca_file %s: no PEM certificates found", o.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConf
	transport.MaxIdleConnsPerHost = 16
	hc := resty.New().
		SetTransport(transport).
		SetTimeout(o.Timeout).
		// Never follow redirects: Moodle redirects requests for another
		// host name than its wwwroot, and the answer to report is that.
		SetRedirectPolicy(resty.RedirectPolicyFunc(func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse })).
		SetHeader("Accept", "application/json").
		// resty's own logger could print request bodies, which hold the token.
		SetLogger(discardLogger{})
	if o.UserAgent != "" {
		hc.SetHeader("User-Agent", o.UserAgent)
	}
	return &Client{
		http:     hc,
		endpoint: u.String() + Endpoint,
		token:    o.Token,
		maxVars:  o.MaxInputVars,
		retries:  o.Retries,
		wait:     o.RetryWait,
		log:      o.Log,
		secrets:  secretForms(o.Token),
	}, nil
}

// secretForms lists the token as it could appear in text: raw, and encoded
// as in a query string or form body.
func secretForms(token string) []string {
	out := []string{token}
	for _, enc := range []string{url.QueryEscape(token), url.PathEscape(token)} {
		if enc != token {
			out = append(out, enc)
		}
	}
	return out
}

// redact cuts the token out of s (an answer body or message could echo the
// request, e.g. a proxy's error page).
func (c *Client) redact(s string) string {
	for _, sec := range c.secrets {
		if sec != "" && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[token]")
		}
	}
	return s
}

type discardLogger struct{}

func (discardLogger) Errorf(string, ...any) {}
func (discardLogger) Warnf(string, ...any)  {}
func (discardLogger) Debugf(string, ...any) {}

// wsParams is the number of web-service parameters every request carries
// (wstoken, wsfunction, moodlewsrestformat).
const wsParams = 3

// Capacity returns how many items of varsPerItem form variables fit in one
// request under max_input_vars, keeping a 5% margin (at least 5 variables)
// and counting the web-service parameters.
func (c *Client) Capacity(varsPerItem int) int {
	margin := max(c.maxVars/20, 5)
	n := (c.maxVars - wsParams - margin) / varsPerItem
	return max(n, 1)
}

// Form is an ordered list of form variables for one call.
type Form struct {
	keys, vals []string
}

// Add appends a variable.
func (f *Form) Add(key, value string) { f.keys = append(f.keys, key); f.vals = append(f.vals, value) }

// AddInt appends an integer variable.
func (f *Form) AddInt(key string, v int64) { f.Add(key, strconv.FormatInt(v, 10)) }

// Len is the number of variables.
func (f *Form) Len() int { return len(f.keys) }

// String renders the variables for reports (never includes the token,
// which is not part of a Form).
func (f *Form) String() string {
	var b strings.Builder
	for i, k := range f.keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + f.vals[i])
	}
	return b.String()
}

func (f *Form) encode(b *bytes.Buffer) {
	for i, k := range f.keys {
		b.WriteByte('&')
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(f.vals[i]))
	}
}

// Call invokes a web-service function and decodes its JSON answer into out
// (nil to ignore it). Transient failures are retried with backoff; a
// Moodle error answer is returned at once as *Error.
func (c *Client) Call(ctx context.Context, function string, params *Form, out any) error {
	if params == nil {
		params = &Form{}
	}
	vars := params.Len() + wsParams
	if vars > c.maxVars {
		// Sending it would lose parameters silently (PHP max_input_vars).
		err := &Error{Function: function, ErrorCode: CodeTooManyParams, Exception: "cmissync",
			Message: fmt.Sprintf("request has %d variables, the site's max_input_vars is %d", vars, c.maxVars)}
		c.logCall(function, vars, 0, 0, err)
		return err
	}
	var body bytes.Buffer
	// The web-service parameters go first: if PHP ever truncates, it drops
	// items at the end, not the token or the format.
	body.WriteString("wstoken=" + url.QueryEscape(c.token))
	body.WriteString("&wsfunction=" + url.QueryEscape(function))
	body.WriteString("&moodlewsrestformat=json")
	params.encode(&body)
	payload := body.Bytes()

	wait := c.wait
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := c.limit(ctx, func() error { return c.once(ctx, function, payload, out) })
		c.logCall(function, vars, attempt, time.Since(start), err)
		if err == nil || !IsTransient(err) || attempt > c.retries || ctx.Err() != nil {
			if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (%w)", ctx.Err(), err)
			}
			return err
		}
		// Full backoff plus up to half of it again, so that parallel
		// clients do not retry in step.
		d := wait + time.Duration(rand.Int64N(int64(wait)/2+1))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, MaxRetryWait)
	}
}

// logCall writes the debug entry of one attempt (attempt 0: refused
// locally). Only the function, counts, timing and Moodle's errorcode are
// logged: never the token or the parameters.
func (c *Client) logCall(function string, vars, attempt int, d time.Duration, err error) {
	if c.log == nil || !debugEnabled(c.log) {
		return
	}
	f := logrus.Fields{"function": function, "vars": vars, "attempt": attempt, "duration": d.Round(time.Microsecond).String()}
	switch {
	case err == nil:
		f["outcome"] = "ok"
	case IsFatal(err):
		f["outcome"] = "fatal"
	case IsTransient(err):
		f["outcome"] = "transient"
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		f["outcome"] = "cancelled"
	default:
		f["outcome"] = "error"
	}
	if code := ErrorCode(err); code != "" {
		f["errorcode"] = code
	}
	var te *TransportError
	if errors.As(err, &te) && te.Status != 0 {
		f["status"] = te.Status
	}
	c.log.WithFields(f).Debug("moodle call")
}

// debugEnabled reports whether l would write a debug entry, so that a call
// does not build fields for nothing.
func debugEnabled(l logrus.FieldLogger) bool {
	switch v := l.(type) {
	case *logrus.Logger:
		return v.IsLevelEnabled(logrus.DebugLevel)
	case *logrus.Entry:
		return v.Logger == nil || v.Logger.IsLevelEnabled(logrus.DebugLevel)
	}
	return true
}

// limit runs one request in a free slot (Limited), waiting for one.
func (c *Client) limit(ctx context.Context, send func() error) error {
	if c.slots == nil {
		return send()
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.slots }()
	return send()
}

func (c *Client) once(ctx context.Context, function string, payload []byte, out any) error {
	resp, err := c.http.R().
		SetContext(ctx).
		SetHeader("Content-Type", "application/x-www-form-urlencoded").
		SetBody(payload).
		Post(c.endpoint)
	if err != nil {
		if cerr := c.tlsConfigError(function, err); cerr != nil {
			return cerr
		}
		return &TransportError{Function: function, Err: redactURLError(err)}
	}
	raw := resp.Body()
	if code := resp.StatusCode(); code != http.StatusOK {
		if code >= 300 && code < 400 {
			// Moodle redirects requests for another host name than wwwroot.
			return &Error{Function: function, ErrorCode: CodeWrongWWWRoot, Exception: "cmissync",
				Message: fmt.Sprintf("HTTP %d redirect to %q: set moodle.url to the site's wwwroot exactly", code, c.redact(resp.Header().Get("Location")))}
		}
		return &TransportError{Function: function, Status: code, Body: c.snippet(raw)}
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[' && !bytes.Equal(trimmed, []byte("null"))) {
		if bytes.HasPrefix(trimmed, []byte("<?xml")) && bytes.Contains(trimmed, []byte("<ERRORCODE>")) {
			// An XML error means the format parameter was lost, which only
			// happens when PHP truncated the request.
			return &Error{Function: function, ErrorCode: c.redact(xmlField(trimmed, "ERRORCODE")), Exception: "xml",
				Message: c.redact(xmlField(trimmed, "MESSAGE")) + " (XML answer: the request lost its parameters; check max_input_vars)"}
		}
		return &TransportError{Function: function, Status: resp.StatusCode(), Body: c.snippet(raw), Err: errors.New("answer is not JSON")}
	}
	if trimmed[0] == '{' {
		// An exception is an error with or without an errorcode: a PHP
		// error Moodle does not catch (a TypeError) comes without one.
		var e Error
		if json.Unmarshal(trimmed, &e) == nil && e.Exception != "" {
			e.Function = function
			e.Message, e.DebugInfo = c.redact(e.Message), c.redact(e.DebugInfo)
			return &e
		}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(trimmed, out); err != nil {
		return &TransportError{Function: function, Status: resp.StatusCode(), Body: c.snippet(raw), Err: fmt.Errorf("decode answer: %w", err)}
	}
	return nil
}

// tlsConfigError recognises a site certificate that does not verify, which
// no retry can cure. It returns nil for other errors.
func (c *Client) tlsConfigError(function string, err error) error {
	var (
		verr  *tls.CertificateVerificationError
		uaErr x509.UnknownAuthorityError
		hnErr x509.HostnameError
		ciErr x509.CertificateInvalidError
	)
	var cause error
	switch {
	case errors.As(err, &verr):
		cause = verr
	case errors.As(err, &uaErr):
		cause = uaErr
	case errors.As(err, &hnErr):
		cause = hnErr
	case errors.As(err, &ciErr):
		cause = ciErr
	default:
		return nil
	}
	host := c.endpoint
	if u, perr := url.Parse(c.endpoint); perr == nil {
		host = u.Host
	}
	msg := fmt.Sprintf("TLS certificate of %s not accepted: %v. ", host, cause)
	if errors.As(err, &hnErr) {
		msg += "Set moodle.url to the site's wwwroot, with a host name the certificate covers"
	} else {
		msg += "Set moodle.ca_file to a PEM file with the certificate authority that signed the site's certificate"
	}
	msg += " (moodle.insecure_skip_verify turns verification off, for test sites only)"
	return &Error{Function: function, ErrorCode: CodeTLS, Exception: "cmissync", Message: c.redact(msg), Err: cause}
}

func xmlField(b []byte, tag string) string {
	s := string(b)
	i := strings.Index(s, "<"+tag+">")
	j := strings.Index(s, "</"+tag+">")
	if i < 0 || j < i {
		return ""
	}
	return s[i+len(tag)+2 : j]
}

// snippet is the start of an answer body for an error, with the token cut
// out before the body is shortened (so no piece of it is left either).
func (c *Client) snippet(b []byte) string {
	const n = 300
	s := c.redact(strings.TrimSpace(string(b)))
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// redactURLError keeps the error's meaning but drops any query string from
// URLs it quotes (the token never travels in the URL, but a misconfigured
// moodle.url could carry one).
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			u.User = nil
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}
