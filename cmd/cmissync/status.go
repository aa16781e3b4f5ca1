package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cmissync/cmissync/stage/store"
)

// Exit codes of status, for monitoring: how the last run ended. They are
// distinct from the codes every command uses for its own outcome.
const (
	exitLastRunFailed  = 10
	exitLastRunHeld    = 11
	exitLastRunPartial = 12
	exitNoRecentRun    = 13
)

// statusError ends status with the exit code that says how the last run
// ended.
type statusError struct {
	code    int
	verdict string
}

func (e *statusError) Error() string { return fmt.Sprintf("last run: %s (exit %d)", e.verdict, e.code) }

// Run outcomes status reports: a step's outcomes, and crashed for a run
// whose steps never finished while no process holds its lock.
const (
	runRunning = "running"
	runCrashed = "crashed"
)

// statusReport is what status shows, and what status --json prints.
type statusReport struct {
	Version string      `json:"version"`
	Lock    *statusLock `json:"lock"`
	// LastRun is the most recent run that is not still going.
	LastRun *statusRun  `json:"last_run"`
	Runs    []statusRun `json:"runs"`
	Site    *statusSite `json:"site"`
	Dump    *statusDump `json:"last_extract"`
	// Pending counts staged rows still flagged, per table.
	Pending    map[string]statusPending `json:"pending"`
	RestErrors *statusRestErrors        `json:"rest_errors"`
	ExitCode   int                      `json:"exit_code"`
	Verdict    string                   `json:"verdict"`
}

type statusLock struct {
	Holder     string    `json:"holder"`
	AcquiredAt time.Time `json:"acquired_at"`
	Heartbeat  time.Time `json:"heartbeat_at"`
}

type statusRun struct {
	RunID   string       `json:"run_id"`
	Outcome string       `json:"outcome"`
	Started time.Time    `json:"started"`
	Steps   []statusStep `json:"steps"`
}

type statusStep struct {
	Step     string           `json:"step"`
	Started  time.Time        `json:"started"`
	Finished *time.Time       `json:"finished"`
	Seconds  *float64         `json:"seconds"`
	Outcome  string           `json:"outcome"`
	Counts   map[string]int64 `json:"counts"`
	Message  string           `json:"message"`
}

type statusSite struct {
	URL     string    `json:"url"`
	Name    string    `json:"name"`
	BoundAt time.Time `json:"bound_at"`
	RunID   string    `json:"run_id"`
}

type statusDump struct {
	RunID    string     `json:"run_id"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished"`
	Refused  int64      `json:"refused_rows"`
}

type statusPending struct {
	ToAdd    int64 `json:"toadd"`
	ToDelete int64 `json:"todelete"`
	Parked   int64 `json:"parked"`
}

type statusRestErrors struct {
	RunID  string            `json:"run_id"`
	Count  int               `json:"count"`
	Errors []statusRestError `json:"errors"`
}

type statusRestError struct {
	CourseID  int64  `json:"courseid"`
	Object    string `json:"object"`
	Function  string `json:"function"`
	ErrorCode string `json:"errorcode"`
	Message   string `json:"message"`
}

// restErrorsShown bounds the REST errors status lists in text.
const restErrorsShown = 20

// readStatus gathers the status from staging and judges the last run.
func (p *pipeline) readStatus(ctx context.Context, runs int, maxAge time.Duration) (*statusReport, error) {
	r := &statusReport{Version: versionText(), Runs: []statusRun{}, Pending: map[string]statusPending{}}
	lock, err := p.st.CurrentLock(ctx)
	if err != nil {
		return nil, err
	}
	if lock != nil {
		r.Lock = &statusLock{Holder: lock.Holder, AcquiredAt: lock.AcquiredAt, Heartbeat: lock.Heartbeat}
	}
	steps, err := p.st.RecentSteps(ctx, max(runs, 1))
	if err != nil {
		return nil, err
	}
	byRun := map[string]*statusRun{}
	for _, s := range steps {
		run := byRun[s.RunID]
		if run == nil {
			r.Runs = append(r.Runs, statusRun{RunID: s.RunID})
			run = &r.Runs[len(r.Runs)-1]
			byRun[s.RunID] = run
		}
		step := statusStep{Step: s.Step, Started: s.Started, Finished: s.Finished, Outcome: s.Outcome, Counts: s.Counts, Message: s.Message}
		if s.Finished != nil {
			secs := s.Finished.Sub(s.Started).Seconds()
			step.Seconds = &secs
		}
		// Steps come newest first; a run lists them in the order they ran.
		run.Steps = append([]statusStep{step}, run.Steps...)
	}
	for i := range r.Runs {
		run := &r.Runs[i]
		run.Started = run.Steps[0].Started
		run.Outcome = runOutcome(run, lock)
	}
	for i := range r.Runs {
		// An apply is an operator's one-off correction, judged by its own
		// exit code and report: monitoring follows the sync.
		if r.Runs[i].Outcome != runRunning && !applyOnly(r.Runs[i]) {
			r.LastRun = &r.Runs[i]
			break
		}
	}
	r.ExitCode, r.Verdict = judge(r.LastRun, maxAge, time.Now())

	site, err := p.st.SiteBinding(ctx)
	if err != nil {
		return nil, err
	}
	if site != nil {
		r.Site = &statusSite{URL: site.URL, Name: site.Name, BoundAt: site.BoundAt, RunID: site.RunID}
	}
	dump, err := p.st.CurrentDump(ctx)
	if err != nil {
		return nil, err
	}
	if dump != nil {
		r.Dump = &statusDump{RunID: dump.RunID, Started: dump.Started, Finished: dump.Finished, Refused: dump.Refused}
	}
	pending, err := p.st.Pending(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range []string{store.TableGroupings, store.TableGroups, store.TableMembers} {
		r.Pending[t] = statusPending{ToAdd: pending[t+".toadd"], ToDelete: pending[t+".todelete"], Parked: pending[t+".parked"]}
	}
	if len(r.Runs) > 0 {
		runID := r.Runs[0].RunID
		errs, err := p.st.RestErrors(ctx, runID)
		if err != nil {
			return nil, err
		}
		r.RestErrors = &statusRestErrors{RunID: runID, Count: len(errs), Errors: []statusRestError{}}
		for _, e := range errs {
			r.RestErrors.Errors = append(r.RestErrors.Errors, statusRestError{CourseID: e.CourseID, Object: e.Object, Function: e.Function, ErrorCode: e.ErrorCode, Message: e.Message})
		}
	}
	return r, nil
}

// applyOnly reports a run that was a cmissync apply.
func applyOnly(run statusRun) bool {
	for _, s := range run.Steps {
		if s.Step != "apply" {
			return false
		}
	}
	return len(run.Steps) > 0
}

// runOutcome is the worst outcome of a run's steps: failed, held, partial,
// ok. A step still marked running belongs to a run that is going (its
// process holds the run lock) or one that died (crashed, a failure).
func runOutcome(run *statusRun, lock *store.LockInfo) string {
	rank := map[string]int{store.OutcomeOK: 0, store.OutcomeDryRun: 0, store.OutcomePartial: 1, store.OutcomeHeld: 2, store.OutcomeFailed: 3}
	worst := store.OutcomeOK
	for _, s := range run.Steps {
		if s.Outcome == store.OutcomeRunning {
			if lock != nil && strings.Contains(lock.Holder, "run "+run.RunID+" ") {
				return runRunning
			}
			return runCrashed
		}
		if rank[s.Outcome] > rank[worst] {
			worst = s.Outcome
		}
	}
	return worst
}

// judge turns the last run into status's exit code and a phrase that
// follows "Last run: ".
func judge(last *statusRun, maxAge time.Duration, now time.Time) (int, string) {
	if last == nil {
		if maxAge > 0 {
			return exitNoRecentRun, "none recorded"
		}
		return exitOK, "none recorded yet"
	}
	run := fmt.Sprintf("%s (started %s)", last.RunID, last.Started.Local().Format("2006-01-02 15:04"))
	if maxAge > 0 && now.Sub(last.Started) > maxAge {
		return exitNoRecentRun, fmt.Sprintf("%s is older than --max-age %s", run, maxAge)
	}
	switch last.Outcome {
	case store.OutcomeFailed:
		return exitLastRunFailed, run + " failed"
	case runCrashed:
		return exitLastRunFailed, run + " stopped without finishing (the process died or was killed)"
	case store.OutcomeHeld:
		return exitLastRunHeld, run + " was stopped by a safety rail and waits for an operator's approval"
	case store.OutcomePartial:
		return exitLastRunPartial, run + " finished, but some items failed"
	}
	return exitOK, run + " succeeded"
}

// writeText prints the status for people.
func (r *statusReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "Last run: %s\n", r.Verdict)
	if r.Lock == nil {
		fmt.Fprintln(w, "Lock: free")
	} else {
		fmt.Fprintf(w, "Lock: held by %s since %s (heartbeat %s)\n", r.Lock.Holder, r.Lock.AcquiredAt.Format(time.RFC3339), r.Lock.Heartbeat.Format(time.RFC3339))
	}
	if r.Site == nil {
		fmt.Fprintln(w, "Moodle site: not bound yet (the first load records the site it writes to)")
	} else {
		fmt.Fprintf(w, "Moodle site: %q at %s (bound %s)\n", r.Site.Name, r.Site.URL, localTime(r.Site.BoundAt))
	}
	if r.Dump == nil {
		fmt.Fprintln(w, "Last extract: none yet")
	} else {
		fmt.Fprintf(w, "Last extract: run %s, %s; %d rows refused", r.Dump.RunID, localTime(r.Dump.Started), r.Dump.Refused)
		if r.Dump.Refused > 0 {
			fmt.Fprint(w, " (cmissync explain --course N lists those of a course)")
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "\nRecent runs:")
	if len(r.Runs) == 0 {
		fmt.Fprintln(w, "  none yet")
	} else {
		r.writeRuns(w)
	}
	fmt.Fprintln(w, "\nPending in staging (flags not yet cleared by load):")
	for _, t := range []string{store.TableGroupings, store.TableGroups, store.TableMembers} {
		pd := r.Pending[t]
		fmt.Fprintf(w, "  %-20s toadd %-8d todelete %-8d parked %d\n", t, pd.ToAdd, pd.ToDelete, pd.Parked)
	}
	if r.RestErrors != nil {
		fmt.Fprintf(w, "\nREST errors in run %s: %d\n", r.RestErrors.RunID, r.RestErrors.Count)
		for i, e := range r.RestErrors.Errors {
			if i == restErrorsShown {
				fmt.Fprintf(w, "  … and %d more (cmissync status --json lists them all; cmissync explain --course N explains a course)\n", r.RestErrors.Count-restErrorsShown)
				break
			}
			fmt.Fprintf(w, "  course %d %s %s: %s (%s)\n", e.CourseID, e.Object, e.Function, e.Message, e.ErrorCode)
		}
	}
}

// writeRuns prints the steps of the recent runs as a table.
func (r *statusReport) writeRuns(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  run\tstep\tstarted\tseconds\toutcome\tcounts\tmessage")
	for _, run := range r.Runs {
		for _, s := range run.Steps {
			secs := "-"
			if s.Seconds != nil {
				secs = fmt.Sprintf("%.1f", *s.Seconds)
			}
			outcome := s.Outcome
			if outcome == store.OutcomeRunning && run.Outcome == runCrashed {
				outcome = "died"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", run.RunID, s.Step, localTime(s.Started), secs, outcome, countsText(s.Counts), oneLine(s.Message, 80))
		}
	}
	tw.Flush()
}
