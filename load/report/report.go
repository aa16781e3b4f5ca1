package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxRows is how many failures a message shows inline when RenderOptions.MaxRows is
// not set; beyond it, all failures go into the CSV attachment.
const DefaultMaxRows = 20

// Failure is one item that failed in a step: which course, group and user it was for, the
// web-service call that was made, Moodle's answer, and the likely fix.
type Failure struct {
	CourseID      int
	CourseName    string
	GroupName     string
	GroupIDNumber string
	// User names the user concerned, e.g. "s1234567 (Moodle user 42)", or is empty.
	User string
	// Function is the web-service function called, e.g. core_group_add_group_members.
	Function string
	// Params are the parameters sent, already rendered. They are scrubbed of tokens and
	// passwords again before they are shown.
	Params    string
	ErrorCode string
	Exception string
	Message   string
	// Hint is the likely fix in words. When empty, HintFor(ErrorCode) is used.
	Hint string
}

// Count is one labelled number in a report's summary, e.g. "Groups created: 12".
type Count struct {
	Label string
	Value int64
}

// Report is what one pipeline step tells support staff when it ends with failures or stops.
type Report struct {
	// Site names the installation (the instance name from the configuration); it goes in
	// the subject.
	Site  string
	RunID string
	// Step is extract, stage or load.
	Step              string
	Started, Finished time.Time
	// Outcome says how the step ended, e.g. "finished with 3 failures", "stopped: safety
	// hold" or "failed". When empty, it is worked out from Fatal and Failures.
	Outcome string
	Summary []Count
	// Fatal is the step-level error, if the step as a whole failed.
	Fatal string
	// Advice lists what to check and what to run next, e.g. "cmissync status".
	Advice   []string
	Failures []Failure
	// Held lists what a safety policy held back, one line each with the
	// reason (deletions without evidence, over the mass-change guard).
	Held []string
	// Notices lists what happened that is worth knowing though nothing
	// failed (a group recreated, adopted or given back, a course retired).
	Notices []string
}

// maxListed bounds the held-back and notice lines shown in a message.
const maxListed = 50

// RenderOptions tunes Render.
type RenderOptions struct {
	// MaxRows is how many failures are shown in the message itself; when there are more,
	// all of them are attached as CSV. Zero or less means DefaultMaxRows.
	MaxRows int
	// Secrets are literal values (tokens, passwords) to remove wherever they appear, on top of
	// the patterns Scrub always removes.
	Secrets []string
}

// Rendered holds the parts of a report message.
type Rendered struct {
	Subject string
	Text    string
	HTML    string
	// CSV holds every failure, with a header row; it is nil when all failures fit inline.
	CSV []byte
	// CSVName is the attachment's file name, set when CSV is.
	CSVName string
}

// view is the scrubbed report with everything the text and HTML layouts need worked out once.
type view struct {
	Report
	Subject  string
	Title    string
	Started  string
	Finished string
	Took     string
	Shown    []failureView
	Total    int
	More     int
	CSVName  string
	ByCode   []codeCount
}

type failureView struct {
	N int
	Failure
	Course string
	Group  string
	Answer string
}

type codeCount struct {
	Code  string
	Count int
	Hint  string
}

// Render lays out r as a message: the subject, a plain-text and an HTML body, and a CSV
// attachment of all failures when there are more than opt.MaxRows. Every text field of r is
// scrubbed of secrets first.
func Render(r Report, opt RenderOptions) (Rendered, error) {
	maxRows := opt.MaxRows
	if maxRows <= 0 {
		maxRows = DefaultMaxRows
	}
	r = scrubReport(r, opt.Secrets)
	for i := range r.Failures {
		if r.Failures[i].Hint == "" {
			r.Failures[i].Hint = HintFor(r.Failures[i].ErrorCode)
		}
	}
	v := newView(r, maxRows)

	var out Rendered
	out.Subject = v.Subject
	out.Text = renderText(v)
	html, err := renderHTML(v)
	if err != nil {
		return Rendered{}, err
	}
	out.HTML = html
	if v.More > 0 {
		out.CSV, err = renderCSV(r)
		if err != nil {
			return Rendered{}, err
		}
		out.CSVName = v.CSVName
	}
	return out, nil
}

func newView(r Report, maxRows int) view {
	v := view{Report: r, Total: len(r.Failures)}
	if v.Outcome == "" {
		v.Outcome = defaultOutcome(r)
	}
	step := r.Step
	if step == "" {
		step = "run"
	}
	v.Title = "cmissync " + step + ": " + v.Outcome
	subject := "[cmissync] "
	if r.Site != "" {
		subject += r.Site + ": "
	}
	subject += step + " " + v.Outcome
	if r.RunID != "" {
		subject += " (run " + r.RunID + ")"
	}
	v.Subject = oneLine(subject)
	v.Started = formatTime(r.Started)
	v.Finished = formatTime(r.Finished)
	if !r.Started.IsZero() && !r.Finished.IsZero() && !r.Finished.Before(r.Started) {
		v.Took = r.Finished.Sub(r.Started).Round(time.Second).String()
	}

	shown := r.Failures
	if len(shown) > maxRows {
		shown = shown[:maxRows]
		v.More = len(r.Failures) - maxRows
		v.CSVName = safeName("cmissync-"+r.RunID+"-"+step+"-failures") + ".csv"
	}
	for i, f := range shown {
		v.Shown = append(v.Shown, failureView{
			N:       i + 1,
			Failure: f,
			Course:  courseLabel(f),
			Group:   groupLabel(f),
			Answer:  answerLabel(f),
		})
	}
	v.ByCode = countByCode(r.Failures)
	return v
}

func defaultOutcome(r Report) string {
	switch {
	case r.Fatal != "":
		return "failed"
	case len(r.Failures) == 1:
		return "finished with 1 failure"
	case len(r.Failures) > 1:
		return fmt.Sprintf("finished with %d failures", len(r.Failures))
	case len(r.Held) == 1:
		return "finished; 1 deletion held back"
	case len(r.Held) > 1:
		return fmt.Sprintf("finished; %d deletions held back", len(r.Held))
	case len(r.Notices) == 1:
		return "finished; 1 notice"
	case len(r.Notices) > 1:
		return fmt.Sprintf("finished; %d notices", len(r.Notices))
	default:
		return "finished"
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

func courseLabel(f Failure) string {
	switch {
	case f.CourseName != "" && f.CourseID != 0:
		return fmt.Sprintf("%s (id %d)", f.CourseName, f.CourseID)
	case f.CourseID != 0:
		return fmt.Sprintf("course id %d", f.CourseID)
	default:
		return f.CourseName
	}
}

func groupLabel(f Failure) string {
	switch {
	case f.GroupName != "" && f.GroupIDNumber != "":
		return f.GroupName + " [" + f.GroupIDNumber + "]"
	case f.GroupIDNumber != "":
		return "[" + f.GroupIDNumber + "]"
	default:
		return f.GroupName
	}
}

func answerLabel(f Failure) string {
	code := f.ErrorCode
	if f.Exception != "" {
		if code == "" {
			code = f.Exception
		} else {
			code += " (" + f.Exception + ")"
		}
	}
	switch {
	case code != "" && f.Message != "":
		return code + ": " + f.Message
	case code != "":
		return code
	default:
		return f.Message
	}
}

// countByCode groups failures by errorcode, most frequent first, with the hint of the first
// failure of each code, so that a long report opens with what to fix.
func countByCode(fs []Failure) []codeCount {
	idx := map[string]int{}
	var out []codeCount
	for _, f := range fs {
		code := f.ErrorCode
		if code == "" {
			code = "(no error code)"
		}
		i, ok := idx[code]
		if !ok {
			i = len(out)
			idx[code] = i
			out = append(out, codeCount{Code: code, Hint: f.Hint})
		}
		out[i].Count++
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Count != out[b].Count {
			return out[a].Count > out[b].Count
		}
		return out[a].Code < out[b].Code
	})
	return out
}

// oneLine keeps header values on one line, so that nothing in a report can add headers.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// safeName keeps letters, digits, dot, dash and underscore, so that a run id cannot steer a
// file name out of its directory.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.'
		if !ok {
			b[i] = '_'
		}
	}
	s = strings.TrimLeft(string(b), ".")
	if s == "" {
		s = "report"
	}
	return s
}

// textWidth is where prose in the plain-text part is wrapped.
const textWidth = 78

func renderText(v view) string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }

	line("%s", v.Title)
	line("%s", strings.Repeat("=", min(len([]rune(v.Title)), textWidth)))
	line("")
	field := func(label, value string) {
		if value != "" {
			line("%-10s%s", label, value)
		}
	}
	field("Site", v.Site)
	field("Step", v.Step)
	field("Run", v.RunID)
	field("Started", v.Started)
	if v.Took != "" {
		field("Finished", v.Finished+" (took "+v.Took+")")
	} else {
		field("Finished", v.Finished)
	}
	field("Outcome", v.Outcome)

	if v.Fatal != "" {
		section(&b, "STEP ERROR")
		b.WriteString(indentLines(v.Fatal, "  "))
	}
	if len(v.Summary) > 0 {
		section(&b, "SUMMARY")
		lw, nw := 0, 0
		for _, c := range v.Summary {
			lw = max(lw, len([]rune(c.Label)))
			nw = max(nw, len(strconv.FormatInt(c.Value, 10)))
		}
		for _, c := range v.Summary {
			line("  %s%s  %*d", c.Label, strings.Repeat(" ", lw-len([]rune(c.Label))), nw, c.Value)
		}
	}
	if len(v.Advice) > 0 {
		section(&b, "WHAT TO DO NEXT")
		for _, a := range v.Advice {
			b.WriteString(wrap(a, "  - ", "    "))
		}
	}
	for _, l := range []struct {
		title string
		lines []string
	}{{"HELD BACK", v.Held}, {"NOTICES", v.Notices}} {
		if len(l.lines) == 0 {
			continue
		}
		section(&b, fmt.Sprintf("%s (%d)", l.title, len(l.lines)))
		for i, s := range l.lines {
			if i == maxListed {
				line("  … and %d more", len(l.lines)-maxListed)
				break
			}
			b.WriteString(wrap(s, "  - ", "    "))
		}
	}
	if v.Total > 0 {
		section(&b, "FAILURES BY ERROR CODE")
		cw := 0
		for _, c := range v.ByCode {
			cw = max(cw, len(strconv.Itoa(c.Count)))
		}
		for _, c := range v.ByCode {
			line("  %*d x %s", cw, c.Count, c.Code)
			b.WriteString(wrap("Likely fix: "+c.Hint, "      ", "      "))
		}

		if v.More > 0 {
			section(&b, fmt.Sprintf("FAILURES (first %d of %d)", len(v.Shown), v.Total))
		} else {
			section(&b, fmt.Sprintf("FAILURES (%d)", v.Total))
		}
		// A hint is written out once; repeats point back to it, so that twenty failures of
		// one kind do not bury the rest.
		firstWithHint := map[string]int{}
		for _, f := range v.Shown {
			line("")
			line("#%d", f.N)
			ff := func(label, value string) {
				if value != "" {
					b.WriteString(indentLines(value, fmt.Sprintf("  %-10s", label)))
				}
			}
			ff("Course", f.Course)
			ff("Group", f.Group)
			ff("User", f.User)
			ff("Function", f.Function)
			ff("Sent", f.Params)
			ff("Moodle", f.Answer)
			if n, ok := firstWithHint[f.Hint]; ok {
				line("  %-10s(same as #%d)", "Fix", n)
			} else {
				firstWithHint[f.Hint] = f.N
				b.WriteString(wrap(f.Hint, "  Fix       ", "            "))
			}
		}
		if v.More > 0 {
			line("")
			line("… and %d more in the attached CSV (%s).", v.More, v.CSVName)
		}
	}
	line("")
	line("-- ")
	line("Sent by cmissync. Web-service tokens and passwords are never included.")
	return b.String()
}

func section(b *strings.Builder, title string) {
	b.WriteString("\n" + title + "\n")
}

// indentLines writes s after first, indenting any further lines to the same column, so that a
// multi-line value (a stack of Moodle's debug info, say) stays readable.
func indentLines(s, first string) string {
	pad := strings.Repeat(" ", len([]rune(first)))
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n"), "\n")
	var b strings.Builder
	for i, l := range lines {
		if i == 0 {
			b.WriteString(first)
		} else {
			b.WriteString(pad)
		}
		b.WriteString(strings.TrimRight(l, " \t"))
		b.WriteString("\n")
	}
	return b.String()
}

// wrap fills prose to textWidth columns, starting with first and indenting the following
// lines with rest. Words longer than the line are left whole.
func wrap(s, first, rest string) string {
	var b strings.Builder
	prefix := first
	col := 0
	for _, w := range strings.Fields(s) {
		n := len([]rune(w))
		switch {
		case col == 0:
			b.WriteString(prefix)
			b.WriteString(w)
			col = len([]rune(prefix)) + n
		case col+1+n > textWidth:
			b.WriteString("\n")
			b.WriteString(rest)
			b.WriteString(w)
			col = len([]rune(rest)) + n
		default:
			b.WriteString(" ")
			b.WriteString(w)
			col += 1 + n
		}
	}
	if col > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// csvHeader names the columns of the failures attachment.
var csvHeader = []string{
	"run_id", "step", "course_id", "course_name", "group_name", "group_idnumber", "user",
	"function", "params", "errorcode", "exception", "message", "likely_fix",
}

// renderCSV writes every failure of the (already scrubbed) report as CSV with a header row.
// It starts with a UTF-8 byte-order mark and ends lines with CRLF, as spreadsheet programs
// expect, so that accented names open correctly when support staff double-click the file.
func renderCSV(r Report) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("\ufeff")
	w := csv.NewWriter(&buf)
	w.UseCRLF = true
	if err := w.Write(csvHeader); err != nil {
		return nil, fmt.Errorf("write CSV header: %w", err)
	}
	for _, f := range r.Failures {
		id := ""
		if f.CourseID != 0 {
			id = strconv.Itoa(f.CourseID)
		}
		rec := []string{
			r.RunID, r.Step, id, f.CourseName, f.GroupName, f.GroupIDNumber, f.User,
			f.Function, f.Params, f.ErrorCode, f.Exception, f.Message, f.Hint,
		}
		for i := range rec {
			rec[i] = csvCell(rec[i])
		}
		if err := w.Write(rec); err != nil {
			return nil, fmt.Errorf("write CSV row: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("write CSV: %w", err)
	}
	return buf.Bytes(), nil
}

// csvCell defuses cells that a spreadsheet would run as a formula (course and group names come
// from other systems), by prefixing an apostrophe, as OWASP recommends.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
