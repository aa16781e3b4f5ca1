package load

import (
	"context"
	"errors"
	"sync"

	"github.com/cmissync/cmissync/load/moodle"
)

// Reading Moodle's real state. Every run reads back everything cmissync
// owns, in every course in scope, whatever staging says changed:
//
//   - its groups (core_group_get_groups), their members
//     (core_group_get_group_members) and its groupings with the groups in
//     each (core_group_get_groupings, returngroups=1), by id across courses,
//     as many ids per call as max_input_vars allows. One id that no longer
//     exists fails the whole call (invalidrecord), so a refused read is
//     split until the deleted ids are alone; an object of a course the
//     service user may not open fails it with errorcoursecontextnotvalid,
//     split the same way.
//   - course listings (core_group_get_course_groups and _groupings) only for
//     courses with something to create or a name to check. Listings come
//     from Moodle's group cache, which a refused create call can leave
//     holding phantoms, so an object seen only in a listing is confirmed by
//     a read by id before cmissync records or adopts it.
//   - a course is taken for deleted only on positive evidence: absent from
//     core_course_get_courses_by_field, or invalidrecord on the course table
//     from core_enrol_get_enrolled_users. An access error is not deletion.
//   - enrolments only for courses with members to add, with only the id
//     and the match field.

// moodleObject is a group or grouping as Moodle holds it.
type moodleObject struct {
	id, course                  int64
	name, idnumber, description string
	// confirmed: read by id, or just created or updated by this run.
	confirmed bool
}

func fromGroup(g moodle.Group) *moodleObject {
	return &moodleObject{id: g.ID, course: g.CourseID, name: g.Name, idnumber: g.IDNumber, description: g.Description}
}

func fromGrouping(g moodle.Grouping) *moodleObject {
	return &moodleObject{id: g.ID, course: g.CourseID, name: g.Name, idnumber: g.IDNumber, description: g.Description}
}

// courseState is what cmissync could learn about a course this run.
type courseState int

const (
	courseOK           courseState = iota
	courseDeleted                  // positive evidence: the course is gone
	courseInaccessible             // the service user may not open it
	courseUnreadable               // reading it failed: nothing is written to it this run
)

// courseInfo is what the run learnt about one course.
type courseInfo struct {
	state courseState
	err   error // why it is not OK
	// suspect: something it holds vanished or was refused; its existence
	// is checked.
	suspect bool
	// listed: its listing was read; groups and groupings hold it, confirmed
	// objects marked.
	listed            bool
	groups, groupings []*moodleObject
	enrolled          map[string]int64 // match field value -> Moodle user id
	enrolledRead      bool
	enrolErr          error
}

// moodleState is Moodle's real state as read this run.
type moodleState struct {
	mu         sync.Mutex
	objects    [2]map[int64]*moodleObject // by kind, confirmed objects by id
	gone       [2]map[int64]bool          // by kind: read by id, no longer exist
	members    map[int64]map[int64]bool   // group id -> user ids
	inGrouping map[int64]map[int64]bool   // grouping id -> group ids
	courses    map[int64]*courseInfo
	// reads counts read calls per function, for the plan's summary.
	reads map[string]int
}

func newMoodleState() *moodleState {
	return &moodleState{
		objects:    [2]map[int64]*moodleObject{{}, {}},
		gone:       [2]map[int64]bool{{}, {}},
		members:    map[int64]map[int64]bool{},
		inGrouping: map[int64]map[int64]bool{},
		courses:    map[int64]*courseInfo{},
		reads:      map[string]int{},
	}
}

func (s *moodleState) course(id int64) *courseInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.courses[id]
	if c == nil {
		c = &courseInfo{}
		s.courses[id] = c
	}
	return c
}

func (s *moodleState) counted(function string) {
	s.mu.Lock()
	s.reads[function]++
	s.mu.Unlock()
}

// suspect marks a course something of which vanished or was refused: its
// existence is checked.
func (s *moodleState) suspect(course int64) {
	c := s.course(course)
	s.mu.Lock()
	c.suspect = true
	s.mu.Unlock()
}

// severity orders what a course can be found to be: positive evidence of
// deletion outweighs an access error, which outweighs a failed read.
var severity = map[courseState]int{courseOK: 0, courseUnreadable: 1, courseInaccessible: 2, courseDeleted: 3}

// fail marks a course that is not OK; a weightier finding replaces a
// lighter one, and the first reason of a kind stays.
func (s *moodleState) fail(course int64, state courseState, err error) {
	c := s.course(course)
	s.mu.Lock()
	defer s.mu.Unlock()
	if severity[state] > severity[c.state] {
		c.state, c.err = state, err
	}
}

// reader reads Moodle's state.
type reader struct {
	mc      *moodle.Client
	workers int
	st      *moodleState
	// hasCoursesByField: the service offers core_course_get_courses_by_field,
	// which tells deleted courses from inaccessible ones in one call.
	hasCoursesByField bool
	userField         string
}

// byID is the outcome of a read by id.
type byID[T any] struct {
	found  []T
	gone   []int64         // invalidrecord on their own: they no longer exist
	denied []int64         // errorcoursecontextnotvalid on their own
	failed map[int64]error // could not be read
}

// errNotAnswered is an id a read by id answered without: the request may
// have lost parameters to PHP's max_input_vars (set moodle.max_input_vars
// to the site's value). It is not taken for a deletion.
var errNotAnswered = errors.New("Moodle's answer left this id out (parameters lost to PHP max_input_vars? check moodle.max_input_vars)")

// readByID reads ids in calls of at most capacity ids, workers at a time,
// splitting refused calls until the ids Moodle refuses are alone. An id a
// successful call leaves out of its answer is failed, never gone. Only a
// fatal error (bad token, missing function) is returned.
func readByID[T any](ctx context.Context, workers, capacity int, ids []int64, idOf func(T) int64, call func(context.Context, []int64) ([]T, error)) (byID[T], error) {
	res := byID[T]{failed: map[int64]error{}}
	var mu sync.Mutex
	var split func(ctx context.Context, ids []int64) error
	split = func(ctx context.Context, ids []int64) error {
		out, err := call(ctx, ids)
		code := moodle.ErrorCode(err)
		switch {
		case err == nil:
			answered := make(map[int64]bool, len(out))
			for _, x := range out {
				answered[idOf(x)] = true
			}
			mu.Lock()
			res.found = append(res.found, out...)
			for _, id := range ids {
				if !answered[id] {
					res.failed[id] = errNotAnswered
				}
			}
			mu.Unlock()
			return nil
		case moodle.IsFatal(err), ctx.Err() != nil:
			return err
		case (code == moodle.CodeInvalidRecord || code == moodle.CodeCourseContext) && len(ids) > 1:
			mid := len(ids) / 2
			if err := split(ctx, ids[:mid]); err != nil {
				return err
			}
			return split(ctx, ids[mid:])
		}
		mu.Lock()
		defer mu.Unlock()
		switch code {
		case moodle.CodeInvalidRecord:
			res.gone = append(res.gone, ids[0])
		case moodle.CodeCourseContext:
			res.denied = append(res.denied, ids[0])
		default:
			for _, id := range ids {
				res.failed[id] = err
			}
		}
		return nil
	}
	var chunks [][]int64
	for start := 0; start < len(ids); start += capacity {
		chunks = append(chunks, ids[start:min(start+capacity, len(ids))])
	}
	err := forEach(ctx, workers, chunks, split)
	return res, err
}

// readObjects reads groups or groupings by id. For groupings it also
// records the groups in each.
func (r *reader) readObjects(ctx context.Context, k kind, ids []int64) (byID[*moodleObject], error) {
	capacity := r.mc.Capacity(moodle.VarsPerReadByID)
	if k == kindGroup {
		return readByID(ctx, r.workers, capacity, ids, objectID, func(ctx context.Context, ids []int64) ([]*moodleObject, error) {
			r.st.counted(moodle.FnGetGroups)
			gs, err := r.mc.GroupsByID(ctx, ids)
			out := make([]*moodleObject, len(gs))
			for i, g := range gs {
				out[i] = fromGroup(g)
			}
			return out, err
		})
	}
	// returngroups takes a variable of its own.
	return readByID(ctx, r.workers, capacity-1, ids, objectID, func(ctx context.Context, ids []int64) ([]*moodleObject, error) {
		r.st.counted(moodle.FnGetGroupings)
		gs, err := r.mc.GroupingsWithGroups(ctx, ids)
		out := make([]*moodleObject, len(gs))
		for i, g := range gs {
			out[i] = fromGrouping(g)
			in := make(map[int64]bool, len(g.Groups))
			for _, m := range g.Groups {
				in[m.ID] = true
			}
			r.st.mu.Lock()
			r.st.inGrouping[g.ID] = in
			r.st.mu.Unlock()
		}
		return out, err
	})
}

func objectID(o *moodleObject) int64 { return o.id }

// readOwned reads by id every object of the kind whose id staging
// records (for groupings, with the groups in each); owner maps each id to
// its course.
func (r *reader) readOwned(ctx context.Context, k kind, owner map[int64]int64) error {
	if len(owner) == 0 {
		return nil
	}
	res, err := r.readObjects(ctx, k, sortedIDs(owner))
	if err != nil {
		return err
	}
	r.st.mu.Lock()
	for _, o := range res.found {
		o.confirmed = true
		r.st.objects[k][o.id] = o
	}
	for _, id := range res.gone {
		r.st.gone[k][id] = true
	}
	r.st.mu.Unlock()
	for _, id := range res.gone {
		r.st.suspect(owner[id])
	}
	for _, id := range res.denied {
		r.st.suspect(owner[id])
		r.st.fail(owner[id], courseInaccessible, errNoAccess)
	}
	for id, err := range res.failed {
		r.st.fail(owner[id], courseUnreadable, err)
	}
	return nil
}

// groupMembers is one group's members as read by id.
type groupMembers struct {
	id    int64
	users []int64
}

// membersByID reads the members of groups by id across courses.
func membersByID(ctx context.Context, mc *moodle.Client, workers int, ids []int64, counted func(string)) (byID[groupMembers], error) {
	return readByID(ctx, workers, mc.Capacity(moodle.VarsPerReadByID), ids, func(g groupMembers) int64 { return g.id }, func(ctx context.Context, ids []int64) ([]groupMembers, error) {
		if counted != nil {
			counted(moodle.FnGroupMembers)
		}
		m, err := mc.MembersOf(ctx, ids)
		out := make([]groupMembers, 0, len(m))
		for _, id := range ids {
			if users, ok := m[id]; ok {
				out = append(out, groupMembers{id, users})
			}
		}
		return out, err
	})
}

// readMembers reads the members of groups that exist, by id across
// courses; owner maps each group to its course.
func (r *reader) readMembers(ctx context.Context, owner map[int64]int64) error {
	if len(owner) == 0 {
		return nil
	}
	res, err := membersByID(ctx, r.mc, r.workers, sortedIDs(owner), r.st.counted)
	if err != nil {
		return err
	}
	r.st.mu.Lock()
	for _, g := range res.found {
		set := make(map[int64]bool, len(g.users))
		for _, u := range g.users {
			set[u] = true
		}
		r.st.members[g.id] = set
	}
	for _, id := range res.gone {
		// Deleted between two reads: treated as gone.
		r.st.gone[kindGroup][id] = true
		delete(r.st.objects[kindGroup], id)
	}
	r.st.mu.Unlock()
	for _, id := range res.denied {
		r.st.fail(owner[id], courseInaccessible, errNoAccess)
	}
	for id, err := range res.failed {
		r.st.fail(owner[id], courseUnreadable, err)
	}
	return nil
}

// list reads the groups and groupings of each course from its listing.
// Objects already confirmed by id are marked confirmed.
func (r *reader) list(ctx context.Context, courses []int64) error {
	return forEach(ctx, r.workers, courses, func(ctx context.Context, id int64) error {
		r.st.counted(moodle.FnCourseGroups)
		groups, err := r.mc.CourseGroups(ctx, id)
		var groupings []moodle.Grouping
		if err == nil {
			r.st.counted(moodle.FnCourseGroupings)
			groupings, err = r.mc.CourseGroupings(ctx, id)
		}
		switch {
		case moodle.IsFatal(err):
			return err
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case moodle.ErrorCode(err) == moodle.CodeCourseContext || moodle.ErrorCode(err) == moodle.CodeInvalidRecord:
			// Deleted, or not accessible: checkCourses tells which.
			r.st.suspect(id)
			r.st.fail(id, courseInaccessible, errNoAccess)
			return nil
		case err != nil:
			r.st.fail(id, courseUnreadable, err)
			return nil
		}
		c := r.st.course(id)
		r.st.mu.Lock()
		defer r.st.mu.Unlock()
		c.listed = true
		for _, g := range groups {
			o := fromGroup(g)
			if known := r.st.objects[kindGroup][o.id]; known != nil {
				o = known
			}
			c.groups = append(c.groups, o)
		}
		for _, g := range groupings {
			o := fromGrouping(g)
			if known := r.st.objects[kindGrouping][o.id]; known != nil {
				o = known
			}
			c.groupings = append(c.groupings, o)
		}
		return nil
	})
}

// confirm reads by id objects seen only in a listing. Those that exist are
// confirmed; the others are phantoms of Moodle's group cache.
func (r *reader) confirm(ctx context.Context, k kind, objs []*moodleObject) error {
	if len(objs) == 0 {
		return nil
	}
	owner := map[int64]int64{}
	listed := map[int64]*moodleObject{}
	for _, o := range objs {
		owner[o.id] = o.course
		listed[o.id] = o
	}
	res, err := r.readObjects(ctx, k, sortedIDs(owner))
	if err != nil {
		return err
	}
	r.st.mu.Lock()
	for _, f := range res.found {
		o := listed[f.id]
		o.confirmed = true
		r.st.objects[k][f.id] = o
	}
	for _, id := range append(res.gone, res.denied...) {
		r.st.gone[k][id] = true
	}
	r.st.mu.Unlock()
	for id, err := range res.failed {
		r.st.fail(owner[id], courseUnreadable, err)
	}
	return nil
}

// checkCourses settles, for suspect courses, whether they still exist.
// Only positive evidence makes a course deleted; a course that exists but
// refused a read is inaccessible.
func (r *reader) checkCourses(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if r.hasCoursesByField {
		r.st.counted(moodle.FnCoursesByField)
		courses, err := r.mc.CoursesByID(ctx, ids)
		switch {
		case err == nil:
			// A course left out of the answer is most likely deleted,
			// but Moodle's code also leaves out a hidden course the
			// service user may not see, and a call that lost
			// parameters to max_input_vars leaves out what it lost:
			// the enrolment read below gives the second, positive sign
			// (invalidrecord on the course table) before anything of
			// the course is retired.
			exists := map[int64]bool{}
			for _, c := range courses {
				exists[c.ID] = true
			}
			var missing []int64
			for _, id := range ids {
				if !exists[id] {
					missing = append(missing, id)
				}
			}
			ids = missing
		case moodle.IsFatal(err) && moodle.ErrorCode(err) != moodle.CodeAccessException, ctx.Err() != nil:
			return err
		}
		// Not offered after all, or no answer: ask each course's enrolments.
	}
	if len(ids) == 0 {
		return nil
	}
	return forEach(ctx, r.workers, ids, func(ctx context.Context, id int64) error {
		r.st.counted(moodle.FnEnrolledUsers)
		users, err := r.mc.EnrolledUsers(ctx, id, r.userField)
		switch moodle.ErrorCode(err) {
		case "":
			if err != nil {
				if moodle.IsFatal(err) || ctx.Err() != nil {
					return err
				}
				r.st.fail(id, courseUnreadable, err)
				return nil
			}
			r.setEnrolled(id, users)
		case moodle.CodeInvalidRecord:
			r.st.fail(id, courseDeleted, errCourseDeleted)
		case moodle.CodeCourseContext:
			r.st.fail(id, courseInaccessible, errNoAccess)
		default:
			if moodle.IsFatal(err) {
				return err
			}
			r.st.fail(id, courseUnreadable, err)
		}
		return nil
	})
}

var (
	errCourseDeleted = errors.New("the course no longer exists in Moodle")
	errNoAccess      = errors.New("Moodle answers errorcoursecontextnotvalid for it")
)

// enrolments reads who is enrolled in each course, and calls done with
// each course once it is settled: read, or its read refused (enrolErr).
func (r *reader) enrolments(ctx context.Context, courses []int64, done func(course int64)) error {
	return forEach(ctx, r.workers, courses, func(ctx context.Context, id int64) error {
		if r.st.course(id).enrolledRead {
			done(id)
			return nil
		}
		r.st.counted(moodle.FnEnrolledUsers)
		users, err := r.mc.EnrolledUsers(ctx, id, r.userField)
		if err != nil {
			if moodle.IsFatal(err) || ctx.Err() != nil {
				return err
			}
			c := r.st.course(id)
			r.st.mu.Lock()
			c.enrolErr = err
			r.st.mu.Unlock()
			done(id)
			return nil
		}
		r.setEnrolled(id, users)
		done(id)
		return nil
	})
}

// usersByField looks users up by the match field, as many values per call
// as max_input_vars allows, and maps each value found to its user. A value
// not found in a large call is looked up again in small ones: a call that
// lost parameters to PHP's max_input_vars answers without them, which must
// not make a person unknown. Values of a call Moodle refused (e.g. one that
// is not a valid username) are returned in failed, for the caller to
// resolve another way.
func (r *reader) usersByField(ctx context.Context, values []string) (found map[string]int64, failed map[string]bool, err error) {
	found, failed = map[string]int64{}, map[string]bool{}
	var mu sync.Mutex
	lookup := func(ctx context.Context, vs []string) error {
		r.st.counted(moodle.FnUsersByField)
		users, err := r.mc.UsersByField(ctx, r.userField, vs)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if moodle.IsFatal(err) || ctx.Err() != nil {
				return err
			}
			for _, v := range vs {
				failed[v] = true
			}
			return nil
		}
		for _, u := range users {
			if v := u.Field(r.userField); v != "" {
				found[v] = u.ID
			}
		}
		return nil
	}
	in := func(values []string, size int) [][]string {
		var out [][]string
		for start := 0; start < len(values); start += size {
			out = append(out, values[start:min(start+size, len(values))])
		}
		return out
	}
	// The field takes a variable of its own.
	if err := forEach(ctx, r.workers, in(values, r.mc.Capacity(moodle.VarsPerReadByID)-1), lookup); err != nil || len(values) <= confirmBatch {
		return found, failed, err
	}
	var again []string
	for _, v := range values {
		if found[v] == 0 && !failed[v] {
			again = append(again, v)
		}
	}
	err = forEach(ctx, r.workers, in(again, confirmBatch), lookup)
	return found, failed, err
}

// confirmBatch is the size of the small calls that confirm a person is
// not in Moodle: far below any max_input_vars a site runs with.
const confirmBatch = 10

func (r *reader) setEnrolled(course int64, users []moodle.User) {
	m := make(map[string]int64, len(users))
	for _, u := range users {
		if v := u.Field(r.userField); v != "" {
			m[v] = u.ID
		}
	}
	c := r.st.course(course)
	r.st.mu.Lock()
	c.enrolled, c.enrolledRead = m, true
	r.st.mu.Unlock()
}

func sortedIDs(m map[int64]int64) []int64 {
	out := make([]int64, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sortInt64(out)
	return out
}
