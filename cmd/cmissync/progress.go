package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress shows one step on a terminal while it runs: a spinner with the
// step's name, what it has done so far and the time it has taken, and for
// the load a bar of courses planned and one of writes sent, each with an
// estimate of the time left. Log lines are printed above it. Nothing of it
// is shown when standard error is not a terminal (cron, a redirect to a
// file or /dev/null, a pipe). A nil *progress shows nothing.
type progress struct {
	c    *mpb.Progress
	sink *logSink
	name string

	mu      sync.Mutex
	status  string
	spinner *mpb.Bar
	bars    map[string]*mpb.Bar
	// totals are the bars' totals so far: the load's write total grows
	// as courses are resolved, so a bar completes only at finish.
	totals map[string]int
}

// startProgress starts the display of a step, or returns nil when standard
// error is not a terminal.
func (p *pipeline) startProgress(name string) *progress {
	f, ok := p.a.stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return nil
	}
	if !p.hooked {
		p.log.Logger.AddHook(progressHook{p})
		p.hooked = true
	}
	return newProgress(f, name, p.logSink(), false)
}

// newProgress shows the progress of step name on w. force draws on w even
// when it is not a terminal (for tests).
func newProgress(w io.Writer, name string, sink *logSink, force bool) *progress {
	opts := []mpb.ContainerOption{mpb.WithOutput(w), mpb.WithRefreshRate(150 * time.Millisecond), mpb.WithWidth(32)}
	if force {
		opts = append(opts, mpb.ForceTTY(), mpb.WithAutoRefresh())
	}
	pr := &progress{c: mpb.New(opts...), sink: sink, name: name, bars: map[string]*mpb.Bar{}}
	style := mpb.SpinnerStyle()
	if noColor() {
		style = mpb.SpinnerStyle("-", "\\", "|", "/")
	}
	pr.spinner = pr.c.New(0, style,
		mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-8s", name))),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string { return pr.statusText() }, decor.WCSyncSpaceR),
			decor.Elapsed(decor.ET_STYLE_GO),
		),
		mpb.BarFillerClearOnComplete(),
	)
	if sink != nil {
		sink.through(pr.c)
	}
	return pr
}

func (pr *progress) statusText() string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.status
}

// setStatus says what the step is doing, next to its name.
func (pr *progress) setStatus(s string) {
	if pr == nil {
		return
	}
	pr.mu.Lock()
	pr.status = s
	pr.mu.Unlock()
}

// stepStage shows how far a stage of the step is: done of total, with the
// estimated time left. Stages are the load's "plan" (courses planned) and
// "write" (writes sent of all planned).
func (pr *progress) stepStage(stage string, done, total int) {
	if pr == nil || total <= 0 {
		return
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	b, ok := pr.bars[stage]
	if !ok {
		unit, label := "courses", "planning"
		if stage == "write" {
			unit, label = "writes", "writing"
		}
		pr.status = label
		// Total 0: no completion when done reaches a total that may still
		// grow (SetTotal below); finish completes the bar.
		b = pr.c.AddBar(0,
			mpb.PrependDecorators(
				decor.Name(fmt.Sprintf("  %-9s", label)),
				decor.CountersNoUnit("%d/%d "+unit, decor.WCSyncSpaceR),
			),
			mpb.AppendDecorators(
				decor.Percentage(decor.WCSyncSpace),
				decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace), " done"),
			),
		)
		pr.bars[stage] = b
	}
	if pr.totals == nil {
		pr.totals = map[string]int{}
	}
	if pr.totals[stage] != total {
		pr.totals[stage] = total
		b.SetTotal(int64(total), false)
	}
	b.SetCurrent(int64(done))
}

// finish ends the display with the step's outcome and hands log lines back
// to standard error.
func (pr *progress) finish(outcome string, took time.Duration) {
	if pr == nil {
		return
	}
	pr.setStatus(outcome)
	pr.mu.Lock()
	for stage, b := range pr.bars {
		switch {
		case b.Completed():
		case b.Current() >= int64(pr.totals[stage]):
			b.SetTotal(-1, true)
		default:
			b.Abort(false)
		}
	}
	pr.mu.Unlock()
	pr.spinner.SetTotal(-1, true)
	pr.c.Wait()
	if pr.sink != nil {
		pr.sink.through(nil)
	}
}

// logSink is the logger's output, through which a progress display prints
// log lines; nil when the logger was not built by newLogger.
func (p *pipeline) logSink() *logSink {
	s, _ := p.log.Logger.Out.(*logSink)
	return s
}

// loadProgress is the load step's progress hook (load.Options.Progress).
func (p *pipeline) loadProgress(stage string, done, total int) {
	p.shown.Load().stepStage(stage, done, total)
}

// progressHook shows, from the extract's log lines, how many rows of each
// view it has read (the extract has no progress hook of its own).
type progressHook struct{ p *pipeline }

func (progressHook) Levels() []logrus.Level { return []logrus.Level{logrus.InfoLevel} }

func (h progressHook) Fire(e *logrus.Entry) error {
	if pr := h.p.shown.Load(); pr != nil && e.Message == "view extracted" {
		pr.setStatus(fmt.Sprintf("%v: %v rows read", e.Data["table"], e.Data["read"]))
	}
	return nil
}
