package moodlesim

// Transactions and every change to the site's data.
//
// A web-service write call (and LoadSeed) runs as a transaction on the live
// state: each change below records its inverse in an undo journal, commit
// drops the journal and rollback replays it backwards. A call therefore costs
// what it touches, not the size of the site. Outside this file nothing
// assigns to a state's maps, to the sets they hold or to a stored record's
// fields, except in the edit functions given to editGroup and editGrouping
// (and the id counters, see idCounters): a change made elsewhere would not be
// undone by a rollback.
//
// Moodle's group cache (cache.go) is the one thing a rollback must not
// restore: each change to a course's groups or groupings below drops the
// course's cache entry as it happens, and the inverses leave the cache
// alone. Membership changes do not touch the cache, as in Moodle.

// begin starts a transaction: from now on every change records its inverse.
func (st *state) begin() {
	if st.inTx {
		panic("moodlesim: nested transaction")
	}
	st.inTx, st.undo = true, nil
}

// commit ends the transaction and keeps its changes.
func (st *state) commit() { st.inTx, st.undo = false, nil }

// rollback undoes every change of the transaction in progress, newest first,
// and ends it; outside a transaction it does nothing, so that it can be
// deferred and follow a commit. The id counters keep their values, as
// InnoDB's auto-increment counters do.
func (st *state) rollback() {
	if !st.inTx {
		return
	}
	undo := st.undo
	st.inTx, st.undo = false, nil // the inverses themselves record nothing
	for i := len(undo) - 1; i >= 0; i-- {
		undo[i]()
	}
}

// record adds the inverse of a change just made to the journal of the
// transaction in progress, if any.
func (st *state) record(inverse func()) {
	if st.inTx {
		st.undo = append(st.undo, inverse)
	}
}

// addTo adds v to the set idx[k], creating the set if needed.
func addTo(idx map[int]map[int]bool, k, v int) {
	m := idx[k]
	if m == nil {
		m = map[int]bool{}
		idx[k] = m
	}
	m[v] = true
}

// removeFrom removes v from the set idx[k] and drops the set once empty.
func removeFrom(idx map[int]map[int]bool, k, v int) {
	if m := idx[k]; m != nil {
		delete(m, v)
		if len(m) == 0 {
			delete(idx, k)
		}
	}
}

// newGroupID takes the next group id. Counters are not journaled: a rolled
// back call does not give its ids back.
func (st *state) newGroupID() int {
	id := st.nextGroup
	st.nextGroup++
	return id
}

// newGroupingID takes the next grouping id, as newGroupID does.
func (st *state) newGroupingID() int {
	id := st.nextGrouping
	st.nextGrouping++
	return id
}

// insertCourse stores a new course record.
func (st *state) insertCourse(c *courseRec) {
	st.courses[c.id] = c
	st.record(func() { delete(st.courses, c.id) })
}

// editCourse applies edit to a course's fields. edit must not change its id.
func (st *state) editCourse(c *courseRec, edit func(c *courseRec)) {
	old := *c
	edit(c)
	st.record(func() { *c = old })
}

// insertUser stores a new user record.
func (st *state) insertUser(u *userRec) {
	st.users[u.id] = u
	st.userIndex = nil
	st.record(func() { delete(st.users, u.id); st.userIndex = nil })
}

// putEnrolment stores a user's enrolment in a course (nil removes it). e
// must be a new value, never one that is stored: stored enrolments are not
// changed in place, so the inverse only puts the old pointer back.
func (st *state) putEnrolment(courseID, userID int, e *enrolment) {
	old := st.enrol[courseID][userID]
	setEnrolment(st.enrol, courseID, userID, e)
	st.record(func() { setEnrolment(st.enrol, courseID, userID, old) })
}

// setEnrolment sets idx[courseID][userID] to e, deleting it (and the
// course's map once empty) when e is nil.
func setEnrolment(idx map[int]map[int]*enrolment, courseID, userID int, e *enrolment) {
	m := idx[courseID]
	if e == nil {
		delete(m, userID)
		if len(m) == 0 {
			delete(idx, courseID)
		}
		return
	}
	if m == nil {
		m = map[int]*enrolment{}
		idx[courseID] = m
	}
	m[userID] = e
}

// enrolUser is enrol_plugin::enrol_user(): it enrols a user in a course
// through method, or updates the suspension and times of the user's
// enrolment by that method, and adds roles to those the user holds in the
// course. Enrolling again as things are changes nothing.
func (st *state) enrolUser(courseID, userID int, method string, ue ueRec, roles ...int) {
	old := st.enrol[courseID][userID]
	if old != nil {
		cur, ok := old.methods[method]
		same := ok && cur == ue
		for _, r := range roles {
			same = same && old.roles[r]
		}
		if same {
			return
		}
	}
	e := old.clone()
	e.methods[method] = ue
	for _, r := range roles {
		e.roles[r] = true
	}
	st.putEnrolment(courseID, userID, e)
}

// unenrolMethod is enrol_plugin::unenrol_user(): it removes the user's
// enrolment by method (nothing when there is none). When that was the
// user's last enrolment in the course, the user's roles there and
// memberships in the course's groups go too; otherwise they stay (the
// manual method's roles carry no component, so nothing removes them).
func (st *state) unenrolMethod(courseID, userID int, method string) {
	old := st.enrol[courseID][userID]
	if old == nil {
		return
	}
	if _, ok := old.methods[method]; !ok {
		return
	}
	if len(old.methods) == 1 {
		st.unenrol(courseID, userID)
		return
	}
	e := old.clone()
	delete(e.methods, method)
	st.putEnrolment(courseID, userID, e)
}

// unenrol removes every enrolment of a user in a course, the user's roles
// there and memberships in the course's groups.
func (st *state) unenrol(courseID, userID int) {
	if st.enrolled(courseID, userID) {
		st.putEnrolment(courseID, userID, nil)
	}
	for gid := range st.courseGroups[courseID] {
		st.removeMember(st.groups[gid], userID)
	}
}

// deleteCourse deletes a course with its groups, groupings, memberships and
// enrolments.
func (st *state) deleteCourse(id int) {
	for _, gid := range sortedKeys(st.courseGroups[id]) {
		st.deleteGroup(gid)
	}
	for _, gid := range sortedKeys(st.courseGroupings[id]) {
		st.deleteGrouping(gid)
	}
	if users := st.enrol[id]; users != nil {
		delete(st.enrol, id)
		st.record(func() { st.enrol[id] = users })
	}
	if c := st.courses[id]; c != nil {
		delete(st.courses, id)
		st.record(func() { st.courses[id] = c })
	}
	st.invalidateGroupData(id)
}

// insertGroup stores a new group record, members included.
func (st *state) insertGroup(g *groupRec) {
	st.groups[g.id] = g
	addTo(st.courseGroups, g.courseid, g.id)
	st.invalidateGroupData(g.courseid)
	st.record(func() {
		delete(st.groups, g.id)
		removeFrom(st.courseGroups, g.courseid, g.id)
	})
}

// editGroup applies edit to a group's fields. edit must not change the
// group's id, course or member set (use addMember and removeMember).
func (st *state) editGroup(g *groupRec, edit func(g *groupRec)) {
	old := *g
	edit(g)
	st.invalidateGroupData(g.courseid)
	st.record(func() { *g = old })
}

// deleteGroup is groups_delete_group(): grouping links, members, the group.
// The record keeps its members, so that a rollback can put it back as is.
func (st *state) deleteGroup(id int) {
	g := st.groups[id]
	if g == nil {
		return
	}
	links := st.groupGroupings[id]
	for gingID := range links {
		delete(st.groupings[gingID].groups, id)
	}
	delete(st.groupGroupings, id)
	delete(st.groups, id)
	removeFrom(st.courseGroups, g.courseid, id)
	st.invalidateGroupData(g.courseid)
	st.record(func() {
		st.groups[id] = g
		addTo(st.courseGroups, g.courseid, id)
		if links != nil {
			st.groupGroupings[id] = links
			for gingID := range links {
				st.groupings[gingID].groups[id] = true
			}
		}
	})
}

// addMember adds a user to a group (a no-op if already a member).
func (st *state) addMember(g *groupRec, userID int) {
	if g.members[userID] {
		return
	}
	g.members[userID] = true
	st.record(func() { delete(g.members, userID) })
}

// removeMember removes a user from a group (a no-op if not a member).
func (st *state) removeMember(g *groupRec, userID int) {
	if !g.members[userID] {
		return
	}
	delete(g.members, userID)
	st.record(func() { g.members[userID] = true })
}

// insertGrouping stores a new grouping record with its groups, which must
// exist.
func (st *state) insertGrouping(g *groupingRec) {
	st.groupings[g.id] = g
	addTo(st.courseGroupings, g.courseid, g.id)
	for gid := range g.groups {
		addTo(st.groupGroupings, gid, g.id)
	}
	st.invalidateGroupData(g.courseid)
	st.record(func() {
		for gid := range g.groups {
			removeFrom(st.groupGroupings, gid, g.id)
		}
		removeFrom(st.courseGroupings, g.courseid, g.id)
		delete(st.groupings, g.id)
	})
}

// editGrouping applies edit to a grouping's fields. edit must not change the
// grouping's id, course or group set (use assignGroup and unassignGroup).
func (st *state) editGrouping(g *groupingRec, edit func(g *groupingRec)) {
	old := *g
	edit(g)
	st.invalidateGroupData(g.courseid)
	st.record(func() { *g = old })
}

// deleteGrouping is groups_delete_grouping(); the groups stay. The record
// keeps its group set, so that a rollback can put it back as is.
func (st *state) deleteGrouping(id int) {
	g := st.groupings[id]
	if g == nil {
		return
	}
	for gid := range g.groups {
		removeFrom(st.groupGroupings, gid, id)
	}
	removeFrom(st.courseGroupings, g.courseid, id)
	delete(st.groupings, id)
	st.invalidateGroupData(g.courseid)
	st.record(func() {
		st.groupings[id] = g
		addTo(st.courseGroupings, g.courseid, id)
		for gid := range g.groups {
			addTo(st.groupGroupings, gid, id)
		}
	})
}

// assignGroup links a group, which must exist, to a grouping (a no-op if
// already linked). Like groups_assign_grouping() it drops the cache entry of
// the grouping's course.
func (st *state) assignGroup(g *groupingRec, groupID int) {
	if g.groups[groupID] {
		return
	}
	g.groups[groupID] = true
	addTo(st.groupGroupings, groupID, g.id)
	st.invalidateGroupData(g.courseid)
	st.record(func() {
		delete(g.groups, groupID)
		removeFrom(st.groupGroupings, groupID, g.id)
	})
}

// unassignGroup unlinks a group from a grouping (a no-op if not linked).
func (st *state) unassignGroup(g *groupingRec, groupID int) {
	if !g.groups[groupID] {
		return
	}
	delete(g.groups, groupID)
	removeFrom(st.groupGroupings, groupID, g.id)
	st.invalidateGroupData(g.courseid)
	st.record(func() {
		g.groups[groupID] = true
		addTo(st.groupGroupings, groupID, g.id)
	})
}
