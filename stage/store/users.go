package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// KnownUsers maps each CMIS id to the Moodle user cmissync last recorded
// for it in any group: the load step resolves most members to add from it,
// without asking Moodle.
func (s *Store) KnownUsers(ctx context.Context) (map[string]int64, error) {
	rows, err := all(ctx, s.db, `SELECT cmisid, MAX(moodleuserid) FROM cmis_groupmembers
WHERE moodleuserid IS NOT NULL AND toadd = 0 GROUP BY cmisid`, nil, func(r *sql.Rows) (struct {
		id  string
		uid int64
	}, error) {
		var x struct {
			id  string
			uid int64
		}
		err := r.Scan(&x.id, &x.uid)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("read known users: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.id] = r.uid
	}
	return out, nil
}

// MarkWaiting records memberships whose person is not enrolled in the
// course: the first time with now, after that counting the runs.
func (s *Store) MarkWaiting(ctx context.Context, ids []int64, now time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return updateIDs(ctx, tx, `UPDATE cmis_groupmembers SET waiting_since = COALESCE(waiting_since, ?), waiting_runs = waiting_runs + 1 WHERE id IN `, ids, now.UTC())
	})
}
