package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"
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
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

const lockName = "run"

// AcquireLock takes the single run lock for holder (a string naming the run,
// host and process). A lock whose heartbeat is older than stale, or whose
// holder abandoned reports as dead (nil: never), is taken over. When a live
// run holds it, the error wraps ErrLocked and names the holder.
func (s *Store) AcquireLock(ctx context.Context, holder string, stale time.Duration, abandoned func(holder string) bool) (*Lock, error) {
	now := time.Now().UTC()
	var info LockInfo
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT holder, acquired_at, heartbeat_at FROM cmissync_lock WHERE name = ?`+s.forUpdate(), lockName).
			Scan(&info.Holder, &info.AcquiredAt, &info.Heartbeat)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO cmissync_lock (name, holder, acquired_at, heartbeat_at) VALUES (?, ?, ?, ?)`,
				lockName, holder, now, now)
			return err
		case err != nil:
			return err
		case now.Sub(info.Heartbeat) < stale && (abandoned == nil || !abandoned(info.Holder)):
			return fmt.Errorf("%w: held by %s since %s (last heartbeat %s)", ErrLocked, info.Holder,
				info.AcquiredAt.Format(time.RFC3339), info.Heartbeat.Format(time.RFC3339))
		default:
			_, err = tx.ExecContext(ctx, `UPDATE cmissync_lock SET holder = ?, acquired_at = ?, heartbeat_at = ? WHERE name = ?`,
				holder, now, now, lockName)
			return err
		}
	})
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		// Two runs starting at once: the loser's INSERT hits the key.
		if s.isDuplicate(err) {
			return nil, fmt.Errorf("%w: taken by another run starting at the same moment", ErrLocked)
		}
		return nil, fmt.Errorf("acquire run lock: %w", err)
	}
	l := &Lock{s: s, holder: holder, stop: make(chan struct{})}
	beat := stale / 4
	if beat <= 0 {
		beat = time.Second
	}
	l.wg.Add(1)
	go l.heartbeat(beat)
	return l, nil
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
			ctx, cancel := context.WithTimeout(context.Background(), every)
			_, _ = l.s.db.ExecContext(ctx, `UPDATE cmissync_lock SET heartbeat_at = ? WHERE name = ? AND holder = ?`,
				time.Now().UTC(), lockName, l.holder)
			cancel()
		}
	}
}

// Release stops the heartbeat and frees the lock if this holder still has
// it. It uses its own short timeout so that it works after the run's context
// was cancelled.
func (l *Lock) Release() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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

func (s *Store) forUpdate() string {
	if s.engine == EngineMySQL {
		return " FOR UPDATE"
	}
	return "" // SQLite transactions are opened IMMEDIATE: already exclusive for writers
}

func (s *Store) isDuplicate(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062 // ER_DUP_ENTRY
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		// SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
		return se.Code() == 1555 || se.Code() == 2067
	}
	return false
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

// FinishStep records how a step ended. It works after the run's context was
// cancelled, so that an interrupted run is still recorded.
func (s *Store) FinishStep(id int64, outcome string, counts map[string]int64, message string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
				e.Params, truncate(e.Exception, 255), truncate(e.ErrorCode, 100), e.Message); err != nil {
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
