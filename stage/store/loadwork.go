package store

import (
	"context"
	"database/sql"
	"fmt"
)

// The load step reads its work from the flags with these queries and
// records each success as it happens, so a crash loses nothing and a rerun
// resumes where the last one stopped.

// GroupingsToCreate lists staged groupings flagged toadd.
func (s *Store) GroupingsToCreate(ctx context.Context, f Filter) ([]GroupingRow, error) {
	where, args := f.clause("courseid")
	return all(ctx, s.db, `SELECT `+groupingCols+` FROM cmis_groupings WHERE toadd = 1 AND todelete = 0`+where+` ORDER BY courseid, modulecode`, args, scanGrouping)
}

// GroupsToCreate lists staged groups flagged toadd.
func (s *Store) GroupsToCreate(ctx context.Context, f Filter) ([]GroupRow, error) {
	where, args := f.clause("courseid")
	return all(ctx, s.db, `SELECT `+groupCols+` FROM cmis_groups_course WHERE toadd = 1 AND todelete = 0`+where+` ORDER BY courseid, modulecode, groupcode`, args, scanGroup)
}

// MarkGroupingCreated records the Moodle id of a created (or adopted)
// grouping and clears toadd.
func (s *Store) MarkGroupingCreated(ctx context.Context, id, moodleID int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE cmis_groupings SET moodlegroupingid = ?, toadd = 0, updated_at = CURRENT_TIMESTAMP WHERE id = ?`, moodleID, id)
	return wrap(err, "record grouping %d", id)
}

// MarkGroupCreated records the Moodle id of a created (or adopted) group and
// clears toadd.
func (s *Store) MarkGroupCreated(ctx context.Context, id, moodleID int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE cmis_groups_course SET moodlegroupid = ?, toadd = 0, assigned = 0, updated_at = CURRENT_TIMESTAMP WHERE id = ?`, moodleID, id)
	return wrap(err, "record group %d", id)
}

// Assignment is a group that still has to be put in its grouping.
type Assignment struct {
	GroupRowID       int64
	CourseID         int64
	IDNumber         string
	Name             string
	MoodleGroupID    int64
	MoodleGroupingID int64
}

// GroupsToAssign lists created groups not yet assigned to their created
// grouping.
func (s *Store) GroupsToAssign(ctx context.Context, f Filter) ([]Assignment, error) {
	where, args := f.clause("g.courseid")
	return all(ctx, s.db, `SELECT g.id, g.courseid, g.idnumber, g.name, g.moodlegroupid, gg.moodlegroupingid
FROM cmis_groups_course g
JOIN cmis_groupings gg ON gg.courseid = g.courseid AND gg.modulecode = g.modulecode
WHERE g.assigned = 0 AND g.todelete = 0 AND g.moodlegroupid IS NOT NULL AND gg.moodlegroupingid IS NOT NULL AND gg.todelete = 0`+where+`
ORDER BY g.courseid, g.modulecode, g.groupcode`, args, func(r *sql.Rows) (Assignment, error) {
		var a Assignment
		err := r.Scan(&a.GroupRowID, &a.CourseID, &a.IDNumber, &a.Name, &a.MoodleGroupID, &a.MoodleGroupingID)
		return a, err
	})
}

// MarkAssigned records that groups are in their groupings.
func (s *Store) MarkAssigned(ctx context.Context, groupRowIDs []int64) error {
	return wrap(updateIDs(ctx, s.db, `UPDATE cmis_groups_course SET assigned = 1, updated_at = CURRENT_TIMESTAMP WHERE id IN `, groupRowIDs), "record assignments")
}

// MemberWork is a staged membership with what the load step needs to send
// it: the Moodle group and the names for reports.
type MemberWork struct {
	MemberRow
	MoodleGroupID int64
	GroupIDNumber string
	GroupName     string
}

const memberWorkSQL = `SELECT m.id, m.courseid, m.modulecode, m.groupcode, m.role, m.cmisid, COALESCE(m.moodleuserid, 0), m.toadd, m.todelete,
  g.moodlegroupid, g.idnumber, g.name
FROM cmis_groupmembers m
JOIN cmis_groups_course g ON g.courseid = m.courseid AND g.modulecode = m.modulecode AND g.groupcode = m.groupcode
WHERE g.moodlegroupid IS NOT NULL AND g.todelete = 0 AND `

func scanMemberWork(r *sql.Rows) (MemberWork, error) {
	var w MemberWork
	m := &w.MemberRow
	err := r.Scan(&m.ID, &m.CourseID, &m.ModuleCode, &m.GroupCode, &m.Role, &m.CMISID, &m.MoodleUserID, &m.ToAdd, &m.ToDelete,
		&w.MoodleGroupID, &w.GroupIDNumber, &w.GroupName)
	return w, err
}

// MembersToAdd lists memberships flagged toadd whose group exists in Moodle.
func (s *Store) MembersToAdd(ctx context.Context, f Filter) ([]MemberWork, error) {
	where, args := f.clause("m.courseid")
	return all(ctx, s.db, memberWorkSQL+`m.toadd = 1 AND m.todelete = 0`+where+` ORDER BY m.courseid, m.modulecode, m.groupcode, m.role, m.cmisid`, args, scanMemberWork)
}

// MembersToRemove lists owned memberships flagged todelete in groups that
// stay (members of groups being deleted go with their group).
func (s *Store) MembersToRemove(ctx context.Context, f Filter) ([]MemberWork, error) {
	where, args := f.clause("m.courseid")
	return all(ctx, s.db, memberWorkSQL+`m.todelete = 1 AND m.toadd = 0 AND m.moodleuserid IS NOT NULL`+where+` ORDER BY m.courseid, m.modulecode, m.groupcode, m.role, m.cmisid`, args, scanMemberWork)
}

// AddedMember pairs a staged membership with the Moodle user it was added as.
type AddedMember struct {
	ID           int64
	MoodleUserID int64
}

// MarkMembersAdded records memberships now in Moodle and clears toadd.
func (s *Store) MarkMembersAdded(ctx context.Context, added []AddedMember) error {
	if len(added) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE cmis_groupmembers SET moodleuserid = ?, toadd = 0, updated_at = CURRENT_TIMESTAMP WHERE id = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, a := range added {
			if _, err := stmt.ExecContext(ctx, a.MoodleUserID, a.ID); err != nil {
				return fmt.Errorf("record member %d: %w", a.ID, err)
			}
		}
		return nil
	})
}

// DropMembers deletes staged memberships (after their removal from Moodle).
func (s *Store) DropMembers(ctx context.Context, ids []int64) error {
	return wrap(updateIDs(ctx, s.db, `DELETE FROM cmis_groupmembers WHERE id IN `, ids), "drop members")
}

// GroupsToDelete lists staged groups flagged todelete that exist in Moodle.
func (s *Store) GroupsToDelete(ctx context.Context, f Filter) ([]GroupRow, error) {
	where, args := f.clause("courseid")
	return all(ctx, s.db, `SELECT `+groupCols+` FROM cmis_groups_course WHERE todelete = 1 AND moodlegroupid IS NOT NULL`+where+` ORDER BY courseid, modulecode, groupcode`, args, scanGroup)
}

// DropGroups deletes staged groups and their staged memberships (after the
// groups were deleted in Moodle, which removes their members).
func (s *Store) DropGroups(ctx context.Context, groups []GroupRow) error {
	if len(groups) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, g := range groups {
			if _, err := tx.ExecContext(ctx, `DELETE FROM cmis_groupmembers WHERE courseid = ? AND modulecode = ? AND groupcode = ?`, g.CourseID, g.ModuleCode, g.GroupCode); err != nil {
				return fmt.Errorf("drop members of group %s: %w", g.IDNumber, err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM cmis_groups_course WHERE id = ?`, g.ID); err != nil {
				return fmt.Errorf("drop group %s: %w", g.IDNumber, err)
			}
		}
		return nil
	})
}

// GroupingsToDelete lists staged groupings flagged todelete that exist in
// Moodle and have no staged groups left.
func (s *Store) GroupingsToDelete(ctx context.Context, f Filter) ([]GroupingRow, error) {
	where, args := f.clause("gg.courseid")
	return all(ctx, s.db, `SELECT `+groupingColsOf("gg.")+` FROM cmis_groupings gg
WHERE gg.todelete = 1 AND gg.moodlegroupingid IS NOT NULL`+where+`
  AND NOT EXISTS (SELECT 1 FROM cmis_groups_course g WHERE g.courseid = gg.courseid AND g.modulecode = gg.modulecode)
ORDER BY gg.courseid, gg.modulecode`, args, scanGrouping)
}

// DropGroupings deletes staged groupings by row id.
func (s *Store) DropGroupings(ctx context.Context, ids []int64) error {
	return wrap(updateIDs(ctx, s.db, `DELETE FROM cmis_groupings WHERE id IN `, ids), "drop groupings")
}

// Pending counts staged rows still flagged, per table and flag, for status
// and the run summary.
func (s *Store) Pending(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for _, t := range []string{TableGroupings, TableGroups, TableMembers} {
		var add, del sql.NullInt64
		if err := s.db.QueryRowContext(ctx, `SELECT SUM(toadd), SUM(todelete) FROM `+t).Scan(&add, &del); err != nil {
			return nil, fmt.Errorf("count pending in %s: %w", t, err)
		}
		out[t+".toadd"] = add.Int64
		out[t+".todelete"] = del.Int64
	}
	return out, nil
}

func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// RequeueMembers sets memberships back to toadd (a write Moodle accepted but
// that reading back did not confirm).
func (s *Store) RequeueMembers(ctx context.Context, ids []int64) error {
	return wrap(updateIDs(ctx, s.db, `UPDATE cmis_groupmembers SET toadd = 1, moodleuserid = NULL, updated_at = CURRENT_TIMESTAMP WHERE id IN `, ids), "requeue members")
}

// ForgetGroup records that an owned group no longer exists in Moodle (deleted
// there by hand): the group and its memberships are flagged toadd again so
// the next load recreates them.
func (s *Store) ForgetGroup(ctx context.Context, courseID int64, moduleCode, groupCode string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE cmis_groups_course SET moodlegroupid = NULL, toadd = 1, assigned = 0, updated_at = CURRENT_TIMESTAMP
WHERE courseid = ? AND modulecode = ? AND groupcode = ? AND todelete = 0`, courseID, moduleCode, groupCode); err != nil {
			return fmt.Errorf("forget group: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM cmis_groupmembers WHERE courseid = ? AND modulecode = ? AND groupcode = ? AND todelete = 1`, courseID, moduleCode, groupCode); err != nil {
			return fmt.Errorf("forget group members: %w", err)
		}
		_, err := tx.ExecContext(ctx, `UPDATE cmis_groupmembers SET toadd = 1, moodleuserid = NULL, updated_at = CURRENT_TIMESTAMP
WHERE courseid = ? AND modulecode = ? AND groupcode = ?`, courseID, moduleCode, groupCode)
		return wrap(err, "requeue group members")
	})
}

// RenameStaged records the name cmissync actually used in Moodle for a group
// or grouping (after a name clash with a hand-made one).
func (s *Store) RenameStaged(ctx context.Context, table string, id int64, name string) error {
	if table != TableGroups && table != TableGroupings {
		return fmt.Errorf("rename: unknown table %q", table)
	}
	_, err := s.db.ExecContext(ctx, `UPDATE `+table+` SET name = ?, updated_at = CURRENT_TIMESTAMP WHERE id = ?`, name, id)
	return wrap(err, "rename %s %d", table, id)
}

// StagedMembersOfNewGroups counts, per course, memberships flagged toadd
// whose group is not created in Moodle yet (they are sent right after it).
func (s *Store) StagedMembersOfNewGroups(ctx context.Context, f Filter) (map[int64]int, error) {
	where, args := f.clause("m.courseid")
	type row struct {
		course int64
		n      int
	}
	rows, err := all(ctx, s.db, `SELECT m.courseid, COUNT(*) FROM cmis_groupmembers m
JOIN cmis_groups_course g ON g.courseid = m.courseid AND g.modulecode = m.modulecode AND g.groupcode = m.groupcode
WHERE m.toadd = 1 AND g.moodlegroupid IS NULL AND g.todelete = 0`+where+` GROUP BY m.courseid`, args, func(r *sql.Rows) (row, error) {
		var x row
		err := r.Scan(&x.course, &x.n)
		return x, err
	})
	if err != nil {
		return nil, err
	}
	out := map[int64]int{}
	for _, r := range rows {
		out[r.course] = r.n
	}
	return out, nil
}

// GroupingsToDeleteAll lists staged groupings flagged todelete that exist in
// Moodle, whether or not their groups are deleted yet (for the plan).
func (s *Store) GroupingsToDeleteAll(ctx context.Context, f Filter) ([]GroupingRow, error) {
	where, args := f.clause("courseid")
	return all(ctx, s.db, `SELECT `+groupingCols+` FROM cmis_groupings WHERE todelete = 1 AND moodlegroupingid IS NOT NULL`+where+` ORDER BY courseid, modulecode`, args, scanGrouping)
}
