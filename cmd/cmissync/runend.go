package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/load/report"
)

// exitMeanings says each exit code in a few words, for the closing
// summary.
var exitMeanings = map[int]string{
	exitOK: "success", exitFatal: "fatal error", exitUsage: "bad usage or configuration",
	exitPartial: "finished, but some items failed", exitHeld: "stopped by a safety rail, waiting for approval",
	exitLocked: "another run holds the lock", exitInterrupted: "interrupted",
}

// runStarting pings the monitoring check's /start for a run that may
// change Moodle (not a dry run).
func (p *pipeline) runStarting(ctx context.Context, dryRun bool) {
	if dryRun {
		return
	}
	if err := newPinger(p.cfg.Monitor.PingURL).start(ctx); err != nil {
		p.log.WithError(scrubErr(err, p.cfg)).Warn("monitoring ping failed")
	}
}

// runFinished ends a run once its exit code is known: one "run finished"
// log line with the exit code and the duration, a closing summary on a
// terminal, and, unless it was a dry run, the metrics file and the
// monitoring ping.
func (p *pipeline) runFinished(ctx context.Context, dryRun bool, started time.Time, err error) {
	code := exitCodeFor(ctx, err, true)
	finished := time.Now()
	took := finished.Sub(started)
	entry := p.log.WithFields(logrus.Fields{"exit_code": code, "seconds": took.Round(time.Millisecond).Seconds(), "dry_run": dryRun})
	switch code {
	case exitOK:
		entry.Info("run finished")
	case exitFatal:
		entry.Error("run finished")
	default:
		entry.Warn("run finished")
	}
	summary := p.closingSummary(code, took)
	if f, ok := p.a.stderr.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(f, summary)
	}
	if dryRun {
		return
	}
	if path := p.cfg.Metrics.Textfile; path != "" {
		if err := writeMetrics(path, runMetrics{started: started, finished: finished, code: code, steps: p.steps}); err != nil {
			p.log.WithError(err).Error("could not write the metrics file")
		}
	}
	if err := newPinger(p.cfg.Monitor.PingURL).finish(ctx, code, report.Scrub(summary, p.cfg.secrets()...)); err != nil {
		p.log.WithError(scrubErr(err, p.cfg)).Warn("monitoring ping failed")
	}
}

// closingSummary says in a few lines how the run went: the exit code, and
// for each step its outcome, its duration and what it did.
func (p *pipeline) closingSummary(code int, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cmissync run %s finished in %s: exit %d (%s)\n", p.runID, took.Round(time.Millisecond), code, exitMeanings[code])
	for _, s := range p.steps {
		fmt.Fprintf(&b, "  %-8s %-8s %9s  %s\n", s.name, s.outcome, s.took.Round(time.Millisecond), p.stepSummary(s))
	}
	for _, d := range p.deliveries {
		switch {
		case d.Sent:
			fmt.Fprintf(&b, "  report emailed to %s\n", strings.Join(p.cfg.Email.To, ", "))
		case d.Path != "":
			fmt.Fprintf(&b, "  report kept in %s\n", d.Path)
		}
	}
	return b.String()
}

// stepSummary says what a step did in one line.
func (p *pipeline) stepSummary(s stepRecord) string {
	c := s.res.counts
	var parts []string
	add := func(n int64, what string) {
		if n != 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	switch s.name {
	case "extract":
		var loaded int64
		for k, v := range c {
			if strings.HasSuffix(k, "_loaded") {
				loaded += v
			}
		}
		add(loaded, "rows loaded")
		add(int64(len(s.res.refused)), "refused")
	case "stage":
		add(c["groupings_add"]+c["groups_add"]+c["members_add"], "to add")
		add(c["groupings_delete"]+c["groups_delete"]+c["members_delete"], "to delete")
		add(int64(len(s.res.failures)), "mappings not understood")
	case "load":
		if p.lastLoad != nil {
			add(p.lastLoad.Writes(), "changes in Moodle")
		}
		add(int64(len(s.res.failures)), "failed items")
		add(c["held"], "deletions held back")
		add(c["not_enrolled_memberships"], "waiting for enrolment")
	}
	add(int64(len(s.res.notices)), "notices")
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}
