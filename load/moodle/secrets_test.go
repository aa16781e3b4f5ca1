package moodle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/load/moodle"
)

// oddToken has characters that URL encoding changes, so that both of its
// written forms can be looked for.
const oddToken = "t0k/en+s3cr3t=x&y"

func tokenForms() []string {
	return []string{oddToken, url.QueryEscape(oddToken), url.PathEscape(oddToken)}
}

func containsToken(s string) bool {
	for _, f := range tokenForms() {
		if strings.Contains(s, f) {
			return true
		}
	}
	return false
}

// echoBody reads the request body, which holds the token, so that a
// handler can echo it back as a careless proxy or debug page would.
func echoBody(r *http.Request) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

// hangUntilClientGivesUp never answers. It reads the body first: only then
// does the server watch the connection and notice the client leaving.
func hangUntilClientGivesUp(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// TestTokenNeverShown provokes every kind of error with a debug logger
// attached, from servers that echo the request (token included) in every
// place an error could quote, and looks for the token in the log, in the
// errors however they are formatted, and in the request parameters.
func TestTokenNeverShown(t *testing.T) {
	var logBuf bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&logBuf)
	logger.SetLevel(logrus.DebugLevel)
	logger.SetFormatter(&logrus.JSONFormatter{})

	client := func(t *testing.T, h http.HandlerFunc, mut ...func(*moodle.Options)) *moodle.Client {
		t.Helper()
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		o := moodle.Options{URL: srv.URL, Token: oddToken, Retries: 1, RetryWait: time.Millisecond, Log: logger.WithField("run_id", "test")}
		for _, m := range mut {
			m(&o)
		}
		c, err := moodle.New(o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	members := []moodle.Pair{{A: 7, B: 41}}

	cases := []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"success", func(t *testing.T) error {
			c := client(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "null") })
			return c.AddMembers(context.Background(), members)
		}},
		{"moodle error quoting the request", func(t *testing.T) error {
			c := client(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := json.Marshal(map[string]string{"exception": "x", "errorcode": "invalidparameter",
					"message": "bad: " + echoBody(r), "debuginfo": r.FormValue("wstoken")})
				w.Write(b)
			})
			return c.AddMembers(context.Background(), members)
		}},
		{"HTTP 502 page quoting the request", func(t *testing.T) error {
			c := client(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadGateway)
				fmt.Fprintf(w, "<pre>%s</pre>", echoBody(r))
			})
			return c.AddMembers(context.Background(), members)
		}},
		{"HTML answer quoting the token", func(t *testing.T) error {
			c := client(t, func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				fmt.Fprintf(w, "<html>token %s</html>", r.PostForm.Get("wstoken"))
			})
			return c.AddMembers(context.Background(), members)
		}},
		{"undecodable JSON quoting the token", func(t *testing.T) error {
			c := client(t, func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				b, _ := json.Marshal([]string{r.PostForm.Get("wstoken")})
				w.Write(b)
			})
			_, err := c.SiteInfo(context.Background())
			return err
		}},
		{"XML error quoting the token", func(t *testing.T) error {
			c := client(t, func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				fmt.Fprintf(w, "<?xml version=\"1.0\" ?>\n<EXCEPTION><ERRORCODE>invalidtoken</ERRORCODE><MESSAGE>%s</MESSAGE></EXCEPTION>", r.PostForm.Get("wstoken"))
			})
			return c.AddMembers(context.Background(), members)
		}},
		{"redirect quoting the token", func(t *testing.T) error {
			c := client(t, func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				w.Header().Set("Location", "https://moodle.example/?wstoken="+url.QueryEscape(r.PostForm.Get("wstoken")))
				w.WriteHeader(http.StatusSeeOther)
			})
			return c.AddMembers(context.Background(), members)
		}},
		{"network error", func(t *testing.T) error {
			srv := httptest.NewServer(http.NotFoundHandler())
			srv.Close()
			c, err := moodle.New(moodle.Options{URL: srv.URL, Token: oddToken, Retries: -1, Log: logger})
			if err != nil {
				t.Fatal(err)
			}
			return c.AddMembers(context.Background(), members)
		}},
		{"timeout", func(t *testing.T) error {
			c := client(t, hangUntilClientGivesUp,
				func(o *moodle.Options) { o.Timeout = 20 * time.Millisecond })
			return c.AddMembers(context.Background(), members)
		}},
		{"cancelled", func(t *testing.T) error {
			ctx, cancel := context.WithCancel(context.Background())
			// Cancel, then answer nothing until the client has gone, so
			// the attempt always ends in cancellation.
			c := client(t, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
				cancel()
				<-r.Context().Done()
			},
				func(o *moodle.Options) { o.Retries = 5; o.RetryWait = time.Hour })
			return c.AddMembers(ctx, members)
		}},
		{"refused: too many variables", func(t *testing.T) error {
			c := client(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "null") },
				func(o *moodle.Options) { o.MaxInputVars = 20 })
			return c.AddMembers(context.Background(), make([]moodle.Pair, 20))
		}},
		{"TLS verification", func(t *testing.T) error {
			srv := httptest.NewUnstartedServer(http.NotFoundHandler())
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			t.Cleanup(srv.Close)
			c, err := moodle.New(moodle.Options{URL: srv.URL, Token: oddToken, Log: logger})
			if err != nil {
				t.Fatal(err)
			}
			return c.AddMembers(context.Background(), members)
		}},
		{"missing functions", func(t *testing.T) error {
			c := client(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"sitename":"S","functions":[]}`) })
			_, err := c.CheckFunctions(context.Background(), moodle.RequiredFunctions)
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(t)
			if (err == nil) != (tc.name == "success") {
				t.Fatalf("err = %v", err)
			}
			if err == nil {
				return
			}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
				if s := fmt.Sprintf(verb, err); containsToken(s) {
					t.Errorf("%s of the error shows the token: %s", verb, s)
				}
			}
			// The causes too, however a caller digs them out.
			for e := err; e != nil; {
				if s := fmt.Sprintf("%v %#v", e, e); containsToken(s) {
					t.Errorf("cause %T shows the token: %s", e, s)
				}
				u, ok := e.(interface{ Unwrap() error })
				if !ok {
					break
				}
				e = u.Unwrap()
			}
		})
	}

	if containsToken(logBuf.String()) {
		t.Errorf("the debug log shows the token:\n%s", logBuf.String())
	}
	// One entry per attempt, with what an operator needs.
	outcomes := map[string]int{}
	codes := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		for _, k := range []string{"function", "vars", "attempt", "duration", "outcome", "level", "msg"} {
			if _, ok := e[k]; !ok {
				t.Errorf("log entry lacks %q: %s", k, line)
			}
		}
		if e["level"] != "debug" {
			t.Errorf("log entry not at debug level: %s", line)
		}
		outcomes[e["outcome"].(string)]++
		if c, ok := e["errorcode"].(string); ok {
			codes[c] = true
		}
	}
	for _, o := range []string{"ok", "error", "transient", "fatal", "cancelled"} {
		if outcomes[o] == 0 {
			t.Errorf("no log entry with outcome %q: %v", o, outcomes)
		}
	}
	for _, c := range []string{"invalidparameter", moodle.CodeTooManyParams, moodle.CodeTLS, moodle.CodeWrongWWWRoot} {
		if !codes[c] {
			t.Errorf("no log entry with errorcode %q: %v", c, codes)
		}
	}

	t.Run("form rendering", func(t *testing.T) {
		f := moodle.MembersForm([]moodle.Pair{{A: 1, B: 2}})
		f.Add("name", "x")
		if s := f.String(); containsToken(s) || !strings.Contains(s, "members[0][groupid]=1") {
			t.Errorf("Form.String() = %q", s)
		}
	})
}

// TestNoLogAboveDebug: a logger at info level gets nothing from the client.
func TestNoLogAboveDebug(t *testing.T) {
	var buf bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&buf)
	logger.SetLevel(logrus.InfoLevel)
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) },
		func(o *moodle.Options) { o.Log = logger })
	if err := c.DeleteGroups(context.Background(), []int64{1}); err == nil {
		t.Fatal("no error")
	}
	if buf.Len() != 0 {
		t.Errorf("logged above debug level:\n%s", buf.String())
	}
}
