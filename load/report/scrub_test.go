package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// encodings are the base64 variants a secret can travel in.
var encodings = []struct {
	name string
	enc  *base64.Encoding
}{
	{"std", base64.StdEncoding},
	{"url", base64.URLEncoding},
	{"raw std", base64.RawStdEncoding},
	{"raw url", base64.RawURLEncoding},
}

// base64Run is text that could be base64 in either alphabet.
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/_-]{4,}={0,2}`)

// leaks lists the forms of the secrets found in text. It decodes every base64-looking run
// from each of its first four characters in every variant, independently of how Scrub finds
// them, so that it also catches forms no test case spelled out.
func leaks(text string, secrets ...string) []string {
	var found []string
	for _, sec := range secrets {
		for _, form := range []struct{ name, value string }{
			{"raw", sec}, {"query-escaped", url.QueryEscape(sec)}, {"path-escaped", url.PathEscape(sec)},
			{"query-escaped, lower case", lowerEscapes(url.QueryEscape(sec))},
			{"path-escaped, lower case", lowerEscapes(url.PathEscape(sec))},
		} {
			if strings.Contains(text, form.value) {
				found = append(found, fmt.Sprintf("%s %q", form.name, sec))
			}
		}
		for _, run := range base64Run.FindAllString(text, -1) {
			run = strings.TrimRight(run, "=")
			for start := 0; start < 4 && start < len(run); start++ {
				body := run[start:]
				for _, e := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
					// Decode as much as decodes: a run may end in characters of another alphabet.
					for end := len(body); end > 0; end-- {
						if b, err := e.DecodeString(body[:end]); err == nil {
							if bytes.Contains(b, []byte(sec)) {
								found = append(found, fmt.Sprintf("base64 %q in %q", sec, run))
							}
							break
						}
					}
				}
			}
		}
	}
	return found
}

func lowerEscapes(s string) string {
	return regexp.MustCompile(`%[0-9A-F]{2}`).ReplaceAllStringFunc(s, strings.ToLower)
}

// smtpPayloads are the byte strings SMTP AUTH sends with the password: PLAIN without and
// with an authorisation identity, LOGIN's password step, and the secret inside arbitrary
// bytes at each offset of a base64 group.
func smtpPayloads(user, pass string) map[string]string {
	return map[string]string{
		"password":             pass,
		"PLAIN":                "\x00" + user + "\x00" + pass,
		"PLAIN with authzid":   user + "\x00" + user + "\x00" + pass,
		"offset 1":             "a" + pass,
		"offset 2":             "ab" + pass + "c",
		"offset 0 with a tail": "xyz" + pass + "tail",
		"user and password, :": user + ":" + pass, // HTTP basic authentication
	}
}

func TestScrubRemovesEveryEncoding(t *testing.T) {
	const user = "cmissync-reports"
	// "???" at a group boundary makes the standard and URL alphabets differ; " ", "/", "&" and "ü" make the
	// URL encodings differ from the raw secret and from each other.
	const pass = "Pa5??? w/rd&ü"
	if base64.StdEncoding.EncodeToString([]byte(pass)) == base64.URLEncoding.EncodeToString([]byte(pass)) {
		t.Fatal("the test secret does not exercise the URL alphabet")
	}
	contexts := []struct{ format, keep string }{
		{"%s", ""},
		{"535 5.7.8 Authentication credentials invalid: %s (try again)", "535 5.7.8 Authentication credentials invalid: "},
		{"AUTH PLAIN %s", "AUTH PLAIN "},
		{"reply=%s&next=1", "&next=1"},
		{`{"error":"bad auth %s"}`, `{"error":"bad auth `},
		{"glued%s.", ""},
		{"(%s)", ")"},
		{"line one\n%s\nline three", "line three"},
	}
	forms := map[string]string{
		"query-escaped":           url.QueryEscape(pass),
		"path-escaped":            url.PathEscape(pass),
		"lower-case escapes":      lowerEscapes(url.PathEscape(pass)),
		"query-escaped in a text": "password%3D" + url.QueryEscape(pass) + "%26x",
	}
	for name, payload := range smtpPayloads(user, pass) {
		for _, e := range encodings {
			forms[name+", "+e.name] = e.enc.EncodeToString([]byte(payload))
		}
	}
	for name, form := range forms {
		for _, c := range contexts {
			in := fmt.Sprintf(c.format, form)
			if len(leaks(in, pass)) == 0 {
				t.Fatalf("the leak check misses %s in %q", name, in)
			}
			out := Scrub(in, "unrelated-secret", pass)
			if l := leaks(out, pass); len(l) > 0 {
				t.Errorf("%s in %q: after Scrub %q still holds %v", name, c.format, out, l)
			}
			if !strings.Contains(out, Redacted) || !strings.Contains(out, c.keep) {
				t.Errorf("%s in %q: Scrub gave %q", name, c.format, out)
			}
		}
	}
}

// TestScrubEveryAlignment puts the secret after and before every number of other bytes, so
// that it starts and ends at each place within a base64 group.
func TestScrubEveryAlignment(t *testing.T) {
	const pass = "s3cret"
	for before := range 7 {
		for after := range 7 {
			payload := strings.Repeat("\xfe", before) + pass + strings.Repeat("\x01", after)
			for _, e := range encodings {
				in := "reply " + e.enc.EncodeToString([]byte(payload)) + " end"
				out := Scrub(in, pass)
				if l := leaks(out, pass); len(l) > 0 || out != "reply "+Redacted+" end" {
					t.Errorf("%d+%d bytes around, %s: Scrub(%q) = %q (leaks %v)", before, after, e.name, in, out, l)
				}
			}
		}
	}
}

func TestScrubLeavesOtherBase64Alone(t *testing.T) {
	for _, in := range []string{
		"attachment " + base64.StdEncoding.EncodeToString([]byte("a report about s3cre and t")),
		"235 2.7.0 Authentication successful " + base64.StdEncoding.EncodeToString([]byte("\x00other-user\x00other-password")),
		"group COMP1001-SEM01 of course 1234",
	} {
		if out := Scrub(in, "s3cret"); out != in {
			t.Errorf("Scrub(%q) = %q, want it unchanged", in, out)
		}
	}
	// Secrets shorter than minSecretLen are too likely to turn up by chance, encoded too.
	short := base64.StdEncoding.EncodeToString([]byte("pw1"))
	if out := Scrub("AUTH LOGIN "+short, "pw1"); out != "AUTH LOGIN "+short {
		t.Errorf("a short secret garbled the text: %q", out)
	}
}
