package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The operator commands (explain, check, map, forget, audit, status) read
// staging with these queries, so that support staff never need SQL: a
// course's dump and refused rows, its mappings and staged rows with every
// flag, the audit trail by course, person or Moodle id, and the Moodle site
// staging is bound to. The few writes here (the site binding, forgetting a
// course, removing a mapping) are the operator's own requests.

// DumpInfo describes the current dump: the run whose extract it is, when
// that extract ran, and how many of its rows were refused.
type DumpInfo struct {
	RunID    string
	Started  time.Time
	Finished *time.Time // nil when the extract's step was never recorded as finished
	Refused  int64
}

// CurrentDump describes the extract the dump tables hold, or returns nil
// when no extract has been committed yet.
func (s *Store) CurrentDump(ctx context.Context) (*DumpInfo, error) {
	var info DumpInfo
	err := s.db.QueryRowContext(ctx, `SELECT value FROM cmissync_meta WHERE name = ?`, metaDumpRun).Scan(&info.RunID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the current dump's run: %w", err)
	}
	var finished sql.NullTime
	err = s.db.QueryRowContext(ctx, `SELECT started_at, finished_at FROM cmissync_runs WHERE run_id = ? AND step = 'extract' ORDER BY id DESC LIMIT 1`, info.RunID).
		Scan(&info.Started, &finished)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// The runs table was trimmed by hand: the dump is still current.
	case err != nil:
		return nil, fmt.Errorf("read the extract of run %s: %w", info.RunID, err)
	case finished.Valid:
		info.Finished = &finished.Time
	}
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM cmis_error_data_dump WHERE dumptable <> '' AND run_id IN (`+dumpRunsSQL+`)`, dumpRunsArgs()...).Scan(&info.Refused)
	if err != nil {
		return nil, fmt.Errorf("count the current dump's refused rows: %w", err)
	}
	return &info, nil
}

// DumpGroup is a group of the current dump with how many students and
// tutors CMIS lists in it.
type DumpGroup struct {
	Module, Group, ModuleName, GroupName string
	Students, Tutors                     int64
}

// DumpGroups lists the groups of a module in the current dump, by group
// code, matched as the stage step matches a mapping to the dump.
func (s *Store) DumpGroups(ctx context.Context, module string) ([]DumpGroup, error) {
	rows, err := all(ctx, s.db, `SELECT g.modulecode, g.groupcode, g.modulename, g.groupname,
  (SELECT COUNT(*) FROM cmis_groupmembers_dump m WHERE m.modulecode = g.modulecode AND m.groupcode = g.groupcode),
  (SELECT COUNT(*) FROM cmis_tutgroupmembers_dump t WHERE t.modulecode = g.modulecode AND t.groupcode = g.groupcode)
FROM cmis_groups_dump g WHERE g.modulecode = ? ORDER BY g.groupcode`, []any{module}, func(r *sql.Rows) (DumpGroup, error) {
		var g DumpGroup
		err := r.Scan(&g.Module, &g.Group, &g.ModuleName, &g.GroupName, &g.Students, &g.Tutors)
		return g, err
	})
	return rows, wrap(err, "read the dump of module %s", module)
}

// DumpModules lists the module codes of the current dump.
func (s *Store) DumpModules(ctx context.Context) ([]string, error) {
	mods, err := all(ctx, s.db, `SELECT DISTINCT modulecode FROM cmis_groups_dump ORDER BY modulecode`, nil, func(r *sql.Rows) (string, error) {
		var m string
		err := r.Scan(&m)
		return m, err
	})
	return mods, wrap(err, "read the modules of the dump")
}

// DumpMembership is a student or tutor row of the current dump.
type DumpMembership struct {
	Module, Group, Role, CMISID string
}

// DumpMemberships lists the rows of the current dump that put a person (a
// CMIS student or staff id) in a group of the module.
func (s *Store) DumpMemberships(ctx context.Context, module, cmisid string) ([]DumpMembership, error) {
	rows, err := all(ctx, s.db, `SELECT modulecode, groupcode, '`+RoleStudent+`', studentid FROM cmis_groupmembers_dump WHERE modulecode = ? AND studentid = ?
UNION ALL SELECT modulecode, groupcode, '`+RoleTutor+`', staffid FROM cmis_tutgroupmembers_dump WHERE modulecode = ? AND staffid = ?
ORDER BY 2, 3`, []any{module, cmisid, module, cmisid}, func(r *sql.Rows) (DumpMembership, error) {
		var m DumpMembership
		err := r.Scan(&m.Module, &m.Group, &m.Role, &m.CMISID)
		return m, err
	})
	return rows, wrap(err, "read the dump rows of %s in module %s", cmisid, module)
}

// MappingInfo is a mapped_modules row with the number of groups its module
// has in the current dump.
type MappingInfo struct {
	Mapping
	DumpGroups int64
}

// MappingsWithDump lists the mappings of the courses in the filter (all
// when it is empty) with their module's group count in the current dump.
func (s *Store) MappingsWithDump(ctx context.Context, f Filter) ([]MappingInfo, error) {
	where, args := f.clause("m.moodle_id")
	rows, err := all(ctx, s.db, `SELECT m.id, m.moodle_id, m.modulecode, m.group_import, m.mapping_action, COUNT(g.groupcode)
FROM mapped_modules m LEFT JOIN cmis_groups_dump g ON g.modulecode = m.modulecode
WHERE 1=1`+where+`
GROUP BY m.id, m.moodle_id, m.modulecode, m.group_import, m.mapping_action
ORDER BY m.moodle_id, m.modulecode`, args, func(r *sql.Rows) (MappingInfo, error) {
		var m MappingInfo
		err := r.Scan(&m.ID, &m.CourseID, &m.ModuleCode, &m.GroupImport, &m.MappingAction, &m.DumpGroups)
		return m, err
	})
	return rows, wrap(err, "read mapped_modules")
}

// DeleteMapping removes the mapped_modules row of (course, module) and
// reports whether there was one.
func (s *Store) DeleteMapping(ctx context.Context, courseID int64, module string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM mapped_modules WHERE moodle_id = ? AND modulecode = ?`, courseID, module)
	if err != nil {
		return false, fmt.Errorf("delete mapping %d/%s: %w", courseID, module, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// RefusedRow is a row the current dump's extract refused, with its key as
// far as it could be read (see RefusedKey).
type RefusedRow struct {
	BadRow
	RunID   string
	Created time.Time
}

// RefusedRows lists the refused rows of the current dump whose key may
// describe one of the modules (every refused row when modules is empty): a
// row whose module code could not be read protects every module. It returns
// at most limit rows (0: all) and how many there are.
func (s *Store) RefusedRows(ctx context.Context, modules []string, limit int) ([]RefusedRow, int64, error) {
	cond := `e.dumptable <> '' AND e.run_id IN (` + dumpRunsSQL + `)`
	args := dumpRunsArgs()
	if len(modules) > 0 {
		cond += ` AND (e.modulecode = '' OR e.modulecode IN (` + placeholders(len(modules)) + `))`
		for _, m := range modules {
			args = append(args, m)
		}
	}
	var total int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM cmis_error_data_dump e WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count refused rows: %w", err)
	}
	q := `SELECT e.run_id, e.source, e.line, e.rowdata, e.reason, e.dumptable, e.modulecode, e.groupcode, e.cmisid, e.created_at
FROM cmis_error_data_dump e WHERE ` + cond + ` ORDER BY e.id`
	if limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(limit)
	}
	rows, err := all(ctx, s.db, q, args, func(r *sql.Rows) (RefusedRow, error) {
		var x RefusedRow
		var t string
		err := r.Scan(&x.RunID, &x.Source, &x.Line, &x.Row, &x.Reason, &t, &x.Module, &x.Group, &x.CMISID, &x.Created)
		x.Table = DumpTable(t)
		return x, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read refused rows: %w", err)
	}
	return rows, total, nil
}

// Key returns the refused row's key, to ask what it protects.
func (r RefusedRow) Key() RefusedKey {
	return RefusedKey{Table: r.Table, Module: r.Module, Group: r.Group, CMISID: r.CMISID, Source: r.Source, Line: r.Line, Reason: r.Reason}
}

// StagedState is what a staged row records beyond its flags: how often
// Moodle refused it, the last refusal, and when it last changed. (How long a
// membership has waited for an enrolment and how many extracts a row has
// been absent from are in the rows themselves.)
type StagedState struct {
	Attempts  int
	LastError string
	Updated   time.Time
}

// StagedGrouping is a staged grouping with its state.
type StagedGrouping struct {
	GroupingRow
	StagedState
}

// StagedGroup is a staged group with its state.
type StagedGroup struct {
	GroupRow
	StagedState
}

// StagedMember is a staged membership with its state.
type StagedMember struct {
	MemberRow
	StagedState
}

// CourseStaged is everything staging records for one course.
type CourseStaged struct {
	Groupings []StagedGrouping
	Groups    []StagedGroup
	Members   []StagedMember
}

const stateCols = `attempts, last_error, updated_at`

// StagedCourse reads every staged grouping, group and membership of a
// course, with their flags and state.
func (s *Store) StagedCourse(ctx context.Context, courseID int64) (*CourseStaged, error) {
	var out CourseStaged
	var err error
	out.Groupings, err = all(ctx, s.db, `SELECT `+groupingCols+`, `+stateCols+` FROM cmis_groupings WHERE courseid = ? ORDER BY modulecode`, []any{courseID},
		func(r *sql.Rows) (StagedGrouping, error) {
			var g StagedGrouping
			err := r.Scan(&g.ID, &g.CourseID, &g.ModuleCode, &g.IDNumber, &g.Name, &g.MoodleName, &g.MoodleID, &g.ToAdd, &g.ToDelete, &g.ToRename, &g.Parked, &g.DeleteReason, &g.Adopted,
				&g.AbsentRuns, &g.AbsentDump, &g.Attempts, &g.LastError, &g.Updated)
			return g, err
		})
	if err != nil {
		return nil, fmt.Errorf("read the staged groupings of course %d: %w", courseID, err)
	}
	out.Groups, err = all(ctx, s.db, `SELECT `+groupCols+`, `+stateCols+` FROM cmis_groups_course WHERE courseid = ? ORDER BY modulecode, groupcode`, []any{courseID},
		func(r *sql.Rows) (StagedGroup, error) {
			var g StagedGroup
			err := r.Scan(&g.ID, &g.CourseID, &g.ModuleCode, &g.GroupCode, &g.IDNumber, &g.Name, &g.MoodleName, &g.MoodleID, &g.Assigned, &g.ToAdd, &g.ToDelete, &g.ToRename, &g.Parked, &g.DeleteReason, &g.Adopted,
				&g.AbsentRuns, &g.AbsentDump, &g.Attempts, &g.LastError, &g.Updated)
			return g, err
		})
	if err != nil {
		return nil, fmt.Errorf("read the staged groups of course %d: %w", courseID, err)
	}
	out.Members, err = all(ctx, s.db, `SELECT `+memberCols+`, `+stateCols+` FROM cmis_groupmembers WHERE courseid = ? ORDER BY modulecode, groupcode, role, cmisid`, []any{courseID},
		func(r *sql.Rows) (StagedMember, error) {
			var m StagedMember
			var since sql.NullTime
			err := r.Scan(&m.ID, &m.CourseID, &m.ModuleCode, &m.GroupCode, &m.Role, &m.CMISID, &m.MoodleUserID, &m.ToAdd, &m.ToDelete, &m.Owned, &m.Parked, &m.DeleteReason, &m.RemovedInMoodle,
				&since, &m.WaitingRuns, &m.AbsentRuns, &m.AbsentDump, &m.Attempts, &m.LastError, &m.Updated)
			if since.Valid {
				m.WaitingSince = since.Time
			}
			return m, err
		})
	if err != nil {
		return nil, fmt.Errorf("read the staged members of course %d: %w", courseID, err)
	}
	return &out, nil
}

// AuditRecord is an audit entry with when it was made.
type AuditRecord struct {
	AuditEntry
	Created time.Time
}

// AuditQuery selects audit entries; empty fields select everything.
type AuditQuery struct {
	Courses []int64
	RunID   string
	// User is a person: a CMIS student or staff id, or a Moodle user id
	// (digits match either).
	User string
	// MoodleID is the Moodle id of a group or grouping, as reports and
	// Moodle's own pages show it.
	MoodleID int64
	// IDNumber is a group's or grouping's idnumber.
	IDNumber string
	// Limit keeps the newest entries only (0: all).
	Limit int
}

// FindAudit returns the audit entries the query selects, oldest first.
func (s *Store) FindAudit(ctx context.Context, q AuditQuery) ([]AuditRecord, error) {
	where, args := Filter{Courses: q.Courses}.clause("a.courseid")
	if q.RunID != "" {
		where += ` AND a.run_id = ?`
		args = append(args, q.RunID)
	}
	if q.User != "" {
		if uid, err := strconv.ParseInt(q.User, 10, 64); err == nil && uid > 0 {
			where += ` AND (COALESCE(m.cmisid, a.cmisid) = ? OR (COALESCE(m.userid, a.userid) = ? AND a.object = 'member'))`
			args = append(args, q.User, uid)
		} else {
			where += ` AND COALESCE(m.cmisid, a.cmisid) = ?`
			args = append(args, q.User)
		}
	}
	if q.MoodleID != 0 {
		where += ` AND a.moodle_id = ?`
		args = append(args, q.MoodleID)
	}
	if q.IDNumber != "" {
		where += ` AND a.idnumber = ?`
		args = append(args, q.IDNumber)
	}
	sel := `SELECT a.id AS id, COALESCE(m.n, 0) AS n, ` + auditEntryCols + `, a.created_at` + auditFrom + ` WHERE 1=1` + where
	sqlText := sel + ` ORDER BY a.id, m.n`
	if q.Limit > 0 {
		sqlText = `SELECT * FROM (` + sel + ` ORDER BY a.id DESC, m.n DESC LIMIT ` + strconv.Itoa(q.Limit) + `) newest ORDER BY id, n`
	}
	rows, err := all(ctx, s.db, sqlText, args, func(r *sql.Rows) (AuditRecord, error) {
		var e AuditRecord
		var id, n int64
		err := r.Scan(&id, &n, &e.RunID, &e.CourseID, &e.Object, &e.IDNumber, &e.Name, &e.Action, &e.MoodleID, &e.UserID, &e.CMISID, &e.Detail, &e.Created)
		return e, err
	})
	return rows, wrap(err, "read the audit trail")
}

// CourseRestErrors returns the newest REST errors recorded for the courses
// (at most limit, 0: all), oldest first.
func (s *Store) CourseRestErrors(ctx context.Context, courses []int64, limit int) ([]RestError, error) {
	where, args := Filter{Courses: courses}.clause("courseid")
	q := `SELECT id, run_id, step, courseid, object, wsfunction, params, exception, errorcode, message, created_at FROM rest_error_logs WHERE 1=1` + where + ` ORDER BY id DESC`
	if limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(limit)
	}
	rows, err := all(ctx, s.db, `SELECT * FROM (`+q+`) newest ORDER BY id`, args, func(r *sql.Rows) (RestError, error) {
		var e RestError
		var id int64
		err := r.Scan(&id, &e.RunID, &e.Step, &e.CourseID, &e.Object, &e.Function, &e.Params, &e.Exception, &e.ErrorCode, &e.Message, &e.Created)
		return e, err
	})
	return rows, wrap(err, "read the REST errors of courses %v", courses)
}

// ForgetCounts says how many staged rows ForgetCourse removed.
type ForgetCounts struct {
	Groupings, Groups, Members int64
}

// ForgetCourse removes every staged grouping, group and membership of a
// course, in one transaction with an audit entry, and touches nothing
// else: not Moodle, not the mappings, not the audit trail (from which the
// next load rebuilds the ownership of memberships it finds in Moodle), and
// not the enrolments cmissync made. The next stage flags the course's
// groupings, groups and members to add again, and the next load finds
// those already in Moodle by idnumber and records them rather than
// creating them twice.
func (s *Store) ForgetCourse(ctx context.Context, courseID int64, audit AuditEntry) (ForgetCounts, error) {
	var c ForgetCounts
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, t := range []struct {
			table string
			n     *int64
		}{{TableMembers, &c.Members}, {TableGroups, &c.Groups}, {TableGroupings, &c.Groupings}} {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+t.table+` WHERE courseid = ?`, courseID)
			if err != nil {
				return fmt.Errorf("forget course %d in %s: %w", courseID, t.table, err)
			}
			if *t.n, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		audit.CourseID = courseID
		return s.insertAudit(ctx, tx, []AuditEntry{audit})
	})
	return c, err
}

// SiteBinding is the Moodle site a staging database writes to: recorded by
// the first load, checked by every later run.
type SiteBinding struct {
	URL     string // the site's wwwroot, as core_webservice_get_site_info reports it
	Name    string
	BoundAt time.Time
	RunID   string // the run that recorded it
}

// The cmissync_meta entries of the site binding.
const (
	metaSiteURL   = "moodle_site_url"
	metaSiteName  = "moodle_site_name"
	metaSiteBound = "moodle_site_bound_at"
	metaSiteRun   = "moodle_site_bound_run"
)

// metaValueMax is the width of cmissync_meta.value.
const metaValueMax = 255

// SiteURLKey is the form of a site URL that bindings are compared in: no
// trailing slash, scheme and host without case, cut to what staging keeps.
func SiteURLKey(u string) string {
	u = strings.TrimRight(strings.TrimSpace(u), "/")
	if scheme, rest, ok := strings.Cut(u, "://"); ok {
		host, path, _ := strings.Cut(rest, "/")
		u = strings.ToLower(scheme) + "://" + strings.ToLower(host)
		if path != "" {
			u += "/" + path
		}
	}
	return truncate(u, metaValueMax)
}

// SiteBinding returns the site staging is bound to, or nil when no load
// has recorded one yet.
func (s *Store) SiteBinding(ctx context.Context) (*SiteBinding, error) {
	rows, err := all(ctx, s.db, `SELECT name, value FROM cmissync_meta WHERE name IN (?, ?, ?, ?)`,
		[]any{metaSiteURL, metaSiteName, metaSiteBound, metaSiteRun}, func(r *sql.Rows) ([2]string, error) {
			var kv [2]string
			err := r.Scan(&kv[0], &kv[1])
			return kv, err
		})
	if err != nil {
		return nil, fmt.Errorf("read the site binding: %w", err)
	}
	var b SiteBinding
	for _, kv := range rows {
		switch kv[0] {
		case metaSiteURL:
			b.URL = kv[1]
		case metaSiteName:
			b.Name = kv[1]
		case metaSiteBound:
			b.BoundAt, _ = time.Parse(time.RFC3339, kv[1])
		case metaSiteRun:
			b.RunID = kv[1]
		}
	}
	if b.URL == "" {
		return nil, nil
	}
	return &b, nil
}

// BindSite records the site staging writes to, replacing any earlier
// binding, in one transaction.
func (s *Store) BindSite(ctx context.Context, b SiteBinding) error {
	if b.BoundAt.IsZero() {
		b.BoundAt = time.Now()
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for name, value := range map[string]string{
			metaSiteURL:   SiteURLKey(b.URL),
			metaSiteName:  truncate(b.Name, metaValueMax),
			metaSiteBound: b.BoundAt.UTC().Format(time.RFC3339),
			metaSiteRun:   truncate(b.RunID, metaValueMax),
		} {
			if err := setMeta(ctx, tx, name, value); err != nil {
				return err
			}
		}
		return nil
	})
}
