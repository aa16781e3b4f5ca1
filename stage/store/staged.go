package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Values of mapped_modules.group_import and mapping_action.
const (
	ActionAdd    = "ADD"
	ActionRemove = "RMV"
)

// Mapping is one row of mapped_modules: Moodle course CourseID takes groups
// from CMIS module ModuleCode when both actions are ADD.
type Mapping struct {
	ID            int64
	CourseID      int64
	ModuleCode    string
	GroupImport   string
	MappingAction string
}

// UpsertMapping inserts or updates the mapping of (course, module).
func (s *Store) UpsertMapping(ctx context.Context, m Mapping) error {
	if m.GroupImport == "" {
		m.GroupImport = ActionAdd
	}
	if m.MappingAction == "" {
		m.MappingAction = ActionAdd
	}
	for _, v := range []string{m.GroupImport, m.MappingAction} {
		if v != ActionAdd && v != ActionRemove {
			return fmt.Errorf("mapping %d/%s: action %q is not ADD or RMV", m.CourseID, m.ModuleCode, v)
		}
	}
	// One transaction: a reader never sees the mapping half written (the
	// unique key on course and module keeps a second writer from inserting
	// it twice).
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE mapped_modules SET group_import = ?, mapping_action = ?, updated_at = CURRENT_TIMESTAMP WHERE moodle_id = ? AND modulecode = ?`,
			m.GroupImport, m.MappingAction, m.CourseID, m.ModuleCode)
		if err != nil {
			return fmt.Errorf("update mapping: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n > 0 {
			return nil
		}
		// MySQL counts only changed rows: an UPDATE to the same values
		// reports 0, and the NOT EXISTS below keeps the insert from
		// duplicating it.
		_, err = tx.ExecContext(ctx, `INSERT INTO mapped_modules (moodle_id, modulecode, group_import, mapping_action)
SELECT ?, ?, ?, ? FROM (SELECT 1 AS one) x WHERE NOT EXISTS (SELECT 1 FROM mapped_modules WHERE moodle_id = ? AND modulecode = ?)`,
			m.CourseID, m.ModuleCode, m.GroupImport, m.MappingAction, m.CourseID, m.ModuleCode)
		if err != nil {
			return fmt.Errorf("insert mapping: %w", err)
		}
		return nil
	})
}

// Mappings lists mapped_modules, optionally for one course (courseID > 0).
func (s *Store) Mappings(ctx context.Context, courseID int64) ([]Mapping, error) {
	q := `SELECT id, moodle_id, modulecode, group_import, mapping_action FROM mapped_modules`
	var args []any
	if courseID > 0 {
		q += ` WHERE moodle_id = ?`
		args = append(args, courseID)
	}
	return all(ctx, s.db, q+` ORDER BY moodle_id, modulecode`, args, func(r *sql.Rows) (Mapping, error) {
		var m Mapping
		err := r.Scan(&m.ID, &m.CourseID, &m.ModuleCode, &m.GroupImport, &m.MappingAction)
		return m, err
	})
}

// Filter limits staged work to some courses. The zero Filter means all.
type Filter struct {
	Courses []int64
}

// clause returns " AND col IN (?, ...)" and its arguments.
func (f Filter) clause(col string) (string, []any) {
	if len(f.Courses) == 0 {
		return "", nil
	}
	args := make([]any, len(f.Courses))
	for i, c := range f.Courses {
		args[i] = c
	}
	return " AND " + col + " IN (" + placeholders(len(args)) + ")", args
}

// GroupingRow is a grouping, desired (from CMIS) or staged.
type GroupingRow struct {
	ID         int64 // staged row id; 0 for desired rows
	CourseID   int64
	ModuleCode string
	ModuleName string // desired rows only
	IDNumber   string // staged rows only
	Name       string // staged rows: the name cmissync wants
	MoodleName string // the name cmissync last set in Moodle
	MoodleID   int64  // 0 until created in Moodle
	ToAdd      bool
	ToDelete   bool
	ToRename   bool
	Parked     bool
	// DeleteReason says why stage flagged the row todelete (see the
	// Reason constants).
	DeleteReason string
	// Adopted marks a hand-made grouping cmissync took over; it is never
	// deleted, only given back.
	Adopted bool
	// AbsentRuns counts the consecutive complete extracts the row has been
	// absent from; AbsentDump is the extract last counted.
	AbsentRuns int
	AbsentDump string
}

// GroupRow is a group, desired or staged.
type GroupRow struct {
	ID         int64
	CourseID   int64
	ModuleCode string
	GroupCode  string
	ModuleName string // desired rows only
	GroupName  string // desired rows only
	IDNumber   string
	Name       string // the name cmissync wants
	MoodleName string // the name cmissync last set in Moodle
	MoodleID   int64
	Assigned   bool
	ToAdd      bool
	ToDelete   bool
	ToRename   bool
	Parked     bool
	// DeleteReason says why stage flagged the row todelete.
	DeleteReason string
	// Adopted marks a hand-made group cmissync took over; it is never
	// deleted, only given back with its members.
	Adopted bool
	// AbsentRuns counts the consecutive complete extracts the row has been
	// absent from; AbsentDump is the extract last counted.
	AbsentRuns int
	AbsentDump string
}

// Member roles.
const (
	RoleStudent = "student"
	RoleTutor   = "tutor"
)

// MemberRow is a membership, desired or staged.
type MemberRow struct {
	ID           int64
	CourseID     int64
	ModuleCode   string
	GroupCode    string
	Role         string
	CMISID       string
	MoodleUserID int64
	ToAdd        bool
	ToDelete     bool
	// Owned is false for a membership that existed before cmissync came to
	// add it: cmissync never removes those.
	Owned  bool
	Parked bool
	// DeleteReason says why stage flagged the row todelete.
	DeleteReason string
	// RemovedInMoodle: someone removed the member in Moodle by hand and
	// load.on_member_removed = respect keeps it that way.
	RemovedInMoodle bool
	// WaitingSince is when the member was first found not enrolled in the
	// course (zero: not waiting); WaitingRuns counts the loads since.
	WaitingSince time.Time
	WaitingRuns  int
	// AbsentRuns counts the consecutive complete extracts the row has been
	// absent from; AbsentDump is the extract last counted.
	AbsentRuns int
	AbsentDump string
}

// Why stage flagged a staged row todelete. Only ReasonCMIS and the explicit
// ReasonRMV are evidence a deletion may follow; ReasonUnmapped counts
// against the mass-change guard; ReasonBadMapping never deletes.
const (
	ReasonCMIS       = "cmis"       // absent from a complete extract of a mapped module
	ReasonRMV        = "rmv"        // the mapping says RMV
	ReasonUnmapped   = "unmapped"   // the mapping row disappeared
	ReasonBadMapping = "badmapping" // the mapping row holds values cmissync does not understand
)

// activeMapping selects mappings whose actions are both ADD, compared as
// stage validates them: trimmed and without case.
const activeMapping = `UPPER(TRIM(m.mapping_action)) = 'ADD' AND UPPER(TRIM(m.group_import)) = 'ADD'`

// DesiredGroupings streams one row per (course, module) with groups in the
// dump, for active mappings, sorted by (course, module).
func (s *Store) DesiredGroupings(ctx context.Context, f Filter) (*Cursor[GroupingRow], error) {
	where, args := f.clause("m.moodle_id")
	return query(ctx, s.db, `SELECT m.moodle_id, m.modulecode, MAX(g.modulename)
FROM mapped_modules m JOIN cmis_groups_dump g ON g.modulecode = m.modulecode
WHERE `+activeMapping+where+`
GROUP BY m.moodle_id, m.modulecode
ORDER BY m.moodle_id, m.modulecode`, args, func(r *sql.Rows) (GroupingRow, error) {
		var g GroupingRow
		err := r.Scan(&g.CourseID, &g.ModuleCode, &g.ModuleName)
		return g, err
	})
}

// DesiredGroups streams one row per (course, module, group), sorted.
func (s *Store) DesiredGroups(ctx context.Context, f Filter) (*Cursor[GroupRow], error) {
	where, args := f.clause("m.moodle_id")
	// See DesiredMembers for the CROSS JOIN and the order by m.modulecode.
	return query(ctx, s.db, `SELECT m.moodle_id, g.modulecode, g.groupcode, g.modulename, g.groupname
FROM mapped_modules m CROSS JOIN cmis_groups_dump g ON g.modulecode = m.modulecode
WHERE `+activeMapping+where+`
ORDER BY m.moodle_id, m.modulecode, g.groupcode`, args, func(r *sql.Rows) (GroupRow, error) {
		var g GroupRow
		err := r.Scan(&g.CourseID, &g.ModuleCode, &g.GroupCode, &g.ModuleName, &g.GroupName)
		return g, err
	})
}

// DesiredMembers streams the students and tutors of every desired group,
// sorted by (course, module, group, role, CMIS id).
//
// No engine sorts the members: each role's rows come in the order of the
// mappings' (course, module) index, which both engines follow without a
// sort of the rows joined to them (MySQL sorts the mappings alone; SQLite's
// CROSS JOIN, an inner join that keeps its left table outermost, walks
// them by index), and the rows of one mapping are sorted here, one mapping
// at a time, so memory is bounded by the largest module. The students'
// and the tutors' streams are then merged. Each group is looked up once,
// not once per member: its members are the range of the dump's key under
// it.
func (s *Store) DesiredMembers(ctx context.Context, f Filter) (*Cursor[MemberRow], error) {
	open := func(role string) (*Cursor[MemberRow], error) {
		sqlText, args := desiredMembers(role, "", f)
		c, err := query(ctx, s.db, sqlText+`
ORDER BY m.moodle_id, m.modulecode`, args, func(r *sql.Rows) (MemberRow, error) {
			m := MemberRow{Role: role}
			err := r.Scan(&m.CourseID, &m.ModuleCode, &m.GroupCode, &m.CMISID)
			return m, err
		})
		if err != nil {
			return nil, err
		}
		return sortBlocks(c, func(a, b MemberRow) bool { return a.CourseID == b.CourseID && a.ModuleCode == b.ModuleCode }, CompareMembers), nil
	}
	students, err := open(RoleStudent)
	if err != nil {
		return nil, err
	}
	tutors, err := open(RoleTutor)
	if err != nil {
		students.Close()
		return nil, err
	}
	return mergeCursors(students, tutors, CompareMembers), nil
}

// desiredMembers is the query of the desired memberships of one role, with
// extra columns after the four DesiredMembers scans (course, module, group,
// CMIS id).
func desiredMembers(role, extra string, f Filter) (string, []any) {
	table, idcol := "cmis_groupmembers_dump", "studentid"
	if role == RoleTutor {
		table, idcol = "cmis_tutgroupmembers_dump", "staffid"
	}
	where, args := f.clause("m.moodle_id")
	return `SELECT m.moodle_id, d.modulecode, d.groupcode, d.` + idcol + extra + `
FROM mapped_modules m
CROSS JOIN cmis_groups_dump g ON g.modulecode = m.modulecode
CROSS JOIN ` + table + ` d ON d.modulecode = g.modulecode AND d.groupcode = g.groupcode
WHERE ` + activeMapping + where, args
}

// StageAllMembers stages every desired membership as new, flagged toadd,
// in one transaction and with one INSERT ... SELECT per role, when no
// membership of the filter's courses is staged yet (a first stage): the
// rows never leave the database. It returns how many there are (counted,
// not inserted, when dry) and first = false, having changed nothing, when
// memberships are staged already: the caller merges them as usual.
func (s *Store) StageAllMembers(ctx context.Context, f Filter, dry bool) (n int64, first bool, err error) {
	err = s.inTxWith(ctx, s.d.copyRows, func(tx *sql.Tx) error {
		where, args := f.clause("courseid")
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+TableMembers+` WHERE 1 = 1`+where+` LIMIT 1`, args...).Scan(&one); {
		case err == nil:
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		first = true
		if s.d.bulk && !dry {
			// Into a table with no row at all (a new site's first stage),
			// MariaDB loads in bulk, sorting and building each index a
			// page at a time, when unique and foreign key checks are
			// off for the transaction (MDEV-24621; 13% faster here). The
			// rows are unique by construction: one per key of the dump's
			// primary keys under one mapping per (course, module), all
			// compared as bytes.
			empty := len(f.Courses) == 0 // then the check above read the whole table
			if !empty {
				var one int
				err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+TableMembers+` LIMIT 1`).Scan(&one)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
				empty = err != nil
			}
			if empty {
				if _, err := tx.ExecContext(ctx, "SET SESSION unique_checks = 0, foreign_key_checks = 0"); err != nil {
					return err
				}
				defer tx.ExecContext(context.WithoutCancel(ctx), "SET SESSION unique_checks = 1, foreign_key_checks = 1")
			}
		}
		for _, role := range []string{RoleStudent, RoleTutor} {
			if dry {
				sqlText, args := desiredMembers(role, "", f)
				var c int64
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (`+sqlText+`) x`, args...).Scan(&c); err != nil {
					return fmt.Errorf("count desired %s memberships: %w", role, err)
				}
				n += c
				continue
			}
			sqlText, args := desiredMembers(role, ", ?, 1, 0", f)
			r, err := tx.ExecContext(ctx, `INSERT INTO `+TableMembers+` (courseid, modulecode, groupcode, cmisid, role, toadd, moodleuserid) `+sqlText, append([]any{role}, args...)...)
			if err != nil {
				return fmt.Errorf("stage %s memberships: %w", role, err)
			}
			c, err := r.RowsAffected()
			if err != nil {
				return err
			}
			n += c
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return n, first, nil
}

// CompareMembers orders memberships as DesiredMembers and StagedMembers
// stream them: by course, then module, group, role and CMIS id, compared
// as bytes.
func CompareMembers(a, b MemberRow) int {
	if a.CourseID != b.CourseID {
		if a.CourseID < b.CourseID {
			return -1
		}
		return 1
	}
	for _, p := range [...][2]string{{a.ModuleCode, b.ModuleCode}, {a.GroupCode, b.GroupCode}, {a.Role, b.Role}, {a.CMISID, b.CMISID}} {
		if c := strings.Compare(p[0], p[1]); c != 0 {
			return c
		}
	}
	return 0
}

// sortBlocks streams c's rows with each run of rows that sameBlock puts
// together sorted by cmp, holding one run at a time.
func sortBlocks[T any](c *Cursor[T], sameBlock func(a, b T) bool, cmp func(a, b T) int) *Cursor[T] {
	var (
		buf     []T
		pos     int
		next    T
		hasNext bool
	)
	return &Cursor[T]{
		next: func() (T, bool) {
			if pos < len(buf) {
				pos++
				return buf[pos-1], true
			}
			clear(buf)
			buf, pos = buf[:0], 0
			if !hasNext {
				if !c.Next() {
					var zero T
					return zero, false
				}
				next = c.Value()
			}
			buf = append(buf, next)
			hasNext = false
			for c.Next() {
				if v := c.Value(); sameBlock(buf[0], v) {
					buf = append(buf, v)
				} else {
					next, hasNext = v, true
					break
				}
			}
			slices.SortStableFunc(buf, cmp)
			pos = 1
			return buf[0], true
		},
		errFn:   c.Err,
		closeFn: c.Close,
	}
}

// mergeCursors merges two streams sorted by cmp. It ends as soon as
// either stream is cut short by an error: the other's rows must not go on
// alone.
func mergeCursors[T any](a, b *Cursor[T], cmp func(x, y T) int) *Cursor[T] {
	okA, okB := a.Next(), b.Next()
	return &Cursor[T]{
		next: func() (T, bool) {
			if (!okA && a.Err() != nil) || (!okB && b.Err() != nil) {
				var zero T
				return zero, false
			}
			switch {
			case okA && (!okB || cmp(a.Value(), b.Value()) <= 0):
				v := a.Value()
				okA = a.Next()
				return v, true
			case okB:
				v := b.Value()
				okB = b.Next()
				return v, true
			}
			var zero T
			return zero, false
		},
		errFn:   func() error { return errors.Join(a.Err(), b.Err()) },
		closeFn: func() error { return errors.Join(a.Close(), b.Close()) },
	}
}

// groupingColsOf lists cmis_groupings columns, each qualified by prefix
// (e.g. "gg.").
func groupingColsOf(p string) string {
	return p + "id, " + p + "courseid, " + p + "modulecode, " + p + "idnumber, " + p + "name, " + p + "moodlename, COALESCE(" + p + "moodlegroupingid, 0), " +
		p + "toadd, " + p + "todelete, " + p + "torename, " + p + "parked, " + p + "delete_reason, " + p + "adopted, " + p + "absent_runs, " + p + "absent_dump"
}

var groupingCols = groupingColsOf("")

const (
	groupCols  = `id, courseid, modulecode, groupcode, idnumber, name, moodlename, COALESCE(moodlegroupid, 0), assigned, toadd, todelete, torename, parked, delete_reason, adopted, absent_runs, absent_dump`
	memberCols = `id, courseid, modulecode, groupcode, role, cmisid, COALESCE(moodleuserid, 0), toadd, todelete, owned, parked, delete_reason, removed_in_moodle, waiting_since, waiting_runs, absent_runs, absent_dump`
)

func scanGrouping(r *sql.Rows) (GroupingRow, error) {
	var g GroupingRow
	err := r.Scan(&g.ID, &g.CourseID, &g.ModuleCode, &g.IDNumber, &g.Name, &g.MoodleName, &g.MoodleID, &g.ToAdd, &g.ToDelete, &g.ToRename, &g.Parked, &g.DeleteReason, &g.Adopted, &g.AbsentRuns, &g.AbsentDump)
	return g, err
}

func scanGroup(r *sql.Rows) (GroupRow, error) {
	var g GroupRow
	err := r.Scan(&g.ID, &g.CourseID, &g.ModuleCode, &g.GroupCode, &g.IDNumber, &g.Name, &g.MoodleName, &g.MoodleID, &g.Assigned, &g.ToAdd, &g.ToDelete, &g.ToRename, &g.Parked, &g.DeleteReason, &g.Adopted, &g.AbsentRuns, &g.AbsentDump)
	return g, err
}

func scanMember(r *sql.Rows) (MemberRow, error) {
	var m MemberRow
	var since sql.NullTime
	err := r.Scan(&m.ID, &m.CourseID, &m.ModuleCode, &m.GroupCode, &m.Role, &m.CMISID, &m.MoodleUserID, &m.ToAdd, &m.ToDelete, &m.Owned, &m.Parked, &m.DeleteReason, &m.RemovedInMoodle,
		&since, &m.WaitingRuns, &m.AbsentRuns, &m.AbsentDump)
	if since.Valid {
		m.WaitingSince = since.Time
	}
	return m, err
}

// StagedGroupings streams cmis_groupings sorted like DesiredGroupings.
func (s *Store) StagedGroupings(ctx context.Context, f Filter) (*Cursor[GroupingRow], error) {
	where, args := f.clause("courseid")
	return query(ctx, s.db, `SELECT `+groupingCols+` FROM cmis_groupings WHERE 1=1`+where+` ORDER BY courseid, modulecode`, args, scanGrouping)
}

// StagedGroups streams cmis_groups_course sorted like DesiredGroups.
func (s *Store) StagedGroups(ctx context.Context, f Filter) (*Cursor[GroupRow], error) {
	where, args := f.clause("courseid")
	return query(ctx, s.db, `SELECT `+groupCols+` FROM cmis_groups_course WHERE 1=1`+where+` ORDER BY courseid, modulecode, groupcode`, args, scanGroup)
}

// StagedMembers streams cmis_groupmembers sorted like DesiredMembers.
func (s *Store) StagedMembers(ctx context.Context, f Filter) (*Cursor[MemberRow], error) {
	where, args := f.clause("courseid")
	return query(ctx, s.db, `SELECT `+memberCols+` FROM cmis_groupmembers WHERE 1=1`+where+` ORDER BY courseid, modulecode, groupcode, role, cmisid`, args, scanMember)
}

// MemberCourses lists, sorted, the courses in the filter with staged
// memberships: a walk of the memberships' key, whose first column is the
// course, without reading the rows.
func (s *Store) MemberCourses(ctx context.Context, f Filter) ([]int64, error) {
	where, args := f.clause("courseid")
	out, err := all(ctx, s.db, `SELECT DISTINCT courseid FROM cmis_groupmembers WHERE 1=1`+where+` ORDER BY courseid`, args, func(r *sql.Rows) (int64, error) {
		var id int64
		err := r.Scan(&id)
		return id, err
	})
	return out, wrap(err, "list the courses with staged memberships")
}

// Staged table names, as operators see them.
const (
	TableGroupings = "cmis_groupings"
	TableGroups    = "cmis_groups_course"
	TableMembers   = "cmis_groupmembers"
)

// StageChanges is a batch of changes the stage step makes to staged rows.
type StageChanges struct {
	NewGroupings []GroupingRow // inserted with toadd=1
	NewGroups    []GroupRow
	NewMembers   []MemberRow
	// MarkDelete sets todelete=1 with a reason (see the Reason constants),
	// Unmark clears it, Drop deletes rows never created in Moodle; each
	// maps a staged table to rows.
	MarkDelete map[string][]MarkDelete
	Unmark     map[string][]int64
	Drop       map[string][]int64
	// Rename sets a new wanted name (and idnumber) on groups and
	// groupings and flags torename, keyed by staged table.
	Rename map[string][]Rename
}

// MarkDelete flags a staged row todelete for a reason, counting one more
// absence when Dump (the current extract) was not counted yet.
type MarkDelete struct {
	ID     int64
	Reason string
	Dump   string
}

// Rename is a new wanted name and idnumber for a staged row.
type Rename struct {
	ID       int64
	Name     string
	IDNumber string
}

// Len is the number of changes in the batch.
func (c *StageChanges) Len() int {
	n := len(c.NewGroupings) + len(c.NewGroups) + len(c.NewMembers)
	for _, m := range []map[string][]int64{c.Unmark, c.Drop} {
		for _, ids := range m {
			n += len(ids)
		}
	}
	for _, ms := range c.MarkDelete {
		n += len(ms)
	}
	for _, r := range c.Rename {
		n += len(r)
	}
	return n
}

// ApplyStage writes a batch of stage changes in one transaction.
func (s *Store) ApplyStage(ctx context.Context, c *StageChanges) error {
	if c.Len() == 0 {
		return nil
	}
	return s.inTx(ctx, func(txn *sql.Tx) error {
		tx := &stmtCache{tx: txn}
		defer tx.close()
		if err := insertRows(ctx, tx, TableGroupings, []string{"courseid", "modulecode", "idnumber", "name", "toadd"}, len(c.NewGroupings), func(i int) []any {
			g := c.NewGroupings[i]
			return []any{g.CourseID, g.ModuleCode, g.IDNumber, g.Name, 1}
		}); err != nil {
			return err
		}
		if err := insertRows(ctx, tx, TableGroups, []string{"courseid", "modulecode", "groupcode", "idnumber", "name", "toadd"}, len(c.NewGroups), func(i int) []any {
			g := c.NewGroups[i]
			return []any{g.CourseID, g.ModuleCode, g.GroupCode, g.IDNumber, g.Name, 1}
		}); err != nil {
			return err
		}
		if err := s.insertMembers(ctx, tx, c.NewMembers); err != nil {
			return err
		}
		for table, ms := range c.MarkDelete {
			type key struct{ reason, dump string }
			byKey := map[key][]int64{}
			for _, m := range ms {
				byKey[key{m.Reason, m.Dump}] = append(byKey[key{m.Reason, m.Dump}], m.ID)
			}
			for k, ids := range byKey {
				if err := updateIDs(ctx, tx, `UPDATE `+table+` SET todelete = 1, delete_reason = ?,
  absent_runs = CASE WHEN absent_dump = ? THEN absent_runs ELSE absent_runs + 1 END, absent_dump = ?, updated_at = CURRENT_TIMESTAMP WHERE id IN `,
					ids, k.reason, k.dump, k.dump); err != nil {
					return err
				}
			}
		}
		for table, ids := range c.Unmark {
			if err := updateIDs(ctx, tx, `UPDATE `+table+` SET todelete = 0, delete_reason = '', absent_runs = 0, absent_dump = '', updated_at = CURRENT_TIMESTAMP WHERE id IN `, ids); err != nil {
				return err
			}
		}
		for table, ids := range c.Drop {
			if err := updateIDs(ctx, tx, `DELETE FROM `+table+` WHERE id IN `, ids); err != nil {
				return err
			}
		}
		for table, rs := range c.Rename {
			// A new idnumber must reach Moodle even when the name stays:
			// torename sends both. The names are compared as bytes (HEX,
			// on both engines): MySQL's moodlename column compares
			// without case or accents, which took a rename to "Intro to
			// Java" from "Intro to java" for no change. torename is set
			// by a statement of its own, before the idnumber changes:
			// MySQL does not promise the order of a multi-table UPDATE's
			// assignments.
			cols := []string{"v_name", "v_idnumber"}
			row := func(i int) (int64, []any) { return rs[i].ID, []any{rs[i].Name, rs[i].IDNumber} }
			if err := s.updateJoin(ctx, tx, table, cols, len(rs), row,
				`torename = CASE WHEN toadd = 1 OR (HEX(moodlename) = HEX(v.v_name) AND HEX(idnumber) = HEX(v.v_idnumber)) THEN 0 ELSE 1 END`, ""); err != nil {
				return fmt.Errorf("rename in %s: %w", table, err)
			}
			if err := s.updateJoin(ctx, tx, table, cols, len(rs), row,
				`name = v.v_name, idnumber = v.v_idnumber, updated_at = CURRENT_TIMESTAMP`, ""); err != nil {
				return fmt.Errorf("rename in %s: %w", table, err)
			}
		}
		return nil
	})
}

// newMemberCols are the columns ApplyStage sets on a new membership.
//
// moodleuserid is 0 (no user yet, as NULL is) rather than NULL: MySQL
// then stores the row at its full size, and the load's intent and record
// update it in place instead of growing every row (InnoDB splits nearly
// every page of a fresh table for that: a first load's intent took five
// times as long).
var newMemberCols = []string{"courseid", "modulecode", "groupcode", "role", "cmisid", "toadd", "moodleuserid"}

// insertMembers inserts new memberships flagged toadd.
func (s *Store) insertMembers(ctx context.Context, tx querier, ms []MemberRow) error {
	return s.insertMany(ctx, tx, TableMembers, newMemberCols, len(ms), func(i int) []any {
		m := ms[i]
		return []any{m.CourseID, m.ModuleCode, m.GroupCode, m.Role, m.CMISID, 1, 0}
	})
}

// bulkAt is how many rows make insertMany load them with LOAD DATA where
// the engine has it: below, the multi-row INSERTs cost no more.
const bulkAt = 1000

// insertMany is insertRows for many rows. On MySQL they go through LOAD
// DATA LOCAL INFILE, streamed from memory as the extract's rows are (see
// loadRows), and through multi-row INSERTs when the server refuses it.
// LOAD DATA LOCAL skips a duplicate key or cuts a value with a warning
// where an INSERT fails: any warning, or a row not added, fails the batch,
// so both ways keep the same contract. Values are int64, int, bool or
// string.
func (s *Store) insertMany(ctx context.Context, q querier, table string, cols []string, n int, row func(i int) []any) error {
	if n == 0 {
		return nil
	}
	if tx := txOf(q); s.d.bulk && n >= bulkAt && tx != nil {
		err := loadChecked(ctx, tx, table, cols, n, row)
		if !refusedLoadData(err) {
			return err
		}
	}
	return insertRows(ctx, q, table, cols, n, row)
}

// txOf is the transaction a querier runs in (nil: none).
func txOf(q querier) *sql.Tx {
	switch q := q.(type) {
	case *sql.Tx:
		return q
	case *stmtCache:
		return q.tx
	}
	return nil
}

func loadChecked(ctx context.Context, tx *sql.Tx, table string, cols []string, n int, row func(i int) []any) error {
	rows := make([][]string, n)
	cells := make([]string, len(cols)*n)
	for i := range rows {
		r := cells[len(cols)*i : len(cols)*(i+1) : len(cols)*(i+1)]
		for j, v := range row(i) {
			switch v := v.(type) {
			case int64:
				r[j] = strconv.FormatInt(v, 10)
			case int:
				r[j] = strconv.Itoa(v)
			case bool:
				r[j] = map[bool]string{false: "0", true: "1"}[v]
			case string:
				r[j] = v
			default:
				return fmt.Errorf("load data into %s: column %s: cannot load a %T", table, cols[j], v)
			}
		}
		rows[i] = r
	}
	added, err := loadData(ctx, tx, table, cols, rows, false)
	if err != nil {
		return err
	}
	var warnings int64
	if err := tx.QueryRowContext(ctx, "SHOW COUNT(*) WARNINGS").Scan(&warnings); err != nil {
		return fmt.Errorf("load data into %s: count warnings: %w", table, err)
	}
	if added != int64(n) || warnings != 0 {
		return fmt.Errorf("load data into %s: %d of %d rows added with %d warnings; nothing of this batch was kept", table, added, n, warnings)
	}
	return nil
}

// stmtCache is a transaction that prepares a statement text on its second
// run and reuses it from then on: a batch of stage changes, and the load's
// recording of what it created, added or removed, run the same multi-row
// statement many times, which SQLite would otherwise parse, and MySQL
// prepare and close, every time (recording 100,000 members added: 22,000
// rows/s before, 42,000 after on SQLite; 14,000 and 27,000 on MariaDB). A
// text run once is not prepared: on MySQL, which interpolates arguments
// (see the dialect's connect), it then costs one round trip instead of two
// (prepare, execute) and a close, and most of the load's transactions run
// each of their statements once.
type stmtCache struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	seen  map[string]bool // texts run once, not prepared
}

func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, ok := c.stmts[query]
	if !ok && !c.seen[query] {
		if c.seen == nil {
			c.seen = map[string]bool{}
		}
		c.seen[query] = true
		return c.tx.ExecContext(ctx, query, args...)
	}
	if !ok {
		var err error
		if st, err = c.tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		if c.stmts == nil {
			c.stmts = map[string]*sql.Stmt{}
		}
		c.stmts[query] = st
	}
	return st.ExecContext(ctx, args...)
}

func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.tx.QueryContext(ctx, query, args...)
}

func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return c.tx.QueryRowContext(ctx, query, args...)
}

func (c *stmtCache) close() {
	for _, st := range c.stmts {
		st.Close()
	}
}

// OwnsAnything reports whether staging records any grouping or group that
// cmissync made in Moodle, within the filter.
func (s *Store) OwnsAnything(ctx context.Context, f Filter) (bool, error) {
	where, args := f.clause("courseid")
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT id FROM cmis_groups_course WHERE moodlegroupid IS NOT NULL`+where+`
UNION ALL SELECT id FROM cmis_groupings WHERE moodlegroupingid IS NOT NULL`+where+`) x`, append(append([]any{}, args...), args...)...).Scan(&n)
	return n > 0, wrap(err, "count owned objects")
}

// rowsPerInsert bounds multi-row INSERTs below both engines' placeholder
// limits.
const rowsPerInsert = 500

// insertRows writes n rows (row(i) gives the values of row i in cols order)
// with multi-row INSERTs of at most rowsPerInsert rows.
func insertRows(ctx context.Context, q querier, table string, cols []string, n int, row func(i int) []any) error {
	return insertRowsThen(ctx, q, table, cols, n, row, nil)
}

// insertRowsThen is insertRows that hands the result of the statement of
// rows [start, end) to done (when not nil) before the next.
func insertRowsThen(ctx context.Context, q querier, table string, cols []string, n int, row func(i int) []any, done func(start, end int, res sql.Result) error) error {
	for start := 0; start < n; start += rowsPerInsert {
		end := min(start+rowsPerInsert, n)
		args := make([]any, 0, (end-start)*len(cols))
		for i := start; i < end; i++ {
			args = append(args, row(i)...)
		}
		res, err := q.ExecContext(ctx, insertSQL(table, cols, end-start, ""), args...)
		if err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		if done != nil {
			if err := done(start, end, res); err != nil {
				return err
			}
		}
	}
	return nil
}

// updateIDs runs prefix + "(?, ...)" over ids in chunks; lead are the
// values of placeholders in prefix.
func updateIDs(ctx context.Context, q querier, prefix string, ids []int64, lead ...any) error {
	const chunk = 1000
	for start := 0; start < len(ids); start += chunk {
		end := min(start+chunk, len(ids))
		args := make([]any, 0, len(lead)+end-start)
		args = append(args, lead...)
		for _, id := range ids[start:end] {
			args = append(args, id)
		}
		if _, err := q.ExecContext(ctx, prefix+"("+placeholders(end-start)+")", args...); err != nil {
			return fmt.Errorf("%s…: %w", strings.Fields(prefix)[0], err)
		}
	}
	return nil
}

// Cursor streams typed rows from a query, or from other cursors.
type Cursor[T any] struct {
	rows *sql.Rows
	scan func(*sql.Rows) (T, error)
	cur  T
	err  error
	// next, errFn and closeFn stand for rows and scan in a cursor made
	// of others.
	next    func() (T, bool)
	errFn   func() error
	closeFn func() error
}

func query[T any](ctx context.Context, q querier, sqlText string, args []any, scan func(*sql.Rows) (T, error)) (*Cursor[T], error) {
	rows, err := q.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, err
	}
	return &Cursor[T]{rows: rows, scan: scan}, nil
}

// Next advances to the next row.
func (c *Cursor[T]) Next() bool {
	if c.next != nil {
		var ok bool
		c.cur, ok = c.next()
		return ok
	}
	if c.err != nil || !c.rows.Next() {
		return false
	}
	c.cur, c.err = c.scan(c.rows)
	return c.err == nil
}

// Value is the current row.
func (c *Cursor[T]) Value() T { return c.cur }

// Err reports the first error met while reading.
func (c *Cursor[T]) Err() error {
	if c.errFn != nil {
		return c.errFn()
	}
	if c.err != nil {
		return c.err
	}
	return c.rows.Err()
}

// Close releases the cursor.
func (c *Cursor[T]) Close() error {
	if c.closeFn != nil {
		return c.closeFn()
	}
	return c.rows.Close()
}

// all reads every row of a query into a slice.
func all[T any](ctx context.Context, q querier, sqlText string, args []any, scan func(*sql.Rows) (T, error)) ([]T, error) {
	c, err := query(ctx, q, sqlText, args, scan)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []T
	for c.Next() {
		out = append(out, c.Value())
	}
	return out, c.Err()
}

// keyed reads a query of two columns, a key and its value, into a map.
func keyed[K comparable, V any](ctx context.Context, q querier, sqlText string, args []any) (map[K]V, error) {
	c, err := query(ctx, q, sqlText, args, func(r *sql.Rows) (struct {
		k K
		v V
	}, error) {
		var kv struct {
			k K
			v V
		}
		err := r.Scan(&kv.k, &kv.v)
		return kv, err
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := map[K]V{}
	for c.Next() {
		kv := c.Value()
		out[kv.k] = kv.v
	}
	return out, c.Err()
}
