package report

import (
	"fmt"
	"strconv"
	"strings"
)

// textWidth is where prose in the plain-text part is wrapped.
const textWidth = 78

// renderText lays out the plain-text part in the order people act on it: the step error and
// what to do, the failures (or refused rows), what was held back, notices, who waits for
// enrolment, and the counts.
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
		if v.Hold {
			section(&b, "STOPPED BY A SAFETY RAIL")
		} else {
			section(&b, "STEP ERROR")
		}
		b.WriteString(indentLines(v.Fatal, "  "))
	}
	if len(v.Advice) > 0 {
		section(&b, "WHAT TO DO NEXT")
		for _, a := range v.Advice {
			b.WriteString(wrap(a, "  - ", "    "))
		}
	}
	if len(v.Kinds) > 0 {
		textFailures(&b, v)
	}
	if len(v.RefusedKinds) > 0 {
		textRefused(&b, v)
	}
	for _, l := range []struct {
		title string
		lines []string
	}{{"HELD BACK", v.Held}, {"NOTICES", v.Notices}, {"WAITING FOR ENROLMENT", v.Waiting}} {
		if len(l.lines) == 0 {
			continue
		}
		if l.title == "WAITING FOR ENROLMENT" {
			section(&b, l.title)
		} else {
			section(&b, fmt.Sprintf("%s (%d)", l.title, len(l.lines)))
		}
		for i, s := range l.lines {
			if i == maxListed {
				line("  … and %d more", len(l.lines)-maxListed)
				break
			}
			b.WriteString(wrap(s, "  - ", "    "))
		}
	}
	if len(v.Summary) > 0 {
		section(&b, "COUNTS")
		lw, nw := 0, 0
		for _, c := range v.Counts {
			lw = max(lw, len([]rune(c.Label)))
			nw = max(nw, len(strconv.FormatInt(c.Value, 10)))
		}
		for _, c := range v.Counts {
			line("  %s%s  %*d", c.Label, strings.Repeat(" ", lw-len([]rune(c.Label))), nw, c.Value)
		}
		switch {
		case len(v.Counts) == 0:
			line("  Nothing changed.")
		case v.Zero:
			line("  (every other count is zero)")
		}
	}
	line("")
	line("-- ")
	line("Sent by cmissync. Web-service tokens and passwords are never included.")
	return b.String()
}

func textFailures(b *strings.Builder, v view) {
	line := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	section(b, fmt.Sprintf("FAILURES (%s)", itemsAndKinds(v.Items, len(v.Kinds), "failure")))
	for _, k := range v.Kinds {
		line("")
		head := fmt.Sprintf("[%d] %d x", k.N, k.Count)
		if k.Function != "" {
			head += " " + k.Function
		}
		line("%s", head)
		b.WriteString(indentLines(k.Answer, "    Moodle    "))
		if len(k.Courses) > 0 {
			b.WriteString(courseLines(k.Courses, k.MoreCourses))
		}
		b.WriteString(wrap(k.Hint, "    Fix       ", "              "))
		if len(k.Examples) == 0 {
			continue
		}
		if len(k.Examples) < k.Count {
			line("    Examples (%d of %d):", len(k.Examples), k.Count)
		}
		for _, e := range k.Examples {
			ex := func(label, value string) {
				if value != "" {
					b.WriteString(indentLines(value, fmt.Sprintf("      %-8s", label)))
				}
			}
			line("    -")
			ex("Course", e.Course.Label())
			ex("Group", e.Group)
			ex("User", e.User)
			ex("Sent", strings.Join(e.Params, "\n"))
		}
	}
	if v.Hidden > 0 {
		line("")
		line("All %d failures are in the attached CSV (%s).", v.Items, v.CSVName)
	}
}

func textRefused(b *strings.Builder, v view) {
	line := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	section(b, fmt.Sprintf("REFUSED ROWS (%s)", itemsAndKinds(v.Items, len(v.RefusedKinds), "row")))
	for _, k := range v.RefusedKinds {
		line("")
		head := fmt.Sprintf("[%d] %s: %d", k.N, k.File, k.Count)
		if k.Count == 1 {
			head += " row"
		} else {
			head += " rows"
		}
		line("%s", head)
		kf := func(label, value string) {
			if value != "" {
				b.WriteString(wrap(value, fmt.Sprintf("    %-10s", label), "              "))
			}
		}
		kf("Lines", k.Lines)
		kf("Field", k.Field)
		kf("Reason", k.Reason)
		modules := k.Modules
		if k.Unknown {
			modules = strings.TrimPrefix(modules+"; any module (its code could not be read)", "; ")
		}
		kf("Modules", modules)
		switch {
		case len(k.Courses) > 0:
			b.WriteString(courseLines(k.Courses, k.MoreCourses))
		case k.Unknown:
			kf("Courses", "any mapped course")
		default:
			kf("Courses", "none: no course takes these modules' groups")
		}
		for _, e := range k.Examples {
			if e.Row != "" {
				b.WriteString(indentLines(e.Row, fmt.Sprintf("    line %-5s", lineNumber(e.Line))))
			}
		}
	}
	if v.Hidden > 0 {
		line("")
		line("All %d refused rows are in the attached CSV (%s).", v.Items, v.CSVName)
	}
}

func lineNumber(n int64) string {
	if n <= 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

// courseLines lists courses with the link to each one's groups page.
func courseLines(cs []courseRef, more int) string {
	var b strings.Builder
	for i, c := range cs {
		label := "    Courses   "
		if i > 0 {
			label = "              "
		}
		s := c.Label()
		if c.URL != "" {
			s += " " + c.URL
		}
		b.WriteString(label + s + "\n")
	}
	if more > 0 {
		fmt.Fprintf(&b, "              … and %d more\n", more)
	}
	return b.String()
}

func itemsAndKinds(items, kinds int, what string) string {
	s := fmt.Sprintf("%d %ss", items, what)
	if items == 1 {
		s = "1 " + what
	}
	if kinds > 1 {
		s += fmt.Sprintf(" of %d kinds", kinds)
	}
	return s
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
