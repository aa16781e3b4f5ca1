package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage/store"
)

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// Every way the load can fail as a whole gets advice about that failure,
// not the general "fix the cause named for each item".
func TestStepFailuresGetTailoredAdvice(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, h *harness)
		want  []string
	}{
		{"invalid token", func(t *testing.T, h *harness) {
			h.env["CMISSYNC_MOODLE_TOKEN"] = "not-the-token-0000"
		}, []string{"refused the web-service token", "Manage tokens", "CMISSYNC_MOODLE_TOKEN"}},
		{"connection refused", func(t *testing.T, h *harness) {
			h.env["CMISSYNC_MOODLE_URL"] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		}, []string{"connection refused", "not running", "wrong host or port"}},
		{"wrong host", func(t *testing.T, h *harness) {
			port := freePort(t)
			sim := moodlesim.New(moodlesim.Options{Token: testToken, WWWRoot: fmt.Sprintf("http://localhost:%d", port)})
			url, err := sim.Start(fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sim.Close() })
			h.env["CMISSYNC_MOODLE_URL"] = url
		}, []string{"not the site's wwwroot", "$CFG->wwwroot"}},
		{"server error", func(t *testing.T, h *harness) {
			h.sim.SetFaults(moodlesim.Faults{FailRate: 1, Functions: []string{moodle.FnSiteInfo}})
		}, []string{"HTTP 500", "down, in maintenance mode or overloaded", "an HTML page (\"500 Internal Server Error\")"}},
		{"not the wwwroot", func(t *testing.T, h *harness) {
			h.env["CMISSYNC_MOODLE_URL"] = h.moodleURL() + "/not-moodle"
		}, []string{"HTTP 404", "Manage protocols"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, store.EngineSQLite, 0)
			tc.setup(t, h)
			code, _, errs := h.cmd("load")
			if code == exitOK || code == exitPartial {
				t.Fatalf("exit %d, want a step failure\n%s", code, errs)
			}
			kept := reportTexts(t, h.dir, "reports/*-load.eml")
			if len(kept) != 1 {
				paths, _ := filepath.Glob(filepath.Join(h.dir, "reports", "*"))
				t.Fatalf("%d load reports (%v)\n%s", len(kept), paths, errs)
			}
			text := strings.Join(strings.Fields(kept[0]), " ")
			for _, w := range tc.want {
				if !strings.Contains(text, strings.Join(strings.Fields(w), " ")) {
					t.Errorf("the report lacks %q:\n%s", w, kept[0])
				}
			}
			for _, generic := range []string{"Fix the cause named for each item", "<html", "<h1>", testToken} {
				if strings.Contains(kept[0], generic) {
					t.Errorf("the report holds %q:\n%s", generic, kept[0])
				}
			}
		})
	}
}

func TestNoProgressOffATerminal(t *testing.T) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	if isTerminal(devnull) {
		t.Error("/dev/null is taken for a terminal")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a file is taken for a terminal")
	}
	p := &pipeline{a: &app{stderr: devnull}}
	if pr := p.startProgress("load"); pr != nil {
		t.Error("progress is shown on /dev/null")
	}
}
