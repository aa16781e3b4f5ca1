package load

import (
	"context"
	"errors"
	"fmt"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/report"
	"github.com/cmissync/cmissync/stage/store"
)

// Notice is something worth reporting that is not a failure: a name clash
// resolved, a group adopted, recreated or given back, a course retired.
type Notice struct {
	CourseID int64
	Object   string
	Message  string
}

// Result is what a load did. Counts count writes that happened (and, for
// MembersFound and Found, what was recorded without a write).
type Result struct {
	// Plan is the plan the load built and carried out; held-back items
	// and each item's outcome are in it.
	Plan *Plan

	GroupingsCreated, GroupsCreated, Recreated, Adopted, Renamed, Assigned int64
	MembersAdded, MembersFound, MembersRemoved                             int64
	GroupsDeleted, GroupingsDeleted, GivenBack, Archived                   int64
	Found, CoursesRetired, NotEnrolled, Parked, Held                       int64
	Enrolled, Suspended, Unenrolled                                        int64
	// Failures use the reports' shape, from load to the email and to
	// rest_error_logs.
	Failures []report.Failure
	Notices  []Notice
	// Waiting lists the memberships waiting for their person's enrolment;
	// they are failures only once they waited longer than allowed.
	Waiting []WaitingMember
}

// Map flattens the counts for the runs table and reports.
func (r *Result) Map() map[string]int64 {
	return map[string]int64{
		"groupings_created": r.GroupingsCreated, "groups_created": r.GroupsCreated, "recreated": r.Recreated,
		"adopted": r.Adopted, "renamed": r.Renamed, "assigned": r.Assigned,
		"members_added": r.MembersAdded, "members_found": r.MembersFound, "members_removed": r.MembersRemoved,
		"groups_deleted": r.GroupsDeleted, "groupings_deleted": r.GroupingsDeleted, "given_back": r.GivenBack, "archived": r.Archived,
		"found": r.Found, "courses_retired": r.CoursesRetired, "not_enrolled_memberships": r.NotEnrolled,
		"parked": r.Parked, "held": r.Held, "failures": int64(len(r.Failures)),
		"enrolled": r.Enrolled, "suspended": r.Suspended, "unenrolled": r.Unenrolled,
	}
}

// Writes is the number of changes made in Moodle.
func (r *Result) Writes() int64 {
	return r.GroupingsCreated + r.GroupsCreated + r.Adopted + r.Renamed + r.Assigned + r.MembersAdded +
		r.MembersRemoved + r.GroupsDeleted + r.GroupingsDeleted + r.GivenBack + r.Archived +
		r.Enrolled + r.Suspended + r.Unenrolled
}

// failure is the report row of an item.
func failure(it *Item, function, params string) report.Failure {
	f := report.Failure{CourseID: int(it.CourseID), GroupName: it.Name, GroupIDNumber: it.IDNumber, Function: function, Params: params}
	if it.Object == "member" {
		switch {
		case it.CMISID != "" && it.UserID != 0:
			f.User = fmt.Sprintf("%s %s (Moodle user %d)", it.Role, it.CMISID, it.UserID)
		case it.CMISID != "":
			f.User = it.Role + " " + it.CMISID
		default:
			f.User = fmt.Sprintf("Moodle user %d", it.UserID)
		}
	}
	return f
}

// fail records a failed item: Moodle's answer in the failure, the item's
// outcome, the course's failure for the gate (no deletions there this
// run; anywhere, when the call got no answer), and parking of a staged row
// that Moodle refuses run after run.
func (l *loader) fail(ctx context.Context, it *Item, f report.Failure, err error) error {
	var me *moodle.Error
	var te *moodle.TransportError
	permanent := true
	switch {
	case errors.As(err, &me):
		f.ErrorCode, f.Exception, f.Message = me.ErrorCode, me.Exception, me.Message
	case errors.As(err, &te):
		f.ErrorCode, f.Exception, f.Message = report.CodeTransient, "transport", te.Error()
		permanent = false
	case err != nil:
		f.ErrorCode, f.Message = "error", err.Error()
	}
	if f.Function == "" {
		f.Function = functionOf(err)
	}
	if it != nil {
		it.Outcome = "failed"
		if permanent {
			l.gate.failedIn(it.CourseID, f.ErrorCode)
		} else {
			l.gate.failedOnTheWay(f.Message)
		}
		if table, row := stagedRow(it); permanent && table != "" && l.opts.ParkAfter > 0 && me != nil && me.Exception != "cmissync" {
			parked, perr := l.st.RecordFailure(ctx, table, row, f.ErrorCode+": "+f.Message, l.opts.ParkAfter)
			if perr != nil {
				return perr
			}
			if parked {
				f.Message += " (now parked: skipped until `cmissync retry`)"
			}
		}
	} else if !permanent {
		l.gate.failedOnTheWay(f.Message)
	}
	l.mu.Lock()
	l.res.Failures = append(l.res.Failures, f)
	l.mu.Unlock()
	l.log.WithFields(map[string]any{"course": f.CourseID, "object": f.GroupIDNumber, "user": f.User, "function": f.Function, "errorcode": f.ErrorCode}).
		Warn("item failed: " + f.Message)
	return nil
}

// stagedRow is the staged row an item stands for, for parking.
func stagedRow(it *Item) (string, int64) {
	switch {
	case it.member != nil:
		return store.TableMembers, it.member.ID
	case it.Object == "member":
		return "", 0
	case it.obj != nil:
		return it.obj.kind.table(), it.obj.row
	}
	return "", 0
}

func functionOf(err error) string {
	var me *moodle.Error
	if errors.As(err, &me) {
		return me.Function
	}
	var te *moodle.TransportError
	if errors.As(err, &te) {
		return te.Function
	}
	return ""
}

func (l *loader) notice(n Notice) {
	l.mu.Lock()
	l.res.Notices = append(l.res.Notices, n)
	l.mu.Unlock()
	l.log.WithFields(map[string]any{"course": n.CourseID, "object": n.Object}).Warn(n.Message)
}

func (l *loader) count(p *int64, n int64) {
	l.mu.Lock()
	*p += n
	l.mu.Unlock()
}

func (l *loader) audit(it *Item, action, detail string) store.AuditEntry {
	e := store.AuditEntry{RunID: l.opts.RunID, CourseID: it.CourseID, Object: it.Object, IDNumber: it.IDNumber, Name: it.Name,
		Action: action, MoodleID: it.MoodleID, UserID: it.UserID, CMISID: it.CMISID, Detail: detail}
	if it.obj != nil && it.obj.live != nil {
		e.MoodleID = it.obj.live.id
	}
	return e
}

// bookkeeping ends a load: parked items and held-back deletions are
// reported, course names are put in failures, and every failure goes to
// rest_error_logs.
func (l *loader) bookkeeping(ctx context.Context) error {
	parked, err := l.st.Parked(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	for _, p := range parked {
		l.res.Parked++
		user := ""
		if p.CMISID != "" {
			user = p.Name + " " + p.CMISID
		}
		l.res.Failures = append(l.res.Failures, report.Failure{CourseID: int(p.CourseID), GroupIDNumber: p.IDNumber, GroupName: p.Name, User: user,
			Function: "(parked)", ErrorCode: "parked", Exception: "cmissync",
			Message: fmt.Sprintf("parked after %d failed attempts; last: %s. Fix the cause, then run: cmissync retry --course %d", p.Attempts, p.LastError, p.CourseID)})
	}
	l.plan.recount()
	l.res.Held = int64(l.plan.Totals.Held)
	l.nameCourses(ctx)
	rows := make([]store.RestError, 0, len(l.res.Failures))
	for _, f := range l.res.Failures {
		rows = append(rows, store.RestError{RunID: l.opts.RunID, Step: "load", CourseID: int64(f.CourseID), Object: f.GroupIDNumber,
			Function: f.Function, Params: report.Scrub(f.Params), Exception: f.Exception, ErrorCode: f.ErrorCode, Message: f.Message})
	}
	return l.st.RecordRestErrors(context.WithoutCancel(ctx), rows)
}

// nameCourses fills the course names of failures, so reports say which
// course a teacher knows. It is optional: a service without
// core_course_get_courses_by_field just gets ids.
func (l *loader) nameCourses(ctx context.Context) {
	seen := map[int64]bool{}
	var ids []int64
	for _, f := range l.res.Failures {
		if c := int64(f.CourseID); c > 0 && !seen[c] {
			seen[c] = true
			ids = append(ids, c)
		}
	}
	if len(ids) == 0 {
		return
	}
	courses, err := l.mc.CoursesByID(ctx, ids)
	if err != nil {
		l.log.WithError(err).Debug("course names for the report not available")
		return
	}
	names := map[int64]string{}
	for _, c := range courses {
		names[c.ID] = c.FullName + " (" + c.ShortName + ")"
	}
	for i := range l.res.Failures {
		l.res.Failures[i].CourseName = names[int64(l.res.Failures[i].CourseID)]
	}
}
