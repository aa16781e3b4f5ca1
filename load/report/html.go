package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"strings"
)

// The HTML part uses inline styles and simple blocks only, because many mail clients drop
// <style> blocks and CSS layout; one column at most 760 pixels wide reads the same in a
// desktop client and on a phone.
//
//go:embed report.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report.html").Option("missingkey=error").Funcs(template.FuncMap{
	"plural": func(n int) string {
		if n == 1 {
			return ""
		}
		return "s"
	},
	"lineNumber": lineNumber,
	"sub":        func(a, b int) int { return a - b },
}).Parse(htmlSource))

func renderHTML(v view) (string, error) {
	var b strings.Builder
	if err := htmlTemplate.Execute(&b, v); err != nil {
		return "", fmt.Errorf("render HTML report: %w", err)
	}
	return b.String(), nil
}

// Accent is the colour of the report's heading: red for failures, amber for what waits for a
// person's decision, blue for notices only.
func (v view) Accent() template.CSS {
	switch {
	case v.Fatal != "" && !v.Hold, v.Items > 0:
		return "#b00020"
	case v.Hold, len(v.Held) > 0:
		return "#b26a00"
	}
	return "#0b57d0"
}

// ItemsAndKinds says how many failures (or refused rows) there are, and of how many kinds.
func (v view) ItemsAndKinds() string {
	if len(v.RefusedKinds) > 0 {
		return itemsAndKinds(v.Items, len(v.RefusedKinds), "row")
	}
	return itemsAndKinds(v.Items, len(v.Kinds), "failure")
}

// Link escapes a line for HTML, linking the courses it names to their groups pages.
func (v view) Link(s string) template.HTML { return linkCourses(s, v.MoodleURL) }
