package report

import (
	"fmt"
	"strings"
	"time"
)

// DefaultMaxRows is how many failures (or refused rows) a message shows as examples when
// RenderOptions.MaxRows is not set; whenever some are not shown, all of them go into the CSV
// attachment.
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

// Refused is one source row the extract step refused. The extract report lays these out by
// file, line and field, with what the row would have described in Moodle, rather than as
// web-service failures.
type Refused struct {
	// File is the CSV file or query file the row came from.
	File string
	// Line is the row's line (CSV) or row number (query), 1-based; 0 when unknown.
	Line int64
	// Field is the column at fault, when the reason is about one.
	Field string
	// Reason says why the row was refused and what it keeps from being deleted.
	Reason string
	// Row is the row as read, rendered for people.
	Row string
	// Module, Group and Member are the row's key as far as it could be read; empty when
	// not (then it stands for every value).
	Module, Group, Member string
	// Courses are the Moodle courses that take the module's groups: where the row would have
	// made or changed something.
	Courses []int
}

// Count is one labelled number in a report's summary, e.g. "Groups created: 12".
type Count struct {
	Label string
	Value int64
}

// Report is what one pipeline step tells support staff: its failures, what was held back,
// notices, members waiting for enrolment, and its counts.
type Report struct {
	// Site names the installation (the instance name from the configuration); it goes in
	// the subject.
	Site  string
	RunID string
	// Step is extract, stage or load.
	Step              string
	Started, Finished time.Time
	// Outcome says how the step ended, e.g. "finished with 3 failures". When empty, it is
	// worked out from the rest of the report.
	Outcome string
	// Hold says the step was stopped by a safety rail and waits for an operator's approval;
	// Fatal says why.
	Hold    bool
	Summary []Count
	// Fatal is the step-level error, if the step as a whole failed or was held.
	Fatal string
	// Advice lists what to check and what to run next, e.g. "cmissync status".
	Advice   []string
	Failures []Failure
	// Refused lists the source rows an extract refused (the extract report's own layout).
	Refused []Refused
	// Held lists what a safety policy held back, one line each with the
	// reason (deletions without evidence, over the mass-change guard).
	Held []string
	// Notices lists what happened that is worth knowing though nothing
	// failed (a group recreated, adopted or given back, a course retired).
	Notices []string
	// Waiting lists the members waiting for enrolment: one line for each who waits for the
	// first time, then one summary line (how many wait, since when). Waiting is not a
	// failure; it is reported so that someone enrols them.
	Waiting []string
	// MoodleURL is the Moodle site's wwwroot. When set, every course links to its groups
	// page ({wwwroot}/group/index.php?id=N).
	MoodleURL string
}

// NewWaiting is how many members wait for enrolment for the first time: the lines of Waiting
// before its summary line.
func (r Report) NewWaiting() int { return max(len(r.Waiting)-1, 0) }

// maxListed bounds the held-back, notice and waiting lines shown in a message.
const maxListed = 50

// RenderOptions tunes Render.
type RenderOptions struct {
	// MaxRows is how many failures (or refused rows) are shown as examples in the message
	// itself; when any is not shown, all of them are attached as CSV. Zero or less means
	// DefaultMaxRows.
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
	// CSV holds every failure (or refused row), with a header row; it is nil when all of them
	// are shown in the message.
	CSV []byte
	// CSVName is the attachment's file name, set when CSV is.
	CSVName string
}

// Render lays out r as a message: the subject, a plain-text and an HTML body, and a CSV
// attachment of all failures (or refused rows) when the message shows only some of them.
// Every text field of r is scrubbed of secrets first, and any HTML page quoted in it (a web
// server's error page) is reduced to a one-line summary.
func Render(r Report, opt RenderOptions) (Rendered, error) {
	maxRows := opt.MaxRows
	if maxRows <= 0 {
		maxRows = DefaultMaxRows
	}
	r = tidyReport(scrubReport(r, opt.Secrets))
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
	if v.Hidden > 0 {
		if len(r.Refused) > 0 {
			out.CSV, err = refusedCSV(r)
		} else {
			out.CSV, err = failuresCSV(r)
		}
		if err != nil {
			return Rendered{}, err
		}
		out.CSVName = v.CSVName
	}
	return out, nil
}

// Outcome says in a few words how the step the report is about ended, e.g. "finished with 3
// failures, 1 notice", counting everything the report holds.
func Outcome(r Report) string {
	head := "finished"
	switch {
	case r.Hold:
		head = "stopped by a safety rail"
	case r.Fatal != "":
		head = "failed"
	}
	var parts []string
	add := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, "1 "+one)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	add(len(r.Failures), "failure", "failures")
	add(len(r.Refused), "row refused", "rows refused")
	add(len(r.Held), "deletion held back", "deletions held back")
	add(len(r.Notices), "notice", "notices")
	add(r.NewWaiting(), "new member waiting for enrolment", "new members waiting for enrolment")
	switch {
	case len(parts) == 0:
		return head
	case head == "finished":
		return head + " with " + strings.Join(parts, ", ")
	default:
		return head + "; " + strings.Join(parts, ", ")
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02 15:04:05 MST")
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
