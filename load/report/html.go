package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"strings"
)

// The HTML part uses inline styles and tables only, because many mail clients drop <style>
// blocks and CSS layout.
//
//go:embed report.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report.html").Option("missingkey=error").Parse(htmlSource))

func renderHTML(v view) (string, error) {
	var b strings.Builder
	if err := htmlTemplate.Execute(&b, v); err != nil {
		return "", fmt.Errorf("render HTML report: %w", err)
	}
	return b.String(), nil
}
