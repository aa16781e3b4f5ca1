package main

import (
	"bufio"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/report"
	"github.com/cmissync/cmissync/stage/store"
)

// reportTexts returns the plain-text part of every report kept in dir whose
// file name matches glob, as a mail client would show it.
func reportTexts(t *testing.T, dir, glob string) []string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, glob))
	var out []string
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(f)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, plainPart(t, msg.Header.Get("Content-Type"), msg.Body))
		f.Close()
	}
	return out
}

func plainPart(t *testing.T, contentType string, body io.Reader) string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(body)
		return string(b)
	}
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return ""
		}
		if ct := part.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/plain") || strings.HasPrefix(ct, "multipart/") {
			if s := plainPart(t, ct, part); s != "" {
				return s
			}
		}
	}
}

// logLines parses JSON log lines.
func logLines(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// A run whose only news is a course retired and a group recreated: one log
// line per event, a "run finished" line with the exit code, millisecond
// timestamps, exit 0, and a report that names both.
func TestRunLogsOneLinePerEventAndReportsNotices(t *testing.T) {
	h := newHarness(t, store.EngineSQLite, 0)
	h.env["CMISSYNC_LOG_LEVEL"] = "info"
	h.mustRun(exitOK, "run")
	if kept := reportTexts(t, h.dir, "reports/*.eml"); len(kept) != 0 {
		t.Fatalf("a clean first run sent %d reports", len(kept))
	}
	st := h.sim.State()
	for _, g := range st.Groups {
		if g.IDNumber != "" {
			if err := h.sim.DeleteGroup(g.ID); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	retired := st.Courses[len(st.Courses)-1].ID
	if err := h.sim.DeleteCourse(retired); err != nil {
		t.Fatal(err)
	}
	code, _, errs := h.cmd("run")
	if code != exitOK {
		t.Fatalf("exit %d, want 0 (notices are not failures)\n%s", code, errs)
	}
	lines := logLines(t, errs)
	count := map[string]int{}
	ms := regexp.MustCompile(`T\d\d:\d\d:\d\d\.\d{3}`)
	for _, l := range lines {
		msg, _ := l["msg"].(string)
		count[msg]++
		if ts, _ := l["time"].(string); !ms.MatchString(ts) {
			t.Errorf("timestamp %q has no milliseconds", ts)
		}
		if msg == "run finished" {
			if l["exit_code"] != float64(0) || l["seconds"] == nil {
				t.Errorf("run finished line without exit code or duration: %v", l)
			}
		}
	}
	for _, msg := range []string{"run started", "extract started", "extract finished", "stage started", "stage finished",
		"load started", "load finished", "run finished"} {
		if count[msg] != 1 {
			t.Errorf("%q logged %d times, want once", msg, count[msg])
		}
	}
	notices := 0
	for msg, n := range count {
		if strings.Contains(msg, "deleted in Moodle by hand") || strings.Contains(msg, "no longer exists in Moodle") {
			notices++
			if n != 1 {
				t.Errorf("notice %q logged %d times", msg, n)
			}
		}
	}
	if notices != 2 {
		t.Errorf("%d notices logged, want 2\n%s", notices, errs)
	}
	kept := reportTexts(t, h.dir, "reports/*-load.eml")
	if len(kept) != 1 {
		t.Fatalf("%d load reports, want 1 (notices are emailed by default)", len(kept))
	}
	for _, want := range []string{"finished with 2 notices", "NOTICES (2)", "no longer exists in Moodle", "recreated as id"} {
		if !strings.Contains(kept[0], want) {
			t.Errorf("the report lacks %q:\n%s", want, kept[0])
		}
	}

	// email.when = failures: the same news sends nothing.
	h.env["CMISSYNC_EMAIL_WHEN"] = "failures"
	if err := h.sim.DeleteGroup(firstOwnedGroup(t, h)); err != nil {
		t.Fatal(err)
	}
	h.mustRun(exitOK, "run")
	if n := len(reportTexts(t, h.dir, "reports/*-load*.eml")); n != 1 {
		t.Fatalf("email.when = failures sent a report for a notice (%d reports)", n)
	}
}

// moodleURL is the wwwroot the harness's configuration names.
func (h *harness) moodleURL() string {
	h.t.Helper()
	cfg, err := loadConfig(h.config, true, func(k string) (string, bool) { v, ok := h.env[k]; return v, ok })
	if err != nil {
		h.t.Fatal(err)
	}
	return cfg.Moodle.URL
}

func firstOwnedGroup(t *testing.T, h *harness) int {
	t.Helper()
	for _, g := range h.sim.State().Groups {
		if g.IDNumber != "" {
			return g.ID
		}
	}
	t.Fatal("no group of cmissync's left")
	return 0
}

func TestEmailWhen(t *testing.T) {
	failed := stepResult{failures: make([]report.Failure, 1)}
	notice := stepResult{notices: []string{"n"}}
	held := stepResult{held: []string{"h"}}
	newWaiter := stepResult{waiting: []string{"s1 waits", "1 waits since yesterday"}}
	oldWaiters := stepResult{waiting: []string{"3 wait, the oldest since Monday"}}
	quiet := stepResult{}
	cases := []struct {
		when    string
		outcome string
		res     stepResult
		want    bool
	}{
		{"failures", store.OutcomePartial, failed, true},
		{"failures", store.OutcomeFailed, quiet, true},
		{"failures", store.OutcomeHeld, quiet, true},
		{"failures", store.OutcomeOK, notice, false},
		{"failures", store.OutcomeOK, newWaiter, false},
		{"notices", store.OutcomeOK, notice, true},
		{"notices", store.OutcomeOK, held, true},
		{"notices", store.OutcomeOK, newWaiter, true},
		{"notices", store.OutcomeOK, oldWaiters, false},
		{"notices", store.OutcomeOK, quiet, false},
		{"changes", store.OutcomeOK, quiet, false},
		{"always", store.OutcomeOK, quiet, true},
	}
	for _, c := range cases {
		p := &pipeline{cfg: defaultConfig()}
		p.cfg.Email.When = c.when
		if got := p.wantReport("load", c.outcome, c.res); got != c.want {
			t.Errorf("email.when = %s, outcome %s, %+v: report %v, want %v", c.when, c.outcome, c.res, got, c.want)
		}
	}
}

// Refused source rows get the extract's own layout: file, line, field,
// reason, and the module, groups and courses they would have changed, with
// links to the courses' groups pages.
func TestExtractReportNamesFileLineFieldAndCourses(t *testing.T) {
	h := newHarness(t, store.EngineSQLite, 0)
	m := h.data.Members[0]
	if _, err := h.source.Exec(`INSERT INTO CMIS_MOODLE_V_GROUP_MEMBER (MODULE_CODE, GROUP_CODE, STUDENT_ID) VALUES (?, ?, '')`, m[0], m[1]); err != nil {
		t.Fatal(err)
	}
	code, _, errs := h.cmd("run")
	if code != exitPartial {
		t.Fatalf("exit %d, want %d\n%s", code, exitPartial, errs)
	}
	kept := reportTexts(t, h.dir, "reports/*-extract.eml")
	if len(kept) != 1 {
		t.Fatalf("%d extract reports", len(kept))
	}
	text := kept[0]
	want := []string{"finished with 1 row refused", "REFUSED ROWS (1 row)", "group_members.sql: 1 row", "Field     studentid",
		"missing studentid", "Modules   " + m[0] + " (" + m[1] + ")"}
	for _, mp := range h.data.Mappings {
		if mp.ModuleCode == m[0] {
			want = append(want, strings.TrimRight(h.moodleURL(), "/")+"/group/index.php?id="+strconv.FormatInt(h.seed.courseIDs[mp.CourseShortName], 10))
		}
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("the extract report lacks %q:\n%s", w, text)
		}
	}
	if strings.Contains(text, "Moodle's answer") || strings.Contains(text, "FAILURES") {
		t.Errorf("the extract report uses the load's layout:\n%s", text)
	}
}
