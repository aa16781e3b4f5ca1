package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/load/report/reporttest"
	"github.com/cmissync/cmissync/stage/store"
)

// checkLines runs check --json and returns the status of each line by
// name (the worst, when a name has several lines).
func (h *harness) checkLines(wantCode int, args ...string) map[string]checkLine {
	h.t.Helper()
	code, out, errs := h.cmd(append([]string{"check", "--json"}, args...)...)
	var lines []checkLine
	if err := json.Unmarshal([]byte(out), &lines); err != nil {
		h.t.Fatalf("check --json: %v\n%s\n%s", err, out, errs)
	}
	if code != wantCode {
		h.t.Fatalf("check %v: exit %d, want %d\n%s\n%s", args, code, wantCode, out, errs)
	}
	if strings.Contains(out+errs, testToken) {
		h.t.Fatal("check printed the token")
	}
	rank := map[string]int{checkOK: 0, checkSkip: 1, checkWarn: 2, checkFail: 3}
	by := map[string]checkLine{}
	for _, l := range lines {
		if old, ok := by[l.Name]; !ok || rank[l.Status] > rank[old.Status] {
			by[l.Name] = l
		}
	}
	return by
}

func wantStatus(t *testing.T, lines map[string]checkLine, want map[string]string) {
	t.Helper()
	for name, status := range want {
		if lines[name].Status != status {
			t.Errorf("%s: %s (%s), want %s", name, lines[name].Status, lines[name].Detail, status)
		}
	}
}

func TestCheckCommand(t *testing.T) {
	h := newHarness(t, store.EngineSQLite, 0)

	// Everything a run needs is there; no SMTP server is a warning.
	lines := h.checkLines(exitOK)
	wantStatus(t, lines, map[string]string{"configuration": checkOK, "staging": checkOK, "source": checkOK,
		"moodle address": checkOK, "moodle token": checkOK, "moodle functions": checkOK, "user match field": checkOK,
		"site binding": checkOK, "email": checkWarn})
	if !strings.Contains(lines["site binding"].Detail, "not bound yet") {
		t.Errorf("site binding before any load: %s", lines["site binding"].Detail)
	}
	code, text, _ := h.cmd("check")
	if code != exitOK || !strings.Contains(text, "ok    moodle token") || !strings.Contains(text, "fix: set email.smtp_host") {
		t.Fatalf("check in text: exit %d\n%s", code, text)
	}

	// A site that does not show idnumber: nobody could ever be matched.
	hidden := moodlesim.New(moodlesim.Options{Token: testToken})
	hiddenURL, err := hidden.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hidden.Close()
	course := hidden.AddCourse(moodlesim.Course{ShortName: "C1", FullName: "Course 1"})
	if err := hidden.Enrol(course, hidden.AddUser(moodlesim.User{Username: "s1", IDNumber: "100001", Email: "s1@example.ac.uk", FirstName: "S", LastName: "One"})); err != nil {
		t.Fatal(err)
	}
	h.env["CMISSYNC_MOODLE_URL"] = hiddenURL
	lines = h.checkLines(exitUsage, "--course", fmt.Sprint(course))
	wantStatus(t, lines, map[string]string{"moodle token": checkOK, "user match field": checkFail})
	if !strings.Contains(lines["user match field"].Fix, "showuseridentity") {
		t.Errorf("no fix for a hidden idnumber: %+v", lines["user match field"])
	}
	delete(h.env, "CMISSYNC_MOODLE_URL")

	// A bad token is a configuration failure; the address is fine.
	h.env["CMISSYNC_MOODLE_TOKEN"] = "wrong"
	lines = h.checkLines(exitUsage)
	wantStatus(t, lines, map[string]string{"moodle address": checkOK, "moodle token": checkFail, "moodle functions": checkSkip, "site binding": checkSkip})
	h.env["CMISSYNC_MOODLE_TOKEN"] = testToken

	// After a load, the binding; another site fails it.
	h.mustRun(exitOK, "run")
	lines = h.checkLines(exitOK)
	wantStatus(t, lines, map[string]string{"site binding": checkOK})
	h.env["CMISSYNC_MOODLE_URL"] = hiddenURL
	lines = h.checkLines(exitUsage)
	wantStatus(t, lines, map[string]string{"site binding": checkFail})
	delete(h.env, "CMISSYNC_MOODLE_URL")

	// SMTP: reachable, and a test email on request.
	srv := reporttest.StartSMTP(t, "u", "smtp-pass-1234")
	for k, v := range map[string]string{"CMISSYNC_EMAIL_SMTP_HOST": "127.0.0.1", "CMISSYNC_EMAIL_SMTP_PORT": fmt.Sprint(srv.Port), "CMISSYNC_EMAIL_TLS": "none",
		"CMISSYNC_EMAIL_USERNAME": "u", "CMISSYNC_EMAIL_PASSWORD": "smtp-pass-1234", "CMISSYNC_EMAIL_TO": "support@example.ac.uk"} {
		h.env[k] = v
	}
	lines = h.checkLines(exitOK)
	wantStatus(t, lines, map[string]string{"email": checkOK})
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("check sent %d messages without --send-test-email", n)
	}
	lines = h.checkLines(exitOK, "--send-test-email")
	wantStatus(t, lines, map[string]string{"test email": checkOK})
	if msgs := srv.Messages(); len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "test message from cmissync check") {
		t.Fatalf("test email: %d messages", len(msgs))
	}
	// starttls against a server without it, and a closed port.
	h.env["CMISSYNC_EMAIL_TLS"] = "starttls"
	lines = h.checkLines(exitFatal)
	if l := lines["email"]; l.Status != checkFail || !strings.Contains(l.Detail, "STARTTLS") {
		t.Errorf("starttls without STARTTLS: %+v", l)
	}
	h.env["CMISSYNC_EMAIL_TLS"], h.env["CMISSYNC_EMAIL_SMTP_PORT"] = "none", "1"
	lines = h.checkLines(exitFatal)
	wantStatus(t, lines, map[string]string{"email": checkFail})
	for _, k := range []string{"CMISSYNC_EMAIL_SMTP_HOST", "CMISSYNC_EMAIL_SMTP_PORT", "CMISSYNC_EMAIL_TLS", "CMISSYNC_EMAIL_USERNAME", "CMISSYNC_EMAIL_PASSWORD", "CMISSYNC_EMAIL_TO"} {
		delete(h.env, k)
	}

	// A CSV source missing a column is a configuration failure.
	csvDir := t.TempDir()
	for name, body := range map[string]string{"module_groups.csv": "modulecode,groupcode\n", "group_members.csv": "modulecode,groupcode,student\n", "group_tutors.csv": "modulecode,groupcode,staffid\n"} {
		if err := os.WriteFile(filepath.Join(csvDir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.env["CMISSYNC_SOURCE_TYPE"], h.env["CMISSYNC_SOURCE_CSV_DIR"] = "csv", csvDir
	lines = h.checkLines(exitUsage)
	if l := lines["source"]; l.Status != checkFail || !strings.Contains(l.Detail, "studentid") {
		t.Errorf("CSV without studentid: %+v", l)
	}
}

func TestCheckWithoutStagingOrMoodle(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, "c.toml", "[staging]\ndsn = \""+filepath.Join(dir, "none.db")+"\"\n[email]\nreport_dir = \""+filepath.Join(dir, "r")+"\"\n")
	code, out, errs := run(t, nil, "check", "--config", cfg)
	if code != exitUsage || !strings.Contains(out, "fail  staging") || !strings.Contains(out, "cmissync migrate") || !strings.Contains(out, "fail  moodle address") {
		t.Fatalf("check without staging or Moodle: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); err == nil {
		t.Fatal("check created the staging file")
	}
	code, out, _ = run(t, nil, "check", "--config", writeFile(t, "bad.toml", "[moodle]\ntimeout = \"soon\"\n"))
	if code != exitUsage || !strings.Contains(out, "fail  configuration") {
		t.Fatalf("check with a bad setting: exit %d\n%s", code, out)
	}
}
