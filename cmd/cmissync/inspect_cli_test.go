package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmissync/cmissync/stage/store"
)

func TestVersion(t *testing.T) {
	code, out, errs := run(t, nil, "--version")
	if code != exitOK || !strings.HasPrefix(out, "cmissync ") || !strings.Contains(out, "commit ") || !strings.Contains(out, "go1.") {
		t.Fatalf("--version: exit %d\n%s\n%s", code, out, errs)
	}
	version, commit, buildDate = "v1.2.3", "0123456789abcdef", "2026-11-29T02:15:00Z"
	defer func() { version, commit, buildDate = "", "", "" }()
	if got := versionText(); !strings.HasPrefix(got, "cmissync v1.2.3, commit 0123456789ab, built 2026-11-29T02:15:00Z, go1.") {
		t.Fatalf("versionText with release values = %q", got)
	}
}

// migratedSQLite makes a config with a migrated SQLite staging database and
// returns the config path and the open store.
func migratedSQLite(t *testing.T) (string, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "s.db")
	cfg := writeFile(t, "c.toml", "[staging]\ndsn = \""+db+"\"\n[email]\nreport_dir = \""+filepath.Join(dir, "reports")+"\"\n")
	if code, out, errs := run(t, nil, "migrate", "--config", cfg); code != 0 {
		t.Fatalf("migrate: %d %s %s", code, out, errs)
	}
	st, err := store.Open(context.Background(), store.EngineSQLite, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return cfg, st
}

func recordRun(t *testing.T, st *store.Store, runID string, outcomes ...string) {
	t.Helper()
	for i, o := range outcomes {
		id, err := st.StartStep(context.Background(), runID, []string{"extract", "stage", "load"}[i])
		if err != nil {
			t.Fatal(err)
		}
		if o == store.OutcomeRunning {
			continue
		}
		if err := st.FinishStep(context.Background(), id, o, map[string]int64{"n": int64(i)}, "message of "+o); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStatusExitCodesForMonitoring(t *testing.T) {
	cfg, st := migratedSQLite(t)
	status := func(args ...string) (int, string) {
		t.Helper()
		code, out, errs := run(t, nil, append([]string{"status", "--config", cfg}, args...)...)
		if code != exitOK && !strings.Contains(errs, "last run: ") {
			t.Fatalf("status exit %d without a verdict on stderr: %s", code, errs)
		}
		return code, out
	}
	if code, out := status(); code != exitOK || !strings.Contains(out, "Last run: none recorded yet") || !strings.Contains(out, "not bound yet") {
		t.Fatalf("empty staging: exit %d\n%s", code, out)
	}
	if code, _ := status("--max-age", "26h"); code != exitNoRecentRun {
		t.Fatalf("empty staging with --max-age: exit %d, want %d", code, exitNoRecentRun)
	}
	for _, tc := range []struct {
		outcomes []string
		want     int
		says     string
	}{
		{[]string{store.OutcomeOK, store.OutcomeOK, store.OutcomeOK}, exitOK, "succeeded"},
		{[]string{store.OutcomePartial, store.OutcomeOK, store.OutcomeOK}, exitLastRunPartial, "some items failed"},
		{[]string{store.OutcomeOK, store.OutcomeOK, store.OutcomeHeld}, exitLastRunHeld, "safety rail"},
		{[]string{store.OutcomeOK, store.OutcomeHeld, store.OutcomeFailed}, exitLastRunFailed, "failed"},
		{[]string{store.OutcomeOK, store.OutcomeRunning}, exitLastRunFailed, "died"},
	} {
		runID := fmt.Sprintf("run-%s", strings.Join(tc.outcomes, "-"))
		recordRun(t, st, runID, tc.outcomes...)
		code, out := status()
		if code != tc.want || !strings.Contains(out, tc.says) || !strings.Contains(out, runID) {
			t.Fatalf("after %v: exit %d (want %d)\n%s", tc.outcomes, code, tc.want, out)
		}
		code, out = status("--json")
		var js statusReport
		if err := json.Unmarshal([]byte(out), &js); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		if code != tc.want || js.ExitCode != tc.want || js.LastRun == nil || js.LastRun.RunID != runID || len(js.Pending) != 3 {
			t.Fatalf("status --json after %v: exit %d, %+v", tc.outcomes, code, js)
		}
	}
	// A run still going is not judged: the one before it is (it died).
	lock, err := st.AcquireLock(context.Background(), "run run-now on host pid 1", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	recordRun(t, st, "run-now", store.OutcomeRunning)
	code, out := status("--json")
	var js statusReport
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatal(err)
	}
	if code != exitLastRunFailed || js.Runs[0].Outcome != runRunning || js.LastRun.RunID == "run-now" || js.Lock == nil {
		t.Fatalf("with a run going: exit %d, %+v", code, js)
	}
	lock.Release()
	recordRun(t, st, "run-ok", store.OutcomeOK)
	if code, _ := status("--max-age", "1h"); code != exitOK {
		t.Fatalf("a recent good run with --max-age: exit %d", code)
	}
	if _, err := st.DB().Exec(`UPDATE cmissync_runs SET started_at = ? WHERE run_id = 'run-ok'`, time.Now().Add(-30*time.Hour).UTC()); err != nil {
		t.Fatal(err)
	}
	if code, out := status("--max-age", "26h"); code != exitNoRecentRun || !strings.Contains(out, "older than --max-age") {
		t.Fatalf("an old run with --max-age 26h: exit %d\n%s", code, out)
	}
}

func TestAuditByCoursesPersonAndMoodleID(t *testing.T) {
	cfg, st := migratedSQLite(t)
	err := st.RecordAudit(context.Background(), []store.AuditEntry{
		{RunID: "r1", CourseID: 2, Object: "group", IDNumber: "cmis:M1:G1", Name: "M1 G1", Action: "create", MoodleID: 38611},
		{RunID: "r1", CourseID: 2, Object: "member", IDNumber: "cmis:M1:G1", Name: "M1 G1", Action: "add", MoodleID: 38611, UserID: 71, CMISID: "100123"},
		{RunID: "r1", CourseID: 3, Object: "grouping", IDNumber: "cmis:M2", Name: "M2", Action: "create", MoodleID: 38609},
		{RunID: "r2", CourseID: 4, Object: "member", IDNumber: "cmis:M3:G1", Action: "add", MoodleID: 5, UserID: 71, CMISID: "100123"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
		n    int
	}{
		{[]string{"--course", "2,3"}, []string{"cmis:M1:G1", "cmis:M2"}, 3},
		{[]string{"--course", "2", "--course", "4"}, []string{"cmis:M1:G1", "cmis:M3:G1"}, 3},
		{[]string{"--user", "100123"}, []string{"100123 (71)"}, 2},
		{[]string{"--user", "71"}, []string{"100123 (71)"}, 2},
		{[]string{"--moodle-id", "38609"}, []string{"cmis:M2"}, 1},
		{[]string{"--idnumber", "cmis:M1:G1", "--limit", "1"}, []string{" add "}, 1},
		{[]string{"--run", "r2"}, []string{"cmis:M3:G1"}, 1},
	} {
		code, out, errs := run(t, nil, append([]string{"audit", "--config", cfg}, tc.args...)...)
		if code != exitOK {
			t.Fatalf("audit %v: exit %d %s", tc.args, code, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("audit %v lacks %q:\n%s", tc.args, w, out)
			}
		}
		if !strings.Contains(out, fmt.Sprintf("\n%d changes\n", tc.n)) {
			t.Errorf("audit %v: want %d changes:\n%s", tc.args, tc.n, out)
		}
	}
}
