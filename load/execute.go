package load

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/report"
	"github.com/cmissync/cmissync/stage/store"
)

// loader carries out one plan.
type loader struct {
	st   *store.Store
	mc   *moodle.Client
	opts Options
	log  logrus.FieldLogger
	plan *Plan
	gate *gate

	mu  sync.Mutex // guards res, anchors, enrolled and waitingRows
	res *Result
	// enrolled caches the users enrolled in courses whose members Moodle
	// refused (read once a run); waitingRows are the staged memberships
	// found waiting this run.
	enrolled    map[int64]map[int64]bool
	waitingRows []int64
	now         func() time.Time
	// anchors holds, per course, an object that exists for sure (read by id
	// or just written): the no-op update that clears the course's group
	// cache is made on it.
	anchors map[int64]*anchor
	// verifying, while set, answers when the last wave of additions sent
	// is read back and recorded (settle).
	verifying chan error
}

// anchor is an object whose no-op update clears its course's group cache.
type anchor struct {
	kind kind
	obj  *moodleObject
}

func newLoader(st *store.Store, mc *moodle.Client, opts Options, log logrus.FieldLogger, res *Result) *loader {
	return &loader{st: st, mc: mc, opts: opts, log: log, res: res, anchors: map[int64]*anchor{}, enrolled: map[int64]map[int64]bool{}, now: opts.Now}
}

// begin starts carrying out a plan whose courses are planned and whose
// members are not resolved yet: courses nothing can be done in are
// reported, and the items planned so far (staging repairs, groupings and
// groups created, adopted, renamed and assigned) run through the
// constructive phases. The members of each course follow in members, as
// buildPlan resolves them; the deletions in finish, once the whole plan
// is built and its policies applied.
func (l *loader) begin(ctx context.Context, p *Plan) error {
	l.plan = p
	l.gate = newGate(p, l.opts.DryRun, l.opts.Progress)
	for _, cp := range p.Courses {
		for _, objs := range [][]*object{cp.staging.groups, cp.staging.groupings} {
			for _, o := range objs {
				if o.live != nil && o.live.confirmed && !o.toDelete {
					l.anchor(o.kind, o.live)
				}
			}
		}
	}
	for _, cp := range p.Courses {
		if cp.State == "inaccessible" || cp.State == "unreadable" {
			l.gate.failedIn(cp.CourseID, cp.State)
			if err := l.fail(ctx, nil, failureOfCourse(cp), nil); err != nil {
				return err
			}
		}
	}
	return l.run(ctx, l.build(true), p.Courses)
}

// members carries out the items planned since the last call in courses
// whose members buildPlan has just resolved: staging repairs, enrolments
// and additions. The last wave of additions is read back and recorded
// while the next courses are resolved (settle waits for it).
func (l *loader) members(ctx context.Context, courses []*CoursePlan) error {
	return l.run(ctx, l.build(false), courses)
}

// finish carries out the deletions, once the whole plan is built and its
// policies have held back what they hold: removals, groups given back or
// archived, deletions, and last the enrolments released.
func (l *loader) finish(ctx context.Context) error {
	if err := l.settle(); err != nil {
		return err
	}
	l.gate.allow(l.plan)
	for _, cp := range l.plan.Courses {
		cp.ran = 0 // every item is looked at again: only deletions are picked
	}
	return l.run(ctx, l.destroy(), l.plan.Courses)
}

// close waits for the last additions' read-back and records the members
// found waiting for enrolment, however the run ended.
func (l *loader) close(ctx context.Context) error {
	err := l.settle()
	if werr := l.recordWaiting(context.WithoutCancel(ctx)); werr != nil {
		l.log.WithError(werr).Error("could not record the members waiting for enrolment")
	}
	return err
}

// settle waits for the read-back and recording of the last wave of
// additions sent.
func (l *loader) settle() error {
	if l.verifying == nil {
		return nil
	}
	err := <-l.verifying
	l.verifying = nil
	return err
}

// anchor records an object that exists for sure; groups are preferred (a
// no-op update of a group sends only its name).
func (l *loader) anchor(k kind, m *moodleObject) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.anchors[m.course]; a == nil || a.kind == kindGrouping && k == kindGroup {
		l.anchors[m.course] = &anchor{k, m}
	}
}

// phase is one step of the load, over the items of one action.
type phase struct {
	name string
	pick func(*Item) bool
	run  func(context.Context, []*Item) error
}

func is(action, object string) func(*Item) bool {
	return func(it *Item) bool { return it.Action == action && (object == "" || it.Object == object) }
}

// The phases of the load run in this order: repairs of staging,
// groupings, groups, adoptions and renames, grouping assignments,
// enrolments, member additions (read back) (build); member removals (read
// back), adopted objects given back, group deletions, grouping deletions,
// and last the enrolments released (destroy). Nothing build picks deletes
// anything in Moodle, so it runs course by course as the plan resolves
// members, while destroy waits for the whole plan.

// build returns the constructive phases; objects adds the retry of creates
// refused by phantoms, which only the first run over the plan's objects
// needs.
func (l *loader) build(objects bool) []phase {
	phases := []phase{
		{"record what Moodle holds", repair, l.repairs},
		{"create groupings", is(ActCreate, "grouping"), func(ctx context.Context, its []*Item) error { return l.create(ctx, kindGrouping, its) }},
		{"create groups", is(ActCreate, "group"), func(ctx context.Context, its []*Item) error { return l.create(ctx, kindGroup, its) }},
		{"retry creates refused by phantoms", nil, nil},
		{"adopt and rename", func(it *Item) bool { return it.Action == ActAdopt || it.Action == ActRename }, l.update},
		{"assign groups to groupings", is(ActAssign, ""), l.assign},
		{"enrol", is(ActEnrol, ""), l.enrol},
		{"add members", func(it *Item) bool { return it.Action == ActAdd || it.Action == ActRecord && it.Object == "member" }, l.addMembers},
	}
	if !objects {
		phases = slices.DeleteFunc(phases, func(p phase) bool { return p.run == nil })
	}
	return phases
}

// destroy returns the phases that delete, once the plan is whole.
func (l *loader) destroy() []phase {
	return []phase{
		{"remove members", is(ActRemove, ""), l.removeMembers},
		{"give back adopted groups and groupings, archive groups", func(it *Item) bool { return it.Action == ActGiveBack || it.Action == ActArchive }, l.giveBack},
		{"delete groups", is(ActDelete, "group"), func(ctx context.Context, its []*Item) error { return l.delete(ctx, kindGroup, its) }},
		{"delete groupings", is(ActDelete, "grouping"), func(ctx context.Context, its []*Item) error { return l.delete(ctx, kindGrouping, its) }},
		{"suspend or unenrol", func(it *Item) bool { return it.Action == ActSuspend || it.Action == ActUnenrol }, l.release},
	}
}

// run carries out phases over the items of courses not run yet (each
// course's items from cp.ran on), phase by phase.
func (l *loader) run(ctx context.Context, phases []phase, courses []*CoursePlan) error {
	// A copy: the gate holds back deletions as they come, which takes
	// them out of cp.Items.
	fresh := make([][]*Item, len(courses))
	for i, cp := range courses {
		fresh[i] = slices.Clone(cp.Items[cp.ran:])
		cp.ran = len(cp.Items)
	}
	for _, p := range phases {
		if p.run == nil {
			if err := l.retryPhantoms(ctx); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			continue
		}
		var items []*Item
		for _, its := range fresh {
			for _, it := range its {
				if p.pick(it) {
					items = append(items, it)
				}
			}
		}
		if len(items) == 0 {
			continue
		}
		l.gate.expect(items)
		start := time.Now()
		if err := p.run(ctx, items); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		l.log.WithFields(logrus.Fields{"phase": p.name, "items": len(items), "seconds": time.Since(start).Seconds()}).Debug("load phase done")
	}
	return nil
}

// repair picks the items that only bring staging in line with Moodle
// (members already in their group are recorded with the additions).
func repair(it *Item) bool {
	switch it.Action {
	case ActRecord:
		return it.Object != "member"
	case ActKeepName, ActForget, ActPark, ActRetire, ActRespect, ActWait, ActFreeze, ActThaw:
		return true
	}
	return false
}

// repairs records in staging what Moodle already holds: objects found
// again, names kept, objects and memberships already gone, objects parked,
// courses retired, removals respected, members waiting for enrolment.
func (l *loader) repairs(ctx context.Context, items []*Item) error {
	var forgetMembers []int64
	var forgetAudit []store.AuditEntry
	var respect []int64
	var respectAudit []store.AuditEntry
	for _, it := range items {
		o := it.obj
		var err error
		switch it.Action {
		case ActRetire:
			err = l.st.RetireCourse(ctx, it.CourseID, []store.AuditEntry{l.audit(it, "retire", it.Reason)})
			if err == nil {
				// Enrolments of a deleted course went with it.
				err = l.st.ForgetEnrolments(ctx, []store.Enrolment{{CourseID: it.CourseID}}, nil)
			}
			l.count(&l.res.CoursesRetired, 1)
			l.notice(Notice{CourseID: it.CourseID, Message: fmt.Sprintf("course %d no longer exists in Moodle: its mappings were set to RMV and its staged groups forgotten; it comes back if its mappings are set to ADD again", it.CourseID)})
		case ActRecord:
			err = l.st.RecordCreated(ctx, o.kind.table(), []store.Created{{RowID: o.row, MoodleID: o.live.id, Name: moodleName(o.live.name), Adopted: o.adopted}},
				[]store.AuditEntry{l.audit(it, "found", it.Reason)})
			o.moodleID = o.live.id
			l.count(&l.res.Found, 1)
			if it.Reason != reasonSameName {
				l.notice(Notice{CourseID: it.CourseID, Object: it.IDNumber, Message: fmt.Sprintf("%s %q (id %d): %s", o.kind, it.Name, o.live.id, it.Reason)})
			}
		case ActFreeze, ActThaw:
			reason := ""
			if it.Action == ActFreeze {
				reason = it.Reason
			}
			err = l.st.SetFrozen(ctx, it.CourseID, reason, []store.AuditEntry{l.audit(it, it.Action, it.Reason)})
			l.notice(Notice{CourseID: it.CourseID, Message: fmt.Sprintf("course %d %s: %s", it.CourseID, map[string]string{ActFreeze: "is frozen", ActThaw: "thawed"}[it.Action], it.Reason)})
		case ActKeepName:
			err = l.st.SetRenameFlag(ctx, o.kind.table(), o.row, false, moodleName(o.live.name))
			l.notice(Notice{CourseID: it.CourseID, Object: it.IDNumber, Message: fmt.Sprintf("%s %q: %s", o.kind, it.Name, it.Reason)})
		case ActForget:
			switch {
			case it.member != nil:
				forgetMembers = append(forgetMembers, it.member.ID)
				forgetAudit = append(forgetAudit, l.audit(it, "forget", it.Reason))
			case o.kind == kindGroup:
				err = l.st.DropGroups(ctx, []store.GroupRow{{ID: o.row, CourseID: o.course, ModuleCode: o.module, GroupCode: o.group}},
					[]store.AuditEntry{l.audit(it, "forget", it.Reason)})
			default:
				err = l.st.DropGroupings(ctx, []int64{o.row}, []store.AuditEntry{l.audit(it, "forget", it.Reason)})
			}
		case ActPark:
			err = l.st.Park(ctx, o.kind.table(), o.row, it.Reason)
			l.notice(Notice{CourseID: it.CourseID, Object: it.IDNumber, Message: fmt.Sprintf("%s %q (id %d): %s", o.kind, it.Name, o.moodleID, it.Reason)})
		case ActRespect:
			respect = append(respect, it.member.ID)
			respectAudit = append(respectAudit, l.audit(it, "respect", it.Reason))
			l.notice(Notice{CourseID: it.CourseID, Object: it.IDNumber, Message: fmt.Sprintf("%s %s: %s", it.Role, it.CMISID, it.Reason)})
		case ActWait:
			l.wait(it, "")
			continue
		}
		if err != nil {
			return err
		}
		it.Outcome = "done"
	}
	if err := l.st.DropMembers(ctx, forgetMembers, forgetAudit); err != nil {
		return err
	}
	return l.st.RespectRemovals(ctx, respect, respectAudit)
}

// failureOfCourse reports a course nothing could be done in.
func failureOfCourse(cp *CoursePlan) report.Failure {
	return report.Failure{CourseID: int(cp.CourseID), Function: "(course)", ErrorCode: "course" + cp.State, Exception: "cmissync", Message: cp.Problem}
}
