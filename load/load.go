// Package load is the third pipeline step. It sends the changes the stage
// step flagged to Moodle through its web services: first it repairs drift
// in each course it is about to change (objects deleted or renamed in Moodle
// by hand, a course deleted, a group an interrupted run created), then it
// writes in a fixed order (groupings, groups, renames, grouping assignments,
// member additions, member removals, group deletions, grouping deletions).
// Each success is recorded in staging with an audit row as it happens;
// refused batches are split until each bad item is alone, so every good item
// lands and every bad one is reported with Moodle's answer.
package load

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
)

// Policies for what people do in Moodle.
const (
	// OnNameClash: a hand-made group or grouping has the name cmissync wants.
	ClashRename = "rename" // create cmissync's as "NAME (CMIS)" (default)
	ClashAdopt  = "adopt"  // take the hand-made one over: set cmissync's idnumber on it

	// OnDeleted: an owned group or grouping was deleted in Moodle.
	DeletedRecreate = "recreate" // create it again with its members (default)
	DeletedForget   = "forget"   // park it: leave it deleted until `cmissync retry`

	// OnRenamed: an owned group or grouping was renamed in Moodle.
	RenamedKeep    = "keep"    // keep Moodle's name (default)
	RenamedRestore = "restore" // set cmissync's name again
)

// Options control a load run.
type Options struct {
	RunID  string
	Filter store.Filter
	// UserField is the Moodle user field CMIS ids are matched against:
	// idnumber (default), username or email.
	UserField string
	// NoDeletes skips member removals and group/grouping deletions, as when
	// an earlier step of the run failed.
	NoDeletes bool
	// Concurrency is how many requests are in flight at once (default 4).
	Concurrency int
	// ParkAfter parks an item after this many permanent failures (0: never).
	ParkAfter int
	// Policies (see the constants); empty means the default.
	OnNameClash, OnDeleted, OnRenamed string
	// RemoveUnseenMembers extends removal to every member of an owned group
	// that CMIS does not list, including members added by hand (the old
	// tool's removeMoodleGroupMembersNotSeenInCMIS).
	RemoveUnseenMembers bool
	// Guard holds the run when it would delete too much; ApproveDeletes lets
	// such a run go ahead.
	Guard          Guard
	ApproveDeletes bool
}

func (o *Options) defaults() error {
	if o.UserField == "" {
		o.UserField = "idnumber"
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.OnNameClash == "" {
		o.OnNameClash = ClashRename
	}
	if o.OnDeleted == "" {
		o.OnDeleted = DeletedRecreate
	}
	if o.OnRenamed == "" {
		o.OnRenamed = RenamedKeep
	}
	for _, p := range [][3]string{{"on_name_clash", o.OnNameClash, ClashRename + " " + ClashAdopt},
		{"on_deleted", o.OnDeleted, DeletedRecreate + " " + DeletedForget},
		{"on_renamed", o.OnRenamed, RenamedKeep + " " + RenamedRestore}} {
		ok := false
		for _, v := range strings.Fields(p[2]) {
			ok = ok || p[1] == v
		}
		if !ok {
			return fmt.Errorf("load.%s = %q: want one of %s", p[0], p[1], p[2])
		}
	}
	return nil
}

// Failure is one item Moodle refused (or that could not be sent).
type Failure struct {
	CourseID   int64
	CourseName string // filled when Moodle can tell (core_course_get_courses_by_field)
	Object     string // group or grouping idnumber
	ObjectName string // group or grouping name
	User       string // CMIS id and Moodle user id, for memberships
	Function   string
	Params     string // as sent, without the token
	ErrorCode  string
	Exception  string
	Message    string
	Parked     bool // this failure parked the item
}

// Notice is something worth reporting that is not a failure (a name clash
// resolved, a group adopted or recreated, a course retired).
type Notice struct {
	CourseID int64
	Object   string
	Message  string
}

// Result counts what a load did.
type Result struct {
	GroupingsCreated, GroupsCreated, Adopted, Renamed, Assigned int64
	MembersAdded, MembersFound, MembersRemoved                  int64
	GroupsDeleted, GroupingsDeleted                             int64
	Recreated, CoursesRetired                                   int64
	NotEnrolled, Parked                                         int64
	DeletesSkipped                                              bool
	Failures                                                    []Failure
	Notices                                                     []Notice
}

// Map flattens the counts for the runs table and reports.
func (r *Result) Map() map[string]int64 {
	return map[string]int64{
		"groupings_created": r.GroupingsCreated, "groups_created": r.GroupsCreated, "adopted": r.Adopted,
		"renamed": r.Renamed, "assigned": r.Assigned, "members_added": r.MembersAdded, "members_found": r.MembersFound,
		"members_removed": r.MembersRemoved, "groups_deleted": r.GroupsDeleted, "groupings_deleted": r.GroupingsDeleted,
		"recreated": r.Recreated, "courses_retired": r.CoursesRetired,
		"not_enrolled_memberships": r.NotEnrolled, "parked": r.Parked, "failures": int64(len(r.Failures)),
	}
}

// Writes is the number of changes made in Moodle.
func (r *Result) Writes() int64 {
	return r.GroupingsCreated + r.GroupsCreated + r.Adopted + r.Renamed + r.Assigned + r.MembersAdded +
		r.MembersRemoved + r.GroupsDeleted + r.GroupingsDeleted
}

// loader carries one run's state.
type loader struct {
	st   *store.Store
	mc   *moodle.Client
	opts Options
	log  logrus.FieldLogger

	mu  sync.Mutex // guards res and the maps below
	res *Result
	// transient is set when an item failed for a reason that may have hidden
	// Moodle's real state (network, 5xx, an unverified write); deletions
	// wait for a clean run.
	transient bool
	// skip holds courses whose state could not be read: nothing is written
	// to them this run.
	skip map[int64]bool
	// createName is the name to create a staged row under when it differs
	// from its wanted name (a hand-made one has it), keyed by table and row.
	createName map[rowKey]string
	// adopt lists hand-made objects to take over, by table; adopting marks
	// their staged rows, which are not created.
	adopt    map[string][]adoption
	adopting map[rowKey]bool
	// existing holds Moodle group ids that existed before this run, whose
	// members are read before adding any.
	existing map[int64]bool
}

type rowKey struct {
	table string
	id    int64
}

// adoption is a hand-made group or grouping cmissync takes over.
type adoption struct {
	rowID, courseID, moodleID int64
	idnumber, name            string
}

// Run loads the staged changes into Moodle. It returns an error only for
// failures that stop the whole step (staging unreachable, bad token, a
// function missing from the service, a held run); item failures are in
// Result.Failures.
func Run(ctx context.Context, st *store.Store, mc *moodle.Client, opts Options, log logrus.FieldLogger) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return &Result{}, err
	}
	l := &loader{st: st, mc: mc, opts: opts, log: log, res: &Result{},
		skip: map[int64]bool{}, createName: map[rowKey]string{}, adopt: map[string][]adoption{}, adopting: map[rowKey]bool{}, existing: map[int64]bool{}}
	if !opts.ApproveDeletes {
		if err := opts.Guard.Check(ctx, st, opts.Filter); err != nil {
			return l.res, err
		}
	}
	courses, err := st.CoursesWithWork(ctx, opts.Filter)
	if err != nil {
		return l.res, err
	}
	if err := forEach(ctx, opts.Concurrency, courses, l.reconcile); err != nil {
		return l.res, fmt.Errorf("read Moodle's state: %w", err)
	}
	phases := []struct {
		name   string
		delete bool
		fn     func(context.Context) error
	}{
		{"create groupings", false, l.createGroupings},
		{"create groups", false, l.createGroups},
		{"adopt and rename", false, l.adoptAndRename},
		{"assign groups to groupings", false, l.assign},
		{"add members", false, l.addMembers},
		{"remove members", true, l.removeMembers},
		{"remove members not in CMIS", true, l.removeUnseen},
		{"delete groups", true, l.deleteGroups},
		{"delete groupings", true, l.deleteGroupings},
	}
	for _, p := range phases {
		if p.delete && (opts.NoDeletes || l.transient) {
			if !l.res.DeletesSkipped {
				log.Warn("deletions skipped this run: an earlier step or phase failed; they run on the next clean run")
			}
			l.res.DeletesSkipped = true
			continue
		}
		if err := p.fn(ctx); err != nil {
			return l.res, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if err := l.reportParked(ctx); err != nil {
		return l.res, err
	}
	l.nameCourses(ctx)
	log.WithFields(logrus.Fields(toFields(l.res.Map()))).Info("load finished")
	return l.res, nil
}

func toFields(m map[string]int64) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// item names the staged row a failure belongs to, for parking.
type item struct {
	table string
	rowID int64
}

// fail records a failed item. Permanent refusals count towards parking the
// item; transient ones make the run skip deletions.
func (l *loader) fail(ctx context.Context, it item, f Failure, err error) error {
	var me *moodle.Error
	var te *moodle.TransportError
	permanent := false
	switch {
	case errors.As(err, &me):
		f.ErrorCode, f.Exception, f.Message = me.ErrorCode, me.Exception, me.Message
		permanent = me.Exception != "cmissync"
	case errors.As(err, &te):
		f.ErrorCode, f.Exception, f.Message = "transient", "transport", te.Error()
	default:
		f.ErrorCode, f.Message = "error", err.Error()
	}
	if f.Function == "" {
		f.Function = functionOf(err)
	}
	if permanent && it.table != "" && l.opts.ParkAfter > 0 {
		parked, perr := l.st.RecordFailure(ctx, it.table, it.rowID, f.ErrorCode+": "+f.Message, l.opts.ParkAfter)
		if perr != nil {
			return perr
		}
		f.Parked = parked
	}
	l.mu.Lock()
	if !permanent {
		l.transient = true
	}
	l.res.Failures = append(l.res.Failures, f)
	l.mu.Unlock()
	l.log.WithFields(logrus.Fields{"course": f.CourseID, "object": f.Object, "user": f.User, "function": f.Function, "errorcode": f.ErrorCode}).
		Warn("item failed: " + f.Message)
	return nil
}

func (l *loader) notice(n Notice) {
	l.mu.Lock()
	l.res.Notices = append(l.res.Notices, n)
	l.mu.Unlock()
	l.log.WithFields(logrus.Fields{"course": n.CourseID, "object": n.Object}).Warn(n.Message)
}

func (l *loader) count(p *int64, n int64) {
	l.mu.Lock()
	*p += n
	l.mu.Unlock()
}

func (l *loader) audit(course int64, object, idnumber, name, action string, moodleID int64) store.AuditEntry {
	return store.AuditEntry{RunID: l.opts.RunID, CourseID: course, Object: object, IDNumber: idnumber, Name: name, Action: action, MoodleID: moodleID}
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

// reportParked lists parked items as failures, every run until an operator
// unparks them with `cmissync retry`.
func (l *loader) reportParked(ctx context.Context) error {
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
		l.res.Failures = append(l.res.Failures, Failure{CourseID: p.CourseID, Object: p.IDNumber, ObjectName: p.Name, User: user,
			Function: "(parked)", ErrorCode: "parked", Exception: "cmissync",
			Message: fmt.Sprintf("parked after %d failed attempts; last: %s. Fix the cause, then run: cmissync retry --course %d", p.Attempts, p.LastError, p.CourseID)})
	}
	return nil
}

// nameCourses fills the course names of failures, so reports say which
// course a teacher knows. It is optional: a service without
// core_course_get_courses_by_field just gets ids.
func (l *loader) nameCourses(ctx context.Context) {
	seen := map[int64]bool{}
	var ids []int64
	for _, f := range l.res.Failures {
		if f.CourseID > 0 && !seen[f.CourseID] {
			seen[f.CourseID] = true
			ids = append(ids, f.CourseID)
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
		l.res.Failures[i].CourseName = names[l.res.Failures[i].CourseID]
	}
}

// description is put on every group and grouping cmissync creates, so that
// teachers can tell them from their own.
const description = "Created and kept in step with CMIS by cmissync. Changes made here to its members may be undone."
