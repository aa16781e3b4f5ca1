package moodlesim

// Moodle's per-course group cache (the "groupdata" cache of core_group).
//
// groups_get_course_data() answers from the cache and builds a course's
// entry from the database when there is none; every change to a course's
// groups or groupings (groups_create_group, groups_update_group,
// groups_delete_group, the grouping twins, groups_assign_grouping and
// groups_unassign_grouping) drops the entry as it happens. The cache is not
// part of the database transaction: a call that is refused and rolled back
// leaves the entry as the call last built it. When a check of a later entry
// rebuilt it after an earlier entry's insert, the entry lists an object the
// database no longer has: the phantom of the reference notes.
//
// Entries are copies taken when they were built and are never changed in
// place, so that they can be shared by copies of the state.

// groupData is one course's cache entry: its groups and groupings as the
// database held them when the entry was built, each ordered by name (without
// case) then id, as Moodle's cache query orders them. Groups carry no
// members and groupings no groups: nothing here reads those from the cache.
type groupData struct {
	groups    []groupRec
	groupings []groupingRec
}

// readGroupData copies a course's groups and groupings from the database.
func (st *state) readGroupData(courseID int) *groupData {
	d := &groupData{}
	for _, id := range st.groupIDs(courseID) {
		g := *st.groups[id]
		g.members = nil
		d.groups = append(d.groups, g)
	}
	for _, id := range st.groupingIDs(courseID) {
		g := *st.groupings[id]
		g.groups = nil
		d.groupings = append(d.groupings, g)
	}
	return d
}

// courseData is groups_get_course_data(): the course's cache entry, built
// from the database when there is none. Without the cache model
// (Options.NoGroupCache) it reads the database every time.
func (st *state) courseData(courseID int) *groupData {
	if d := st.groupCache[courseID]; d != nil {
		return d
	}
	d := st.readGroupData(courseID)
	if !st.noGroupCache {
		st.groupCache[courseID] = d
	}
	return d
}

// invalidateGroupData is cache_helper::invalidate_by_definition('core',
// 'groupdata', [], [courseID]). It is deliberately not journaled: a
// rollback does not bring a dropped entry back, nor drop one built during
// the call.
func (st *state) invalidateGroupData(courseID int) { delete(st.groupCache, courseID) }

// ident is what an idnumber lookup needs of a record; course is its course.
func (g groupRec) ident() (int, string)    { return g.id, g.idnumber }
func (g groupingRec) ident() (int, string) { return g.id, g.idnumber }
func (g groupRec) course() int             { return g.courseid }
func (g groupingRec) course() int          { return g.courseid }

// byIDNumber returns the id of the first record whose idnumber equals
// idnumber as PHP's == does, as groups_get_group_by_idnumber() and
// groups_get_grouping_by_idnumber() do; 0 when none does or idnumber is
// empty in PHP's sense. Record ids start at 1.
func byIDNumber[R interface{ ident() (int, string) }](recs []R, idnumber string) int {
	if phpEmpty(idnumber) {
		return 0
	}
	for _, r := range recs {
		if id, idn := r.ident(); phpLooseEq(idn, idnumber) {
			return id
		}
	}
	return 0
}
