package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/stage/store"
)

func TestExitCodePrecedence(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()

	held := &HeldError{Reason: "the load would delete 80% of the memberships"}
	partial := &PartialError{Step: "extract", Failures: 2}
	locked := fmt.Errorf("%w: held by run x", store.ErrLocked)
	config := &ConfigError{Err: errors.New("email.max_rows = 0: want 1 to 1000")}
	wrap := func(err error) error { return fmt.Errorf("load: %w", err) }

	cases := []struct {
		name    string
		ctx     context.Context
		err     error
		started bool
		want    int
	}{
		{"success", live, nil, true, exitOK},
		{"fatal", live, errors.New("boom"), true, exitFatal},
		{"deadline is not an interruption", live, wrap(context.DeadlineExceeded), true, exitFatal},

		// A signal wins over whatever the cancelled command returned.
		{"signal, nil error", cancelled, nil, true, exitInterrupted},
		{"signal, rolled-back transaction", cancelled, wrap(sql.ErrTxDone), true, exitInterrupted},
		{"signal, fatal", cancelled, errors.New("boom"), true, exitInterrupted},
		{"signal, held", cancelled, held, true, exitInterrupted},
		{"signal, locked", cancelled, locked, true, exitInterrupted},
		{"signal, partial", cancelled, partial, true, exitInterrupted},
		{"signal before the command started", cancelled, errors.New("unknown flag"), false, exitInterrupted},
		{"cancellation in the chain", live, wrap(wrap(context.Canceled)), true, exitInterrupted},
		{"cancellation joined with held", live, errors.Join(held, wrap(context.Canceled)), true, exitInterrupted},

		// A safety rail anywhere in the chain is 4.
		{"held", live, held, true, exitHeld},
		{"held, wrapped", live, wrap(wrap(held)), true, exitHeld},
		{"partial joined with held", live, errors.Join(partial, held), true, exitHeld},
		{"held joined with partial", live, errors.Join(held, partial), true, exitHeld},
		{"held deep in a wrapped join", live, wrap(errors.Join(nil, partial, wrap(held))), true, exitHeld},
		{"held joined with locked", live, errors.Join(locked, held), true, exitHeld},
		{"held joined with a config error", live, errors.Join(config, held), true, exitHeld},
		{"held joined with a fatal error", live, errors.Join(errors.New("boom"), held), true, exitHeld},

		{"locked", live, locked, true, exitLocked},
		{"locked, wrapped", live, wrap(locked), true, exitLocked},
		{"locked joined with partial", live, errors.Join(partial, locked), true, exitLocked},
		{"locked joined with a config error", live, errors.Join(config, locked), true, exitLocked},

		{"config", live, config, true, exitUsage},
		{"config, wrapped", live, wrap(config), true, exitUsage},
		{"config joined with partial", live, errors.Join(partial, config), true, exitUsage},
		{"usage", live, &usageError{err: errors.New("--course 9 is not in stage.courses")}, true, exitUsage},
		{"cobra error before the command started", live, errors.New("unknown flag: --x"), false, exitUsage},

		{"partial", live, partial, true, exitPartial},
		{"partial, wrapped", live, wrap(partial), true, exitPartial},
		{"partials joined", live, errors.Join(partial, nil, &PartialError{Step: "load", Failures: 1}), true, exitPartial},
		{"partial joined with a fatal error", live, errors.Join(partial, errors.New("boom")), true, exitPartial},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCodeFor(tc.ctx, tc.err, tc.started); got != tc.want {
				t.Errorf("exitCodeFor(%v) = %d, want %d", tc.err, got, tc.want)
			}
			// Without a signal, exitCode alone agrees.
			if tc.ctx.Err() == nil {
				if got := exitCode(tc.err, tc.started); got != tc.want {
					t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
				}
			}
		})
	}
}

func TestInterruptedCommandExits130(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := writeFile(t, "c.toml", "[staging]\ndsn = \""+filepath.Join(t.TempDir(), "s.db")+"\"\n")
	for _, args := range [][]string{{"status", "--config", cfg}, {"config"}} {
		var out, errs bytes.Buffer
		code := execute(ctx, args, &out, &errs, func(string) (string, bool) { return "", false })
		if code != exitInterrupted || !strings.Contains(errs.String(), "interrupted") {
			t.Errorf("%v with a cancelled context: exit %d, stderr %q", args, code, errs.String())
		}
	}
}
