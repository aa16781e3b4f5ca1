package load

import (
	"context"
	"fmt"
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
}

// anchor is an object whose no-op update clears its course's group cache.
type anchor struct {
	kind kind
	obj  *moodleObject
}

func newLoader(st *store.Store, mc *moodle.Client, opts Options, p *Plan, log logrus.FieldLogger, res *Result) *loader {
	l := &loader{st: st, mc: mc, opts: opts, log: log, plan: p, gate: newGate(p, opts.DryRun, opts.Progress), res: res, anchors: map[int64]*anchor{},
		enrolled: map[int64]map[int64]bool{}, now: opts.Now}
	for _, cp := range p.Courses {
		for _, objs := range [][]*object{cp.staging.groups, cp.staging.groupings} {
			for _, o := range objs {
				if o.live != nil && o.live.confirmed && !o.toDelete {
					l.anchor(o.kind, o.live)
				}
			}
		}
	}
	return l
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

// execute carries out the plan's items phase by phase, in this order:
// repairs of staging, groupings, groups, adoptions and renames, grouping
// assignments, enrolments, member additions (read back), member removals
// (read back), adopted objects given back, group deletions, grouping
// deletions, and last the enrolments released.
func (l *loader) execute(ctx context.Context) error {
	for _, cp := range l.plan.Courses {
		if cp.State == "inaccessible" || cp.State == "unreadable" {
			l.gate.failedIn(cp.CourseID, cp.State)
			if err := l.fail(ctx, nil, failureOfCourse(cp), nil); err != nil {
				return err
			}
		}
	}
	phases := []phase{
		{"record what Moodle holds", repair, l.repairs},
		{"create groupings", is(ActCreate, "grouping"), func(ctx context.Context, its []*Item) error { return l.create(ctx, kindGrouping, its) }},
		{"create groups", is(ActCreate, "group"), func(ctx context.Context, its []*Item) error { return l.create(ctx, kindGroup, its) }},
		{"retry creates refused by phantoms", func(*Item) bool { return false }, nil},
		{"adopt and rename", func(it *Item) bool { return it.Action == ActAdopt || it.Action == ActRename }, l.update},
		{"assign groups to groupings", is(ActAssign, ""), l.assign},
		{"enrol", is(ActEnrol, ""), l.enrol},
		{"add members", func(it *Item) bool { return it.Action == ActAdd || it.Action == ActRecord && it.Object == "member" }, l.addMembers},
		{"remove members", is(ActRemove, ""), l.removeMembers},
		{"give back adopted groups and groupings, archive groups", func(it *Item) bool { return it.Action == ActGiveBack || it.Action == ActArchive }, l.giveBack},
		{"delete groups", is(ActDelete, "group"), func(ctx context.Context, its []*Item) error { return l.delete(ctx, kindGroup, its) }},
		{"delete groupings", is(ActDelete, "grouping"), func(ctx context.Context, its []*Item) error { return l.delete(ctx, kindGrouping, its) }},
		{"suspend or unenrol", func(it *Item) bool { return it.Action == ActSuspend || it.Action == ActUnenrol }, l.release},
	}
	defer func() {
		if err := l.recordWaiting(context.WithoutCancel(ctx)); err != nil {
			l.log.WithError(err).Error("could not record the members waiting for enrolment")
		}
	}()
	for _, p := range phases {
		if p.run == nil {
			if err := l.retryPhantoms(ctx); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			continue
		}
		var items []*Item
		for _, cp := range l.plan.Courses {
			for _, it := range cp.Items {
				if p.pick(it) {
					items = append(items, it)
				}
			}
		}
		if len(items) == 0 {
			continue
		}
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
