// Package load is the third pipeline step. It builds one Plan from staging
// and Moodle's real state, applies its policies to it, and carries it out
// through its web services, one gate for every write:
//
//   - state.go reads what cmissync owns in Moodle, every run, by id across
//     courses, and course listings only where something is to be created
//     or named;
//   - plan.go builds the plan: creates, adoptions, renames, assignments,
//     member additions and removals, deletions, and repairs of drift
//     (objects deleted, renamed or emptied by hand, a course deleted);
//   - policy.go holds back, with the reason, deletions without positive
//     evidence and those over the mass-change guard;
//   - gate.go is the one place every write passes (dry run, failures
//     earlier in the scope, the deletion count);
//   - execute.go carries the plan out in a fixed order, with the senders
//     send_objects.go and send_members.go;
//   - result.go is what a load reports, and its bookkeeping in staging.
//
// Each success is recorded in staging with an audit row as it happens, so
// a crash loses nothing and a rerun converges; refused batches are split
// until each bad item is alone, so every good item lands and every bad one
// is reported with Moodle's answer.
package load

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

	// OnGroupRemoved: a group cmissync owns is no longer in CMIS.
	GroupDelete  = "delete"  // delete it, with its memberships (default)
	GroupArchive = "archive" // keep it with its id and members, renamed, no longer managed

	// DefaultArchiveSuffix is added to the name of a group archived.
	DefaultArchiveSuffix = " (archived)"

	// OnMemberRemoved: a member cmissync added was removed in Moodle.
	MemberRestore = "restore" // add them back (default)
	MemberRespect = "respect" // record the removal and leave them out
)

// Options control a load run.
type Options struct {
	RunID  string
	Filter store.Filter
	// UserField is the Moodle user field CMIS ids are matched against:
	// idnumber (default), username or email.
	UserField string
	// Concurrency is how many requests are in flight at once (default 4),
	// whichever part of the load sends them (see moodle.Client.Limited).
	Concurrency int
	// ParkAfter parks an item after this many permanent failures (0: never).
	ParkAfter int
	// Policies (see the constants); empty means the default.
	OnNameClash, OnDeleted, OnRenamed, OnMemberRemoved, OnGroupRemoved string
	// ArchiveSuffix is added to the name of a group archived (empty:
	// DefaultArchiveSuffix).
	ArchiveSuffix string
	// RemoveUnseenMembers extends removal to every member of an owned group
	// that CMIS does not list, including members added by hand (the old
	// tool's removeMoodleGroupMembersNotSeenInCMIS).
	RemoveUnseenMembers bool
	// Guard holds deletions back when there are too many; ApproveDeletes
	// lets them through.
	Guard          Guard
	ApproveDeletes bool
	// RemoveAfterRuns: a membership, group or grouping absent from CMIS is
	// removed only once it has been absent from this many consecutive
	// complete extracts (0 or 1: the first).
	RemoveAfterRuns int
	// FrozenCourses get no writes (load.frozen_courses); a course in
	// Unfreeze (named on the command line) is written to all the same.
	FrozenCourses []int64
	Unfreeze      []int64
	// EnrolMissing enrols a person CMIS lists who is not enrolled in the
	// course (load.enrol_missing), in StudentRoleID or TutorRoleID by
	// their CMIS list (0: the stock student and non-editing teacher).
	EnrolMissing               bool
	StudentRoleID, TutorRoleID int64
	// UnenrolAction is what happens to an enrolment cmissync made once the
	// person is in no CMIS group of the course: UnenrolKeep (default),
	// UnenrolSuspend or UnenrolRemove.
	UnenrolAction string
	// SkipEndedCourses freezes courses whose end date has passed
	// (load.skip_ended_courses).
	SkipEndedCourses bool
	// Now is the clock (nil: time.Now), for course end dates and waits.
	Now func() time.Time
	// NoDeletes holds every deletion back with this reason (e.g. an
	// earlier step of the run failed); empty: deletions follow the plan.
	NoDeletes string
	// DryRun builds the plan and stops: nothing is sent, nothing recorded.
	DryRun bool
	// Offline builds the plan from staging alone, without reading Moodle
	// (implies DryRun): drift and enrolments are not seen.
	Offline bool
	// WaitingAlertAfter is how long a member may wait for enrolment before
	// the wait is a failure (0: DefaultWaitingAlertAfter).
	WaitingAlertAfter time.Duration
	// Progress, when set, is told how far the load is: stage "plan" with
	// courses planned of all, then stage "write" with writes sent of all
	// planned so far (the total grows as courses' members are resolved,
	// since writes start before the plan is whole). It is called from
	// several goroutines, never at once.
	Progress func(stage string, done, total int)
}

func (o *Options) defaults() error {
	if o.UserField == "" {
		o.UserField = "idnumber"
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	for _, p := range []struct {
		name string
		v    *string
		want []string
	}{
		{"on_name_clash", &o.OnNameClash, []string{ClashRename, ClashAdopt}},
		{"on_deleted", &o.OnDeleted, []string{DeletedRecreate, DeletedForget}},
		{"on_renamed", &o.OnRenamed, []string{RenamedKeep, RenamedRestore}},
		{"on_member_removed", &o.OnMemberRemoved, []string{MemberRestore, MemberRespect}},
		{"on_group_removed", &o.OnGroupRemoved, []string{GroupDelete, GroupArchive}},
	} {
		if *p.v == "" {
			*p.v = p.want[0]
		}
		if *p.v != p.want[0] && *p.v != p.want[1] {
			return fmt.Errorf("load.%s = %q: want one of %s", p.name, *p.v, strings.Join(p.want, ", "))
		}
	}
	switch o.UnenrolAction {
	case "":
		o.UnenrolAction = UnenrolKeep
	case UnenrolKeep, UnenrolSuspend, UnenrolRemove:
	default:
		return fmt.Errorf("load.unenrol_action = %q: want one of %s, %s, %s", o.UnenrolAction, UnenrolKeep, UnenrolSuspend, UnenrolRemove)
	}
	if o.StudentRoleID <= 0 {
		o.StudentRoleID = stockRoles[DefaultStudentRole]
	}
	if o.TutorRoleID <= 0 {
		o.TutorRoleID = stockRoles[DefaultTutorRole]
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Offline {
		o.DryRun = true
	}
	if o.ArchiveSuffix == "" {
		o.ArchiveSuffix = DefaultArchiveSuffix
	}
	if o.WaitingAlertAfter <= 0 {
		o.WaitingAlertAfter = DefaultWaitingAlertAfter
	}
	return o.Guard.Validate()
}

// Run loads the staged changes into Moodle: it checks the site, builds the
// plan, and, unless it is a dry run, executes it and records its failures
// in rest_error_logs. It returns an error only for failures that stop the
// whole step (staging unreachable, bad token, a function missing from the
// service) and a *HoldError when the mass-change guard held deletions
// back; item failures are in Result.Failures. The Result always carries
// the plan.
func Run(ctx context.Context, st *store.Store, mc *moodle.Client, opts Options, log logrus.FieldLogger) (*Result, error) {
	res := &Result{}
	if err := opts.defaults(); err != nil {
		return res, err
	}
	var si moodle.SiteInfo
	if !opts.Offline {
		var err error
		if si, err = mc.CheckFunctions(ctx, NeededFunctions(opts)); err != nil {
			return res, err
		}
	}
	// load.concurrency bounds the requests in flight, whichever part of
	// the load sends them: on a run, members are added while the plan
	// still reads enrolments.
	if mc != nil { // nil offline
		mc = mc.Limited(opts.Concurrency)
	}
	var l *loader
	if !opts.DryRun {
		l = newLoader(st, mc, opts, log, res)
	}
	p, err := buildPlan(ctx, st, mc, &opts, si, log, l)
	res.Plan = p
	if err == nil && l != nil {
		err = l.finish(ctx)
	}
	if l != nil {
		err = errors.Join(err, l.close(ctx))
	}
	if err != nil {
		return res, err
	}
	if opts.DryRun {
		return res, nil
	}
	if err := l.bookkeeping(ctx); err != nil {
		return res, err
	}
	log.WithFields(logrus.Fields(toFields(res.Map()))).Info("load finished")
	if len(p.Guard) > 0 {
		return res, &HoldError{Reasons: p.Guard}
	}
	return res, nil
}

// MakePlan builds the plan the load would carry out now, and sends
// nothing: Moodle is read unless opts.Offline.
func MakePlan(ctx context.Context, st *store.Store, mc *moodle.Client, opts Options, log logrus.FieldLogger) (*Plan, error) {
	opts.DryRun = true
	res, err := Run(ctx, st, mc, opts, log)
	return res.Plan, err
}

func toFields(m map[string]int64) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// buildPlan reads staging and Moodle's state and plans every course, then
// applies the policies. On a run (ex set) the loader carries out the
// constructive part of the plan as it is built (see resolveMembers); the
// caller carries out the deletions (loader.finish) once it returns.
func buildPlan(ctx context.Context, st *store.Store, mc *moodle.Client, opts *Options, si moodle.SiteInfo, log logrus.FieldLogger, ex *loader) (*Plan, error) {
	p := &Plan{Offline: opts.Offline, Courses: []*CoursePlan{}, Reads: map[string]int{}}
	coursesByField, usersByField := si.Has(moodle.FnCoursesByField), si.Has(moodle.FnUsersByField)
	lapped := time.Now()
	lap := func(what string) {
		log.WithFields(logrus.Fields{"part": what, "seconds": time.Since(lapped).Seconds()}).Debug("plan part done")
		lapped = time.Now()
	}
	courses, err := readStagedObjects(ctx, st, opts.Filter)
	if err != nil {
		return p, err
	}
	// The memberships, the bulk of staging, are read while Moodle is.
	membersCtx, cancelMembers := context.WithCancel(ctx)
	membersRead := make(chan error, 1)
	go func(courses []*courseStaging) {
		membersRead <- readStagedMembers(membersCtx, st, opts.Filter, courses)
	}(slices.Clone(courses)) // the plan sorts and filters its own list meanwhile
	joinMembers := sync.OnceValue(func() error {
		err := <-membersRead
		lap("read staged memberships (after Moodle)")
		return err
	})
	defer func() {
		cancelMembers()
		_ = joinMembers()
	}()
	lap("read staging")
	made, err := st.Enrolments(ctx, opts.Filter)
	if err != nil {
		return p, err
	}
	recorded := enrolmentsByCourse(made)
	if opts.UnenrolAction != UnenrolKeep {
		// A course where cmissync made enrolments and staging holds
		// nothing any more (its mapping removed) still has them released.
		courses = withEnrolmentCourses(courses, recorded)
	}
	state := newMoodleState()
	var ended map[int64]moodle.Course
	if opts.SkipEndedCourses && !opts.Offline {
		r := &reader{mc: mc, workers: opts.Concurrency, st: state, hasCoursesByField: coursesByField}
		if ended, err = r.endedCourses(ctx, courses, opts.Now()); err != nil {
			return p, fmt.Errorf("read course end dates: %w", err)
		}
	}
	frozen, courses, thawed, err := freeze(ctx, st, opts, courses, ended)
	if err != nil {
		return p, err
	}
	if p.refused, err = st.RefusedKeys(ctx); err != nil {
		return p, err
	}
	if opts.Offline {
		if err := joinMembers(); err != nil {
			return p, err
		}
		offlineState(state, courses)
	} else {
		r := &reader{mc: mc, workers: opts.Concurrency, st: state, hasCoursesByField: coursesByField, userField: opts.UserField}
		if err := readState(ctx, r, courses, opts); err != nil {
			return p, fmt.Errorf("read Moodle's state: %w", err)
		}
	}
	lap("read Moodle")
	if err := joinMembers(); err != nil {
		return p, err
	}
	b := &builder{opts: opts, state: state, plan: p, pending: map[int64][]pendingMember{}, recorded: recorded,
		inCourse: map[int64]map[string]bool{}, enrols: map[enrolKey]*Item{}, canEnrol: si.Has(moodle.FnManualEnrolUsers)}
	p.Courses = append(p.Courses, frozen...)
	for i, cs := range courses {
		cp := b.course(cs)
		if thawed[cs.id] {
			cp.item(&Item{Action: ActThaw, Object: "course", Reason: "no longer frozen: kept in step again"})
		}
		p.Courses = append(p.Courses, cp)
		if opts.Progress != nil && (i%100 == 99 || i == len(courses)-1) {
			opts.Progress("plan", i+1, len(courses))
		}
		for _, o := range cs.groups {
			if o.moodleID != 0 {
				p.ownedGroups++
			}
		}
		p.ownedMembers += cs.ownedMembers
	}
	sort.Slice(p.Courses, func(i, j int) bool { return p.Courses[i].CourseID < p.Courses[j].CourseID })
	lap("plan courses")
	if err := recallAdoptions(ctx, st, p); err != nil {
		return p, err
	}
	if err := b.resolveMembers(ctx, st, mc, usersByField, ex); err != nil {
		return p, err
	}
	lap("resolve members")
	p.Reads = state.reads
	p.applyEvidence()
	p.applyRemoveAfter(opts.RemoveAfterRuns)
	if opts.NoDeletes != "" {
		p.holdAllDeletions(opts.NoDeletes)
	}
	if !opts.ApproveDeletes {
		p.applyGuard(opts.Guard)
	}
	if err := p.heldNothingRun(); err != nil {
		return p, err
	}
	p.recount()
	log.WithFields(logrus.Fields{"courses": len(p.Courses), "writes": p.Totals.Writes(), "held": p.Totals.Held, "offline": p.Offline}).
		Info("load planned")
	return p, nil
}

// readState reads Moodle's state for the staged courses: every owned
// object by id, then listings where the plan needs names, then the members
// of every group that exists.
func readState(ctx context.Context, r *reader, courses []*courseStaging, opts *Options) error {
	owner := [2]map[int64]int64{{}, {}}
	for _, cs := range courses {
		for _, o := range cs.groupings {
			if o.moodleID != 0 && !o.parked {
				owner[kindGrouping][o.moodleID] = cs.id
			}
		}
		for _, o := range cs.groups {
			if o.moodleID != 0 && !o.parked {
				owner[kindGroup][o.moodleID] = cs.id
			}
		}
	}
	err := forEach(ctx, 2, []kind{kindGrouping, kindGroup}, func(ctx context.Context, k kind) error {
		return r.readOwned(ctx, k, owner[k])
	})
	if err != nil {
		return err
	}
	// Courses where every owned object vanished, or a read was refused:
	// do they still exist?
	var suspects []int64
	for _, cs := range courses {
		if c := r.st.course(cs.id); c.suspect && allGone(r.st, cs) || c.state == courseInaccessible || cs.enrolmentsOnly {
			suspects = append(suspects, cs.id)
		}
	}
	if err := r.checkCourses(ctx, suspects); err != nil {
		return err
	}
	var list []int64
	for _, cs := range courses {
		if c := r.st.course(cs.id); c.state == courseOK && needsListing(r.st, cs, opts) {
			list = append(list, cs.id)
		}
	}
	if err := r.list(ctx, list); err != nil {
		return err
	}
	// A listing refused since: settle those courses too.
	suspects = suspects[:0]
	for _, id := range list {
		if c := r.st.course(id); c.state == courseInaccessible {
			suspects = append(suspects, id)
		}
	}
	if err := r.checkCourses(ctx, suspects); err != nil {
		return err
	}
	// Confirm by id what the plan would record or adopt from a listing.
	var unconfirmed [2][]*moodleObject
	for _, cs := range courses {
		c := r.st.course(cs.id)
		if !c.listed {
			continue
		}
		for k, objs := range [2][]*moodleObject{c.groupings, c.groups} {
			staged := cs.groupings
			if kind(k) == kindGroup {
				staged = cs.groups
			}
			for _, m := range objs {
				if !m.confirmed && matters(m, staged) {
					unconfirmed[k] = append(unconfirmed[k], m)
				}
			}
		}
	}
	for k := range unconfirmed {
		if err := r.confirm(ctx, kind(k), unconfirmed[k]); err != nil {
			return err
		}
	}
	// Members of every group that exists and is staged.
	groups := map[int64]int64{}
	for id, course := range owner[kindGroup] {
		if r.st.objects[kindGroup][id] != nil && r.st.course(course).state == courseOK {
			groups[id] = course
		}
	}
	for _, cs := range courses {
		if c := r.st.course(cs.id); c.state == courseOK {
			for _, m := range c.groups {
				if m.confirmed {
					groups[m.id] = cs.id
				}
			}
		}
	}
	return r.readMembers(ctx, groups)
}

// allGone: every owned object of the course vanished.
func allGone(st *moodleState, cs *courseStaging) bool {
	n := 0
	for k, objs := range [2][]*object{cs.groupings, cs.groups} {
		for _, o := range objs {
			if o.moodleID == 0 {
				continue
			}
			n++
			if !st.gone[k][o.moodleID] {
				return false
			}
		}
	}
	return n > 0
}

// needsListing: the course has something to create (new, or deleted by
// hand and to be recreated) or a name to check.
func needsListing(st *moodleState, cs *courseStaging, opts *Options) bool {
	for k, objs := range [2][]*object{cs.groupings, cs.groups} {
		for _, o := range objs {
			switch {
			case o.parked:
			case o.toAdd, o.toRename:
				return true
			case o.toDelete && kind(k) == kindGroup && opts.OnGroupRemoved == GroupArchive:
				return true // the archived name is checked
			case o.moodleID != 0 && st.objects[k][o.moodleID] == nil && !o.toDelete:
				return true // to recreate, or found under another id
			case o.moodleID != 0 && opts.OnRenamed == RenamedRestore && o.moodleName != "":
				if m := st.objects[k][o.moodleID]; m != nil && moodleName(m.name) != o.moodleName {
					return true
				}
			}
		}
	}
	return false
}

// matters: a listing object the plan may record or adopt: it has the
// idnumber or the wanted name of a staged object.
func matters(m *moodleObject, staged []*object) bool {
	for _, o := range staged {
		if ours(o, m) || nameKey(moodleName(m.name)) == nameKey(o.name) {
			return true
		}
	}
	return false
}

// offlineState pretends Moodle holds what staging recorded: every owned
// object as named, every recorded member in its group, every group in its
// grouping.
func offlineState(st *moodleState, courses []*courseStaging) {
	for _, cs := range courses {
		for k, objs := range [2][]*object{cs.groupings, cs.groups} {
			for _, o := range objs {
				if o.moodleID == 0 {
					continue
				}
				name := o.moodleName
				if name == "" {
					name = o.name
				}
				st.objects[k][o.moodleID] = &moodleObject{id: o.moodleID, course: cs.id, name: name, idnumber: o.idnumber, confirmed: true}
			}
		}
		for _, o := range cs.groups {
			if o.moodleID == 0 {
				continue
			}
			set := map[int64]bool{}
			for _, m := range cs.members[o.key()] {
				if !m.ToAdd && m.MoodleUserID != 0 {
					set[m.MoodleUserID] = true
				}
			}
			st.members[o.moodleID] = set
			if g := cs.grouping(o.module); g != nil && g.moodleID != 0 && o.assigned {
				if st.inGrouping[g.moodleID] == nil {
					st.inGrouping[g.moodleID] = map[int64]bool{}
				}
				st.inGrouping[g.moodleID][o.moodleID] = true
			}
		}
		c := st.course(cs.id)
		c.listed = true
		for k, objs := range [2][]*object{cs.groupings, cs.groups} {
			for _, o := range objs {
				if m := st.objects[k][o.moodleID]; m != nil {
					if kind(k) == kindGroup {
						c.groups = append(c.groups, m)
					} else {
						c.groupings = append(c.groupings, m)
					}
				}
			}
		}
		// Enrolments are unknown offline: members to add are taken as
		// enrolled under a placeholder user.
		c.enrolledRead = true
		c.enrolled = map[string]int64{}
		for _, ms := range cs.members {
			for _, m := range ms {
				c.enrolled[m.CMISID] = m.MoodleUserID
			}
		}
	}
}

// readEnrolmentsAt is how many people new to a course (not known from
// staging as enrolled there) make the plan read the course's enrolments
// rather than let the adds find out: a read costs Moodle about what 20
// member writes do (reference latency table: ~90 ms against ~4.3 ms per
// member), while a refused add call wastes every member in it.
const readEnrolmentsAt = 20

// resolveMembers turns the pending members of every course into items
// once their Moodle users are known (see findUsers), and plans the
// releases of the enrolments cmissync made. Courses are resolved in
// batches as their reads arrive; on a run (ex set), each batch is handed
// to the loader, whose additions to it overlap the reads of the next:
// nothing it writes before the whole plan is built deletes anything, and
// every deletion waits for the policies (loader.finish).
func (b *builder) resolveMembers(ctx context.Context, st *store.Store, mc *moodle.Client, usersByField bool, ex *loader) error {
	if !b.opts.Offline {
		known, err := st.KnownUsers(ctx)
		if err != nil {
			return err
		}
		b.users = known
	}
	byID := make(map[int64]*CoursePlan, len(b.plan.Courses))
	for _, cp := range b.plan.Courses {
		byID[cp.CourseID] = cp
	}
	// The reads stop at the first error of the writes, and no batch is
	// written after an error of the reads; the writes go on with ctx, the
	// last wave's read-back after this returns (loader.settle).
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan int64, len(b.plan.Courses))
	found := make(chan error, 1)
	var readFailed atomic.Bool
	go func() {
		err := b.findUsers(readCtx, mc, usersByField, ready)
		readFailed.Store(err != nil)
		close(ready)
		found <- err
	}()
	fail := func(err error) error {
		cancel()
		for range ready {
		}
		<-found
		return err
	}
	if ex != nil {
		if err := ex.begin(ctx, b.plan); err != nil {
			return fail(err)
		}
	}
	// A run writes a batch once it holds a wave of groups (or the reads
	// are done), so that batches do not cut the additions into part-filled
	// calls; a dry run resolves courses as they come.
	batchGroups := 0
	if ex != nil {
		batchGroups = readsPerWave * mc.Capacity(moodle.VarsPerReadByID)
	}
	for {
		batch := b.nextBatch(ready, batchGroups)
		if len(batch) == 0 || readFailed.Load() {
			break
		}
		cps := make([]*CoursePlan, len(batch))
		for i, id := range batch {
			cp := byID[id]
			cps[i] = cp
			if len(b.pending[id]) > 0 || b.opts.RemoveUnseenMembers {
				audit, err := auditOwnership(ctx, st, cp, b.pending[id], b.state)
				if err != nil {
					return fail(err)
				}
				b.resolve(cp, audit)
			}
			b.releases(cp)
		}
		if ex != nil {
			if err := ex.members(ctx, cps); err != nil {
				return fail(err)
			}
		}
	}
	return <-found
}

// nextBatch takes the next courses whose users are known from ready: at
// least one, then all that are there, and more until they hold groups
// groups to add members to or ready is closed. None: ready is closed.
func (b *builder) nextBatch(ready <-chan int64, groups int) []int64 {
	id, ok := <-ready
	if !ok {
		return nil
	}
	batch := []int64{id}
	n := b.pendingGroups(id)
	for {
		select {
		case id, ok := <-ready:
			if !ok {
				return batch
			}
			batch = append(batch, id)
			n += b.pendingGroups(id)
			continue
		default:
		}
		if n >= groups {
			return batch
		}
		id, ok := <-ready
		if !ok {
			return batch
		}
		batch = append(batch, id)
		n += b.pendingGroups(id)
	}
}

// pendingGroups counts the groups of a course with members pending (they
// come group after group).
func (b *builder) pendingGroups(course int64) int {
	n := 0
	var last *object
	for _, p := range b.pending[course] {
		if p.group != last {
			n, last = n+1, p.group
		}
	}
	return n
}

// findUsers finds the Moodle users of the pending members and sends each
// course on ready once they are known: first every course that needs no
// read, then each course whose enrolments it reads, as the read ends.
// Users come from staging (members recorded before) and
// core_user_get_users_by_field, many ids per call across courses.
// Enrolments are read only for courses with many people new to them
// (readEnrolmentsAt), with load.enrol_missing for courses with anyone
// new, for courses with a user Moodle refused to look up, and for all
// courses with members to resolve when the service lacks
// core_user_get_users_by_field. Members already waiting are tried again
// on their own (see resolve), never by reading their course.
//
// It runs while the load writes (resolveMembers): it only reads
// b.pending, and writes b.users and the courses' enrolments in b.state
// before it sends their courses.
func (b *builder) findUsers(ctx context.Context, mc *moodle.Client, usersByField bool, ready chan<- int64) error {
	need := map[int64]bool{}
	unknown := map[string]bool{}
	for course, ps := range b.pending {
		unresolved, newcomers := false, 0
		for _, p := range ps {
			if b.users[p.m.CMISID] == 0 {
				unresolved = true
				unknown[p.m.CMISID] = true
			}
			if !b.knownEnrolled(course, p.m.CMISID) {
				newcomers++
			}
		}
		switch {
		case b.opts.Offline:
		case b.opts.EnrolMissing && newcomers > 0:
			// The plan must know who is to be enrolled.
			need[course] = true
		case newcomers >= readEnrolmentsAt:
			// Many people new to the course (a first load, a new
			// module): one read costs less than the adds a refusal
			// would waste.
			need[course] = true
		case unresolved && !usersByField:
			need[course] = true
		}
	}
	r := &reader{mc: mc, workers: b.opts.Concurrency, st: b.state, userField: b.opts.UserField}
	if usersByField && len(unknown) > 0 && !b.opts.Offline {
		ids := make([]string, 0, len(unknown))
		for id := range unknown {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		found, failed, err := r.usersByField(ctx, ids)
		if err != nil {
			return fmt.Errorf("look users up by %s: %w", b.opts.UserField, err)
		}
		for id, uid := range found {
			b.users[id] = uid
		}
		// Lookups Moodle refused: those courses' enrolments decide instead.
		for course, ps := range b.pending {
			for _, p := range ps {
				if failed[p.m.CMISID] {
					need[course] = true
					break
				}
			}
		}
	}
	var read []int64
	for _, cp := range b.plan.Courses {
		if need[cp.CourseID] {
			read = append(read, cp.CourseID)
		} else {
			ready <- cp.CourseID
		}
	}
	if err := r.enrolments(ctx, read, func(id int64) { ready <- id }); err != nil {
		return fmt.Errorf("read enrolments: %w", err)
	}
	return nil
}

// recallAdoptions: an object found in Moodle with cmissync's idnumber that
// staging does not record (an earlier run stopped before recording it, or
// the course was forgotten) is one cmissync adopted if the audit trail
// says so: it stays adopted, to be given back, never deleted.
func recallAdoptions(ctx context.Context, st *store.Store, p *Plan) error {
	for _, cp := range p.Courses {
		var found [2][]int64
		for _, it := range cp.Items {
			if it.Action == ActRecord && it.obj != nil && it.obj.toAdd && it.obj.live != nil && !it.obj.adopted {
				found[it.obj.kind] = append(found[it.obj.kind], it.obj.live.id)
			}
		}
		for k, ids := range found {
			if len(ids) == 0 {
				continue
			}
			adopted, err := st.AdoptedByAudit(ctx, cp.CourseID, kind(k).String(), ids)
			if err != nil {
				return err
			}
			for _, it := range cp.Items {
				if it.Action == ActRecord && it.obj != nil && it.obj.kind == kind(k) && it.obj.live != nil && adopted[it.obj.live.id] {
					it.obj.adopted = true
					it.Reason += "; cmissync adopted it from a teacher (audit trail): it is given back, never deleted"
				}
			}
		}
	}
	return nil
}

// withEnrolmentCourses adds to the staged courses, as empty ones, the
// courses where cmissync made enrolments and staging holds nothing else.
func withEnrolmentCourses(courses []*courseStaging, recorded map[int64][]store.Enrolment) []*courseStaging {
	have := map[int64]bool{}
	for _, cs := range courses {
		have[cs.id] = true
	}
	added := false
	for id := range recorded {
		if !have[id] {
			courses = append(courses, &courseStaging{id: id, members: map[objectKey][]*store.MemberRow{}, enrolmentsOnly: true})
			added = true
		}
	}
	if added {
		sort.Slice(courses, func(i, j int) bool { return courses[i].id < courses[j].id })
	}
	return courses
}

// auditOwnership looks up, for members the plan may find already in their
// group, whether cmissync's audit trail says it added them.
func auditOwnership(ctx context.Context, st *store.Store, cp *CoursePlan, pending []pendingMember, state *moodleState) (map[auditKey]bool, error) {
	var keys []store.AuditMember
	for _, p := range pending {
		if p.group.seen == nil {
			continue
		}
		for u := range state.members[p.group.seen.id] {
			keys = append(keys, store.AuditMember{IDNumber: p.group.idnumber, UserID: u})
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	added, err := st.AddedByAudit(ctx, cp.CourseID, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[auditKey]bool, len(added))
	for k := range added {
		out[auditKey{k.IDNumber, k.UserID}] = true
	}
	return out, nil
}
