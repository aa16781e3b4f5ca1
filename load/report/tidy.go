package report

import (
	"fmt"
	"html"
	"html/template"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// htmlStart finds where a web page starts inside a message: a proxy's or web server's error
// page that came back instead of Moodle's JSON, quoted whole in the error.
var htmlStart = regexp.MustCompile(`(?i)<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]|<title[\s>]`)

var (
	htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	htmlH1    = regexp.MustCompile(`(?is)<h1[^>]*>(.*?)</h1>`)
	htmlTag   = regexp.MustCompile(`<[^>]*>`)
	htmlEnd   = regexp.MustCompile(`(?i)</html\s*>`)
)

// maxTitle bounds the title kept from a web page.
const maxTitle = 100

// summarizeHTML replaces a web page quoted in s (as it is, or Go-quoted with \n escapes) with
// a one-line summary naming its title, e.g. `an HTML page ("500 Internal Server Error")`,
// keeping the text around it. A report must never carry a site's whole error page: it says
// nothing the title does not, forty times over.
func summarizeHTML(s string) string {
	loc := htmlStart.FindStringIndex(s)
	if loc == nil {
		return s
	}
	start, end := loc[0], len(s)
	if start > 0 && s[start-1] == '"' {
		// Go-quoted body: it runs to the closing quote.
		start--
		if q := closingQuote(s, start); q > 0 {
			end = q + 1
		}
	} else if m := htmlEnd.FindAllStringIndex(s[start:], -1); m != nil {
		end = start + m[len(m)-1][1]
	}
	page := strings.NewReplacer(`\n`, " ", `\r`, " ", `\t`, " ", `\"`, `"`).Replace(s[start:end])
	title := ""
	for _, re := range []*regexp.Regexp{htmlTitle, htmlH1} {
		if m := re.FindStringSubmatch(page); m != nil {
			title = oneLine(html.UnescapeString(htmlTag.ReplaceAllString(m[1], " ")))
			if title != "" {
				break
			}
		}
	}
	summary := "an HTML page"
	if title != "" {
		if r := []rune(title); len(r) > maxTitle {
			title = string(r[:maxTitle]) + "…"
		}
		summary += fmt.Sprintf(" (%q)", title)
	}
	return s[:start] + summary + summarizeHTML(s[end:])
}

// closingQuote returns the index of the quote that ends the Go-quoted string opening at
// open, or -1.
func closingQuote(s string, open int) int {
	for i := open + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// tidyReport reduces web pages quoted in the free-text fields of r to one line each.
func tidyReport(r Report) Report {
	r.Fatal = summarizeHTML(r.Fatal)
	for i := range r.Failures {
		r.Failures[i].Message = summarizeHTML(r.Failures[i].Message)
	}
	for _, lines := range [][]string{r.Advice, r.Held, r.Notices, r.Waiting} {
		for i := range lines {
			lines[i] = summarizeHTML(lines[i])
		}
	}
	return r
}

// maxParamLines bounds the parameters shown for one failure; a batch of hundreds of members
// would bury the report. The CSV has them all.
const maxParamLines = 12

// formKey is a web-service parameter name at the start of a text, e.g. "members[0][userid]=".
var formKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(?:\[[A-Za-z0-9_]*\])*=`)

// paramLines splits form-encoded parameters (name=value pairs joined by &, as the load step
// renders them) one per line, so that they read as a list rather than wrap anywhere. An & is a
// separator only where a parameter name follows it, so a value such as "Law & Society" stays
// whole; other renderings (JSON) stay whole too.
func paramLines(params string) []string {
	if params == "" {
		return nil
	}
	if !formKey.MatchString(params) {
		return []string{params}
	}
	var parts []string
	start := 0
	for i := 0; i < len(params); i++ {
		if params[i] == '&' && formKey.MatchString(params[i+1:]) {
			parts = append(parts, params[start:i])
			start = i + 1
		}
	}
	parts = append(parts, params[start:])
	if len(parts) > maxParamLines {
		more := len(parts) - maxParamLines
		parts = append(parts[:maxParamLines:maxParamLines], fmt.Sprintf("… and %d more parameters (all in the CSV)", more))
	}
	return parts
}

// groupsURL is the groups page of a course on the site at wwwroot, or "" when wwwroot is not
// an http(s) URL or there is no course.
func groupsURL(wwwroot string, courseID int) string {
	if wwwroot == "" || courseID <= 0 {
		return ""
	}
	u, err := url.Parse(wwwroot)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return strings.TrimRight(wwwroot, "/") + "/group/index.php?id=" + strconv.Itoa(courseID)
}

// courseMention finds a course named by id in a line of text, e.g. "course 12: ...".
var courseMention = regexp.MustCompile(`\bcourse (?:id )?([0-9]+)\b`)

// linkCourses escapes s for HTML and links every course it names by id to the course's groups
// page.
func linkCourses(s, wwwroot string) template.HTML {
	var b strings.Builder
	last := 0
	for _, m := range courseMention.FindAllStringSubmatchIndex(s, -1) {
		id, err := strconv.Atoi(s[m[2]:m[3]])
		href := groupsURL(wwwroot, id)
		if err != nil || href == "" {
			continue
		}
		b.WriteString(template.HTMLEscapeString(s[last:m[0]]))
		fmt.Fprintf(&b, `<a href="%s" style="color:#0b57d0;">%s</a>`, template.HTMLEscapeString(href), template.HTMLEscapeString(s[m[0]:m[1]]))
		last = m[1]
	}
	b.WriteString(template.HTMLEscapeString(s[last:]))
	return template.HTML(b.String()) // #nosec G203 -- every piece above is escaped
}
