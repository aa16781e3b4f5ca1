package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The load step reads its work from the flags with these queries and
// records each success as it happens, in one transaction with its audit
// rows, so a crash loses nothing and a rerun resumes where the last one
// stopped. Parked items are left out of every work list.

// AuditEntry is one change applied to Moodle, kept in cmissync_audit.
type AuditEntry struct {
	RunID    string
	CourseID int64
	Object   string // grouping, group, member
	IDNumber string // of the grouping or group
	Name     string
	Action   string // create, adopt, rename, assign, add, remove, delete, recreate, retire
	MoodleID int64  // of the grouping or group
	UserID   int64  // Moodle user, for memberships
	CMISID   string // CMIS student or staff id, for memberships
	Detail   string
}

// auditCols are the columns insertAudit writes, in AuditEntry's order.
var auditCols = []string{"run_id", "courseid", "object", "idnumber", "name", "action", "moodle_id", "userid", "cmisid", "detail"}

func auditRow(e AuditEntry) []any {
	return []any{e.RunID, e.CourseID, e.Object, truncate(e.IDNumber, 100), truncate(e.Name, 254), e.Action, e.MoodleID, e.UserID, truncate(e.CMISID, 100), truncate(e.Detail, 1000)}
}

// insertAudit appends entries to the audit trail, in their order. A run of
// two or more consecutive member entries alike but for the user (the
// members a wave added to a group) is one cmissync_audit row, with user 0,
// and a cmissync_audit_members row per member (migration 008): what the
// trail costs a first load is then a narrow row per member. Every reader
// joins the two and sees an entry per member. Where the engine cannot name
// the ids of a multi-row INSERT (compactAudit false), every entry is a row.
func (s *Store) insertAudit(ctx context.Context, q querier, entries []AuditEntry) error {
	if !s.compactAudit {
		return s.insertMany(ctx, q, "cmissync_audit", auditCols, len(entries), func(i int) []any { return auditRow(entries[i]) })
	}
	heads, runs := foldAudit(entries)
	var members [][]any
	err := insertRowsThen(ctx, q, "cmissync_audit", auditCols, len(heads), func(i int) []any { return auditRow(heads[i]) },
		func(start, end int, res sql.Result) error {
			first, err := s.d.firstID(res, end-start)
			if err != nil {
				return fmt.Errorf("audit: the ids of the rows written: %w", err)
			}
			for i := start; i < end; i++ {
				for n, m := range runs[i] {
					members = append(members, []any{first + int64(i-start), n, m.UserID, truncate(m.CMISID, 100)})
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	return s.insertMany(ctx, q, "cmissync_audit_members", []string{"audit_id", "n", "userid", "cmisid"}, len(members), func(i int) []any { return members[i] })
}

// foldAudit folds each run of two or more consecutive member entries
// alike but for UserID and CMISID into one head entry (UserID 0, CMISID
// "") with the run's entries in runs; every other entry is its own head,
// with no run.
func foldAudit(entries []AuditEntry) (heads []AuditEntry, runs [][]AuditEntry) {
	alike := func(a, b AuditEntry) bool {
		a.UserID, a.CMISID, b.UserID, b.CMISID = 0, "", 0, ""
		return a == b
	}
	for i := 0; i < len(entries); {
		j := i + 1
		if entries[i].Object == "member" {
			for j < len(entries) && alike(entries[i], entries[j]) {
				j++
			}
		}
		head := entries[i]
		var run []AuditEntry
		if j-i > 1 {
			head.UserID, head.CMISID = 0, ""
			run = entries[i:j]
		}
		heads, runs = append(heads, head), append(runs, run)
		i = j
	}
	return heads, runs
}

// RecordAudit appends entries that go with no staging change.
func (s *Store) RecordAudit(ctx context.Context, entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.insertAudit(ctx, tx, entries) })
}

// auditFrom selects the audit trail as entries, one per member of a
// compacted row (insertAudit), in the order written: id, then n.
const auditFrom = ` FROM cmissync_audit a LEFT JOIN cmissync_audit_members m ON m.audit_id = a.id`

// auditEntryCols are the columns of an AuditEntry from auditFrom, in
// AuditEntry's order.
const auditEntryCols = `a.run_id, a.courseid, a.object, a.idnumber, a.name, a.action, a.moodle_id, COALESCE(m.userid, a.userid), COALESCE(m.cmisid, a.cmisid), a.detail`

// Audit returns the audit trail of a course (all courses when 0), oldest
// first, limited to the runs given (all when empty): FindAudit's entries
// without their times.
func (s *Store) Audit(ctx context.Context, courseID int64, runID string) ([]AuditEntry, error) {
	q := AuditQuery{RunID: runID}
	if courseID > 0 {
		q.Courses = []int64{courseID}
	}
	recs, err := s.FindAudit(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]AuditEntry, len(recs))
	for i, r := range recs {
		out[i] = r.AuditEntry
	}
	return out, nil
}

// Created is a grouping or group now in Moodle under a name.
type Created struct {
	RowID    int64
	MoodleID int64
	Name     string // the name it has in Moodle
	// Adopted marks a hand-made object cmissync took over.
	Adopted bool
}

// RecordCreated records created (or adopted) groupings or groups: their
// Moodle id and name, toadd cleared; groups are then (re)assigned to their
// grouping.
func (s *Store) RecordCreated(ctx context.Context, table string, done []Created, audit []AuditEntry) error {
	extra := ""
	switch table {
	case TableGroups:
		extra = ", assigned = 0"
	case TableGroupings:
	default:
		return fmt.Errorf("record created: unknown table %q", table)
	}
	idcol := map[string]string{TableGroups: "moodlegroupid", TableGroupings: "moodlegroupingid"}[table]
	return s.inTx(ctx, func(tx *sql.Tx) error {
		q := &stmtCache{tx: tx} // the same statements, many times
		defer q.close()
		if err := s.updateJoin(ctx, q, table, []string{"v_mid", "v_name", "v_adopted"}, len(done), func(i int) (int64, []any) {
			return done[i].RowID, []any{done[i].MoodleID, done[i].Name, done[i].Adopted}
		}, idcol+` = v.v_mid, moodlename = v.v_name, adopted = CASE WHEN v.v_adopted THEN 1 ELSE adopted END, toadd = 0, torename = 0, attempts = 0, last_error = ''`+extra+`, updated_at = CURRENT_TIMESTAMP`, ""); err != nil {
			return fmt.Errorf("record created in %s: %w", table, err)
		}
		if table == TableGroupings {
			// Groups of a (re)created grouping must be assigned to it again.
			if err := unassignGroupsOf(ctx, q, done); err != nil {
				return fmt.Errorf("reset assignments: %w", err)
			}
		}
		return s.insertAudit(ctx, q, audit)
	})
}

// unassignGroupsOf clears the assigned flag of the groups of groupings that
// have it set: a statement per rowsPerInsert groupings finds them, joining
// the groupings (by id) to their groups through the groups' (courseid,
// modulecode, ...) key, and one more clears them by id. A grouping created
// for the first time has no such group, so a first load writes nothing
// here. (A subquery on the groupings, (courseid, modulecode) IN (SELECT
// ...), made MariaDB scan every staged group once per grouping: a quarter
// of an hour for 20,000 groupings; an UPDATE per course cost a statement
// per course even when no group was assigned.)
func unassignGroupsOf(ctx context.Context, q querier, groupings []Created) error {
	var assigned []int64
	for part := range slices.Chunk(groupings, rowsPerInsert) {
		ids := make([]any, len(part))
		for i, g := range part {
			ids[i] = g.RowID
		}
		rows, err := q.QueryContext(ctx, `SELECT g.id FROM `+TableGroupings+` gg JOIN `+TableGroups+` g ON g.courseid = gg.courseid AND g.modulecode = gg.modulecode
WHERE gg.id IN (`+placeholders(len(ids))+`) AND g.assigned = 1`, ids...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			assigned = append(assigned, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return updateIDs(ctx, q, `UPDATE `+TableGroups+` SET assigned = 0 WHERE id IN `, assigned)
}

// RecordRenamed records the name a grouping or group now has in Moodle.
func (s *Store) RecordRenamed(ctx context.Context, table string, done []Created, audit []AuditEntry) error {
	if table != TableGroups && table != TableGroupings {
		return fmt.Errorf("record renamed: unknown table %q", table)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		q := &stmtCache{tx: tx} // the same statements, many times
		defer q.close()
		if err := s.updateJoin(ctx, q, table, []string{"v_name"}, len(done), func(i int) (int64, []any) {
			return done[i].RowID, []any{done[i].Name}
		}, `moodlename = v.v_name, torename = 0, attempts = 0, last_error = '', updated_at = CURRENT_TIMESTAMP`, ""); err != nil {
			return fmt.Errorf("record renamed in %s: %w", table, err)
		}
		return s.insertAudit(ctx, q, audit)
	})
}

// SetRenameFlag sets or clears torename (drift policy: restore our name, or
// keep Moodle's, recorded as the name cmissync last set).
func (s *Store) SetRenameFlag(ctx context.Context, table string, rowID int64, rename bool, moodleName string) error {
	if table != TableGroups && table != TableGroupings {
		return fmt.Errorf("rename flag: unknown table %q", table)
	}
	_, err := s.db.ExecContext(ctx, `UPDATE `+table+` SET torename = ?, moodlename = ?, updated_at = CURRENT_TIMESTAMP WHERE id = ?`, rename, moodleName, rowID)
	return wrap(err, "set rename flag of %s %d", table, rowID)
}

// RecordAssigned records that groups are in their groupings.
func (s *Store) RecordAssigned(ctx context.Context, groupRowIDs []int64, audit []AuditEntry) error {
	return s.byIDsWithAudit(ctx, `UPDATE cmis_groups_course SET assigned = 1, updated_at = CURRENT_TIMESTAMP WHERE id IN `, groupRowIDs, audit)
}

// byIDsWithAudit runs prefix + "(?, ...)" over ids (updateIDs) and appends
// the audit entries, in one transaction: the shape of every change of
// staged rows by id that goes with what was done in Moodle.
func (s *Store) byIDsWithAudit(ctx context.Context, prefix string, ids []int64, audit []AuditEntry) error {
	if len(ids) == 0 && len(audit) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		q := &stmtCache{tx: tx} // the same statement for every chunk of ids
		defer q.close()
		if err := updateIDs(ctx, q, prefix, ids); err != nil {
			return err
		}
		return s.insertAudit(ctx, q, audit)
	})
}

// AddedMember pairs a staged membership with the Moodle user it is in
// Moodle as, and whether cmissync added it (Owned) or found it there.
type AddedMember struct {
	ID           int64
	MoodleUserID int64
	Owned        bool
}

// RecordMembersAdded records memberships now in Moodle and clears toadd.
func (s *Store) RecordMembersAdded(ctx context.Context, added []AddedMember, audit []AuditEntry) error {
	if len(added) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		q := &stmtCache{tx: tx} // the same statements, many times
		defer q.close()
		if err := s.updateJoin(ctx, q, TableMembers, []string{"v_uid", "v_owned"}, len(added), func(i int) (int64, []any) {
			return added[i].ID, []any{added[i].MoodleUserID, added[i].Owned}
		}, `moodleuserid = v.v_uid, owned = v.v_owned, toadd = 0, attempts = 0, last_error = '', waiting_since = NULL, waiting_runs = 0, updated_at = CURRENT_TIMESTAMP`, ""); err != nil {
			return fmt.Errorf("record members added: %w", err)
		}
		return s.insertAudit(ctx, q, audit)
	})
}

// RecordIntentDone records memberships Moodle now holds as their intent
// said (RecordIntent, earlier in this run): owned, toadd cleared, the
// Moodle user the intent recorded kept. It writes no value per row, so it
// costs less than RecordMembersAdded.
func (s *Store) RecordIntentDone(ctx context.Context, ids []int64, audit []AuditEntry) error {
	return wrap(s.byIDsWithAudit(ctx, `UPDATE cmis_groupmembers SET owned = 1, toadd = 0, attempts = 0, last_error = '', waiting_since = NULL, waiting_runs = 0, updated_at = CURRENT_TIMESTAMP WHERE id IN `, ids, audit),
		"record members added")
}

// DropMembers deletes staged memberships (after their removal from Moodle).
func (s *Store) DropMembers(ctx context.Context, ids []int64, audit []AuditEntry) error {
	return s.byIDsWithAudit(ctx, `DELETE FROM cmis_groupmembers WHERE id IN `, ids, audit)
}

// DropGroups deletes staged groups and their staged memberships (after the
// groups were deleted in Moodle, which removes their members).
func (s *Store) DropGroups(ctx context.Context, groups []GroupRow, audit []AuditEntry) error {
	if len(groups) == 0 {
		return nil
	}
	// The memberships go by (course, module), a statement for up to
	// rowsPerInsert groups through the memberships' key; the groups by id.
	type courseModule struct {
		course int64
		module string
	}
	codes := map[courseModule][]any{}
	ids := make([]int64, len(groups))
	for i, g := range groups {
		k := courseModule{g.CourseID, g.ModuleCode}
		codes[k] = append(codes[k], g.GroupCode)
		ids[i] = g.ID
	}
	keys := slices.SortedFunc(maps.Keys(codes), func(a, b courseModule) int {
		if a.course != b.course {
			return cmp.Compare(a.course, b.course)
		}
		return strings.Compare(a.module, b.module)
	})
	return s.inTx(ctx, func(tx *sql.Tx) error {
		q := &stmtCache{tx: tx} // the same statements, many times
		defer q.close()
		for _, k := range keys {
			for part := range slices.Chunk(codes[k], rowsPerInsert) {
				if _, err := q.ExecContext(ctx, `DELETE FROM cmis_groupmembers WHERE courseid = ? AND modulecode = ? AND groupcode IN (`+placeholders(len(part))+`)`,
					append([]any{k.course, k.module}, part...)...); err != nil {
					return fmt.Errorf("drop members of the groups of course %d, module %s: %w", k.course, k.module, err)
				}
			}
		}
		if err := updateIDs(ctx, q, `DELETE FROM cmis_groups_course WHERE id IN `, ids); err != nil {
			return fmt.Errorf("drop groups: %w", err)
		}
		return s.insertAudit(ctx, q, audit)
	})
}

// DropGroupings deletes staged groupings by row id.
func (s *Store) DropGroupings(ctx context.Context, ids []int64, audit []AuditEntry) error {
	return s.byIDsWithAudit(ctx, `DELETE FROM cmis_groupings WHERE id IN `, ids, audit)
}

// ForgetGroup records that an owned group no longer exists in Moodle
// (deleted there by hand): the group and its memberships are flagged toadd
// again so they are recreated.
func (s *Store) ForgetGroup(ctx context.Context, rowID int64, audit []AuditEntry) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var course int64
		var module, group string
		if err := tx.QueryRowContext(ctx, `SELECT courseid, modulecode, groupcode FROM cmis_groups_course WHERE id = ?`, rowID).Scan(&course, &module, &group); err != nil {
			return fmt.Errorf("forget group %d: %w", rowID, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cmis_groups_course SET moodlegroupid = NULL, moodlename = '', toadd = CASE WHEN todelete = 1 THEN 0 ELSE 1 END, torename = 0, assigned = 0, updated_at = CURRENT_TIMESTAMP WHERE id = ?`, rowID); err != nil {
			return fmt.Errorf("forget group: %w", err)
		}
		// A group flagged for deletion that is already gone is simply done,
		// and so are its memberships, whatever their flags.
		res, err := tx.ExecContext(ctx, `DELETE FROM cmis_groups_course WHERE id = ? AND todelete = 1`, rowID)
		if err != nil {
			return fmt.Errorf("forget group: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("forget group: %w", err)
		} else if n > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM cmis_groupmembers WHERE courseid = ? AND modulecode = ? AND groupcode = ?`, course, module, group); err != nil {
				return fmt.Errorf("forget group members: %w", err)
			}
			return s.insertAudit(ctx, tx, audit)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM cmis_groupmembers WHERE courseid = ? AND modulecode = ? AND groupcode = ? AND (todelete = 1 OR owned = 0)`, course, module, group); err != nil {
			return fmt.Errorf("forget group members: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cmis_groupmembers SET toadd = 1, owned = 1, moodleuserid = 0, updated_at = CURRENT_TIMESTAMP
WHERE courseid = ? AND modulecode = ? AND groupcode = ?`, course, module, group); err != nil {
			return fmt.Errorf("requeue group members: %w", err)
		}
		return s.insertAudit(ctx, tx, audit)
	})
}

// RecordFailure counts a permanent failure of an item and parks it once it
// has failed parkAfter times (0: never park). It reports whether the item is
// now parked.
func (s *Store) RecordFailure(ctx context.Context, table string, rowID int64, message string, parkAfter int) (bool, error) {
	if table != TableGroups && table != TableGroupings && table != TableMembers {
		return false, fmt.Errorf("record failure: unknown table %q", table)
	}
	park := parkAfter > 0
	var parked bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// parked is assigned before attempts: MySQL and MariaDB evaluate
		// the assignments of an UPDATE left to right, so an expression
		// after attempts = attempts + 1 would read the new count (SQLite
		// reads the old one whatever the order).
		_, err := tx.ExecContext(ctx, `UPDATE `+table+` SET parked = CASE WHEN ? AND attempts + 1 >= ? THEN 1 ELSE parked END,
  attempts = attempts + 1, last_error = ?, updated_at = CURRENT_TIMESTAMP WHERE id = ?`,
			park, parkAfter, truncate(message, 1000), rowID)
		if err != nil {
			return fmt.Errorf("record failure of %s %d: %w", table, rowID, err)
		}
		return wrap(tx.QueryRowContext(ctx, `SELECT parked FROM `+table+` WHERE id = ?`, rowID).Scan(&parked), "read parked flag")
	})
	return parked, err
}

// Park parks an item at once with a reason (e.g. the drift policy "forget").
func (s *Store) Park(ctx context.Context, table string, rowID int64, reason string) error {
	if table != TableGroups && table != TableGroupings && table != TableMembers {
		return fmt.Errorf("park: unknown table %q", table)
	}
	_, err := s.db.ExecContext(ctx, `UPDATE `+table+` SET parked = 1, last_error = ?, updated_at = CURRENT_TIMESTAMP WHERE id = ?`, truncate(reason, 1000), rowID)
	return wrap(err, "park %s %d", table, rowID)
}

// ParkedItem is a staged row parked after repeated failures.
type ParkedItem struct {
	Table     string
	RowID     int64
	CourseID  int64
	IDNumber  string // group or grouping idnumber
	Name      string
	CMISID    string // memberships
	Attempts  int
	LastError string
}

// Parked lists parked items.
func (s *Store) Parked(ctx context.Context, f Filter) ([]ParkedItem, error) {
	where, args := f.clause("courseid")
	memberWhere, _ := f.clause("m.courseid")
	// A membership shows its group's idnumber, as stage made it (codes
	// holding ":" or "%" are escaped there); a membership whose group row
	// is gone shows the plain codes.
	q := `SELECT 'cmis_groupings', id, courseid, idnumber, name, '', attempts, last_error FROM cmis_groupings WHERE parked = 1` + where + `
UNION ALL SELECT 'cmis_groups_course', id, courseid, idnumber, name, '', attempts, last_error FROM cmis_groups_course WHERE parked = 1` + where + `
UNION ALL SELECT 'cmis_groupmembers', m.id, m.courseid, COALESCE(g.idnumber, ` + s.d.concat("'cmis:'", "m.modulecode", "':'", "m.groupcode") + `), m.role, m.cmisid, m.attempts, m.last_error
FROM cmis_groupmembers m LEFT JOIN cmis_groups_course g ON g.courseid = m.courseid AND g.modulecode = m.modulecode AND g.groupcode = m.groupcode
WHERE m.parked = 1` + memberWhere + `
ORDER BY 3, 1, 2`
	return all(ctx, s.db, q, append(append(append([]any{}, args...), args...), args...), func(r *sql.Rows) (ParkedItem, error) {
		var p ParkedItem
		err := r.Scan(&p.Table, &p.RowID, &p.CourseID, &p.IDNumber, &p.Name, &p.CMISID, &p.Attempts, &p.LastError)
		return p, err
	})
}

// Unpark makes parked items eligible again and resets their attempts; it
// returns how many were unparked.
func (s *Store) Unpark(ctx context.Context, f Filter) (int64, error) {
	where, args := f.clause("courseid")
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, t := range []string{TableGroupings, TableGroups, TableMembers} {
			res, err := tx.ExecContext(ctx, `UPDATE `+t+` SET parked = 0, attempts = 0, updated_at = CURRENT_TIMESTAMP WHERE parked = 1`+where, args...)
			if err != nil {
				return fmt.Errorf("unpark %s: %w", t, err)
			}
			c, _ := res.RowsAffected()
			n += c
		}
		return nil
	})
	return n, err
}

// RetireCourse forgets a course deleted in Moodle: its staged rows go and
// its mappings are set to RMV, so nothing is attempted for it again.
func (s *Store) RetireCourse(ctx context.Context, courseID int64, audit []AuditEntry) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM cmis_groupmembers WHERE courseid = ?`,
			`DELETE FROM cmis_groups_course WHERE courseid = ?`,
			`DELETE FROM cmis_groupings WHERE courseid = ?`,
			`UPDATE mapped_modules SET group_import = 'RMV', mapping_action = 'RMV', updated_at = CURRENT_TIMESTAMP WHERE moodle_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, courseID); err != nil {
				return fmt.Errorf("retire course %d: %w", courseID, err)
			}
		}
		return s.insertAudit(ctx, tx, audit)
	})
}

// Pending counts staged rows still flagged, per table and flag, for status
// and the run summary.
func (s *Store) Pending(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for _, t := range []string{TableGroupings, TableGroups, TableMembers} {
		var add, del, parked sql.NullInt64
		if err := s.db.QueryRowContext(ctx, `SELECT SUM(toadd), SUM(todelete), SUM(parked) FROM `+t).Scan(&add, &del, &parked); err != nil {
			return nil, fmt.Errorf("count pending in %s: %w", t, err)
		}
		out[t+".toadd"] = add.Int64
		out[t+".todelete"] = del.Int64
		out[t+".parked"] = parked.Int64
	}
	return out, nil
}

func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// RecordIntent notes, before an add is sent, which Moodle user each
// membership is being added as (the rows stay toadd). If the process dies
// after Moodle applied the add but before RecordMembersAdded, the next run
// finds the member in the group and, seeing the intent, knows cmissync put
// it there: ownership survives a crash.
func (s *Store) RecordIntent(ctx context.Context, members []AddedMember) error {
	if len(members) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		q := &stmtCache{tx: tx} // the same statement for every rowsPerJoin rows
		defer q.close()
		if err := s.updateJoin(ctx, q, TableMembers, []string{"v_uid"}, len(members), func(i int) (int64, []any) {
			return members[i].ID, []any{members[i].MoodleUserID}
		}, `moodleuserid = v.v_uid`, ` AND toadd = 1`); err != nil {
			return fmt.Errorf("record intent: %w", err)
		}
		return nil
	})
}

// rowsPerJoin bounds the rows of one updateJoin statement below both
// engines' placeholder limits.
const rowsPerJoin = 500

// updateJoin updates rows of table by id from values given per row, with
// one UPDATE per chunk of rows joined to the list of values as a table v:
// row(i) returns the id and the values named by cols (each named "v_...",
// so that no name is ambiguous with table's), set assigns from them
// (e.g. "moodleuserid = v.v_uid") and where adds conditions on table's
// row (" AND toadd = 1"). Where an id comes more than once, its last
// values count, as they would with one UPDATE per row.
//
// The statement is the dialect's updateJoin.
func (s *Store) updateJoin(ctx context.Context, q querier, table string, cols []string, n int, row func(i int) (int64, []any), set, where string) error {
	last := make(map[int64]int, n)
	for i := 0; i < n; i++ {
		id, _ := row(i)
		last[id] = i
	}
	order := make([]int, 0, len(last))
	for i := 0; i < n; i++ {
		if id, _ := row(i); last[id] == i {
			order = append(order, i)
		}
	}
	if s.d.tempJoin && len(order) > rowsPerJoin {
		done, err := s.updateJoinTemp(ctx, q, table, cols, order, row, set, where)
		if done || err != nil {
			return err
		}
	}
	for start := 0; start < len(order); start += rowsPerJoin {
		part := order[start:min(start+rowsPerJoin, len(order))]
		args := make([]any, 0, len(part)*(len(cols)+1))
		for _, i := range part {
			id, vals := row(i)
			args = append(append(args, id), vals...)
		}
		query := s.d.updateJoin(table, cols, len(part), set, where)
		if _, err := q.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("update %s: %w", table, err)
		}
	}
	return nil
}

// joinTable is the temporary table of updateJoinTemp.
const joinTable = "cmissync_join"

// updateJoinTemp is updateJoin through a temporary table: the rows given
// by order are loaded into it (insertMany: LOAD DATA), and one UPDATE
// joins it (on MariaDB, 1.6 times as fast as a statement per
// rowsPerJoin rows joined to a derived table of as many SELECTs). It
// reports false, having changed nothing, when the server refuses the
// temporary table inside a transaction (MySQL 5.7 with GTID consistency
// enforced): the caller updates the other way.
func (s *Store) updateJoinTemp(ctx context.Context, q querier, table string, cols []string, order []int, row func(i int) (int64, []any), set, where string) (bool, error) {
	_, first := row(order[0])
	defs := []string{"v_id BIGINT PRIMARY KEY"}
	for i, v := range first {
		switch v.(type) {
		case int64, int:
			defs = append(defs, cols[i]+" BIGINT")
		case bool:
			defs = append(defs, cols[i]+" TINYINT")
		case string:
			defs = append(defs, cols[i]+" VARCHAR(1000)")
		default:
			return false, fmt.Errorf("update %s: column %s: cannot join a %T", table, cols[i], v)
		}
	}
	if _, err := q.ExecContext(ctx, `DROP TEMPORARY TABLE IF EXISTS `+joinTable); err != nil {
		return false, nil
	}
	if _, err := q.ExecContext(ctx, `CREATE TEMPORARY TABLE `+joinTable+` (`+strings.Join(defs, ", ")+`) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`); err != nil {
		return false, nil
	}
	err := s.insertMany(ctx, q, joinTable, append([]string{"v_id"}, cols...), len(order), func(i int) []any {
		id, vals := row(order[i])
		return append([]any{id}, vals...)
	})
	if err == nil {
		_, err = q.ExecContext(ctx, `UPDATE `+table+` JOIN `+joinTable+` v ON `+table+`.id = v.v_id SET `+set+` WHERE 1=1`+where)
	}
	if err != nil {
		return true, fmt.Errorf("update %s: %w", table, err)
	}
	if _, err := q.ExecContext(ctx, `DROP TEMPORARY TABLE `+joinTable); err != nil {
		return true, fmt.Errorf("update %s: drop the temporary table: %w", table, err)
	}
	return true, nil
}

// RespectRemovals records memberships someone removed in Moodle by hand
// that cmissync leaves out while CMIS lists them (load.on_member_removed =
// respect).
func (s *Store) RespectRemovals(ctx context.Context, ids []int64, audit []AuditEntry) error {
	return s.byIDsWithAudit(ctx, `UPDATE cmis_groupmembers SET removed_in_moodle = 1, updated_at = CURRENT_TIMESTAMP WHERE id IN `, ids, audit)
}

// AuditMember keys a membership in the audit trail.
type AuditMember struct {
	IDNumber string // the group's idnumber
	UserID   int64  // the Moodle user
}

// AddedByAudit reports, of the given memberships of a course, those whose
// last entry in the audit trail is cmissync adding them: the trail keeps
// ownership when a staged row was lost (a table emptied by hand).
func (s *Store) AddedByAudit(ctx context.Context, courseID int64, members []AuditMember) (map[AuditMember]bool, error) {
	out := map[AuditMember]bool{}
	idns := map[string]bool{}
	for _, m := range members {
		idns[m.IDNumber] = true
	}
	want := map[AuditMember]bool{}
	for _, m := range members {
		want[m] = true
	}
	var list []any
	for idn := range idns {
		list = append(list, idn)
	}
	const chunk = 500
	for start := 0; start < len(list); start += chunk {
		part := list[start:min(start+chunk, len(list))]
		rows, err := all(ctx, s.db, `SELECT a.idnumber, COALESCE(m.userid, a.userid), a.action`+auditFrom+`
WHERE a.courseid = ? AND a.object = 'member' AND a.idnumber IN (`+placeholders(len(part))+`) ORDER BY a.id, m.n`,
			append([]any{courseID}, part...), func(r *sql.Rows) (AuditEntry, error) {
				var e AuditEntry
				err := r.Scan(&e.IDNumber, &e.UserID, &e.Action)
				return e, err
			})
		if err != nil {
			return nil, fmt.Errorf("read the audit trail of course %d: %w", courseID, err)
		}
		for _, e := range rows {
			k := AuditMember{e.IDNumber, e.UserID}
			if want[k] {
				out[k] = e.Action == "add"
			}
		}
	}
	for k, v := range out {
		if !v {
			delete(out, k)
		}
	}
	return out, nil
}
