package report

import (
	"encoding/base64"
	"net/url"
	"regexp"
	"slices"
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
// and secret, and every occurrence of the given secrets (of six bytes or more) in any encoding
// that reaches logs, reports, .eml files and errors: as they are, URL-encoded (query or path
// style), and base64-encoded in either alphabet, padded or not, on their own or inside a longer
// payload such as SMTP AUTH PLAIN's "\x00user\x00password". A base64 run that carries a secret
// is replaced whole. Callers should not send secrets in the first place; Scrub is the second
// line of defence.
func Scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) < minSecretLen {
			continue
		}
		for _, form := range literalForms(sec) {
			s = strings.ReplaceAll(s, form, Redacted)
		}
		s = redactBase64(s, sec)
	}
	for _, p := range scrubPatterns {
		s = p.re.ReplaceAllString(s, p.repl)
	}
	return s
}

// literalForms are the secret as it is and URL-encoded, with upper- and lower-case escapes.
func literalForms(sec string) []string {
	forms := []string{sec}
	for _, esc := range []string{url.QueryEscape(sec), url.PathEscape(sec)} {
		lower := percentEscape.ReplaceAllStringFunc(esc, strings.ToLower)
		for _, f := range []string{esc, lower} {
			if !slices.Contains(forms, f) {
				forms = append(forms, f)
			}
		}
	}
	return forms
}

var percentEscape = regexp.MustCompile(`%[0-9A-F]{2}`)

// redactBase64 replaces every base64 run in s whose decoding contains sec, wherever sec sits
// in the encoded bytes. Base64 turns each 3 bytes into 4 characters, so sec starts at one of
// three offsets within a group; for each, the characters that encode only sec's own bits are
// the same whatever bytes surround it (base64Cores). Looking for those, rather than decoding
// candidate runs, also finds a payload glued to other letters or cut short, where decoding
// from the start of the run would fail or be misaligned.
func redactBase64(s, sec string) string {
	type span struct{ from, to int }
	var spans []span
	for _, core := range base64Cores(sec) {
		for i := 0; ; {
			j := strings.Index(s[i:], core)
			if j < 0 {
				break
			}
			from, to := i+j, i+j+len(core)
			for from > 0 && isBase64Char(s[from-1]) {
				from--
			}
			for to < len(s) && isBase64Char(s[to]) {
				to++
			}
			for pad := 0; pad < 2 && to < len(s) && s[to] == '='; pad++ {
				to++
			}
			spans = append(spans, span{from, to})
			i = to
		}
	}
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from - b.from })
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		if sp.to <= last {
			continue // inside a run already redacted
		}
		if sp.from >= last {
			b.WriteString(s[last:sp.from])
			b.WriteString(Redacted)
		}
		last = sp.to
	}
	b.WriteString(s[last:])
	return b.String()
}

// base64Cores returns, for each of the three offsets sec can start at within a 3-byte group,
// the base64 characters (standard and URL alphabets) whose 6 bits all come from sec.
func base64Cores(sec string) []string {
	var cores []string
	for offset := range 3 {
		buf := make([]byte, offset+len(sec))
		copy(buf[offset:], sec)
		enc := base64.StdEncoding.EncodeToString(buf)
		// Character c holds bits [6c, 6c+6); sec holds bits [8*offset, 8*(offset+len)).
		from := (8*offset + 5) / 6
		to := 8 * (offset + len(sec)) / 6
		core := enc[from:to]
		cores = append(cores, core, strings.NewReplacer("+", "-", "/", "_").Replace(core))
	}
	return cores
}

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '+' || c == '/' || c == '-' || c == '_'
}

// scrubReport returns a copy of r with every text field scrubbed.
func scrubReport(r Report, secrets []string) Report {
	sc := func(s string) string { return Scrub(s, secrets...) }
	lines := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = sc(s)
		}
		return out
	}
	out := r
	out.Site = sc(r.Site)
	out.RunID = sc(r.RunID)
	out.Step = sc(r.Step)
	out.Outcome = sc(r.Outcome)
	out.Fatal = sc(r.Fatal)
	out.MoodleURL = sc(r.MoodleURL)
	out.Summary = make([]Count, len(r.Summary))
	for i, c := range r.Summary {
		out.Summary[i] = Count{Label: sc(c.Label), Value: c.Value}
	}
	out.Advice = lines(r.Advice)
	out.Held = lines(r.Held)
	out.Notices = lines(r.Notices)
	out.Waiting = lines(r.Waiting)
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
	out.Refused = make([]Refused, len(r.Refused))
	for i, x := range r.Refused {
		out.Refused[i] = Refused{
			File: sc(x.File), Line: x.Line, Field: sc(x.Field), Reason: sc(x.Reason), Row: sc(x.Row),
			Module: sc(x.Module), Group: sc(x.Group), Member: sc(x.Member),
			Courses: append([]int(nil), x.Courses...),
		}
	}
	return out
}
