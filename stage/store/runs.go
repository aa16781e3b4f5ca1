package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrLocked is returned by AcquireLock when another run holds the lock.
var ErrLocked = errors.New("another cmissync run holds the lock")

// LockInfo describes the current holder of the run lock.
type LockInfo struct {
	Holder     string
	AcquiredAt time.Time
	Heartbeat  time.Time
}

// Lock is a held run lock. A background heartbeat keeps it fresh until
// Release; a process that dies stops beating, and after the stale limit the
// next run may take the lock over.
type Lock struct {
	s      *Store
	holder string
	// ctx is the acquiring context without its cancellation: the heartbeat
	// and Release must work after the run was cancelled.
	ctx  context.Context
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	// lost is closed when a heartbeat finds the lock held by someone else
	// (another run took it over, taking this one for dead).
	lost chan struct{}
}

// Lost is closed when the lock was taken over by another run: this run
// must stop writing.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

const lockName = "run"

// AcquireLock takes the single run lock for holder (a string naming the run,
// host and process). A lock whose heartbeat is older than stale, or whose
// holder abandoned reports as dead (nil: never), is taken over. When a live
// run holds it, the error wraps ErrLocked and names the holder.
func (s *Store) AcquireLock(ctx context.Context, holder string, stale time.Duration, abandoned func(holder string) bool) (*Lock, error) {
	if err := s.takeLock(ctx, holder, stale, abandoned); err != nil {
		return nil, err
	}
	l := &Lock{s: s, holder: holder, ctx: context.WithoutCancel(ctx), stop: make(chan struct{}), lost: make(chan struct{})}
	beat := stale / 4
	if beat <= 0 {
		beat = time.Second
	}
	l.wg.Add(1)
	go l.heartbeat(beat)
	return l, nil
}

// lockAttempts bounds how often takeLock starts over when the lock changes
// hands between its statements (released, or taken over by another run),
// or when the database chose one of its statements as a deadlock victim.
const lockAttempts = 3

// errLockMoved says the lock row changed between two statements of one
// attempt, so the attempt's view of the holder is out of date.
var errLockMoved = errors.New("the run lock changed hands during the attempt")

// takeLock claims the lock row in at most lockAttempts attempts. A lock
// wait timeout or SQLite busy comes only after the database waited its full
// limit for another run's statement, so it is reported as ErrLocked at once.
// A deadlock victim is rolled back at once and tries again, to learn who
// won: MariaDB can still pick one of several INSERTs racing just after a
// release (the deleted row is still locked) as a victim.
func (s *Store) takeLock(ctx context.Context, holder string, stale time.Duration, abandoned func(holder string) bool) error {
	var last error
	for range lockAttempts {
		err := s.tryLock(ctx, holder, stale, abandoned)
		switch {
		case err == nil || errors.Is(err, ErrLocked):
			return err
		case errors.Is(err, errLockMoved) || s.d.isDeadlock(err):
			last = err
		case s.d.isContention(err):
			return fmt.Errorf("%w: another run was taking it at the same moment: %w", ErrLocked, err)
		default:
			return fmt.Errorf("acquire run lock: %w", err)
		}
	}
	return fmt.Errorf("%w: other runs were taking and releasing it at the same moment: %w", ErrLocked, last)
}

// tryLock is one attempt, made of single statements that are each atomic on
// their own: insert the row; else take over a stale row; else take over a
// holder reported abandoned. No lock is held from one statement to the
// next, unlike the transaction that read the missing row FOR UPDATE (taking
// gap locks) and then inserted it, which deadlocked two runs starting
// together on MariaDB. Of several runs, exactly one sees its statement
// change the row; the others are told who holds it.
func (s *Store) tryLock(ctx context.Context, holder string, stale time.Duration, abandoned func(holder string) bool) error {
	now := time.Now().UTC()
	won, err := s.claimLock(ctx, `INSERT INTO cmissync_lock (name, holder, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?)`,
		lockName, holder, now, now)
	if won || (err != nil && !s.d.isDuplicate(err)) {
		return err
	}
	// A heartbeat older than the limit: its holder died without releasing.
	// The UPDATE checks the condition itself, so of two runs taking over
	// only one changes the row. (On SQLite the times are text written by
	// one driver in one zone, UTC, and so compare in time order.)
	won, err = s.claimLock(ctx, `UPDATE cmissync_lock SET holder = ?, acquired_at = ?, heartbeat_at = ? WHERE name = ? AND heartbeat_at < ?`,
		holder, now, now, lockName, now.Add(-stale))
	if won || err != nil {
		return err
	}
	info, err := s.CurrentLock(ctx)
	if err != nil {
		return err
	}
	if info == nil {
		return errLockMoved // released since the INSERT failed
	}
	if abandoned != nil && abandoned(info.Holder) {
		// Only the holder found dead is replaced: if another run took over
		// first, the row no longer matches.
		won, err = s.claimLock(ctx, `UPDATE cmissync_lock SET holder = ?, acquired_at = ?, heartbeat_at = ? WHERE name = ? AND holder = ?`,
			holder, now, now, lockName, info.Holder)
		if won || err != nil {
			return err
		}
		return errLockMoved
	}
	return fmt.Errorf("%w: held by %s since %s (last heartbeat %s)", ErrLocked, info.Holder,
		info.AcquiredAt.Format(time.RFC3339), info.Heartbeat.Format(time.RFC3339))
}

// claimLock runs one statement that writes the lock row for this run and
// reports whether it did.
func (s *Store) claimLock(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (l *Lock) heartbeat(every time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(l.ctx, every)
			res, err := l.s.db.ExecContext(ctx, `UPDATE cmissync_lock SET heartbeat_at = ? WHERE name = ? AND holder = ?`,
				time.Now().UTC(), lockName, l.holder)
			cancel()
			if err != nil {
				continue // staging unreachable for now: try again next beat
			}
			if n, err := res.RowsAffected(); err == nil && n == 0 && !l.stillHeld() {
				close(l.lost)
				return
			}
		}
	}
}

// stillHeld reads whether this holder still has the lock: an UPDATE of a
// heartbeat within the same second may report no row changed on MySQL.
func (l *Lock) stillHeld() bool {
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	var holder string
	err := l.s.db.QueryRowContext(ctx, `SELECT holder FROM cmissync_lock WHERE name = ?`, lockName).Scan(&holder)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return true // unknown: keep going
	}
	return holder == l.holder
}

// Release stops the heartbeat and frees the lock if this holder still has
// it. It uses its own short timeout so that it works after the run's context
// was cancelled.
func (l *Lock) Release() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
		defer cancel()
		_, err = l.s.db.ExecContext(ctx, `DELETE FROM cmissync_lock WHERE name = ? AND holder = ?`, lockName, l.holder)
	})
	return err
}

// CurrentLock reports who holds the lock, or nil when nobody does.
func (s *Store) CurrentLock(ctx context.Context) (*LockInfo, error) {
	var info LockInfo
	err := s.db.QueryRowContext(ctx, `SELECT holder, acquired_at, heartbeat_at FROM cmissync_lock WHERE name = ?`, lockName).
		Scan(&info.Holder, &info.AcquiredAt, &info.Heartbeat)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// Step outcomes recorded in cmissync_runs.
const (
	OutcomeRunning = "running"
	OutcomeOK      = "ok"
	OutcomePartial = "partial" // finished with item failures
	OutcomeFailed  = "failed"
	OutcomeHeld    = "held" // stopped by a safety rail
	OutcomeDryRun  = "dry-run"
)

// StepRun is one row of cmissync_runs.
type StepRun struct {
	ID       int64
	RunID    string
	Step     string
	Started  time.Time
	Finished *time.Time
	Outcome  string
	Counts   map[string]int64
	Message  string
}

// StartStep records the start of a step and returns its row id.
func (s *Store) StartStep(ctx context.Context, runID, step string) (int64, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO cmissync_runs (run_id, step, started_at, outcome, counts, message) VALUES (?, ?, ?, ?, '{}', '')`,
		runID, step, time.Now().UTC(), OutcomeRunning)
	if err != nil {
		return 0, fmt.Errorf("record start of %s: %w", step, err)
	}
	return res.LastInsertId()
}

// FinishStep records how a step ended. It works after ctx was cancelled,
// within a timeout of its own, so that an interrupted run is still recorded.
func (s *Store) FinishStep(ctx context.Context, id int64, outcome string, counts map[string]int64, message string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if counts == nil {
		counts = map[string]int64{}
	}
	b, _ := json.Marshal(counts)
	_, err := s.db.ExecContext(ctx, `UPDATE cmissync_runs SET finished_at = ?, outcome = ?, counts = ?, message = ? WHERE id = ?`,
		time.Now().UTC(), outcome, string(b), truncate(message, 4000), id)
	return err
}

// RecentSteps returns the steps of the last n runs, newest first.
func (s *Store) RecentSteps(ctx context.Context, n int) ([]StepRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT r.id, r.run_id, r.step, r.started_at, r.finished_at, r.outcome, r.counts, r.message
FROM cmissync_runs r
JOIN (SELECT run_id, MAX(id) AS last FROM cmissync_runs GROUP BY run_id ORDER BY last DESC LIMIT ?) recent ON recent.run_id = r.run_id
ORDER BY r.id DESC`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StepRun
	for rows.Next() {
		var (
			r        StepRun
			finished sql.NullTime
			counts   string
		)
		if err := rows.Scan(&r.ID, &r.RunID, &r.Step, &r.Started, &finished, &r.Outcome, &counts, &r.Message); err != nil {
			return nil, err
		}
		if finished.Valid {
			r.Finished = &finished.Time
		}
		_ = json.Unmarshal([]byte(counts), &r.Counts)
		out = append(out, r)
	}
	return out, rows.Err()
}

// RestError is one failed web-service item, stored in rest_error_logs.
type RestError struct {
	RunID, Step string
	CourseID    int64
	Object      string // the group or grouping idnumber, or the user
	Function    string
	Params      string // as sent, token removed
	Exception   string
	ErrorCode   string
	Message     string
	Created     time.Time
}

// RecordRestErrors appends to rest_error_logs.
func (s *Store) RecordRestErrors(ctx context.Context, errs []RestError) error {
	if len(errs) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO rest_error_logs (run_id, step, courseid, object, wsfunction, params, exception, errorcode, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range errs {
			if _, err := stmt.ExecContext(ctx, e.RunID, e.Step, e.CourseID, truncate(e.Object, 255), e.Function,
				truncateBytes(e.Params, textMax), truncate(e.Exception, 255), truncate(e.ErrorCode, 100), truncateBytes(e.Message, textMax)); err != nil {
				return fmt.Errorf("record rest error: %w", err)
			}
		}
		return nil
	})
}

// RestErrors returns the REST errors of a run (all runs when runID is "").
func (s *Store) RestErrors(ctx context.Context, runID string) ([]RestError, error) {
	q := `SELECT run_id, step, courseid, object, wsfunction, params, exception, errorcode, message, created_at FROM rest_error_logs`
	var args []any
	if runID != "" {
		q += ` WHERE run_id = ?`
		args = append(args, runID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RestError
	for rows.Next() {
		var e RestError
		if err := rows.Scan(&e.RunID, &e.Step, &e.CourseID, &e.Object, &e.Function, &e.Params, &e.Exception, &e.ErrorCode, &e.Message, &e.Created); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
