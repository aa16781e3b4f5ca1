package load

import (
	"context"
	"fmt"

	"github.com/cmissync/cmissync/stage/store"
)

// kind is a grouping or a group. Everything cmissync does to one it does
// to the other the same way (create, adopt, rename, give back, delete,
// recreate), so the code is written once for both, parameterised by kind.
type kind int

const (
	kindGrouping kind = iota
	kindGroup
)

func (k kind) String() string {
	if k == kindGroup {
		return "group"
	}
	return "grouping"
}

// table is the staging table of the kind.
func (k kind) table() string {
	if k == kindGroup {
		return store.TableGroups
	}
	return store.TableGroupings
}

// object is a staged grouping or group with what the plan learns about it
// in Moodle.
type object struct {
	kind   kind
	row    int64 // staged row id
	course int64
	module string
	group  string // "" for a grouping
	// idnumber is the one cmissync gives it; name the one it wants.
	idnumber, name string
	// moodleName is the name cmissync last set (or accepted) in Moodle.
	moodleName                                 string
	moodleID                                   int64
	assigned                                   bool // a group: staging recorded it in its grouping
	toAdd, toDelete, toRename, parked, adopted bool
	deleteReason                               string
	// absentRuns counts the complete extracts it has been absent from.
	absentRuns int

	// Filled while planning.
	live *moodleObject // Moodle's object, confirmed by a read by id or a write
	// seen is live as the plan saw it, before the load wrote anything: the
	// members of a course are resolved (buildPlan) while the load may
	// already be creating its groups, and they are planned from what
	// Moodle held, the same on a dry run.
	seen      *moodleObject
	createdAs string // the name it is created under (a clash renames it)
	recorded  bool   // a record item brings staging in line with live
}

func (o *object) key() objectKey { return objectKey{o.kind, o.course, o.module, o.group} }

// objectKey identifies a staged object: (course, module) for a grouping,
// (course, module, group) for a group.
type objectKey struct {
	kind          kind
	course        int64
	module, group string
}

func groupingOf(r store.GroupingRow) *object {
	return &object{kind: kindGrouping, row: r.ID, course: r.CourseID, module: r.ModuleCode, idnumber: r.IDNumber, name: r.Name,
		moodleName: r.MoodleName, moodleID: r.MoodleID, toAdd: r.ToAdd, toDelete: r.ToDelete, toRename: r.ToRename,
		parked: r.Parked, adopted: r.Adopted, deleteReason: r.DeleteReason, absentRuns: r.AbsentRuns}
}

func groupOf(r store.GroupRow) *object {
	return &object{kind: kindGroup, row: r.ID, course: r.CourseID, module: r.ModuleCode, group: r.GroupCode, idnumber: r.IDNumber,
		name: r.Name, moodleName: r.MoodleName, moodleID: r.MoodleID, assigned: r.Assigned, toAdd: r.ToAdd, toDelete: r.ToDelete,
		toRename: r.ToRename, parked: r.Parked, adopted: r.Adopted, deleteReason: r.DeleteReason, absentRuns: r.AbsentRuns}
}

// courseStaging is what staging records for one course.
type courseStaging struct {
	id        int64
	groupings []*object
	groups    []*object
	// members holds the staged memberships of each group, by group key.
	members map[objectKey][]*store.MemberRow
	// ownedMembers counts memberships cmissync added and still owns, for
	// the mass-change guard.
	ownedMembers int64
	// enrolmentsOnly: staging holds nothing of the course but enrolments
	// cmissync made there; whether it still exists is checked.
	enrolmentsOnly bool
}

func (c *courseStaging) grouping(module string) *object {
	for _, g := range c.groupings {
		if g.module == module {
			return g
		}
	}
	return nil
}

// modules are the CMIS modules staged in the course.
func (c *courseStaging) modules() map[string]bool {
	out := map[string]bool{}
	for _, objs := range [][]*object{c.groupings, c.groups} {
		for _, o := range objs {
			out[o.module] = true
		}
	}
	return out
}

// readStagedObjects reads the staged groupings and groups of the courses in
// the filter, sorted by course id, with an empty course for each course
// that has only memberships staged: readStagedMembers fills in the
// memberships, and may run while the courses are read from.
func readStagedObjects(ctx context.Context, st *store.Store, f store.Filter) ([]*courseStaging, error) {
	byID := map[int64]*courseStaging{}
	var order []int64
	course := func(id int64) *courseStaging {
		c := byID[id]
		if c == nil {
			c = &courseStaging{id: id, members: map[objectKey][]*store.MemberRow{}}
			byID[id] = c
			order = append(order, id)
		}
		return c
	}
	gg, err := st.StagedGroupings(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("read staged groupings: %w", err)
	}
	for gg.Next() {
		r := gg.Value()
		course(r.CourseID).groupings = append(course(r.CourseID).groupings, groupingOf(r))
	}
	gg.Close()
	if err := gg.Err(); err != nil {
		return nil, fmt.Errorf("read staged groupings: %w", err)
	}
	gs, err := st.StagedGroups(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("read staged groups: %w", err)
	}
	for gs.Next() {
		r := gs.Value()
		course(r.CourseID).groups = append(course(r.CourseID).groups, groupOf(r))
	}
	gs.Close()
	if err := gs.Err(); err != nil {
		return nil, fmt.Errorf("read staged groups: %w", err)
	}
	ids, err := st.MemberCourses(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		course(id)
	}
	sortInt64(order)
	out := make([]*courseStaging, len(order))
	for i, id := range order {
		out[i] = byID[id]
	}
	return out, nil
}

// readStagedMembers reads the staged memberships of the courses in the
// filter into courses (as readStagedObjects returned them). It writes only
// their members and ownedMembers.
func readStagedMembers(ctx context.Context, st *store.Store, f store.Filter, courses []*courseStaging) error {
	byID := make(map[int64]*courseStaging, len(courses))
	for _, c := range courses {
		byID[c.id] = c
	}
	ms, err := st.StagedMembers(ctx, f)
	if err != nil {
		return fmt.Errorf("read staged members: %w", err)
	}
	defer ms.Close()
	for ms.Next() {
		r := ms.Value()
		c := byID[r.CourseID]
		if c == nil {
			// Staged since the courses were listed, by a run going on
			// while this plan is made (a plan takes no lock): that
			// course has no staged group in this plan's reading
			// either, so its memberships would plan nothing.
			continue
		}
		k := objectKey{kindGroup, r.CourseID, r.ModuleCode, r.GroupCode}
		c.members[k] = append(c.members[k], &r)
		if r.Owned && !r.ToAdd && r.MoodleUserID != 0 {
			c.ownedMembers++
		}
	}
	if err := ms.Err(); err != nil {
		return fmt.Errorf("read staged members: %w", err)
	}
	return nil
}
