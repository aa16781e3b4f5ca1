package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// stepsNamed counts the steps of a name recorded in cmissync_runs.
func (h *harness) stepsNamed(step string) int {
	h.t.Helper()
	var n int
	if err := h.st.DB().QueryRow(`SELECT COUNT(*) FROM cmissync_runs WHERE step = ?`, step).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// nothingStaged checks that no extract ran and nothing is staged.
func (h *harness) nothingStaged(what string) {
	h.t.Helper()
	if n := h.stepsNamed("extract"); n != 0 {
		h.t.Fatalf("%s: %d extracts ran", what, n)
	}
	if d, _ := h.st.CurrentDump(context.Background()); d != nil {
		h.t.Fatalf("%s: a dump was committed: %+v", what, d)
	}
	if c, _ := h.st.StagedCourse(context.Background(), h.seed.courseIDs[h.data.Courses[0].ShortName]); len(c.Groups) != 0 {
		h.t.Fatalf("%s: groups were staged", what)
	}
	if n := writes(h.sim); n != 0 {
		h.t.Fatalf("%s: %d writes to Moodle", what, n)
	}
}

func TestRunChecksMoodleBeforeExtract(t *testing.T) {
	h := newHarness(t, store.EngineSQLite, 0)
	lacking := moodlesim.New(moodlesim.Options{Token: testToken, ShowIdnumber: true,
		Functions: slices.DeleteFunc(slices.Clone(moodle.RequiredFunctions), func(f string) bool { return f == moodle.FnUnassignGrouping })})
	lackingURL, err := lacking.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lacking.Close() })
	for _, tc := range []struct {
		name string
		env  map[string]string
		code int
		says []string
	}{
		{"bad token", map[string]string{"CMISSYNC_MOODLE_TOKEN": "not-the-token"}, exitUsage, []string{"refuses the token", "moodle.token"}},
		{"wrong wwwroot", map[string]string{"CMISSYNC_MOODLE_URL": h.moodleURL() + "/moodle"}, exitUsage, []string{"does not answer as a Moodle web-service endpoint", "HTTP 404", "wwwroot"}},
		{"missing function", map[string]string{"CMISSYNC_MOODLE_URL": lackingURL}, exitUsage, []string{moodle.FnUnassignGrouping}},
		{"no answer", map[string]string{"CMISSYNC_MOODLE_URL": "http://127.0.0.1:1"}, exitFatal, []string{"did not answer", "127.0.0.1:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := cloneEnv(h.env)
			defer func() { h.env = saved }()
			for k, v := range tc.env {
				h.env[k] = v
			}
			for _, args := range [][]string{{"run"}, {"run", "--dry-run"}, {"load"}, {"plan"}} {
				code, out, errs := h.cmd(args...)
				if code != tc.code {
					t.Fatalf("%v: exit %d, want %d\n%s\n%s", args, code, tc.code, out, errs)
				}
				for _, s := range tc.says {
					if !strings.Contains(errs, s) {
						t.Errorf("%v: stderr does not say %q:\n%s", args, s, errs)
					}
				}
				if strings.Contains(out+errs, testToken) {
					t.Fatalf("%v: the token leaked", args)
				}
			}
			h.nothingStaged(tc.name)
		})
	}
	// The failed checks are runs that failed, for monitoring, and reports.
	if code, out, _ := h.cmd("status"); code != exitLastRunFailed || !strings.Contains(out, "check") {
		t.Fatalf("status after failed checks: exit %d\n%s", code, out)
	}
	h.mustRun(exitOK, "run")
	h.mustRun(exitOK, "status")
}

func TestSiteBindingRefusesAnotherSite(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine, 0)
			_, handmade := h.actual()
			out := h.mustRun(exitOK, "status")
			if !strings.Contains(out, "not bound yet") {
				t.Fatalf("status before any load:\n%s", out)
			}
			// A dry run checks but does not bind.
			h.mustRun(exitOK, "run", "--dry-run")
			if b, _ := h.st.SiteBinding(context.Background()); b != nil {
				t.Fatalf("a dry run bound staging: %+v", b)
			}
			h.mustRun(exitOK, "run")
			b, err := h.st.SiteBinding(context.Background())
			if err != nil || b == nil || b.URL != store.SiteURLKey(h.moodleURL()) || b.Name != moodlesim.DefaultSiteName {
				t.Fatalf("binding after the first load = %+v, %v", b, err)
			}
			if out := h.mustRun(exitOK, "status"); !strings.Contains(out, b.URL) || !strings.Contains(out, moodlesim.DefaultSiteName) {
				t.Fatalf("status does not show the binding:\n%s", out)
			}

			// The same staging pointed at another Moodle (production, say).
			other := moodlesim.New(moodlesim.Options{Token: testToken, ShowIdnumber: true, SiteName: "Production Moodle"})
			otherURL, err := other.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			h.env["CMISSYNC_MOODLE_URL"] = otherURL
			extracts := h.stepsNamed("extract")
			for _, args := range [][]string{{"run"}, {"run", "--dry-run"}, {"load"}, {"load", "--dry-run"}, {"plan"}} {
				code, out, errs := h.cmd(args...)
				if code != exitUsage || !strings.Contains(errs, "staging is bound to the Moodle site") || !strings.Contains(errs, b.URL) || !strings.Contains(errs, "--rebind-site") {
					t.Fatalf("%v against another site: exit %d\n%s\n%s", args, code, out, errs)
				}
			}
			if n := writeCalls(other.Calls()); n != 0 || h.stepsNamed("extract") != extracts {
				t.Fatalf("refused runs wrote %d times to the other site, or extracted", n)
			}
			// Reading it offline stays possible.
			h.mustRun(exitOK, "plan", "--offline")

			// --rebind-site: the operator says it is the same site; the load
			// (of no course here) records the new binding, and the old
			// address is the other site now.
			h.mustRun(exitOK, "load", "--rebind-site", "--course", "999999")
			if b, _ := h.st.SiteBinding(context.Background()); b.URL != store.SiteURLKey(otherURL) || b.Name != "Production Moodle" {
				t.Fatalf("after --rebind-site the binding is %+v", b)
			}
			delete(h.env, "CMISSYNC_MOODLE_URL")
			if code, _, errs := h.cmd("run"); code != exitUsage || !strings.Contains(errs, "Production Moodle") {
				t.Fatalf("run against the first site after rebinding: exit %d %s", code, errs)
			}
			_, after := h.actual()
			if fmt.Sprint(after) != fmt.Sprint(handmade) {
				t.Fatal("hand-made groups changed")
			}
		})
	}
}

func cloneEnv(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
