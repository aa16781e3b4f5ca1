package store

import (
	"context"
	"database/sql"
	"sort"
)

// CourseDeletions counts, for one course, what cmissync owns in Moodle and
// what the staged flags would delete. Explained deletions come from a
// mapping switched to RMV (someone asked for them); the rest come from data
// that disappeared from CMIS, which is what the mass-change guard watches.
type CourseDeletions struct {
	CourseID                                      int64
	OwnedGroups, DeleteGroups, ExplainedGroups    int64
	OwnedMembers, DeleteMembers, ExplainedMembers int64
}

// DeletionStats returns the deletion counts of every course with owned
// objects.
func (s *Store) DeletionStats(ctx context.Context, f Filter) ([]CourseDeletions, error) {
	where, args := f.clause("x.courseid")
	byCourse := map[int64]*CourseDeletions{}
	get := func(id int64) *CourseDeletions {
		c := byCourse[id]
		if c == nil {
			c = &CourseDeletions{CourseID: id}
			byCourse[id] = c
		}
		return c
	}
	type counts struct {
		course                int64
		owned, del, explained int64
	}
	scan := func(r *sql.Rows) (counts, error) {
		var c counts
		err := r.Scan(&c.course, &c.owned, &c.del, &c.explained)
		return c, err
	}
	groups, err := all(ctx, s.db, `SELECT x.courseid, COUNT(*),
  SUM(CASE WHEN x.todelete = 1 AND x.parked = 0 THEN 1 ELSE 0 END),
  SUM(CASE WHEN x.todelete = 1 AND x.parked = 0 AND m.id IS NULL THEN 1 ELSE 0 END)
FROM cmis_groups_course x
LEFT JOIN mapped_modules m ON m.moodle_id = x.courseid AND m.modulecode = x.modulecode AND `+activeMapping+`
WHERE x.moodlegroupid IS NOT NULL`+where+`
GROUP BY x.courseid`, args, scan)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		c := get(g.course)
		c.OwnedGroups, c.DeleteGroups, c.ExplainedGroups = g.owned, g.del, g.explained
	}
	members, err := all(ctx, s.db, `SELECT x.courseid, COUNT(*),
  SUM(CASE WHEN x.todelete = 1 AND x.parked = 0 THEN 1 ELSE 0 END),
  SUM(CASE WHEN x.todelete = 1 AND x.parked = 0 AND m.id IS NULL THEN 1 ELSE 0 END)
FROM cmis_groupmembers x
LEFT JOIN mapped_modules m ON m.moodle_id = x.courseid AND m.modulecode = x.modulecode AND `+activeMapping+`
WHERE x.toadd = 0 AND x.owned = 1 AND x.moodleuserid IS NOT NULL`+where+`
GROUP BY x.courseid`, args, scan)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		c := get(m.course)
		c.OwnedMembers, c.DeleteMembers, c.ExplainedMembers = m.owned, m.del, m.explained
	}
	out := make([]CourseDeletions, 0, len(byCourse))
	for _, c := range byCourse {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CourseID < out[j].CourseID })
	return out, nil
}
