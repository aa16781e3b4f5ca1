package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cmissync/cmissync/stage/store"
)

// runOutcomes names the exit codes in metrics, one label value each.
var runOutcomes = []struct {
	code int
	name string
}{
	{exitOK, "success"}, {exitFatal, "fatal"}, {exitUsage, "usage"}, {exitPartial, "partial"},
	{exitHeld, "held"}, {exitLocked, "locked"}, {exitInterrupted, "interrupted"},
}

// stepOutcomes are the outcomes a step is recorded with.
var stepOutcomes = []string{store.OutcomeOK, store.OutcomePartial, store.OutcomeHeld, store.OutcomeFailed}

// lastSuccess is the metric that outlives the run that set it: a failed run
// carries it over from the previous file, so "no success for a day" can
// raise an alert.
const lastSuccess = "cmissync_last_success_timestamp_seconds"

// runMetrics is what one run writes to metrics.textfile.
type runMetrics struct {
	started, finished time.Time
	code              int
	steps             []stepRecord
}

// writeMetrics writes m to path in the Prometheus text format, atomically:
// node_exporter's textfile collector may read the file at any moment, so the
// new content is written beside it, synced, and renamed over it.
func writeMetrics(path string, m runMetrics) error {
	prev := previousSuccess(path)
	text := m.text(prev)
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// A name not ending in .prom: the collector never reads a half-written file.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("metrics.textfile: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(text)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("metrics.textfile: write %s: %w", tmp.Name(), err)
	}
	// Readable by node_exporter, which runs as another user.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("metrics.textfile: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("metrics.textfile: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename itself survives a crash
		d.Close()
	}
	return nil
}

// previousSuccess reads the last success time from the file a previous run
// wrote, or 0.
func previousSuccess(path string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(f)
	if err != nil {
		return 0
	}
	if mf, ok := families[lastSuccess]; ok && len(mf.GetMetric()) > 0 {
		return mf.GetMetric()[0].GetGauge().GetValue()
	}
	return 0
}

// text renders the metrics; prevSuccess is the last success time of an
// earlier run (0: none known).
func (m runMetrics) text(prevSuccess float64) string {
	var w promText
	unix := func(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
	w.gauge("cmissync_last_run_start_timestamp_seconds", "When the last run started, in seconds since the epoch.", nil, unix(m.started))
	w.gauge("cmissync_last_run_end_timestamp_seconds", "When the last run ended, in seconds since the epoch.", nil, unix(m.finished))
	w.gauge("cmissync_last_run_duration_seconds", "How long the last run took.", nil, m.finished.Sub(m.started).Seconds())
	w.gauge("cmissync_last_run_exit_code", "Exit code of the last run (0 success, 1 fatal, 2 usage, 3 items failed, 4 held for approval, 5 locked, 130 interrupted).", nil, float64(m.code))
	w.help("cmissync_last_run_outcome", "Outcome of the last run: 1 for the outcome it had, 0 for the others.")
	for _, o := range runOutcomes {
		w.sample("cmissync_last_run_outcome", []string{"outcome", o.name}, boolValue(o.code == m.code))
	}
	success := prevSuccess
	if m.code == exitOK {
		success = unix(m.finished)
	}
	if success > 0 {
		w.gauge(lastSuccess, "When a run last ended with exit 0, in seconds since the epoch.", nil, success)
	}
	if len(m.steps) == 0 {
		return w.String()
	}
	w.help("cmissync_last_run_step_duration_seconds", "How long each step of the last run took.")
	for _, s := range m.steps {
		w.sample("cmissync_last_run_step_duration_seconds", []string{"step", s.name}, s.took.Seconds())
	}
	w.help("cmissync_last_run_step_outcome", "Outcome of each step of the last run: 1 for the outcome it had, 0 for the others.")
	for _, s := range m.steps {
		for _, o := range stepOutcomes {
			w.sample("cmissync_last_run_step_outcome", []string{"step", s.name, "outcome", o}, boolValue(s.outcome == o))
		}
	}
	var failures, notices int
	var waiting, parked, held float64
	for _, s := range m.steps {
		failures += s.res.items()
		notices += len(s.res.notices)
		if s.name == "load" {
			waiting = float64(s.res.counts["not_enrolled_memberships"])
			parked = float64(s.res.counts["parked"])
			held = float64(s.res.counts["held"])
		}
	}
	w.gauge("cmissync_last_run_failures", "Items that failed in the last run (refused source rows included).", nil, float64(failures))
	w.gauge("cmissync_last_run_waiting", "Memberships waiting for their members' enrolment after the last run.", nil, waiting)
	w.gauge("cmissync_last_run_parked", "Items parked (skipped until cmissync retry) after the last run.", nil, parked)
	w.gauge("cmissync_last_run_held_back", "Deletions the last run held back (no evidence, or over the mass-change guard).", nil, held)
	w.gauge("cmissync_last_run_notices", "Notices of the last run (a course retired, a group recreated or adopted, ...).", nil, float64(notices))
	for _, s := range m.steps {
		switch s.name {
		case "extract":
			w.help("cmissync_last_run_extract_rows", "Rows the last run's extract loaded or refused, per dump table.")
			for _, t := range store.DumpTables {
				w.sample("cmissync_last_run_extract_rows", []string{"table", string(t), "result", "loaded"}, float64(s.res.counts[string(t)+"_loaded"]))
				w.sample("cmissync_last_run_extract_rows", []string{"table", string(t), "result", "refused"}, float64(s.res.counts[string(t)+"_rejected"]))
			}
		case "load":
			w.help("cmissync_last_run_actions", "Changes the last run's load made in Moodle (and what it found already there), per action.")
			for _, k := range sortedKeys(s.res.counts) {
				switch k {
				case "failures", "held", "parked", "not_enrolled_memberships":
					continue // metrics of their own
				}
				w.sample("cmissync_last_run_actions", []string{"action", k}, float64(s.res.counts[k]))
			}
		}
	}
	return w.String()
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// promText writes gauges in the Prometheus text exposition format.
type promText struct {
	b strings.Builder
}

func (w *promText) String() string { return w.b.String() }

// help starts a family of gauges.
func (w *promText) help(name, help string) {
	help = strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help)
	fmt.Fprintf(&w.b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
}

// sample writes one value; labels are name, value pairs.
func (w *promText) sample(name string, labels []string, v float64) {
	w.b.WriteString(name)
	if len(labels) > 0 {
		w.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.b.WriteByte(',')
			}
			val := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(labels[i+1])
			fmt.Fprintf(&w.b, `%s="%s"`, labels[i], val)
		}
		w.b.WriteByte('}')
	}
	w.b.WriteByte(' ')
	w.b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	w.b.WriteByte('\n')
}

// gauge writes a family of one sample.
func (w *promText) gauge(name, help string, labels []string, v float64) {
	w.help(name, help)
	w.sample(name, labels, v)
}
