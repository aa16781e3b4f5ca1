package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/load/report/reporttest"
	"github.com/cmissync/cmissync/stage/store"
)

func TestFailureReportIsEmailedToSupport(t *testing.T) {
	const user, password = "cmissync", "smtp-secret-9f2d"
	srv := reporttest.StartSMTP(t, user, password)
	h := newHarness(t, store.EngineSQLite, 0)
	// Moodle fails every member addition with an HTTP 500: the load
	// finishes with failed items.
	h.sim.SetFaults(moodlesim.Faults{FailRate: 1, Functions: []string{moodle.FnAddMembers}})
	for k, v := range map[string]string{
		"CMISSYNC_EMAIL_SMTP_HOST": "127.0.0.1", "CMISSYNC_EMAIL_SMTP_PORT": fmt.Sprint(srv.Port),
		"CMISSYNC_EMAIL_TLS": "none", "CMISSYNC_EMAIL_USERNAME": user, "CMISSYNC_EMAIL_PASSWORD": password,
		"CMISSYNC_EMAIL_FROM": "cmissync@example.ac.uk", "CMISSYNC_EMAIL_TO": "moodle-support@example.ac.uk",
		"CMISSYNC_SITE_NAME": "Example University",
	} {
		h.env[k] = v
	}
	_, out, errs := h.cmd("run")
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages arrived, want 1 (the load report)\n%s\n%s", len(msgs), out, errs)
	}
	m := msgs[0]
	if !m.Authed || m.From != "cmissync@example.ac.uk" || strings.Join(m.To, ",") != "moodle-support@example.ac.uk" {
		t.Fatalf("envelope %+v", m)
	}
	raw := string(m.Data)
	for _, want := range []string{"Example University", "load", "transient", "Course ", "cmis:", "text/html", "text/plain"} {
		if !strings.Contains(raw, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	for _, secret := range []string{testToken, password} {
		if strings.Contains(raw, secret) || strings.Contains(errs, secret) || strings.Contains(out, secret) {
			t.Fatalf("a secret leaked into the report or the output")
		}
	}
	if kept, _ := filepath.Glob(filepath.Join(h.dir, "reports", "*.eml")); len(kept) != 0 {
		t.Fatalf("a sent report was also kept on disk: %v", kept)
	}

	// With the SMTP server unreachable, the report is kept on disk, the log
	// says where, and the exit code still says items failed.
	h.env["CMISSYNC_EMAIL_SMTP_PORT"] = "1"
	code, _, errs := h.cmd("run")
	if code != exitPartial {
		t.Fatalf("exit %d, want %d", code, exitPartial)
	}
	kept, _ := filepath.Glob(filepath.Join(h.dir, "reports", "*.eml"))
	if len(kept) != 1 || !strings.Contains(errs, kept[0]) {
		t.Fatalf("kept %v; log:\n%s", kept, errs)
	}
	body, _ := os.ReadFile(kept[0])
	if !bytes.Contains(body, []byte("transient")) || bytes.Contains(body, []byte(password)) || strings.Contains(errs, password) {
		t.Fatal("the kept report lacks the failure or holds the password")
	}
}
