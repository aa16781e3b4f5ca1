package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cmissync/cmissync/stage/store"
)

// checkServer is a monitoring service on loopback that records pings.
type checkServer struct {
	*httptest.Server
	mu     sync.Mutex
	pings  []string
	bodies []string
	status int
}

func startCheckServer(t *testing.T) *checkServer {
	t.Helper()
	cs := &checkServer{status: http.StatusOK}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		cs.mu.Lock()
		cs.pings = append(cs.pings, r.Method+" "+r.URL.Path)
		cs.bodies = append(cs.bodies, string(b))
		status := cs.status
		cs.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(cs.Close)
	return cs
}

func (cs *checkServer) take() (pings, bodies []string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	pings, bodies = cs.pings, cs.bodies
	cs.pings, cs.bodies = nil, nil
	return pings, bodies
}

// readMetrics parses a metrics file with the Prometheus text parser.
func readMetrics(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	return mfs
}

// gauge returns the value of the sample of family name with the given
// labels (name, value pairs), failing when there is none.
func gauge(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	if mf.GetType() != dto.MetricType_GAUGE {
		t.Errorf("%s is a %v, want a gauge", name, mf.GetType())
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no sample of %s with labels %v", name, labels)
	return 0
}

func TestMetricsAndMonitoringPings(t *testing.T) {
	h := newHarness(t, store.EngineSQLite, 0)
	cs := startCheckServer(t)
	const key = "5f1c0d1e-0000-4000-8000-cmissynctest"
	metricsDir := t.TempDir()
	prom := filepath.Join(metricsDir, "cmissync.prom")
	h.env["CMISSYNC_METRICS_TEXTFILE"] = prom
	h.env["CMISSYNC_MONITOR_PING_URL"] = cs.URL + "/ping/" + key
	h.env["CMISSYNC_LOG_LEVEL"] = "info"

	before := time.Now()
	h.mustRun(exitOK, "run")
	pings, bodies := cs.take()
	if want := []string{"POST /ping/" + key + "/start", "POST /ping/" + key}; strings.Join(pings, "|") != strings.Join(want, "|") {
		t.Fatalf("pings %v, want %v", pings, want)
	}
	if !strings.Contains(bodies[1], "exit 0") || !strings.Contains(bodies[1], "load") {
		t.Errorf("the last ping does not carry the run's summary: %q", bodies[1])
	}
	mfs := readMetrics(t, prom)
	if v := gauge(t, mfs, "cmissync_last_run_exit_code"); v != 0 {
		t.Errorf("exit code metric %v", v)
	}
	if gauge(t, mfs, "cmissync_last_run_outcome", "outcome", "success") != 1 || gauge(t, mfs, "cmissync_last_run_outcome", "outcome", "partial") != 0 {
		t.Error("outcome is not success alone")
	}
	start, end := gauge(t, mfs, "cmissync_last_run_start_timestamp_seconds"), gauge(t, mfs, "cmissync_last_run_end_timestamp_seconds")
	if start < float64(before.Unix()) || end < start || end > float64(time.Now().Unix()+1) {
		t.Errorf("start %v, end %v: not this run", start, end)
	}
	success := gauge(t, mfs, lastSuccess)
	if success != end {
		t.Errorf("last success %v, want the end of this run %v", success, end)
	}
	for _, step := range []string{"extract", "stage", "load"} {
		gauge(t, mfs, "cmissync_last_run_step_duration_seconds", "step", step)
		if gauge(t, mfs, "cmissync_last_run_step_outcome", "step", step, "outcome", store.OutcomeOK) != 1 {
			t.Errorf("step %s is not ok", step)
		}
	}
	if gauge(t, mfs, "cmissync_last_run_actions", "action", "groups_created") == 0 ||
		gauge(t, mfs, "cmissync_last_run_actions", "action", "members_added") == 0 {
		t.Error("the first run's creations are not counted")
	}
	if gauge(t, mfs, "cmissync_last_run_extract_rows", "table", string(store.GroupMembers), "result", "loaded") == 0 {
		t.Error("extract rows are not counted")
	}
	for _, name := range []string{"cmissync_last_run_failures", "cmissync_last_run_waiting", "cmissync_last_run_parked", "cmissync_last_run_held_back"} {
		if v := gauge(t, mfs, name); v != 0 {
			t.Errorf("%s = %v on a clean run", name, v)
		}
	}
	if fi, err := os.Stat(prom); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("metrics file mode %v (%v), want 0644 for node_exporter", fi.Mode(), err)
	}

	// Moodle unreachable: exit 1, pinged as /1; the last success is kept.
	h.env["CMISSYNC_MOODLE_URL"] = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	h.mustRun(exitFatal, "run")
	pings, _ = cs.take()
	if len(pings) != 2 || pings[1] != "POST /ping/"+key+"/1" {
		t.Fatalf("pings %v, want start and /1", pings)
	}
	mfs = readMetrics(t, prom)
	if gauge(t, mfs, "cmissync_last_run_exit_code") != 1 || gauge(t, mfs, "cmissync_last_run_outcome", "outcome", "fatal") != 1 {
		t.Error("a fatal run is not recorded as such")
	}
	// The run's first step, check, finds Moodle unreachable: nothing is
	// extracted or sent.
	if gauge(t, mfs, "cmissync_last_run_step_outcome", "step", "check", "outcome", store.OutcomeFailed) != 1 {
		t.Error("the failed check step is not recorded")
	}
	if got := gauge(t, mfs, lastSuccess); got != success {
		t.Errorf("last success %v after a failed run, want the earlier %v", got, success)
	}
	if left, _ := filepath.Glob(filepath.Join(metricsDir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left beside the metrics: %v", left)
	}

	// A dry run neither pings nor rewrites the metrics.
	delete(h.env, "CMISSYNC_MOODLE_URL")
	fi, _ := os.Stat(prom)
	h.mustRun(exitOK, "run", "--dry-run")
	if pings, _ := cs.take(); len(pings) != 0 {
		t.Errorf("a dry run pinged: %v", pings)
	}
	if fi2, _ := os.Stat(prom); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Error("a dry run rewrote the metrics")
	}

	// A monitoring service that fails never fails the run, nor shows the
	// check's key.
	cs.mu.Lock()
	cs.status = http.StatusServiceUnavailable
	cs.mu.Unlock()
	code, _, errs := h.cmd("run")
	if code != exitOK {
		t.Fatalf("exit %d with the monitoring service down", code)
	}
	if !strings.Contains(errs, "monitoring ping failed") || strings.Contains(errs, key) {
		t.Errorf("the failed ping is not logged, or its key is shown:\n%s", errs)
	}
}

func TestPingerRetriesThenGivesUp(t *testing.T) {
	cs := startCheckServer(t)
	cs.status = http.StatusBadGateway
	p := newPinger(cs.URL + "/secret-key/")
	p.wait = time.Millisecond
	err := p.finish(context.Background(), exitPartial, "summary")
	if err == nil || strings.Contains(err.Error(), "secret-key") {
		t.Fatalf("error %v: want a failure that does not name the key", err)
	}
	if pings, _ := cs.take(); len(pings) != pingAttempts || pings[0] != "POST /secret-key/3" {
		t.Errorf("pings %v, want %d attempts at /3", pings, pingAttempts)
	}
	if newPinger("") != nil || newPinger("").start(context.Background()) != nil {
		t.Error("an empty ping URL must ping nothing")
	}
}
