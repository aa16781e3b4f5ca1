package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// TestMain lets the test binary act as the cmissync command, so tests can
// run it as a real process (and kill it).
func TestMain(m *testing.M) {
	if os.Getenv("CMISSYNC_TEST_AS_CLI") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// killLoads starts `cmissync load` again and again, killing each with
// SIGKILL once it has made a few more write calls, until one finishes on
// its own. It returns the number of kills.
func (h *harness) killLoads(t *testing.T) int {
	t.Helper()
	kills := 0
	for i := 0; i < 500; i++ {
		before := writes(h.sim)
		// Kill after a few writes; the step grows so that loads whose
		// parallel batches are all in flight at once still make progress.
		step := 1 + i%3 + i/30
		cmd := exec.Command(os.Args[0], "load", "--config", h.config)
		cmd.Env = append(os.Environ(), "CMISSYNC_TEST_AS_CLI=1")
		for k, v := range h.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		killed := false
	wait:
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("load %d ended on its own with %v\n%s", i, err, stderr.String())
				}
				return kills
			default:
			}
			if writes(h.sim) >= before+step {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				killed = true
				break wait
			}
			time.Sleep(200 * time.Microsecond)
		}
		if killed {
			kills++
		}
	}
	t.Fatal("loads never finished")
	return kills
}

// assertNoDuplicates checks that no course holds two groups or groupings
// with the same idnumber.
func (h *harness) assertNoDuplicates(t *testing.T) {
	t.Helper()
	s := h.sim.State()
	seen := map[string]bool{}
	for _, g := range s.Groups {
		k := fmt.Sprintf("group %d %s", g.CourseID, g.IDNumber)
		if g.IDNumber != "" && seen[k] {
			t.Fatalf("duplicate %s", k)
		}
		seen[k] = true
	}
	for _, g := range s.Groupings {
		k := fmt.Sprintf("grouping %d %s", g.CourseID, g.IDNumber)
		if g.IDNumber != "" && seen[k] {
			t.Fatalf("duplicate %s", k)
		}
		seen[k] = true
	}
}

func TestKilledLoadsConverge(t *testing.T) {
	if testing.Short() {
		t.Skip("starts many processes")
	}
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			h := newHarness(t, engine, 0)
			_, handmade := h.actual()
			// Small requests make a load many calls; a little latency lets
			// the kills land between and during them.
			h.env["CMISSYNC_MOODLE_MAX_INPUT_VARS"] = "20"
			h.sim.SetFaults(moodlesim.Faults{Latency: 2 * time.Millisecond})
			h.mustRun(exitOK, "extract")
			h.mustRun(exitOK, "stage")

			kills := h.killLoads(t)
			h.assertNoDuplicates(t)
			h.mustRun(exitOK, "run")
			h.assertMoodleMatchesCMIS(handmade)
			h.assertNoDuplicates(t)

			// Now a night of removals: half the students leave and one
			// mapping is dropped; kill those loads too.
			if _, err := h.source.Exec(`DELETE FROM CMIS_MOODLE_V_GROUP_MEMBER WHERE CAST(STUDENT_ID AS INTEGER) % 2 = 0`); err != nil {
				t.Fatal(err)
			}
			mp := h.data.Mappings[1]
			if err := h.st.UpsertMapping(context.Background(), store.Mapping{CourseID: h.seed.courseIDs[mp.CourseShortName], ModuleCode: mp.ModuleCode, GroupImport: store.ActionRemove}); err != nil {
				t.Fatal(err)
			}
			h.mustRun(exitOK, "extract")
			h.mustRun(exitOK, "stage")
			h.env["CMISSYNC_GUARD_MAX_DELETE_SHARE"] = "0" // deliberate mass removal
			h.env["CMISSYNC_GUARD_COURSE_MAX_DELETE_SHARE"] = "0"
			kills += h.killLoads(t)
			h.mustRun(exitOK, "run")
			h.assertMoodleMatchesCMIS(handmade)
			h.assertNoDuplicates(t)

			h.sim.ResetCalls()
			h.mustRun(exitOK, "run")
			if n := writes(h.sim); n != 0 {
				t.Fatalf("run after convergence made %d writes", n)
			}
			if kills < 8 {
				t.Fatalf("only %d kills landed; the test did not exercise crashes", kills)
			}
			t.Logf("%s: converged after %d kills", engine, kills)
		})
	}
}
