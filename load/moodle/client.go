// Package moodle is the Moodle web-service client used by the load step. It
// speaks Moodle's REST protocol (form-encoded arrays, JSON answers that are
// HTTP 200 even on failure), classifies errors by errorcode into permanent
// and transient, retries only the transient ones, and sizes batches so that
// no request exceeds the site's PHP max_input_vars, past which PHP silently
// drops parameters. The token is sent only in the request body and never
// appears in errors or logs.
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

	"github.com/go-resty/resty/v2"
)

// Options configure a Client.
type Options struct {
	URL   string // the site's wwwroot, exactly as configured in Moodle
	Token string
	// MaxInputVars is the site's PHP max_input_vars (default 1000). Every
	// request stays under it with a margin.
	MaxInputVars int
	Timeout      time.Duration // per request (default 60s)
	Retries      int           // extra attempts for transient errors (default 3; negative: none)
	RetryWait    time.Duration // first backoff (default 1s), doubled each attempt, with jitter
	CAFile       string        // extra CA bundle (PEM) to trust
	// InsecureSkipVerify turns TLS verification off. Only for test sites.
	InsecureSkipVerify bool
	UserAgent          string
}

// Client calls Moodle web-service functions.
type Client struct {
	http     *resty.Client
	endpoint string
	token    string
	maxVars  int
	retries  int
	wait     time.Duration
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
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryWait == 0 {
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
		SetHeader("Accept", "application/json")
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
	}, nil
}

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
	if n := params.Len() + wsParams; n > c.maxVars {
		// Sending it would lose parameters silently (PHP max_input_vars).
		return &Error{Function: function, ErrorCode: "toomanyparams", Exception: "cmissync",
			Message: fmt.Sprintf("request has %d variables, the site's max_input_vars is %d", n, c.maxVars)}
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
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, function, payload, out)
		if err == nil || !IsTransient(err) || attempt >= c.retries || ctx.Err() != nil {
			if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (%w)", ctx.Err(), err)
			}
			return err
		}
		jitter := time.Duration(rand.Int64N(int64(wait)/2 + 1))
		t := time.NewTimer(wait + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		wait *= 2
	}
}

func (c *Client) once(ctx context.Context, function string, payload []byte, out any) error {
	resp, err := c.http.R().
		SetContext(ctx).
		SetHeader("Content-Type", "application/x-www-form-urlencoded").
		SetBody(payload).
		Post(c.endpoint)
	if err != nil {
		return &TransportError{Function: function, Err: redactURLError(err)}
	}
	raw := resp.Body()
	if code := resp.StatusCode(); code != http.StatusOK {
		if code >= 300 && code < 400 {
			// Moodle redirects requests for another host name than wwwroot.
			return &Error{Function: function, ErrorCode: "wrongwwwroot", Exception: "cmissync",
				Message: fmt.Sprintf("HTTP %d redirect to %q: set moodle.url to the site's wwwroot exactly", code, resp.Header().Get("Location"))}
		}
		return &TransportError{Function: function, Status: code, Body: snippet(raw)}
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[' && !bytes.Equal(trimmed, []byte("null"))) {
		if bytes.HasPrefix(trimmed, []byte("<?xml")) && bytes.Contains(trimmed, []byte("<ERRORCODE>")) {
			// An XML error means the format parameter was lost, which only
			// happens when PHP truncated the request.
			return &Error{Function: function, ErrorCode: xmlField(trimmed, "ERRORCODE"), Exception: "xml",
				Message: xmlField(trimmed, "MESSAGE") + " (XML answer: the request lost its parameters; check max_input_vars)"}
		}
		return &TransportError{Function: function, Status: resp.StatusCode(), Body: snippet(raw), Err: errors.New("answer is not JSON")}
	}
	if trimmed[0] == '{' {
		var e Error
		if json.Unmarshal(trimmed, &e) == nil && e.ErrorCode != "" && e.Exception != "" {
			e.Function = function
			return &e
		}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(trimmed, out); err != nil {
		return &TransportError{Function: function, Status: resp.StatusCode(), Body: snippet(raw), Err: fmt.Errorf("decode answer: %w", err)}
	}
	return nil
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

func snippet(b []byte) string {
	const n = 300
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
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
