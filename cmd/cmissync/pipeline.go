package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/extract"
	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/report"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
)

// pipeline is one invocation's wiring: configuration, staging, logger,
// mailer and run id.
type pipeline struct {
	a      *app
	cfg    *Config
	log    *logrus.Entry
	st     *store.Store
	runID  string
	filter store.Filter
	mailer *report.Mailer
	// deliveries collects where reports went, for the demo's summary.
	deliveries []report.Delivery
	// mc is the Moodle client, made on first use.
	mc *moodle.Client
	// lastLoad is the result of the last load step, for the demo.
	lastLoad *load.Result
	// approveDeletes lets a run past the mass-change guard, approveShrink
	// an extract past the shrink guard.
	approveDeletes, approveShrink bool
	// noDeletes holds every deletion of the load back (--no-deletes).
	noDeletes bool
	// courseArgs are the courses named with --course: they are written to
	// even when frozen.
	courseArgs []int64
	// shown is the progress display of the running step (nil when not on
	// a terminal); hooked says its log hook is in place. steps records how
	// each step of this invocation ended.
	shown  atomic.Pointer[progress]
	hooked bool
	steps  []stepRecord
	// site is the Moodle preflight and the site binding (site.go).
	site siteState
}

// loadConfig reads the configuration named by --config.
func (a *app) loadConfig() (*Config, error) {
	explicit := a.configPath != "cmissync.toml"
	cfg, err := loadConfig(a.configPath, explicit, a.env)
	if err != nil {
		return nil, err
	}
	if a.logLevel != "" {
		cfg.Log.Level = a.logLevel
		if err := cfg.validate(); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// pipeline loads the configuration, opens staging (which must be migrated)
// and builds the logger.
func (a *app) pipeline(ctx context.Context, courses []int64) (*pipeline, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	return a.pipelineFor(ctx, cfg, courses)
}

func (a *app) pipelineFor(ctx context.Context, cfg *Config, courses []int64) (*pipeline, error) {
	if err := cfg.requireStagingFile(); err != nil {
		return nil, err
	}
	runID := newRunID()
	log := newLogger(cfg, a.stderr).WithField("run_id", runID)
	st, err := store.Open(ctx, cfg.Staging.Engine, cfg.Staging.DSN)
	if err != nil {
		return nil, err
	}
	if err := st.RequireSchema(ctx); err != nil {
		st.Close()
		return nil, &ConfigError{Err: err}
	}
	filter := store.Filter{Courses: courses}
	if len(courses) == 0 {
		filter.Courses = cfg.Stage.Courses
	} else if len(cfg.Stage.Courses) > 0 {
		allowed := map[int64]bool{}
		for _, c := range cfg.Stage.Courses {
			allowed[c] = true
		}
		for _, c := range courses {
			if !allowed[c] {
				st.Close()
				return nil, &usageError{err: fmt.Errorf("--course %d is not in stage.courses (the configured allow-list)", c)}
			}
		}
	}
	return &pipeline{
		a: a, cfg: cfg, log: log, st: st, runID: runID, filter: filter, courseArgs: courses,
		mailer: &report.Mailer{
			SMTP: report.SMTPConfig{
				Host: cfg.Email.SMTPHost, Port: cfg.Email.SMTPPort, Username: cfg.Email.Username, Password: cfg.Email.Password,
				From: cfg.Email.From, To: cfg.Email.To, TLS: cfg.Email.TLS,
			},
			Dir:    cfg.Email.ReportDir,
			Render: report.RenderOptions{MaxRows: cfg.Email.MaxRows, Secrets: cfg.secrets()},
		},
	}, nil
}

func (p *pipeline) close() { p.st.Close() }

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// lock takes the run lock for the pipeline's run.
// deadOnThisHost reports a lock holder (as written by lock) that ran on this
// host in a process that no longer exists: a run killed outright, whose lock
// need not wait for staging.lock_stale_after.
func deadOnThisHost(holder string) bool {
	var run, host string
	var pid int
	if _, err := fmt.Sscanf(holder, "run %s on %s pid %d", &run, &host, &pid); err != nil || pid <= 0 {
		return false
	}
	me, _ := os.Hostname()
	if host != me || pid == os.Getpid() {
		return false
	}
	// Signal 0 checks that the process exists without touching it.
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

func (p *pipeline) lock(ctx context.Context) (*store.Lock, error) {
	host, _ := os.Hostname()
	holder := fmt.Sprintf("run %s on %s pid %d", p.runID, host, os.Getpid())
	l, err := p.st.AcquireLock(ctx, holder, time.Duration(p.cfg.Staging.LockStale), deadOnThisHost)
	if err != nil {
		return nil, err
	}
	p.log.Debug("run lock acquired")
	return l, nil
}

// run executes extract, stage and load (or prints the plan on a dry run).
func (p *pipeline) run(ctx context.Context, dryRun bool) error {
	started := time.Now()
	p.runStarting(ctx, dryRun)
	err := p.locked(ctx, func(ctx context.Context) error { return p.runSteps(ctx, dryRun) })
	p.runFinished(ctx, dryRun, started, err)
	return err
}

// errLockLost cancels a run whose lock another run took over.
var errLockLost = errors.New("run lock lost")

// locked runs fn under the run lock. When another run takes the lock over
// (it took this one for dead), fn's context is cancelled and the run stops
// with a lock error (exit 5) rather than write alongside it.
func (p *pipeline) locked(ctx context.Context, fn func(context.Context) error) error {
	l, err := p.lock(ctx)
	if err != nil {
		return err
	}
	defer l.Release()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-l.Lost():
			cancel(errLockLost)
		case <-ctx.Done():
		}
	}()
	err = fn(ctx)
	if errors.Is(context.Cause(ctx), errLockLost) {
		return fmt.Errorf("%w: another run took the run lock over while this one was running (is staging.lock_stale_after shorter than a step can stall?); this run stopped", store.ErrLocked)
	}
	return err
}

func (p *pipeline) runSteps(ctx context.Context, dryRun bool) error {
	p.log.WithField("dry_run", dryRun).Info("run started")

	var partial []error
	if err := p.step(ctx, "check", p.preflightStep); err != nil {
		return err
	}
	extractErr := p.step(ctx, "extract", p.extract)
	if extractErr != nil && !isPartial(extractErr) {
		// Bad or missing data must never reach stage: it would delete.
		return extractErr
	}
	partial = append(partial, extractErr)
	if err := p.step(ctx, "stage", p.stage); err != nil {
		return err
	}
	if dryRun {
		pl, err := p.makePlan(ctx, false)
		if err != nil {
			return err
		}
		fmt.Fprintln(p.a.stdout, "Dry run: nothing was sent to Moodle. The load step would do this:")
		pl.WriteText(p.a.stdout)
		return worst(partial)
	}
	partial = append(partial, p.step(ctx, "load", p.load))
	return worst(partial)
}

// makePlan builds the load's plan without sending anything: from staging
// and Moodle's real state, or from staging alone when offline.
func (p *pipeline) makePlan(ctx context.Context, offline bool) (*load.Plan, error) {
	opts := p.loadOptions()
	opts.Offline = offline
	var mc *moodle.Client
	if !offline {
		var err error
		if mc, err = p.moodleClient(); err != nil {
			return nil, err
		}
	}
	return load.MakePlan(ctx, p.st, mc, opts, p.log)
}

// single runs one step under the lock.
func (p *pipeline) single(ctx context.Context, name string) error {
	steps := map[string]func(context.Context) (stepResult, error){"extract": p.extract, "stage": p.stage, "load": p.load}
	return p.locked(ctx, func(ctx context.Context) error { return p.step(ctx, name, steps[name]) })
}

func isPartial(err error) bool {
	var pe *PartialError
	return errors.As(err, &pe)
}

// worst returns the error that decides a run's exit code: a stop by a
// safety rail wins over item failures, whichever step came first.
func worst(errs []error) error {
	var first error
	for _, e := range errs {
		var he *HeldError
		if errors.As(e, &he) {
			return e
		}
		if first == nil {
			first = e
		}
	}
	return first
}

// stepResult is what a step reports to the runs table and the email.
type stepResult struct {
	counts   map[string]int64
	summary  []report.Count
	failures []report.Failure
	// refused are the source rows an extract refused: failed items too,
	// reported in the extract's own layout.
	refused []report.Refused
	advice  []string
	// held lists what a policy held back; notices what is worth knowing
	// though nothing failed.
	held, notices []string
	// waiting lists the members waiting for enrolment: one line per member
	// waiting for the first time, then one summary line (report.Report.Waiting).
	waiting []string
}

// items is the number of failed items of the step.
func (r stepResult) items() int { return len(r.failures) + len(r.refused) }

// step runs one step, records it in cmissync_runs, logs its start and its
// end (one line each, with the outcome, the duration and the counts), and
// emails a report when email.when asks for one.
func (p *pipeline) step(ctx context.Context, name string, fn func(context.Context) (stepResult, error)) error {
	log := p.log.WithField("step", name)
	started := time.Now()
	id, err := p.st.StartStep(ctx, p.runID, name)
	if err != nil {
		return err
	}
	log.WithField(pipelineMark, true).Info(name + " started")
	pr := p.startProgress(name)
	p.shown.Store(pr)
	res, err := fn(ctx)
	outcome, message := store.OutcomeOK, ""
	var he *HeldError
	switch {
	case errors.Is(err, context.Canceled):
		outcome, message = store.OutcomeFailed, "interrupted"
	case errors.As(err, &he):
		outcome, message = store.OutcomeHeld, err.Error()
	case err != nil:
		outcome, message = store.OutcomeFailed, err.Error()
	case res.items() > 0:
		outcome, message = store.OutcomePartial, fmt.Sprintf("%d failed items", res.items())
	}
	message = report.Scrub(message, p.cfg.secrets()...)
	if ferr := p.st.FinishStep(ctx, id, outcome, res.counts, message); ferr != nil {
		log.WithError(ferr).Error("could not record the end of the step")
	}
	took := time.Since(started)
	pr.finish(outcome, took)
	p.shown.Store(nil)
	p.steps = append(p.steps, stepRecord{name: name, outcome: outcome, took: took, res: res})
	fields := logrus.Fields{pipelineMark: true, "outcome": outcome, "seconds": took.Round(time.Millisecond).Seconds()}
	for k, v := range res.counts {
		if v != 0 {
			fields[k] = v
		}
	}
	entry := log.WithFields(fields)
	switch {
	case outcome == store.OutcomeHeld:
		entry.Warn(name + " held: " + message)
	case err != nil:
		entry.Error(name + " failed: " + message)
	default:
		entry.Info(name + " finished")
	}
	if p.wantReport(name, outcome, res) && !errors.Is(err, context.Canceled) {
		p.sendReport(ctx, name, started, outcome, message, res, err)
	}
	if err != nil {
		// Shown on standard error: without secrets, with the chain kept
		// for the exit code.
		err = fmt.Errorf("%s: %w", name, err)
		return &scrubbedError{msg: report.Scrub(err.Error(), p.cfg.secrets()...), err: err}
	}
	if res.items() > 0 {
		return &PartialError{Step: name, Failures: res.items()}
	}
	return nil
}

// stepRecord is how a step of this run ended, for the closing summary and
// the metrics.
type stepRecord struct {
	name, outcome string
	took          time.Duration
	res           stepResult
}

// wantReport applies email.when to a step that ended with outcome.
func (p *pipeline) wantReport(step, outcome string, res stepResult) bool {
	failed := outcome != store.OutcomeOK || res.items() > 0
	notices := len(res.held) > 0 || len(res.notices) > 0 || (report.Report{Waiting: res.waiting}).NewWaiting() > 0
	changed := step == "load" && p.lastLoad != nil && p.lastLoad.Writes() > 0
	switch p.cfg.Email.When {
	case "failures":
		return failed
	case "changes":
		return failed || notices || changed
	case "always":
		return true
	}
	return failed || notices
}

// sendReport emails the report of a step: its failures (or refused rows)
// first, with advice fitted to a step-level error, then what was held
// back, notices, who waits for enrolment, and the counts.
func (p *pipeline) sendReport(ctx context.Context, step string, started time.Time, outcome, message string, res stepResult, err error) {
	r := report.Report{
		Site: p.cfg.Site.Name, RunID: p.runID, Step: step, Started: started, Finished: time.Now(),
		Summary: res.summary, Failures: res.failures, Refused: res.refused, Advice: res.advice,
		Held: res.held, Notices: res.notices, Waiting: res.waiting, MoodleURL: p.cfg.Moodle.URL,
	}
	if outcome == store.OutcomeFailed || outcome == store.OutcomeHeld {
		r.Fatal = message
		r.Hold = outcome == store.OutcomeHeld
	}
	// The extract has its own advice for every way a source fails.
	if step != "extract" {
		if a := stepAdvice(step, err, p.cfg); a != nil {
			r.Advice = a
		}
	}
	d, err := p.mailer.Send(ctx, r)
	log := p.log.WithField("step", step)
	switch {
	case err != nil:
		log.WithError(err).Error("the report could neither be sent nor kept on disk")
	case d.Sent:
		log.WithField("to", strings.Join(p.cfg.Email.To, ", ")).Info("report emailed")
	default:
		entry := log.WithField("path", d.Path)
		if d.Err != nil {
			entry = entry.WithError(d.Err)
		}
		entry.Warn("report kept on disk")
	}
	p.deliveries = append(p.deliveries, d)
}

// extract runs the extract step.
func (p *pipeline) extract(ctx context.Context) (stepResult, error) {
	if err := p.cfg.requireSource(); err != nil {
		return stepResult{}, err
	}
	src, err := p.openSource(ctx)
	if err != nil {
		return stepResult{advice: extractAdvice(err)}, fmt.Errorf("open source: %w", scrubErr(err, p.cfg))
	}
	defer src.Close()
	res, err := extract.Run(ctx, src, p.st, extract.Options{
		RunID: p.runID, Charset: p.cfg.Source.Charset,
		ShrinkThreshold: p.cfg.Guard.ExtractMaxShrink, ApproveShrink: p.approveShrink,
	}, p.log)
	out := stepResult{counts: map[string]int64{}, advice: extractAdvice(err)}
	for _, t := range store.DumpTables {
		out.counts[string(t)+"_loaded"] = res.Loaded[t]
		out.counts[string(t)+"_rejected"] = res.Rejected[t]
		out.summary = append(out.summary, report.Count{Label: string(t) + " rows loaded", Value: res.Loaded[t]})
		if res.Rejected[t] > 0 {
			out.summary = append(out.summary, report.Count{Label: string(t) + " rows rejected", Value: res.Rejected[t]})
		}
	}
	var shrink *extract.ShrinkError
	if errors.As(err, &shrink) {
		// The refused rows may be why it shrank (an unterminated quote
		// swallows the rest of a file): the held report names them too.
		if berr := p.badRows(ctx, &out); berr != nil {
			return out, berr
		}
		return out, &HeldError{Reason: shrink.Error()}
	}
	if err != nil {
		return out, fmt.Errorf("%s: %w", src.Describe(), scrubErr(err, p.cfg))
	}
	return out, p.badRows(ctx, &out)
}

// badRows adds the rows this run's extract refused to the step's failed
// items, each with the courses that take its module's groups.
func (p *pipeline) badRows(ctx context.Context, out *stepResult) error {
	bad, err := p.refusedRows(ctx)
	if err != nil || len(bad) == 0 {
		return err
	}
	maps, err := p.st.Mappings(ctx, 0)
	if err != nil {
		return err
	}
	courses := map[string][]int{}
	for _, m := range maps {
		if m.GroupImport == store.ActionAdd && m.MappingAction == store.ActionAdd {
			courses[m.ModuleCode] = append(courses[m.ModuleCode], int(m.CourseID))
		}
	}
	for _, b := range bad {
		r := report.Refused{
			File: b.Source, Line: b.Line, Field: faultyField(b), Reason: b.Reason, Row: b.Row,
			Module: b.Module, Group: b.Group, Member: b.CMISID,
		}
		if b.Module != "" {
			r.Courses = courses[b.Module]
		}
		out.refused = append(out.refused, r)
	}
	return nil
}

// extractAdvice says what to check after an extract failure (from the raw
// error, before secrets are scrubbed from it).
func extractAdvice(err error) []string {
	if err == nil {
		return nil
	}
	return append([]string{"Nothing was staged or sent from a failed extract: the previous dump is kept."},
		append(extract.Advice(err), "Rerun with: cmissync run")...)
}

// scrubbedError shows an error's message without secrets and keeps the
// error itself for errors.Is and errors.As.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func scrubErr(err error, cfg *Config) error {
	if err == nil {
		return nil
	}
	s := report.Scrub(err.Error(), cfg.secrets()...)
	if s == err.Error() {
		return err
	}
	return errors.New(s)
}

// stage runs the stage step. Mapping rows it refuses are the step's
// failures (what they map is kept).
func (p *pipeline) stage(ctx context.Context) (stepResult, error) {
	res, err := stage.Run(ctx, p.st, stage.Options{
		Templates:      stage.Templates{GroupingName: p.cfg.Stage.GroupingName, GroupName: p.cfg.Stage.GroupName},
		Filter:         p.filter,
		ApproveDeletes: p.approveDeletes,
	}, p.log)
	out := stepResult{counts: res.Map(), advice: []string{"Rerun with: cmissync stage (then cmissync load)"}}
	for _, b := range res.BadMappings {
		out.failures = append(out.failures, report.Failure{
			CourseID: int(b.CourseID), Function: "mapped_modules",
			Params:    fmt.Sprintf("id=%d moodle_id=%d modulecode=%s group_import=%q mapping_action=%q", b.ID, b.CourseID, b.ModuleCode, b.GroupImport, b.MappingAction),
			ErrorCode: "badmapping", Exception: "cmissync",
			Message: b.Reason + "; the groups this row maps are kept as they are (never deleted) until it is fixed",
			Hint:    "Set group_import and mapping_action to ADD or RMV (mapped_modules row shown), then rerun: cmissync run",
		})
	}
	var he *stage.HoldError
	if errors.As(err, &he) {
		out.advice = []string{
			"mapped_modules is empty while cmissync owns groups in Moodle: check whatever maintains the mappings (a Moodle block, a script).",
			"If every mapping really was removed, approve with: cmissync run --approve-deletes",
		}
		return out, &HeldError{Reason: he.Reason}
	}
	return out, err
}

// moodleClient builds (once) the Moodle client from the configuration.
func (p *pipeline) moodleClient() (*moodle.Client, error) {
	if p.mc != nil {
		return p.mc, nil
	}
	if err := p.cfg.requireMoodle(); err != nil {
		return nil, err
	}
	mc, err := moodle.New(moodle.Options{
		URL: p.cfg.Moodle.URL, Token: p.cfg.Moodle.Token, MaxInputVars: p.cfg.Moodle.MaxInputVars,
		Timeout: time.Duration(p.cfg.Moodle.Timeout), Retries: p.cfg.Moodle.Retries, RetryWait: time.Duration(p.cfg.Moodle.RetryWait),
		CAFile: p.cfg.Moodle.CAFile, InsecureSkipVerify: p.cfg.Moodle.InsecureSkipVerify, UserAgent: "cmissync", Log: p.log,
	})
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	p.mc = mc
	return mc, nil
}

// load runs the load step. Load records its own failures in
// rest_error_logs; this turns its result into the step's report.
func (p *pipeline) load(ctx context.Context) (stepResult, error) {
	advice := []string{
		"Fix the cause named for each item (in Moodle, or in the staged rows), then rerun: cmissync load",
		"See what is still pending with: cmissync status, and what the next load would do with: cmissync plan",
	}
	if err := p.checkSite(ctx); err != nil {
		return stepResult{advice: siteAdvice(err)}, err
	}
	mc, err := p.moodleClient()
	if err != nil {
		return stepResult{advice: advice}, err
	}
	res, err := load.Run(ctx, p.st, mc, p.loadOptions(), p.log)
	out := stepResult{advice: advice, counts: res.Map()}
	out.summary = []report.Count{
		{Label: "groupings created", Value: res.GroupingsCreated}, {Label: "groups created", Value: res.GroupsCreated},
		{Label: "recreated after deletion in Moodle", Value: res.Recreated},
		{Label: "groups and groupings adopted", Value: res.Adopted}, {Label: "renamed", Value: res.Renamed},
		{Label: "assigned to their grouping", Value: res.Assigned},
		{Label: "members added", Value: res.MembersAdded}, {Label: "members found already there", Value: res.MembersFound},
		{Label: "members removed", Value: res.MembersRemoved}, {Label: "groups deleted", Value: res.GroupsDeleted},
		{Label: "groupings deleted", Value: res.GroupingsDeleted}, {Label: "adopted groups given back", Value: res.GivenBack},
		{Label: "groups archived", Value: res.Archived},
		{Label: "found in Moodle and recorded", Value: res.Found},
		{Label: "courses retired (deleted in Moodle)", Value: res.CoursesRetired},
		{Label: "memberships waiting for enrolment", Value: res.NotEnrolled}, {Label: "parked items", Value: res.Parked},
		{Label: "deletions held back", Value: res.Held},
		{Label: "failed items", Value: int64(len(res.Failures))},
	}
	out.failures = res.Failures
	if res.Plan != nil {
		for _, it := range res.Plan.Held() {
			out.held = append(out.held, fmt.Sprintf("course %d: %s", it.CourseID, it.Line()))
		}
	}
	for _, n := range res.Notices {
		if n.Object == "" {
			out.notices = append(out.notices, fmt.Sprintf("course %d: %s", n.CourseID, n.Message))
		} else {
			out.notices = append(out.notices, fmt.Sprintf("course %d %s: %s", n.CourseID, n.Object, n.Message))
		}
	}
	// Members waiting for enrolment: listed when they start waiting, then
	// only counted; a report goes out for new ones, not for the same list
	// every night.
	// The report's waiting section: one line per member waiting for the
	// first time, then the summary line (report.Report.Waiting).
	for _, w := range res.Waiting {
		if w.New {
			out.waiting = append(out.waiting, w.Line())
		}
	}
	if s := load.WaitingSummary(res.Waiting); s != "" {
		out.waiting = append(out.waiting, s)
	}
	p.lastLoad = res
	var hold *load.HoldError
	if errors.As(err, &hold) {
		out.advice = []string{
			"Check why so much would be deleted: an outage or a partial export in CMIS, or mappings changed in bulk?",
			"See the plan with: cmissync plan",
			"If the deletions are intended, approve them with: cmissync load --approve-deletes",
		}
		return out, &HeldError{Reason: hold.Error()}
	}
	return out, err
}

// loadOptions builds the load step's options from the configuration.
func (p *pipeline) loadOptions() load.Options {
	opts := load.Options{
		RunID: p.runID, Filter: p.filter, UserField: p.cfg.Moodle.UserMatchField,
		Concurrency: p.cfg.Load.Concurrency, ParkAfter: p.cfg.Load.ParkAfter,
		OnNameClash: p.cfg.Load.OnNameClash, OnDeleted: p.cfg.Load.OnDeleted, OnRenamed: p.cfg.Load.OnRenamed,
		OnMemberRemoved:     p.cfg.Load.OnMemberRemoved,
		OnGroupRemoved:      p.cfg.Load.OnGroupRemoved,
		ArchiveSuffix:       p.cfg.Load.ArchiveSuffix,
		RemoveAfterRuns:     p.cfg.Load.RemoveAfterRuns,
		FrozenCourses:       p.cfg.Load.FrozenCourses,
		Unfreeze:            p.courseArgs,
		RemoveUnseenMembers: p.cfg.Load.RemoveNotInCMIS,
		EnrolMissing:        p.cfg.Load.EnrolMissing == "on",
		UnenrolAction:       p.cfg.Load.UnenrolAction,
		SkipEndedCourses:    p.cfg.Load.SkipEndedCourses,
		Guard: load.Guard{
			MaxDeleteShare: p.cfg.Guard.MaxDeleteShare, MaxDeleteCount: int64(p.cfg.Guard.MaxDeleteCount),
			CourseMaxDeleteShare: p.cfg.Guard.CourseMaxDeleteShare, CourseMinItems: int64(p.cfg.Guard.CourseMinItems),
		},
		ApproveDeletes:    p.approveDeletes,
		Progress:          p.loadProgress,
		WaitingAlertAfter: time.Duration(p.cfg.Report.WaitingAlertAfter),
	}
	// Validated with the configuration.
	opts.StudentRoleID, _ = load.ParseRole(p.cfg.Load.StudentRole)
	opts.TutorRoleID, _ = load.ParseRole(p.cfg.Load.TutorRole)
	if p.noDeletes {
		opts.NoDeletes = "deletions are off for this run (--no-deletes)"
	}
	return opts
}

// overlayFS serves files from primary, falling back to fallback.
type overlayFS struct{ primary, fallback fs.FS }

func (o overlayFS) Open(name string) (fs.File, error) {
	f, err := o.primary.Open(name)
	if err == nil {
		return f, nil
	}
	return o.fallback.Open(name)
}
