package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// KnownUsers maps each CMIS id to the Moodle user cmissync recorded for it
// in a group: the load step resolves most members to add from it, without
// asking Moodle. Where memberships recorded two users (an account deleted
// and made again in Moodle), the highest id wins: Moodle numbers accounts in
// the order they are made, so it is the newest.
func (s *Store) KnownUsers(ctx context.Context) (map[string]int64, error) {
	out, err := keyed[string, int64](ctx, s.db, `SELECT cmisid, MAX(moodleuserid) FROM cmis_groupmembers
WHERE moodleuserid IS NOT NULL AND toadd = 0 GROUP BY cmisid`, nil)
	return out, wrap(err, "read known users")
}

// MarkWaiting records memberships whose person is not enrolled in the
// course: the first time with now, after that counting the runs.
func (s *Store) MarkWaiting(ctx context.Context, ids []int64, now time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return updateIDs(ctx, tx, `UPDATE cmis_groupmembers SET waiting_since = COALESCE(waiting_since, ?), waiting_runs = waiting_runs + 1 WHERE id IN `, ids, now.UTC())
	})
}

// DumpRun returns the run whose extract is the current dump ("" before the
// first).
func (s *Store) DumpRun(ctx context.Context) (string, error) {
	var run string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM cmissync_meta WHERE name = ?`, metaDumpRun).Scan(&run)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return run, wrap(err, "read the current dump's run")
}

// FrozenCourses returns the courses recorded as frozen (no writes), with
// the reason each was frozen for.
func (s *Store) FrozenCourses(ctx context.Context) (map[int64]string, error) {
	out, err := keyed[int64, string](ctx, s.db, `SELECT courseid, reason FROM cmissync_frozen_courses`, nil)
	return out, wrap(err, "read frozen courses")
}

// SetFrozen records a course as frozen for a reason, or, with an empty
// reason, as no longer frozen.
func (s *Store) SetFrozen(ctx context.Context, courseID int64, reason string, audit []AuditEntry) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM cmissync_frozen_courses WHERE courseid = ?`, courseID); err != nil {
			return fmt.Errorf("unfreeze course %d: %w", courseID, err)
		}
		if reason != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO cmissync_frozen_courses (courseid, reason) VALUES (?, ?)`, courseID, truncate(reason, 255)); err != nil {
				return fmt.Errorf("freeze course %d: %w", courseID, err)
			}
		}
		return s.insertAudit(ctx, tx, audit)
	})
}

// RetryWaiting makes the members waiting for enrolment in the filter's
// courses due for a try at the next load, as on their first days of
// waiting (their waiting_since is kept). It returns how many there are.
func (s *Store) RetryWaiting(ctx context.Context, f Filter) (int64, error) {
	where, args := f.clause("courseid")
	// Counted rather than taken from RowsAffected: MySQL counts only the
	// rows an UPDATE changes, so members already at zero runs (retried
	// before) would not count there, while SQLite counts every match.
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM cmis_groupmembers WHERE waiting_since IS NOT NULL`+where, args...).Scan(&n); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE cmis_groupmembers SET waiting_runs = 0 WHERE waiting_since IS NOT NULL`+where, args...)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("retry the members waiting for enrolment: %w", err)
	}
	return n, nil
}
