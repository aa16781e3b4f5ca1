package load

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cmissync/cmissync/load/enrolsync"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
)

// Moodle's state of a course as apply needs it (enrolments with roles,
// groups with members, which groups cmissync owns), and the plan of each
// line against it.

// applyCourse is what apply knows of a course: read before its first wave
// and kept up to date with every change made (or, on a dry run, planned).
type applyCourse struct {
	id    int64
	label string
	// err: the course could not be read, for problem; its lines fail.
	err     error
	problem string
	read    bool
	// roles holds, per enrolled user, the roles they hold (id to shortname);
	// a user without an entry is not enrolled.
	roles map[int64]map[int64]string
	// groups by name key; groupsRead tells whether they were read.
	groupsRead bool
	groups     map[string]*applyGroup
	// anchor is a group known to exist, whose no-op update clears the
	// course's group cache; dirty: the cache may hold phantoms.
	anchor *applyGroup
	dirty  bool
}

// applyGroup is a group of a course: read by id, or to be created.
type applyGroup struct {
	id       int64 // 0 until created
	course   int64
	name     string // as in Moodle, unescaped
	idnumber string
	owned    bool
	// members are the user ids in the group.
	members map[int64]bool
	// create is the operation that makes it, when it does not exist yet.
	create *applyOp
}

func (g *applyGroup) label() string {
	if g.id == 0 {
		return strconv.Quote(g.name)
	}
	return fmt.Sprintf("%q (id %d)", g.name, g.id)
}

func (cs *applyCourse) member(g *applyGroup, user int64) bool { return g.members[user] }

// userGroups are the existing groups the user is in, by name.
func (cs *applyCourse) userGroups(user int64) []*applyGroup {
	var out []*applyGroup
	for _, g := range cs.groups {
		if cs.member(g, user) {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// readCourses reads what the lines of a wave need of their courses and
// was not read for an earlier wave: the enrolments with roles, and for
// lines with groups or that unenrol, the groups with their members. Which
// groups cmissync owns comes from staging.
func (a *applier) readCourses(ctx context.Context, wave []*lineRun) error {
	needGroups := map[*applyCourse]bool{}
	var list []*applyCourse
	for _, r := range wave {
		cs := r.course
		groups := (r.l.GroupCmd != "" || r.l.Cmd == enrolsync.Del) && !cs.groupsRead
		if cs.err != nil || cs.read && !groups {
			continue
		}
		if _, ok := needGroups[cs]; !ok {
			list = append(list, cs)
		}
		needGroups[cs] = needGroups[cs] || groups
	}
	if len(list) == 0 {
		return nil
	}
	if a.owned == nil {
		if err := a.readOwned(ctx); err != nil {
			return err
		}
	}
	return forEach(ctx, a.opts.Concurrency, list, func(ctx context.Context, cs *applyCourse) error {
		var err error
		if !cs.read {
			var roles map[int64]map[int64]string
			if roles, err = a.readRoles(ctx, cs.id); err == nil {
				cs.roles, cs.read = roles, true
			}
		}
		if err == nil && needGroups[cs] {
			err = a.readGroups(ctx, cs)
		}
		switch {
		case err == nil:
			return nil
		case moodle.IsFatal(err) || ctx.Err() != nil:
			return err
		}
		cs.err, cs.problem = err, courseProblem(err)
		return nil
	})
}

// courseProblem names why a course could not be read.
func courseProblem(err error) string {
	switch moodle.ErrorCode(err) {
	case moodle.CodeCourseContext, moodle.CodeRequireLogin:
		return "cmissync's web-service user cannot open the course (it needs moodle/course:view, moodle/course:managegroups, enrol/manual:enrol and moodle/role:assign there)"
	case moodle.CodeInvalidRecord:
		return "the course no longer exists in Moodle"
	}
	return "could not read the course's enrolments and groups"
}

// readOwned reads from staging the groups cmissync owns in the file's
// courses.
func (a *applier) readOwned(ctx context.Context) error {
	a.owned = map[int64]map[int64]bool{}
	var ids []int64
	for id := range a.courses {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil
	}
	cur, err := a.st.StagedGroups(ctx, store.Filter{Courses: ids})
	if err != nil {
		return fmt.Errorf("read cmissync's groups from staging: %w", err)
	}
	defer cur.Close()
	for cur.Next() {
		g := cur.Value()
		if g.MoodleID == 0 {
			continue
		}
		if a.owned[g.CourseID] == nil {
			a.owned[g.CourseID] = map[int64]bool{}
		}
		a.owned[g.CourseID][g.MoodleID] = true
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read cmissync's groups from staging: %w", err)
	}
	return nil
}

// readRoles reads who is enrolled in a course, with their roles.
func (a *applier) readRoles(ctx context.Context, course int64) (map[int64]map[int64]string, error) {
	users, err := a.mc.EnrolledUsersWith(ctx, course, moodle.EnrolledOptions{Fields: []string{"roles"}})
	if err != nil {
		return nil, err
	}
	out := make(map[int64]map[int64]string, len(users))
	for _, u := range users {
		rs := map[int64]string{}
		for _, r := range u.Roles {
			rs[r.ID] = r.ShortName
		}
		out[u.ID] = rs
	}
	return out, nil
}

// readGroups lists the course's groups and reads their members by id. The
// read by id also confirms each group: one the listing shows and the read
// says does not exist is a phantom of Moodle's group cache, and is left
// out (a create of its name goes ahead: names are checked in the database).
func (a *applier) readGroups(ctx context.Context, cs *applyCourse) error {
	listed, err := a.mc.CourseGroups(ctx, cs.id)
	if err != nil {
		return err
	}
	byID := map[int64]moodle.Group{}
	var ids []int64
	for _, g := range listed {
		byID[g.ID] = g
		ids = append(ids, g.ID)
	}
	res, err := membersByID(ctx, a.mc, a.opts.Concurrency, ids, nil)
	if err != nil {
		return err
	}
	if len(res.failed) > 0 {
		return fmt.Errorf("read the members of the course's %d groups: %w", len(ids), errors.Join(slices.Collect(maps.Values(res.failed))...))
	}
	if len(res.denied) > 0 {
		return &moodle.Error{Function: moodle.FnGroupMembers, ErrorCode: moodle.CodeCourseContext, Exception: "cmissync", Message: "Moodle refused to read the course's groups"}
	}
	cs.groups, cs.groupsRead = map[string]*applyGroup{}, true
	cs.dirty = len(res.gone) > 0
	sort.Slice(res.found, func(i, j int) bool { return res.found[i].id < res.found[j].id })
	for _, m := range res.found {
		g := byID[m.id]
		ag := &applyGroup{id: g.ID, course: cs.id, name: moodleName(g.Name), idnumber: g.IDNumber,
			owned: a.owned[cs.id][g.ID] || stage.IsOwnedIDNumber(g.IDNumber), members: map[int64]bool{}}
		cs.groups[nameKey(ag.name)] = ag
		for _, u := range m.users {
			ag.members[u] = true
		}
		if cs.anchor == nil {
			cs.anchor = ag
		}
	}
	return nil
}

// opKind is what an operation does; the order is the order of the phases.
type opKind int

const (
	opCreate   opKind = iota // create a group
	opEnrol                  // enrol with a role (manual enrolment)
	opAdd                    // add to a group
	opRemove                 // remove from a group
	opUnassign               // remove a role
	opUnenrol                // remove the manual enrolment
)

// applyOp is one change a line makes.
type applyOp struct {
	kind  opKind
	run   *lineRun
	it    *Item // what the gate sees
	group *applyGroup
	role  int64
	name  string // the role's shortname, for people
}

// desc says what the operation does, for people; a group created since
// planning is named with its new id.
func (op *applyOp) desc() string {
	switch op.kind {
	case opCreate:
		return "create group " + op.group.label()
	case opEnrol:
		return "enrol as " + roleText(op.role, op.name)
	case opAdd:
		return "add to group " + op.group.label()
	case opRemove:
		return "remove from group " + op.group.label()
	case opUnassign:
		return "remove role " + roleText(op.role, op.name)
	}
	return "unenrol (manual enrolment)"
}

func roleText(id int64, name string) string {
	if name == "" || name == strconv.FormatInt(id, 10) {
		return fmt.Sprintf("role %d", id)
	}
	return fmt.Sprintf("%s (role %d)", name, id)
}

// plan works out the line's changes against the course's state, or fails
// it; nothing of a failed line is planned.
func (a *applier) plan(r *lineRun) []*applyOp {
	cs := r.course
	if cs.err != nil {
		a.failLine(r.out, codeCourse, cs.problem, moodle.FnEnrolledUsers, cs.err)
		return nil
	}
	l := r.l
	var ops []*applyOp
	held := map[int64]string{}
	cur, enrolled := cs.roles[r.user]
	for id, n := range cur {
		held[id] = n
	}
	note := func(s string) { r.out.Notes = append(r.out.Notes, s) }
	switch l.Cmd {
	case enrolsync.Add, enrolsync.Shift:
		if _, has := held[r.roleID]; enrolled && has {
			note("already enrolled as " + roleText(r.roleID, r.roleName))
		} else {
			ops = append(ops, &applyOp{kind: opEnrol, role: r.roleID, name: r.roleName})
			held[r.roleID], enrolled = r.roleName, true
		}
		if l.Cmd == enrolsync.Shift {
			for _, id := range sortedRoles(held) {
				if id != r.roleID {
					ops = append(ops, &applyOp{kind: opUnassign, role: id, name: held[id]})
					delete(held, id)
				}
			}
		}
	case enrolsync.Del:
		var remove []int64
		switch {
		case r.roleName == "":
			remove = sortedRoles(held)
		default:
			id := r.roleID
			if id == 0 {
				for hid, n := range held {
					if strings.EqualFold(n, r.roleName) {
						id = hid
					}
				}
			}
			if id == 0 {
				a.failLine(r.out, codeUnknownRole, a.unknownRole(l.Role), "", nil)
				return nil
			}
			if _, has := held[id]; has {
				remove = []int64{id}
			} else if enrolled {
				note(fmt.Sprintf("does not hold role %s", roleText(id, r.roleName)))
			}
		}
		if !enrolled {
			note("not enrolled in the course")
		}
		for _, id := range remove {
			ops = append(ops, &applyOp{kind: opUnassign, role: id, name: held[id]})
			delete(held, id)
		}
		if enrolled && len(held) == 0 {
			if !cs.groupsRead {
				a.failLine(r.out, codeCourse, "the course's groups were not read", "", nil)
				return nil
			}
			for _, g := range cs.userGroups(r.user) {
				note("unenrolling also takes the user out of group " + g.label())
				if g.owned {
					if !a.opts.Force {
						a.failLine(r.out, codeOwned, fmt.Sprintf("unenrolling removes the user from group %s, which is owned by the CMIS sync; change CMIS instead (or rerun with --force)", g.label()), "", nil)
						return nil
					}
					r.warn(fmt.Sprintf("--force: unenrolling removes the user from group %s, owned by the CMIS sync; the nightly load may add them back (load.on_member_removed)", g.label()))
				}
			}
			ops = append(ops, &applyOp{kind: opUnenrol})
			enrolled = false
		}
	}
	if l.GroupCmd != "" {
		gops, ok := a.planGroups(r, enrolled)
		if !ok {
			return nil
		}
		ops = append(ops, gops...)
	}
	for _, op := range ops {
		op.run = r
	}
	return ops
}

func sortedRoles(m map[int64]string) []int64 { return slices.Sorted(maps.Keys(m)) }

// planGroups plans the line's group verb: the groups to create, join and,
// for greplace, leave.
func (a *applier) planGroups(r *lineRun, enrolled bool) ([]*applyOp, bool) {
	cs, l := r.course, r.l
	if !enrolled {
		a.failLine(r.out, codeNotEnrolled, "the user is not enrolled in the course (after this line's "+l.Cmd+"): only enrolled users may be in its groups", "", nil)
		return nil, false
	}
	if !cs.groupsRead {
		a.failLine(r.out, codeCourse, "the course's groups were not read", "", nil)
		return nil, false
	}
	create := l.GroupCmd == enrolsync.GAddCreate || l.GroupCmd == enrolsync.GReplaceCreate
	var ops []*applyOp
	targets := map[*applyGroup]bool{}
	var order []*applyGroup
	newGroups := map[string]*applyGroup{} // created by this line
	for _, name := range l.Groups {
		if n := len([]rune(name)); n > maxGroupName {
			a.failLine(r.out, enrolsync.CodeBadLine, fmt.Sprintf("group name %q is %d characters long; Moodle allows %d", name, n, maxGroupName), "", nil)
			return nil, false
		}
		k := nameKey(name)
		g := cs.groups[k]
		if g == nil {
			g = newGroups[k]
		}
		if g == nil {
			if !create {
				a.failLine(r.out, codeUnknownGroup, fmt.Sprintf("the course has no group named %q (%s creates missing groups)", name, createVerb(l.GroupCmd)), "", nil)
				return nil, false
			}
			g = &applyGroup{course: cs.id, name: name, members: map[int64]bool{}}
			g.create = &applyOp{kind: opCreate, group: g}
			newGroups[k] = g
			ops = append(ops, g.create)
		}
		if !targets[g] {
			targets[g] = true
			order = append(order, g)
		}
	}
	for _, g := range order {
		if cs.member(g, r.user) {
			r.out.Notes = append(r.out.Notes, "already in group "+g.label())
			continue
		}
		if g.owned {
			switch {
			case a.opts.OwnedAddsUndone && !a.opts.Force:
				a.failLine(r.out, codeOwned, fmt.Sprintf("group %s is owned by the CMIS sync, which removes members CMIS does not list (load.remove_members_not_in_cmis); change CMIS instead (or rerun with --force)", g.label()), "", nil)
				return nil, false
			case a.opts.OwnedAddsUndone:
				r.warn(fmt.Sprintf("--force: group %s is owned by the CMIS sync, whose next load removes members CMIS does not list", g.label()))
			default:
				r.warn(fmt.Sprintf("group %s is owned by the CMIS sync; this member counts as added by hand, and the nightly load never removes them", g.label()))
			}
		}
		ops = append(ops, &applyOp{kind: opAdd, group: g})
	}
	if l.GroupCmd == enrolsync.GReplace || l.GroupCmd == enrolsync.GReplaceCreate {
		for _, g := range cs.userGroups(r.user) {
			if targets[g] {
				continue
			}
			if g.owned {
				if !a.opts.Force {
					a.failLine(r.out, codeOwned, fmt.Sprintf("%s would remove the user from group %s, which is owned by the CMIS sync; change CMIS instead (or rerun with --force)", l.GroupCmd, g.label()), "", nil)
					return nil, false
				}
				r.warn(fmt.Sprintf("--force: removed from group %s, owned by the CMIS sync; the nightly load may add them back (load.on_member_removed)", g.label()))
			}
			ops = append(ops, &applyOp{kind: opRemove, group: g})
		}
	}
	// The line's new groups become the course's, for the lines after it.
	for k, g := range newGroups {
		cs.groups[k] = g
	}
	return ops, true
}

// maxGroupName is Moodle's limit on a group's name, in characters.
const maxGroupName = 254

func createVerb(gcmd string) string {
	if gcmd == enrolsync.GReplace {
		return enrolsync.GReplaceCreate
	}
	return enrolsync.GAddCreate
}
