// Command cmissync keeps Moodle course groups in step with the teaching
// groups of CMIS. It wires the pipeline steps (extract, stage, load) to the
// configuration, the staging database, the logger and the exit codes; it is
// the only place that calls os.Exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/cmissync/cmissync/stage/store"
)

// Exit codes, one meaning each (documented in the README and in --help).
const (
	exitOK          = 0
	exitFatal       = 1
	exitUsage       = 2
	exitPartial     = 3
	exitHeld        = 4
	exitLocked      = 5
	exitInterrupted = 130
)

const exitCodesHelp = `Exit status:
  0    success
  1    fatal error (nothing more could be done; see the log and the emailed report)
  2    bad usage or configuration
  3    finished, but some items failed (reported by email and in rest_error_logs)
  4    stopped by a safety rail, waiting for an operator's approval
  5    another cmissync run holds the lock
  130  interrupted (SIGINT/SIGTERM); rerun to resume
When an error carries several of these, the first of 130, 4, 5, 2, 3, 1 wins.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// execute runs the command line and returns the exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	a := &app{stdout: stdout, stderr: stderr, env: env}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	code := exitCodeFor(ctx, err, a.started)
	switch {
	case code == exitInterrupted && err != nil:
		fmt.Fprintf(stderr, "cmissync: interrupted; rerun to resume (%v)\n", err)
	case code == exitInterrupted:
		fmt.Fprintln(stderr, "cmissync: interrupted; rerun to resume")
	case err != nil && code != exitOK:
		fmt.Fprintf(stderr, "cmissync: %v\n", err)
	}
	return code
}

// HeldError is a stop by a safety rail: exit 4.
type HeldError struct{ Reason string }

func (e *HeldError) Error() string { return "stopped by a safety rail: " + e.Reason }

// PartialError is a step that finished with item failures: exit 3.
type PartialError struct {
	Step     string
	Failures int
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%s finished with %d failed items (reported)", e.Step, e.Failures)
}

// usageError is a command-line mistake: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// exitCodeFor maps the end of a command to the documented exit code. ctx is
// the context given to execute, which a signal cancels: an interrupted
// command exits 130 whatever it returned, because what a cancelled step
// returns is often a by-product of the cancellation ("transaction has
// already been committed or rolled back"), and even a nil error must not
// tell cron that an interrupted run succeeded.
func exitCodeFor(ctx context.Context, err error, started bool) int {
	if ctx.Err() != nil {
		return exitInterrupted
	}
	return exitCode(err, started)
}

// exitCode maps an error to the documented exit code. started tells whether
// a command's body ran: cobra's own errors (unknown command or flag) come
// before that and are usage errors. Every class is looked for anywhere in
// the chain, through wrapping and errors.Join, and the first match in this
// order wins:
//
//  1. context.Canceled: interrupted (130); rerunning resumes.
//  2. HeldError: a safety rail stopped the run (4). It outranks everything
//     else a run reports (a partial extract joined with a held load, say),
//     because it is the one that waits for an operator.
//  3. store.ErrLocked: another run holds the lock (5); nothing was done.
//  4. ConfigError, usageError, or a command that never started: 2.
//  5. PartialError: finished with item failures (3).
//  6. anything else: fatal (1).
func exitCode(err error, started bool) int {
	var (
		ce *ConfigError
		ue *usageError
		he *HeldError
		pe *PartialError
		se *statusError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &se):
		return se.code // status: how the last run ended (10 to 13)
	case errors.As(err, &he):
		return exitHeld
	case errors.Is(err, store.ErrLocked):
		return exitLocked
	case errors.As(err, &ce), errors.As(err, &ue), !started:
		return exitUsage
	case errors.As(err, &pe):
		return exitPartial
	}
	return exitFatal
}
