package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Enrolments cmissync made (load.enrol_missing). Only these are ever
// suspended or unenrolled by load.unenrol_action: an enrolment made any
// other way has no row here and is never touched.

// Enrolment statuses.
const (
	EnrolmentActive    = "active"
	EnrolmentSuspended = "suspended"
)

// Enrolment is an enrolment cmissync made: a Moodle user in a course, in a
// role, for a CMIS person.
type Enrolment struct {
	CourseID int64
	UserID   int64
	CMISID   string
	Role     string // the CMIS list: student or tutor
	RoleID   int64
	Status   string // EnrolmentActive or EnrolmentSuspended
}

// Enrolments returns the enrolments cmissync made in the filter's courses.
func (s *Store) Enrolments(ctx context.Context, f Filter) ([]Enrolment, error) {
	where, args := f.clause("courseid")
	out, err := all(ctx, s.db, `SELECT courseid, userid, cmisid, role, roleid, status FROM cmissync_enrolments WHERE 1=1`+where+
		` ORDER BY courseid, userid, roleid`, args, func(r *sql.Rows) (Enrolment, error) {
		var e Enrolment
		err := r.Scan(&e.CourseID, &e.UserID, &e.CMISID, &e.Role, &e.RoleID, &e.Status)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the enrolments cmissync made: %w", err)
	}
	return out, nil
}

// RecordEnrolments records enrolments made, suspended or reactivated (by
// their Status), each with its audit row, in one transaction.
func (s *Store) RecordEnrolments(ctx context.Context, es []Enrolment, audit []AuditEntry) error {
	if len(es) == 0 && len(audit) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, e := range es {
			// Delete and insert rather than an upsert: portable, and
			// free of MySQL's "0 rows affected" for an unchanged update.
			if _, err := tx.ExecContext(ctx, `DELETE FROM cmissync_enrolments WHERE courseid = ? AND userid = ? AND roleid = ?`,
				e.CourseID, e.UserID, e.RoleID); err != nil {
				return fmt.Errorf("record enrolment of user %d in course %d: %w", e.UserID, e.CourseID, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO cmissync_enrolments (courseid, userid, cmisid, role, roleid, status) VALUES (?, ?, ?, ?, ?, ?)`,
				e.CourseID, e.UserID, e.CMISID, e.Role, e.RoleID, e.Status); err != nil {
				return fmt.Errorf("record enrolment of user %d in course %d: %w", e.UserID, e.CourseID, err)
			}
		}
		return s.insertAudit(ctx, tx, audit)
	})
}

// ForgetEnrolments drops the records of enrolments that no longer exist:
// unenrolled by cmissync, or of a course deleted in Moodle (userID 0: every
// enrolment of the course).
func (s *Store) ForgetEnrolments(ctx context.Context, es []Enrolment, audit []AuditEntry) error {
	if len(es) == 0 && len(audit) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, e := range es {
			var err error
			if e.UserID == 0 {
				_, err = tx.ExecContext(ctx, `DELETE FROM cmissync_enrolments WHERE courseid = ?`, e.CourseID)
			} else {
				_, err = tx.ExecContext(ctx, `DELETE FROM cmissync_enrolments WHERE courseid = ? AND userid = ?`, e.CourseID, e.UserID)
			}
			if err != nil {
				return fmt.Errorf("forget enrolment of user %d in course %d: %w", e.UserID, e.CourseID, err)
			}
		}
		return s.insertAudit(ctx, tx, audit)
	})
}
