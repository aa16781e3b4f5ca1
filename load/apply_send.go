package load

import (
	"context"
	"fmt"
	"sort"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
)

// Carrying out an apply's changes: one phase per kind of change, in the
// order creates, enrolments, additions to groups, removals from groups,
// roles removed, unenrolments, so that a line's user is enrolled before
// joining a group and keeps a role until the roles to remove go. Every
// change passes the gate (removals of all three kinds are deletions: none
// after a call failed on the way or a write was not found when read back)
// and is sent in batches that a refused call splits; every one is read
// back before it counts as done. A line whose change fails is not taken
// further.

// wave plans the lines of one wave against their courses' state and,
// unless it is a dry run, carries them out.
func (a *applier) wave(ctx context.Context, runs []*lineRun) error {
	if err := a.readCourses(ctx, runs); err != nil {
		return err
	}
	var ops []*applyOp
	for _, r := range runs {
		if !r.failed() {
			ops = append(ops, a.plan(r)...)
		}
	}
	if a.opts.DryRun {
		// In the order a run would carry them out.
		sort.SliceStable(ops, func(i, j int) bool { return ops[i].kind < ops[j].kind })
		for _, op := range ops {
			a.done(op)
			a.simulate(op)
		}
		return nil
	}
	// One gate for the whole file, so that a call that failed on the way
	// in one wave stops the deletions of the next; it sees each course's
	// operations as the items of a course plan.
	if a.gate == nil {
		a.gate = newGate(&Plan{}, false, nil)
	}
	for _, op := range ops {
		op.it = a.item(op)
		cp := a.gate.courses[op.it.CourseID]
		if cp == nil {
			cp = &CoursePlan{CourseID: op.it.CourseID, State: "ok"}
			a.gate.courses[cp.CourseID] = cp
		}
		cp.Items = append(cp.Items, op.it)
	}
	phases := []struct {
		kind opKind
		send func(context.Context, []*applyOp) error
	}{
		{opCreate, a.createGroups},
		{opEnrol, a.enrol},
		{opAdd, a.addMembers},
		{opRemove, a.removeMembers},
		{opUnassign, a.unassignRoles},
		{opUnenrol, a.unenrol},
	}
	for _, ph := range phases {
		var batch []*applyOp
		for _, op := range ops {
			if op.kind != ph.kind || op.run.failed() {
				continue // a line whose change failed is not taken further
			}
			if op.group != nil && op.group.id == 0 && op.kind != opCreate {
				a.failLine(op.run.out, codeNotDone, fmt.Sprintf("could not %s: the group was not created", op.desc()), "", nil)
				continue
			}
			batch = append(batch, op)
		}
		if err := ph.send(ctx, a.pass(batch)); err != nil {
			return err
		}
	}
	return nil
}

// item is what the gate sees of an operation. Removals of members and of
// roles, and unenrolments, are deletions.
func (a *applier) item(op *applyOp) *Item {
	r := op.run
	it := &Item{CourseID: r.course.id, UserID: r.user, CMISID: r.l.User, RoleID: op.role, Role: op.name,
		Reason: r.l.Where(a.file.Name) + ": " + op.desc(), evidence: "apply"}
	switch op.kind {
	case opCreate:
		it.Action, it.Object, it.UserID = ActCreate, "group", 0
	case opEnrol:
		it.Action, it.Object = ActEnrol, "enrolment"
	case opAdd:
		it.Action, it.Object = ActAdd, "member"
	case opRemove:
		it.Action, it.Object = ActRemove, "member"
	case opUnassign:
		it.Action, it.Object = ActRemove, "role"
	case opUnenrol:
		it.Action, it.Object = ActUnenrol, "enrolment"
	}
	if op.group != nil {
		it.Name, it.IDNumber, it.MoodleID = op.group.name, op.group.idnumber, op.group.id
	}
	return it
}

// pass takes operations through the gate; those it holds back fail their
// line with the gate's reason.
func (a *applier) pass(ops []*applyOp) []*applyOp {
	if len(ops) == 0 {
		return nil
	}
	items := make([]*Item, len(ops))
	for i, op := range ops {
		items[i] = op.it
	}
	passed := map[*Item]bool{}
	for _, it := range a.gate.pass(items) {
		passed[it] = true
	}
	var out []*applyOp
	for _, op := range ops {
		if passed[op.it] {
			out = append(out, op)
			continue
		}
		a.failLine(op.run.out, codeHeld, "held back: "+op.it.Held, "", nil)
	}
	return out
}

// done records an operation that happened (or, on a dry run, would).
func (a *applier) done(op *applyOp) {
	a.mu.Lock()
	defer a.mu.Unlock()
	op.run.out.Done = append(op.run.out.Done, op.desc())
	if op.it != nil {
		op.it.Outcome = "done"
	}
	c := &a.res.Counts
	switch op.kind {
	case opCreate:
		c.GroupsCreated++
	case opEnrol:
		c.Enrolled++
	case opAdd:
		c.Added++
	case opRemove:
		c.Removed++
	case opUnassign:
		c.RolesRemoved++
	case opUnenrol:
		c.Unenrolled++
	}
}

// simulate makes a dry run's course state what the operation would make
// it, for the lines of the next wave.
func (a *applier) simulate(op *applyOp) {
	cs, u := op.run.course, op.run.user
	switch op.kind {
	case opEnrol:
		if cs.roles[u] == nil {
			cs.roles[u] = map[int64]string{}
		}
		cs.roles[u][op.role] = op.name
	case opUnassign:
		delete(cs.roles[u], op.role)
	case opUnenrol:
		delete(cs.roles, u)
		for _, g := range cs.groups {
			delete(g.members, u)
		}
	case opAdd:
		op.group.members[u] = true
	case opRemove:
		delete(op.group.members, u)
	}
}

// auditActions are the object and action of each kind of operation in the
// audit trail. They are not the load's: a member apply adds is one added by
// hand, which the load's ownership from the audit (action "add") must not
// take for its own.
var auditActions = map[opKind][2]string{
	opCreate: {"group", "apply-create"}, opEnrol: {"enrolment", "apply-enrol"}, opAdd: {"member", "apply-add"},
	opRemove: {"member", "apply-remove"}, opUnassign: {"role", "apply-unassign"}, opUnenrol: {"enrolment", "apply-unenrol"},
}

// audit is the audit row of a done operation: FILE:LINE and what was done.
func (a *applier) audit(op *applyOp) store.AuditEntry {
	r := op.run
	e := store.AuditEntry{RunID: a.opts.RunID, CourseID: r.course.id, UserID: r.user, CMISID: r.l.User,
		Detail: r.l.Where(a.file.Name) + ": " + op.desc()}
	e.Object, e.Action = auditActions[op.kind][0], auditActions[op.kind][1]
	switch {
	case op.group != nil:
		e.Name, e.IDNumber, e.MoodleID = op.group.name, op.group.idnumber, op.group.id
	case op.name != "":
		e.Name = op.name
	}
	if op.kind == opCreate {
		e.UserID, e.CMISID = 0, ""
	}
	return e
}

// failed reports an operation Moodle refused or that got no answer: its
// line fails; a call that got no answer stops every deletion after it.
func (a *applier) failed(op *applyOp, function string, err error) {
	if moodle.IsTransient(err) {
		a.gate.failedOnTheWay(callError(err))
	}
	a.failLine(op.run.out, "", "could not "+op.desc(), function, err)
}

// notVerified reports a change Moodle accepted that reading back does not
// show: Moodle's state is then not what apply believes, so no deletion
// passes the gate after it.
func (a *applier) notVerified(op *applyOp, function, why string) {
	a.gate.failedOnTheWay("a write was not found when read back")
	a.failLine(op.run.out, codeNotVerified, fmt.Sprintf("could not %s: %s", op.desc(), why), function, nil)
}

// finish records the audit rows of the operations done.
func (a *applier) finish(ctx context.Context, done []*applyOp) error {
	rows := make([]store.AuditEntry, 0, len(done))
	for _, op := range done {
		a.done(op)
		rows = append(rows, a.audit(op))
	}
	return a.st.RecordAudit(ctx, rows)
}

// send sends operations in batches of at most capacity (refused batches
// split until the bad operation is alone) and returns those Moodle
// accepted.
func (a *applier) send(ctx context.Context, ops []*applyOp, vars int, function string, call func(context.Context, []*applyOp) error) ([]*applyOp, error) {
	var sent []*applyOp
	err := batches(ctx, a.opts.Concurrency, ops, a.mc.Capacity(vars),
		func(ctx context.Context, b []*applyOp) (struct{}, error) { return struct{}{}, call(ctx, b) },
		func(b []*applyOp, _ struct{}) error { sent = append(sent, b...); return nil },
		func(op *applyOp, err error) error { a.failed(op, function, err); return nil })
	return sent, err
}

// createGroups creates the groups lines name with gaddcreate or
// greplacecreate, as hand-made groups (no idnumber). The names were
// checked against a fresh listing, so Moodle should accept them; a refused
// call may still leave phantoms in Moodle's group cache, which is cleared
// (a no-op update of a group known to exist) before the halves are sent
// again, as the load does.
func (a *applier) createGroups(ctx context.Context, ops []*applyOp) error {
	return batches(ctx, a.opts.Concurrency, ops, a.mc.Capacity(moodle.VarsPerNewGroup),
		func(ctx context.Context, b []*applyOp) ([]moodle.Group, error) {
			if err := a.clearCaches(ctx, b); err != nil {
				return nil, err
			}
			gs := make([]moodle.Group, len(b))
			for i, op := range b {
				gs[i] = moodle.Group{CourseID: op.group.course, Name: op.group.name}
			}
			out, err := a.mc.CreateGroups(ctx, gs)
			if err != nil && !moodle.IsFatal(err) && !moodle.IsTransient(err) && ctx.Err() == nil {
				a.mu.Lock()
				for _, op := range b {
					op.run.course.dirty = true
				}
				a.mu.Unlock()
				if cerr := a.clearCaches(ctx, b); cerr != nil {
					return nil, cerr
				}
			}
			return out, err
		},
		func(b []*applyOp, out []moodle.Group) error {
			for i, op := range b {
				g := op.group
				g.id, g.create = out[i].ID, nil
				op.it.MoodleID = g.id
				a.mu.Lock()
				if cs := op.run.course; cs.anchor == nil {
					cs.anchor = g
				}
				a.mu.Unlock()
			}
			return a.finish(ctx, b)
		},
		func(op *applyOp, err error) error { a.failed(op, moodle.FnCreateGroups, err); return nil })
}

// clearCaches clears the group cache of each course of the batch that may
// hold phantoms, with the reference's no-op: an update of a group known to
// exist, with its current name. A course with no such group stays dirty: a
// create without an idnumber is not refused by a phantom (names are checked
// in the database), and creating one gives the course an anchor.
func (a *applier) clearCaches(ctx context.Context, b []*applyOp) error {
	seen := map[*applyCourse]bool{}
	for _, op := range b {
		cs := op.run.course
		a.mu.Lock()
		anchor, dirty := cs.anchor, cs.dirty
		a.mu.Unlock()
		if seen[cs] || !dirty || anchor == nil {
			continue
		}
		seen[cs] = true
		err := a.mc.UpdateGroups(ctx, []moodle.Update{{ID: anchor.id, Name: anchor.name}})
		switch {
		case err == nil:
			a.mu.Lock()
			cs.dirty = false
			a.mu.Unlock()
		case moodle.IsFatal(err) || ctx.Err() != nil:
			return err
		default:
			a.log.WithError(err).WithField("course", cs.id).Warn("could not clear the course's group cache")
		}
	}
	return nil
}

// pairsOfOps is the (group, user) pair of each operation.
func pairsOfOps(ops []*applyOp) []moodle.Pair {
	out := make([]moodle.Pair, len(ops))
	for i, op := range ops {
		out[i] = moodle.Pair{A: op.group.id, B: op.run.user}
	}
	return out
}

// addMembers adds users to groups and reads the groups back.
func (a *applier) addMembers(ctx context.Context, ops []*applyOp) error {
	sent, err := a.send(ctx, ops, moodle.VarsPerPair, moodle.FnAddMembers, func(ctx context.Context, b []*applyOp) error {
		return a.mc.AddMembers(ctx, pairsOfOps(b))
	})
	if err != nil {
		return err
	}
	return a.verifyMembers(ctx, sent, moodle.FnAddMembers, true)
}

// removeMembers removes users from groups and reads the groups back. A
// group or user Moodle no longer has takes the membership with it.
func (a *applier) removeMembers(ctx context.Context, ops []*applyOp) error {
	var sent []*applyOp
	err := batches(ctx, a.opts.Concurrency, ops, a.mc.Capacity(moodle.VarsPerPair),
		func(ctx context.Context, b []*applyOp) (struct{}, error) {
			return struct{}{}, a.mc.DeleteMembers(ctx, pairsOfOps(b))
		},
		func(b []*applyOp, _ struct{}) error { sent = append(sent, b...); return nil },
		func(op *applyOp, err error) error {
			switch moodle.ErrorCode(err) {
			case moodle.CodeInvalidRecord, moodle.CodeInvalidUser:
				sent = append(sent, op) // reading back confirms it is gone
				return nil
			}
			a.failed(op, moodle.FnDeleteMembers, err)
			return nil
		})
	if err != nil {
		return err
	}
	return a.verifyMembers(ctx, sent, moodle.FnDeleteMembers, false)
}

// verifyMembers reads back the groups of the operations sent: an addition
// counts once the user is in the group, a removal once they are not.
func (a *applier) verifyMembers(ctx context.Context, sent []*applyOp, function string, in bool) error {
	if len(sent) == 0 {
		return nil
	}
	groups := map[int64]*applyGroup{}
	for _, op := range sent {
		groups[op.group.id] = op.group
	}
	ids := make([]int64, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	sortInt64(ids)
	res, err := membersByID(ctx, a.mc, a.opts.Concurrency, ids, nil)
	if err != nil {
		return err
	}
	now := map[int64]map[int64]bool{}
	for _, id := range res.gone {
		now[id] = map[int64]bool{}
	}
	for _, g := range res.found {
		set := map[int64]bool{}
		for _, u := range g.users {
			set[u] = true
		}
		now[g.id] = set
		groups[g.id].members = set
	}
	var done []*applyOp
	for _, op := range sent {
		set, read := now[op.group.id]
		switch {
		case !read:
			a.notVerified(op, moodle.FnGroupMembers, "could not read the group's members back to check the change")
		case set[op.run.user] != in:
			a.notVerified(op, function, "Moodle answered success but reading the group back does not show the change (parameters lost to PHP max_input_vars? check moodle.max_input_vars)")
		default:
			done = append(done, op)
		}
	}
	return a.finish(ctx, done)
}

// enrol enrols users with the manual enrolment method in the role (an
// active enrolment); reading back, the user must hold the role.
func (a *applier) enrol(ctx context.Context, ops []*applyOp) error {
	return a.changeEnrolments(ctx, ops, moodle.VarsPerEnrolment, moodle.FnManualEnrolUsers,
		func(ctx context.Context, b []*applyOp) error {
			es := make([]moodle.Enrolment, len(b))
			for i, op := range b {
				es[i] = moodle.Enrolment{RoleID: op.role, UserID: op.run.user, CourseID: op.run.course.id}
			}
			return a.mc.EnrolUsers(ctx, es)
		},
		func(op *applyOp, roles map[int64]string, enrolled bool) (string, string) {
			if _, ok := roles[op.role]; !enrolled || !ok {
				return codeNotVerified, "Moodle answered success but the user is not enrolled with the role when read back (parameters lost to PHP max_input_vars? check moodle.max_input_vars)"
			}
			return "", ""
		})
}

// unassignRoles takes roles from users; reading back, a role still held is
// one an enrolment method that manages its roles gave (cohort sync, a meta
// link), which core_role_unassign_roles does not remove.
func (a *applier) unassignRoles(ctx context.Context, ops []*applyOp) error {
	return a.changeEnrolments(ctx, ops, moodle.VarsPerRoleUnassignment, moodle.FnUnassignRoles,
		func(ctx context.Context, b []*applyOp) error {
			us := make([]moodle.RoleUnassignment, len(b))
			for i, op := range b {
				us[i] = moodle.RoleUnassignment{RoleID: op.role, UserID: op.run.user, CourseID: op.run.course.id}
			}
			return a.mc.UnassignRoles(ctx, us)
		},
		func(op *applyOp, roles map[int64]string, _ bool) (string, string) {
			if _, ok := roles[op.role]; ok {
				return codeRoleManaged, "the user still holds the role when read back: an enrolment method that manages its roles (cohort sync, a meta link) gave it, and only that method takes it away"
			}
			return "", ""
		})
}

// unenrol removes users' manual enrolments (and with the last enrolment
// their roles and groups in the course); reading back, a user still
// enrolled has another enrolment method.
func (a *applier) unenrol(ctx context.Context, ops []*applyOp) error {
	return a.changeEnrolments(ctx, ops, moodle.VarsPerUnenrolment, moodle.FnManualUnenrolUsers,
		func(ctx context.Context, b []*applyOp) error {
			us := make([]moodle.Unenrolment, len(b))
			for i, op := range b {
				us[i] = moodle.Unenrolment{UserID: op.run.user, CourseID: op.run.course.id}
			}
			return a.mc.UnenrolUsers(ctx, us)
		},
		func(op *applyOp, _ map[int64]string, enrolled bool) (string, string) {
			if enrolled {
				return codeOtherEnrolment, "the user is still enrolled when read back: they are enrolled by another method too (self enrolment, cohort sync, ...), which cmissync does not change; remove it in the course's Participants page"
			}
			for _, g := range op.run.course.groups {
				delete(g.members, op.run.user)
			}
			return "", ""
		})
}

// changeEnrolments sends enrolment changes with call, in batches, and
// checks each one Moodle accepted against the course's enrolments read
// back (see verifyRoles).
func (a *applier) changeEnrolments(ctx context.Context, ops []*applyOp, vars int, function string,
	call func(context.Context, []*applyOp) error, check func(op *applyOp, roles map[int64]string, enrolled bool) (string, string)) error {
	sent, err := a.send(ctx, ops, vars, function, call)
	if err != nil {
		return err
	}
	return a.verifyRoles(ctx, sent, function, check)
}

// verifyRoles reads back the enrolments of the courses of the operations
// sent; check says, given the user's roles and whether they are enrolled,
// what is wrong with an operation: a code and why ("" when it happened).
// Only codeNotVerified leaves Moodle's state unknown.
func (a *applier) verifyRoles(ctx context.Context, sent []*applyOp, function string, check func(op *applyOp, roles map[int64]string, enrolled bool) (string, string)) error {
	if len(sent) == 0 {
		return nil
	}
	var courses []*applyCourse
	seen := map[*applyCourse]bool{}
	for _, op := range sent {
		if cs := op.run.course; !seen[cs] {
			seen[cs] = true
			courses = append(courses, cs)
		}
	}
	fresh := map[*applyCourse]map[int64]map[int64]string{}
	failed := map[*applyCourse]error{}
	err := forEach(ctx, a.opts.Concurrency, courses, func(ctx context.Context, cs *applyCourse) error {
		roles, err := a.readRoles(ctx, cs.id)
		if err != nil && (moodle.IsFatal(err) || ctx.Err() != nil) {
			return err
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if err != nil {
			failed[cs] = err
			return nil
		}
		fresh[cs], cs.roles = roles, roles
		return nil
	})
	if err != nil {
		return err
	}
	var done []*applyOp
	for _, op := range sent {
		cs := op.run.course
		if failed[cs] != nil {
			a.notVerified(op, moodle.FnEnrolledUsers, "could not read the course's enrolments back to check the change: "+failed[cs].Error())
			continue
		}
		roles, enrolled := fresh[cs][op.run.user]
		switch code, why := check(op, roles, enrolled); code {
		case "":
			done = append(done, op)
		case codeNotVerified:
			a.notVerified(op, function, why)
		default:
			a.failLine(op.run.out, code, fmt.Sprintf("could not %s: %s", op.desc(), why), function, nil)
		}
	}
	return a.finish(ctx, done)
}
