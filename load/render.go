package load

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// memberLinesPerCourse bounds the member items WriteText lists per course;
// plan --json lists them all.
const memberLinesPerCourse = 40

// WriteText prints the plan for people: a table of counts per course, then
// each course's items with their reasons, and what is held back and why.
func (p *Plan) WriteText(w io.Writer) {
	if p.Offline {
		fmt.Fprintln(w, "Offline plan: built from staging alone; Moodle was not read, so changes made there by hand are not seen.")
	}
	troubled := 0
	for _, cp := range p.Courses {
		if cp.State != "ok" && cp.State != "deleted" {
			troubled++
		}
	}
	if p.Totals.Empty() && troubled == 0 {
		fmt.Fprintln(w, "Nothing to do: Moodle is in step with CMIS.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var cols []planColumn
	head := "course\t"
	for _, c := range planColumns {
		if !c.optional || c.n(p.Totals) != 0 {
			cols = append(cols, c)
			head += c.title + "\t"
		}
	}
	fmt.Fprintln(tw, head)
	row := func(label string, c PlanCounts) {
		line := label + "\t"
		for _, col := range cols {
			line += fmt.Sprint(col.n(c)) + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	for _, cp := range p.Courses {
		if !cp.Counts.Empty() {
			row(fmt.Sprint(cp.CourseID), cp.Counts)
		}
	}
	row("total", p.Totals)
	tw.Flush()
	for _, cp := range p.Courses {
		if cp.Counts.Empty() && cp.State == "ok" {
			continue
		}
		fmt.Fprintf(w, "\ncourse %d:\n", cp.CourseID)
		if cp.Problem != "" {
			fmt.Fprintf(w, "  %s: %s\n", cp.State, cp.Problem)
		}
		writeItems(w, cp.Items, "  ")
		// Held items are listed under their reason, once per reason.
		var reasons []string
		byReason := map[string][]*Item{}
		for _, it := range cp.Held {
			if byReason[it.Held] == nil {
				reasons = append(reasons, it.Held)
			}
			c := *it
			c.Held = ""
			byReason[it.Held] = append(byReason[it.Held], &c)
		}
		for _, r := range reasons {
			fmt.Fprintf(w, "  held back (%s):\n", r)
			writeItems(w, byReason[r], "    ")
		}
	}
	if len(p.Guard) > 0 {
		fmt.Fprintf(w, "\nThe mass-change guard holds deletions back: %s.\nApprove them with --approve-deletes.\n", strings.Join(p.Guard, "; "))
	}
}

// planColumn is a column of the plan's table of counts; optional columns
// are shown only when the plan has such items.
type planColumn struct {
	title    string
	n        func(PlanCounts) int
	optional bool
}

var planColumns = []planColumn{
	{title: "new groupings", n: func(c PlanCounts) int { return c.CreateGroupings }},
	{title: "new groups", n: func(c PlanCounts) int { return c.CreateGroups }},
	{title: "adopt", n: func(c PlanCounts) int { return c.Adopt }},
	{title: "rename", n: func(c PlanCounts) int { return c.Rename }},
	{title: "assign", n: func(c PlanCounts) int { return c.Assign }},
	{title: "enrol", n: func(c PlanCounts) int { return c.Enrol }, optional: true},
	{title: "add members", n: func(c PlanCounts) int { return c.AddMembers }},
	{title: "remove members", n: func(c PlanCounts) int { return c.RemoveMembers }},
	{title: "give back", n: func(c PlanCounts) int { return c.GiveBack }},
	{title: "delete groups", n: func(c PlanCounts) int { return c.DeleteGroups }},
	{title: "delete groupings", n: func(c PlanCounts) int { return c.DeleteGroupings }},
	{title: "suspend", n: func(c PlanCounts) int { return c.Suspend }, optional: true},
	{title: "unenrol", n: func(c PlanCounts) int { return c.Unenrol }, optional: true},
	{title: "repairs", n: func(c PlanCounts) int { return c.Repairs }},
	{title: "waiting", n: func(c PlanCounts) int { return c.Waiting }},
	{title: "held", n: func(c PlanCounts) int { return c.Held }},
}

func writeItems(w io.Writer, items []*Item, indent string) {
	members := 0
	for _, it := range items {
		if it.Object == "member" {
			members++
			if members > memberLinesPerCourse {
				continue
			}
		}
		fmt.Fprintf(w, "%s%s\n", indent, it.Line())
	}
	if members > memberLinesPerCourse {
		fmt.Fprintf(w, "%s… and %d more member changes (plan --json lists every item)\n", indent, members-memberLinesPerCourse)
	}
}

// Line renders the item on one line, e.g.
// `add member cmis:COMP1001:SEM01 student 1234 (Moodle user 42): new in CMIS`.
func (it *Item) Line() string {
	var b strings.Builder
	b.WriteString(it.Action + " " + it.Object)
	if it.IDNumber != "" {
		b.WriteString(" " + it.IDNumber)
	}
	switch {
	case it.Object == "member":
		switch {
		case it.CMISID != "":
			b.WriteString(" " + it.Role + " " + it.CMISID)
			if it.UserID != 0 {
				fmt.Fprintf(&b, " (Moodle user %d)", it.UserID)
			}
		default:
			fmt.Fprintf(&b, " Moodle user %d", it.UserID)
		}
	case it.Object == "enrolment":
		// enrol enrolment student 1234 (Moodle user 42) as role 5
		b.WriteString(" " + it.Role + " " + it.CMISID)
		fmt.Fprintf(&b, " (Moodle user %d)", it.UserID)
		if it.RoleID != 0 {
			fmt.Fprintf(&b, " as role %d", it.RoleID)
		}
	case it.Action == ActRename || it.Action == ActArchive:
		fmt.Fprintf(&b, " %q -> %q", it.From, it.Name)
	case it.Name != "":
		fmt.Fprintf(&b, " %q", it.Name)
	}
	if it.Reason != "" {
		b.WriteString(": " + it.Reason)
	}
	if it.Held != "" {
		b.WriteString(" [held: " + it.Held + "]")
	}
	if it.Outcome != "" && it.Outcome != "done" && it.Outcome != "sent" {
		b.WriteString(" [" + it.Outcome)
		if it.Note != "" {
			b.WriteString(": " + it.Note)
		}
		b.WriteString("]")
	}
	return b.String()
}

// Held lists every held-back item of the plan.
func (p *Plan) Held() []*Item {
	var out []*Item
	for _, cp := range p.Courses {
		out = append(out, cp.Held...)
	}
	return out
}

// WriteItems lists every item, held ones included, sorted, one per line:
// the form golden tests compare.
func (p *Plan) WriteItems(w io.Writer) {
	for _, cp := range p.Courses {
		var lines []string
		for _, it := range append(append([]*Item(nil), cp.Items...), cp.Held...) {
			lines = append(lines, it.Line())
		}
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Fprintf(w, "  %d %s\n", cp.CourseID, l)
		}
	}
}

// WriteItemsAsPlanned is WriteItems with each item as the plan had it
// before the load ran (no outcomes), to compare a load's plan with a dry
// run's.
func (p *Plan) WriteItemsAsPlanned(w io.Writer) {
	for _, cp := range p.Courses {
		var lines []string
		for _, it := range append(append([]*Item(nil), cp.Items...), cp.Held...) {
			c := *it
			if c.Outcome == "held" {
				c.Held = "" // held by the gate while running, not by the plan
			}
			c.Outcome, c.Note = "", ""
			lines = append(lines, c.Line())
		}
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Fprintf(w, "  %d %s\n", cp.CourseID, l)
		}
	}
}
