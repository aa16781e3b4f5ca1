// Package load is the third pipeline step. It sends the changes the stage
// step flagged to Moodle through its web services, in a fixed order
// (groupings, groups, grouping assignments, member additions, member
// removals, group deletions, grouping deletions), records each success in
// staging as it happens, and isolates each failing item by bisection so that
// every good item lands and every bad one is reported with Moodle's answer.
package load

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
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
}

// Notice is something worth reporting that is not a failure (a name clash
// resolved, a group adopted).
type Notice struct {
	CourseID int64
	Object   string
	Message  string
}

// Result counts what a load did.
type Result struct {
	GroupingsCreated, GroupsCreated, GroupsAdopted, Assigned      int64
	MembersAdded, MembersRemoved, GroupsDeleted, GroupingsDeleted int64
	NotEnrolled                                                   int64
	DeletesSkipped                                                bool
	Failures                                                      []Failure
	Notices                                                       []Notice
}

// Map flattens the counts for the runs table and reports.
func (r *Result) Map() map[string]int64 {
	return map[string]int64{
		"groupings_created": r.GroupingsCreated, "groups_created": r.GroupsCreated, "groups_adopted": r.GroupsAdopted,
		"assigned": r.Assigned, "members_added": r.MembersAdded, "members_removed": r.MembersRemoved,
		"groups_deleted": r.GroupsDeleted, "groupings_deleted": r.GroupingsDeleted,
		"not_enrolled_memberships": r.NotEnrolled, "failures": int64(len(r.Failures)),
	}
}

// Writes is the number of changes made in Moodle.
func (r *Result) Writes() int64 {
	return r.GroupingsCreated + r.GroupsCreated + r.Assigned + r.MembersAdded + r.MembersRemoved + r.GroupsDeleted + r.GroupingsDeleted
}

// loader carries one run's state.
type loader struct {
	st   *store.Store
	mc   *moodle.Client
	opts Options
	log  logrus.FieldLogger
	res  *Result
	// transient is set when an item failed for a reason that may have hidden
	// Moodle's real state (network, 5xx); deletions wait for a clean run.
	transient bool
}

// Run loads the staged changes into Moodle. It returns an error only for
// failures that stop the whole step (staging unreachable, bad token, a
// function missing from the service); item failures are in Result.Failures.
func Run(ctx context.Context, st *store.Store, mc *moodle.Client, opts Options, log logrus.FieldLogger) (*Result, error) {
	if opts.UserField == "" {
		opts.UserField = "idnumber"
	}
	l := &loader{st: st, mc: mc, opts: opts, log: log, res: &Result{}}
	phases := []struct {
		name   string
		delete bool
		fn     func(context.Context) error
	}{
		{"create groupings", false, l.createGroupings},
		{"create groups", false, l.createGroups},
		{"assign groups to groupings", false, l.assign},
		{"add members", false, l.addMembers},
		{"remove members", true, l.removeMembers},
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
	l.nameCourses(ctx)
	log.WithFields(logrus.Fields(toFields(l.res.Map()))).Info("load finished")
	return l.res, nil
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

func toFields(m map[string]int64) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// batches sends items in batches of at most capacity. A batch Moodle
// refuses is split in halves until the bad items are alone; ok gets every
// accepted batch and failed every refused item. Fatal errors (bad token,
// missing function) and context cancellation stop everything.
func batches[T any](ctx context.Context, items []T, capacity int, send func([]T) error, ok func([]T) error, failed func(T, error) error) error {
	for start := 0; start < len(items); start += capacity {
		end := min(start+capacity, len(items))
		if err := bisect(ctx, items[start:end], send, ok, failed); err != nil {
			return err
		}
	}
	return nil
}

func bisect[T any](ctx context.Context, items []T, send func([]T) error, ok func([]T) error, failed func(T, error) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := send(items)
	switch {
	case err == nil:
		return ok(items)
	case moodle.IsFatal(err), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return err
	case len(items) == 1 || moodle.IsTransient(err):
		// A transient error says nothing about which item is bad: report
		// the whole batch, it is retried next run.
		for _, it := range items {
			if ferr := failed(it, err); ferr != nil {
				return ferr
			}
		}
		return nil
	}
	mid := len(items) / 2
	if err := bisect(ctx, items[:mid], send, ok, failed); err != nil {
		return err
	}
	return bisect(ctx, items[mid:], send, ok, failed)
}

func (l *loader) fail(f Failure, err error) {
	var me *moodle.Error
	var te *moodle.TransportError
	switch {
	case errors.As(err, &me):
		f.ErrorCode, f.Exception, f.Message = me.ErrorCode, me.Exception, me.Message
	case errors.As(err, &te):
		f.ErrorCode, f.Exception, f.Message = "transient", "transport", te.Error()
		l.transient = true
	default:
		f.ErrorCode, f.Message = "error", err.Error()
	}
	if f.Function == "" {
		f.Function = functionOf(err)
	}
	l.res.Failures = append(l.res.Failures, f)
	l.log.WithFields(logrus.Fields{"course": f.CourseID, "object": f.Object, "user": f.User, "function": f.Function, "errorcode": f.ErrorCode}).
		Warn("item failed: " + f.Message)
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

func (l *loader) createGroupings(ctx context.Context) error {
	rows, err := l.st.GroupingsToCreate(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	toMoodle := func(rs []store.GroupingRow) []moodle.Grouping {
		out := make([]moodle.Grouping, len(rs))
		for i, r := range rs {
			out[i] = moodle.Grouping{CourseID: r.CourseID, Name: r.Name, IDNumber: r.IDNumber, Description: description}
		}
		return out
	}
	var created []moodle.Grouping
	return batches(ctx, rows, l.mc.Capacity(moodle.VarsPerNewGrouping),
		func(b []store.GroupingRow) (err error) {
			created, err = l.mc.CreateGroupings(ctx, toMoodle(b))
			return err
		},
		func(b []store.GroupingRow) error {
			for i, r := range b {
				if err := l.st.MarkGroupingCreated(ctx, r.ID, created[i].ID); err != nil {
					return err
				}
				l.res.GroupingsCreated++
			}
			return nil
		},
		func(r store.GroupingRow, err error) error {
			return l.resolveCreate(ctx, err, existing{table: store.TableGroupings, rowID: r.ID, courseID: r.CourseID, idnumber: r.IDNumber, name: r.Name},
				func(name string) (int64, error) {
					g := toMoodle([]store.GroupingRow{r})
					g[0].Name = name
					out, err := l.mc.CreateGroupings(ctx, g)
					if err != nil {
						return 0, err
					}
					return out[0].ID, nil
				},
				func(ctx context.Context) ([]moodle.Group, error) {
					gs, err := l.mc.CourseGroupings(ctx, r.CourseID)
					out := make([]moodle.Group, len(gs))
					for i, g := range gs {
						out[i] = moodle.Group{ID: g.ID, CourseID: g.CourseID, Name: g.Name, IDNumber: g.IDNumber}
					}
					return out, err
				},
				func(id int64) error { return l.st.MarkGroupingCreated(ctx, r.ID, id) },
				&l.res.GroupingsCreated, moodle.GroupingsForm(toMoodle([]store.GroupingRow{r})).String(), moodle.FnCreateGroupings)
		})
}

// description is put on every group and grouping cmissync creates, so that
// teachers can tell them from their own.
const description = "Created and kept in step with CMIS by cmissync. Changes made here to its members may be undone."

func (l *loader) createGroups(ctx context.Context) error {
	rows, err := l.st.GroupsToCreate(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	toMoodle := func(rs []store.GroupRow) []moodle.Group {
		out := make([]moodle.Group, len(rs))
		for i, r := range rs {
			out[i] = moodle.Group{CourseID: r.CourseID, Name: r.Name, IDNumber: r.IDNumber, Description: description}
		}
		return out
	}
	var created []moodle.Group
	return batches(ctx, rows, l.mc.Capacity(moodle.VarsPerNewGroup),
		func(b []store.GroupRow) (err error) {
			created, err = l.mc.CreateGroups(ctx, toMoodle(b))
			return err
		},
		func(b []store.GroupRow) error {
			for i, r := range b {
				if err := l.st.MarkGroupCreated(ctx, r.ID, created[i].ID); err != nil {
					return err
				}
				l.res.GroupsCreated++
			}
			return nil
		},
		func(r store.GroupRow, err error) error {
			return l.resolveCreate(ctx, err, existing{table: store.TableGroups, rowID: r.ID, courseID: r.CourseID, idnumber: r.IDNumber, name: r.Name},
				func(name string) (int64, error) {
					g := toMoodle([]store.GroupRow{r})
					g[0].Name = name
					out, err := l.mc.CreateGroups(ctx, g)
					if err != nil {
						return 0, err
					}
					return out[0].ID, nil
				},
				func(ctx context.Context) ([]moodle.Group, error) { return l.mc.CourseGroups(ctx, r.CourseID) },
				func(id int64) error { return l.st.MarkGroupCreated(ctx, r.ID, id) },
				&l.res.GroupsCreated, moodle.GroupsForm(toMoodle([]store.GroupRow{r})).String(), moodle.FnCreateGroups)
		})
}

// existing names a staged group or grouping whose creation Moodle refused.
type existing struct {
	table    string
	rowID    int64
	courseID int64
	idnumber string
	name     string
}

// resolveCreate handles a single group or grouping Moodle would not create:
//   - idnumbertaken: an earlier run created it but crashed before recording
//     the id, so it is adopted (found by idnumber, never duplicated);
//   - the name is used by a hand-made one: ours is created under a
//     disambiguated name, and that is reported (hand-made ones are never
//     touched).
//
// Anything else is a failure.
func (l *loader) resolveCreate(ctx context.Context, cause error, e existing, create func(name string) (int64, error),
	list func(context.Context) ([]moodle.Group, error), record func(id int64) error, counter *int64, params, function string) error {
	failure := Failure{CourseID: e.courseID, Object: e.idnumber, ObjectName: e.name, Function: function, Params: params}
	code := moodle.ErrorCode(cause)
	if code != moodle.CodeIDNumberTaken && code != moodle.CodeInvalidParameter {
		l.fail(failure, cause)
		return nil
	}
	current, err := list(ctx)
	if err != nil {
		if moodle.IsFatal(err) {
			return err
		}
		l.fail(failure, cause)
		return nil
	}
	names := map[string]bool{}
	for _, g := range current {
		if g.IDNumber == e.idnumber {
			if err := record(g.ID); err != nil {
				return err
			}
			l.res.GroupsAdopted++
			l.res.Notices = append(l.res.Notices, Notice{CourseID: e.courseID, Object: e.idnumber,
				Message: fmt.Sprintf("found %q (id %d) already in Moodle with cmissync's idnumber (an earlier run stopped before recording it): adopted", g.Name, g.ID)})
			return nil
		}
		names[g.Name] = true
	}
	if !names[e.name] {
		l.fail(failure, cause)
		return nil
	}
	// A hand-made group or grouping has our name: create ours beside it.
	name := e.name + " (CMIS)"
	for i := 2; names[name]; i++ {
		name = fmt.Sprintf("%s (CMIS %d)", e.name, i)
	}
	id, err := create(name)
	if err != nil {
		if moodle.IsFatal(err) {
			return err
		}
		l.fail(failure, err)
		return nil
	}
	if err := l.st.RenameStaged(ctx, e.table, e.rowID, name); err != nil {
		return err
	}
	if err := record(id); err != nil {
		return err
	}
	*counter++
	l.res.Notices = append(l.res.Notices, Notice{CourseID: e.courseID, Object: e.idnumber,
		Message: fmt.Sprintf("a hand-made one is already called %q: created cmissync's as %q and left the hand-made one alone", e.name, name)})
	return nil
}

func (l *loader) assign(ctx context.Context) error {
	rows, err := l.st.GroupsToAssign(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	pairs := func(b []store.Assignment) []moodle.Pair {
		out := make([]moodle.Pair, len(b))
		for i, a := range b {
			out[i] = moodle.Pair{A: a.MoodleGroupingID, B: a.MoodleGroupID}
		}
		return out
	}
	return batches(ctx, rows, l.mc.Capacity(moodle.VarsPerPair),
		func(b []store.Assignment) error { return l.mc.AssignGrouping(ctx, pairs(b)) },
		func(b []store.Assignment) error {
			ids := make([]int64, len(b))
			for i, a := range b {
				ids[i] = a.GroupRowID
			}
			l.res.Assigned += int64(len(b))
			return l.st.MarkAssigned(ctx, ids)
		},
		func(a store.Assignment, err error) error {
			l.fail(Failure{CourseID: a.CourseID, Object: a.IDNumber, ObjectName: a.Name, Function: moodle.FnAssignGrouping,
				Params: moodle.AssignForm(pairs([]store.Assignment{a})).String()}, err)
			return nil
		})
}

// member is a membership ready to send.
type member struct {
	work   store.MemberWork
	userID int64
}

func (l *loader) addMembers(ctx context.Context) error {
	work, err := l.st.MembersToAdd(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	if len(work) == 0 {
		return nil
	}
	// Enrolment first: only users enrolled in the course can join its groups
	// (one unenrolled user would fail the whole call), so they are looked up
	// once per course and the rest are reported and retried next run.
	byCourse := map[int64]map[string]int64{}
	var ready []member
	for _, w := range work {
		users, seen := byCourse[w.CourseID]
		if !seen {
			users, err = l.enrolled(ctx, w.CourseID)
			if err != nil {
				if moodle.IsFatal(err) {
					return err
				}
				l.fail(Failure{CourseID: w.CourseID, Function: moodle.FnEnrolledUsers, Params: fmt.Sprintf("courseid=%d", w.CourseID)}, err)
				users = nil
			}
			byCourse[w.CourseID] = users
		}
		if users == nil {
			continue // the course's enrolments could not be read; reported above
		}
		uid, ok := users[w.CMISID]
		if !ok {
			l.res.NotEnrolled++
			l.res.Failures = append(l.res.Failures, Failure{CourseID: w.CourseID, Object: w.GroupIDNumber, ObjectName: w.GroupName,
				User: w.Role + " " + w.CMISID, Function: moodle.FnAddMembers, ErrorCode: "notenrolled", Exception: "cmissync",
				Message: fmt.Sprintf("no user with %s %q is enrolled in the course; not sent, retried every run", l.opts.UserField, w.CMISID)})
			continue
		}
		ready = append(ready, member{work: w, userID: uid})
	}
	pairs := func(b []member) []moodle.Pair {
		out := make([]moodle.Pair, len(b))
		for i, m := range b {
			out[i] = moodle.Pair{A: m.work.MoodleGroupID, B: m.userID}
		}
		return out
	}
	var sent []member
	err = batches(ctx, ready, l.mc.Capacity(moodle.VarsPerPair),
		func(b []member) error { return l.mc.AddMembers(ctx, pairs(b)) },
		func(b []member) error {
			added := make([]store.AddedMember, len(b))
			for i, m := range b {
				added[i] = store.AddedMember{ID: m.work.ID, MoodleUserID: m.userID}
			}
			sent = append(sent, b...)
			l.res.MembersAdded += int64(len(b))
			return l.st.MarkMembersAdded(ctx, added)
		},
		func(m member, err error) error {
			if moodle.ErrorCode(err) == moodle.CodeInvalidRecord {
				// The group was deleted in Moodle by hand: recreate it next
				// run instead of failing every night (old known issue 1).
				if ferr := l.st.ForgetGroup(ctx, m.work.CourseID, m.work.ModuleCode, m.work.GroupCode); ferr != nil {
					return ferr
				}
				l.res.Notices = append(l.res.Notices, Notice{CourseID: m.work.CourseID, Object: m.work.GroupIDNumber,
					Message: fmt.Sprintf("group %q (id %d) was deleted in Moodle; it will be recreated with its members on the next run", m.work.GroupName, m.work.MoodleGroupID)})
				return nil
			}
			l.fail(Failure{CourseID: m.work.CourseID, Object: m.work.GroupIDNumber, ObjectName: m.work.GroupName,
				User: fmt.Sprintf("%s %s (Moodle user %d)", m.work.Role, m.work.CMISID, m.userID), Function: moodle.FnAddMembers,
				Params: moodle.MembersForm(pairs([]member{m})).String()}, err)
			return nil
		})
	if err != nil {
		return err
	}
	return l.verify(ctx, sent, pairs)
}

// verify reads back the members of the groups written to. Moodle answers
// success even when PHP dropped part of the request (max_input_vars), so a
// membership not found is requeued and reported, not counted as done.
func (l *loader) verify(ctx context.Context, sent []member, pairs func([]member) []moodle.Pair) error {
	if len(sent) == 0 {
		return nil
	}
	groupSet := map[int64]bool{}
	for _, m := range sent {
		groupSet[m.work.MoodleGroupID] = true
	}
	groups := make([]int64, 0, len(groupSet))
	for g := range groupSet {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i] < groups[j] })
	actual, err := l.mc.GroupMembers(ctx, groups)
	if err != nil {
		if moodle.IsFatal(err) {
			return err
		}
		l.fail(Failure{Function: moodle.FnGroupMembers, Params: fmt.Sprintf("%d groups", len(groups))}, err)
		return nil
	}
	in := map[moodle.Pair]bool{}
	for g, users := range actual {
		for _, u := range users {
			in[moodle.Pair{A: g, B: u}] = true
		}
	}
	var requeue []int64
	for _, m := range sent {
		if in[moodle.Pair{A: m.work.MoodleGroupID, B: m.userID}] {
			continue
		}
		requeue = append(requeue, m.work.ID)
		l.res.MembersAdded--
		l.fail(Failure{CourseID: m.work.CourseID, Object: m.work.GroupIDNumber, ObjectName: m.work.GroupName,
			User: fmt.Sprintf("%s %s (Moodle user %d)", m.work.Role, m.work.CMISID, m.userID), Function: moodle.FnAddMembers,
			Params: moodle.MembersForm(pairs([]member{m})).String(), ErrorCode: "notverified", Exception: "cmissync",
			Message: "Moodle answered success but the member is not in the group when read back (parameters lost to max_input_vars?); requeued"}, errNotVerified)
	}
	if len(requeue) > 0 {
		l.transient = true
		return l.st.RequeueMembers(ctx, requeue)
	}
	return nil
}

var errNotVerified = &moodle.Error{ErrorCode: "notverified", Exception: "cmissync",
	Message: "Moodle answered success but the member is not in the group when read back (parameters lost to max_input_vars?); requeued"}

// enrolled maps the match field of each user enrolled in the course to the
// Moodle user id.
func (l *loader) enrolled(ctx context.Context, courseID int64) (map[string]int64, error) {
	users, err := l.mc.EnrolledUsers(ctx, courseID, "username", "email", "idnumber")
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(users))
	for _, u := range users {
		if v := u.Field(l.opts.UserField); v != "" {
			out[v] = u.ID
		}
	}
	return out, nil
}

func (l *loader) removeMembers(ctx context.Context) error {
	work, err := l.st.MembersToRemove(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	pairs := func(b []store.MemberWork) []moodle.Pair {
		out := make([]moodle.Pair, len(b))
		for i, m := range b {
			out[i] = moodle.Pair{A: m.MoodleGroupID, B: m.MoodleUserID}
		}
		return out
	}
	drop := func(b []store.MemberWork) error {
		ids := make([]int64, len(b))
		for i, m := range b {
			ids[i] = m.ID
		}
		return l.st.DropMembers(ctx, ids)
	}
	return batches(ctx, work, l.mc.Capacity(moodle.VarsPerPair),
		func(b []store.MemberWork) error { return l.mc.DeleteMembers(ctx, pairs(b)) },
		func(b []store.MemberWork) error {
			l.res.MembersRemoved += int64(len(b))
			return drop(b)
		},
		func(m store.MemberWork, err error) error {
			switch moodle.ErrorCode(err) {
			case moodle.CodeInvalidRecord, moodle.CodeInvalidUser:
				// The group or the user is gone from Moodle: so is the
				// membership.
				return drop([]store.MemberWork{m})
			}
			l.fail(Failure{CourseID: m.CourseID, Object: m.GroupIDNumber, ObjectName: m.GroupName,
				User: fmt.Sprintf("%s %s (Moodle user %d)", m.Role, m.CMISID, m.MoodleUserID), Function: moodle.FnDeleteMembers,
				Params: moodle.MembersForm(pairs([]store.MemberWork{m})).String()}, err)
			return nil
		})
}

func (l *loader) deleteGroups(ctx context.Context) error {
	rows, err := l.st.GroupsToDelete(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	ids := func(b []store.GroupRow) []int64 {
		out := make([]int64, len(b))
		for i, g := range b {
			out[i] = g.MoodleID
		}
		return out
	}
	return batches(ctx, rows, l.mc.Capacity(moodle.VarsPerID),
		func(b []store.GroupRow) error { return l.mc.DeleteGroups(ctx, ids(b)) },
		func(b []store.GroupRow) error {
			l.res.GroupsDeleted += int64(len(b))
			return l.st.DropGroups(ctx, b)
		},
		func(g store.GroupRow, err error) error {
			l.fail(Failure{CourseID: g.CourseID, Object: g.IDNumber, ObjectName: g.Name, Function: moodle.FnDeleteGroups,
				Params: moodle.IDsForm("groupids", ids([]store.GroupRow{g})).String()}, err)
			return nil
		})
}

func (l *loader) deleteGroupings(ctx context.Context) error {
	rows, err := l.st.GroupingsToDelete(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	ids := func(b []store.GroupingRow) []int64 {
		out := make([]int64, len(b))
		for i, g := range b {
			out[i] = g.MoodleID
		}
		return out
	}
	return batches(ctx, rows, l.mc.Capacity(moodle.VarsPerID),
		func(b []store.GroupingRow) error { return l.mc.DeleteGroupings(ctx, ids(b)) },
		func(b []store.GroupingRow) error {
			l.res.GroupingsDeleted += int64(len(b))
			rowIDs := make([]int64, len(b))
			for i, g := range b {
				rowIDs[i] = g.ID
			}
			return l.st.DropGroupings(ctx, rowIDs)
		},
		func(g store.GroupingRow, err error) error {
			l.fail(Failure{CourseID: g.CourseID, Object: g.IDNumber, ObjectName: g.Name, Function: moodle.FnDeleteGroupings,
				Params: moodle.IDsForm("groupingids", ids([]store.GroupingRow{g})).String()}, err)
			return nil
		})
}
