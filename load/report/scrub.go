package report

import (
	"regexp"
	"strings"
)

// Redacted replaces every secret value that Scrub removes.
const Redacted = "[redacted]"

// secretKey matches parameter names whose values must never be shown: wstoken, token,
// privatetoken, password, passwd, secret and the like.
const secretKey = `[A-Za-z0-9_\-\[\]]*(?i:token|password|passwd|secret)`

var scrubPatterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	// JSON: "wstoken":"abc" or "wstoken": "abc".
	{regexp.MustCompile(`("` + secretKey + `"\s*:\s*)"(?:[^"\\]|\\.)*"`), `${1}"` + Redacted + `"`},
	// PHP array dumps, as in Moodle's debuginfo: 'wstoken' => 'abc'.
	{regexp.MustCompile(`('` + secretKey + `'\s*=>\s*)'(?:[^'\\]|\\.)*'`), `${1}'` + Redacted + `'`},
	// Query strings and key=value text: wstoken=abc, members[0][token]=abc.
	{regexp.MustCompile(`(` + secretKey + `\]?)(\s*=\s*)([^\s&"'<>,;)]+)`), `${1}${2}` + Redacted},
	// The same, URL-encoded once more: wstoken%3Dabc%26....
	{regexp.MustCompile(`(` + secretKey + `(?:%5[Dd])?)(%3[Dd])([^\s&%"'<>,;)]+)`), `${1}${2}` + Redacted},
	// "password: abc" in prose. Only whole words, so that Moodle's own "invalidtoken: Invalid
	// token" keeps its meaning.
	{regexp.MustCompile(`\b((?i:wstoken|token|password|passwd|secret))(\s*:[ \t]*)([^\s&"'<>,;)]+)`), `${1}${2}` + Redacted},
}

// minSecretLen is the shortest literal secret Scrub replaces: shorter values turn up by chance
// in ordinary words and ids, and replacing them would garble the report.
const minSecretLen = 6

// Scrub removes anything that looks like a web-service token or password from s: the values
// of wstoken=..., "wstoken":"...", 'wstoken' => '...' and the same forms for token, password
// and secret, and every literal occurrence of the given secrets (of six characters or more).
// Callers should not send secrets in the first place; Scrub is the second line of defence.
func Scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= minSecretLen {
			s = strings.ReplaceAll(s, sec, Redacted)
		}
	}
	for _, p := range scrubPatterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}

// scrubReport returns a copy of r with every text field scrubbed.
func scrubReport(r Report, secrets []string) Report {
	sc := func(s string) string { return Scrub(s, secrets...) }
	out := r
	out.Site = sc(r.Site)
	out.RunID = sc(r.RunID)
	out.Step = sc(r.Step)
	out.Outcome = sc(r.Outcome)
	out.Fatal = sc(r.Fatal)
	out.Summary = make([]Count, len(r.Summary))
	for i, c := range r.Summary {
		out.Summary[i] = Count{Label: sc(c.Label), Value: c.Value}
	}
	out.Advice = make([]string, len(r.Advice))
	for i, a := range r.Advice {
		out.Advice[i] = sc(a)
	}
	out.Held = make([]string, len(r.Held))
	for i, h := range r.Held {
		out.Held[i] = sc(h)
	}
	out.Notices = make([]string, len(r.Notices))
	for i, n := range r.Notices {
		out.Notices[i] = sc(n)
	}
	out.Failures = make([]Failure, len(r.Failures))
	for i, f := range r.Failures {
		out.Failures[i] = Failure{
			CourseID:      f.CourseID,
			CourseName:    sc(f.CourseName),
			GroupName:     sc(f.GroupName),
			GroupIDNumber: sc(f.GroupIDNumber),
			User:          sc(f.User),
			Function:      sc(f.Function),
			Params:        sc(f.Params),
			ErrorCode:     sc(f.ErrorCode),
			Exception:     sc(f.Exception),
			Message:       sc(f.Message),
			Hint:          sc(f.Hint),
		}
	}
	return out
}
