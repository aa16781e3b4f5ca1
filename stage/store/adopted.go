package store

import (
	"context"
	"database/sql"
	"fmt"
)

// AdoptedByAudit returns which of the given Moodle groups or groupings
// (object "group" or "grouping") of a course the audit trail says cmissync
// adopted (took over from a teacher by setting its idnumber) and has not
// given back since. A staging table emptied or a course forgotten loses the
// adopted flag; the audit trail keeps it, so such an object is still given
// back, never deleted.
func (s *Store) AdoptedByAudit(ctx context.Context, courseID int64, object string, moodleIDs []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	const chunk = 500
	for start := 0; start < len(moodleIDs); start += chunk {
		part := moodleIDs[start:min(start+chunk, len(moodleIDs))]
		args := []any{courseID, object}
		for _, id := range part {
			args = append(args, id)
		}
		rows, err := all(ctx, s.db, `SELECT moodle_id, action FROM cmissync_audit
WHERE courseid = ? AND object = ? AND action IN ('adopt', 'give-back') AND moodle_id IN (`+placeholders(len(part))+`) ORDER BY id`, args,
			func(r *sql.Rows) (AuditEntry, error) {
				var e AuditEntry
				err := r.Scan(&e.MoodleID, &e.Action)
				return e, err
			})
		if err != nil {
			return nil, fmt.Errorf("read the adoptions of course %d: %w", courseID, err)
		}
		for _, e := range rows {
			out[e.MoodleID] = e.Action == "adopt"
		}
	}
	for id, adopted := range out {
		if !adopted {
			delete(out, id)
		}
	}
	return out, nil
}
