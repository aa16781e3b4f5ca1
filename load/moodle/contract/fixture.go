package contract

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
)

// caseSeq numbers the fixtures of a run, so that each case has its own
// prefix under the run's.
var caseSeq atomic.Int64

// fixture is one case's view of the target: a client and a prefix of its
// own, which every group and grouping it creates carries in its name and
// idnumber; they are deleted in t.Cleanup.
type fixture struct {
	t      *testing.T
	tg     *Target
	c      *moodle.Client
	ctx    context.Context
	prefix string
}

func newFixture(t *testing.T, tg *Target) *fixture {
	t.Helper()
	f := &fixture{t: t, tg: tg, c: tg.Client(t), ctx: t.Context(),
		prefix: fmt.Sprintf("%s%03d-", tg.prefix, caseSeq.Add(1))}
	t.Cleanup(f.cleanup)
	return f
}

// name prefixes a name or idnumber with the case's prefix.
func (f *fixture) name(s string) string { return f.prefix + s }

// description is the description of every group and grouping the suite
// creates.
const description = "cmissync contract test"

func (f *fixture) newGroup(course int64, name string) moodle.Group {
	return moodle.Group{CourseID: course, Name: f.name(name), IDNumber: f.name(name), Description: description}
}

func (f *fixture) newGrouping(course int64, name string) moodle.Grouping {
	return moodle.Grouping{CourseID: course, Name: f.name(name), IDNumber: f.name(name), Description: description}
}

// noOpUpdate updates a group (or grouping) the case made with the name,
// idnumber and description it has. It changes nothing but clears the
// course's group cache, and so its phantoms. It has a context of its own,
// so that it also serves in clean-up.
func (f *fixture) noOpUpdate(grouping bool, id int64, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u := []moodle.Update{{ID: id, Name: f.name(name), IDNumber: f.name(name)}}
	if grouping {
		return f.c.UpdateGroupings(ctx, u, description)
	}
	return f.c.UpdateGroups(ctx, u, description)
}

// createGroups creates groups named (and idnumbered) prefix+name in the
// scratch course, in batches under max_input_vars.
func (f *fixture) createGroups(names ...string) []moodle.Group {
	f.t.Helper()
	var out []moodle.Group
	n := f.c.Capacity(moodle.VarsPerNewGroup)
	for start := 0; start < len(names); start += n {
		var batch []moodle.Group
		for _, name := range names[start:min(start+n, len(names))] {
			batch = append(batch, f.newGroup(f.tg.Course, name))
		}
		gs, err := f.c.CreateGroups(f.ctx, batch)
		if err != nil {
			f.t.Fatalf("create groups: %v", err)
		}
		out = append(out, gs...)
	}
	return out
}

func (f *fixture) createGroup(name string) int64 { return f.createGroups(name)[0].ID }

func (f *fixture) createGrouping(name string) int64 {
	f.t.Helper()
	gs, err := f.c.CreateGroupings(f.ctx, []moodle.Grouping{f.newGrouping(f.tg.Course, name)})
	if err != nil {
		f.t.Fatalf("create grouping: %v", err)
	}
	return gs[0].ID
}

// missingGroup returns the id of a group that no longer exists: one the
// case created and deleted.
func (f *fixture) missingGroup() int64 {
	f.t.Helper()
	id := f.createGroup("deleted")
	if err := f.c.DeleteGroups(f.ctx, []int64{id}); err != nil {
		f.t.Fatalf("delete group: %v", err)
	}
	return id
}

func (f *fixture) missingGrouping() int64 {
	f.t.Helper()
	id := f.createGrouping("deleted")
	if err := f.c.DeleteGroupings(f.ctx, []int64{id}); err != nil {
		f.t.Fatalf("delete grouping: %v", err)
	}
	return id
}

// addMembers adds members, failing the case on error.
func (f *fixture) addMembers(pairs ...moodle.Pair) {
	f.t.Helper()
	if err := f.c.AddMembers(f.ctx, pairs); err != nil {
		f.t.Fatalf("add members: %v", err)
	}
}

// members reads the members of groups back, failing the case on error.
func (f *fixture) members(groups ...int64) map[int64][]int64 {
	f.t.Helper()
	m, err := f.c.GroupMembers(f.ctx, groups)
	if err != nil {
		f.t.Fatalf("get group members: %v", err)
	}
	return m
}

// courseGroup returns the group of the scratch course with idnumber, if any.
func (f *fixture) courseGroup(course int64, idnumber string) (moodle.Group, bool) {
	f.t.Helper()
	gs, err := f.c.CourseGroups(f.ctx, course)
	if err != nil {
		f.t.Fatalf("get course groups: %v", err)
	}
	for _, g := range gs {
		if g.IDNumber == idnumber {
			return g, true
		}
	}
	return moodle.Group{}, false
}

func (f *fixture) courseGrouping(course int64, idnumber string) (moodle.Grouping, bool) {
	f.t.Helper()
	gs, err := f.c.CourseGroupings(f.ctx, course)
	if err != nil {
		f.t.Fatalf("get course groupings: %v", err)
	}
	for _, g := range gs {
		if g.IDNumber == idnumber {
			return g, true
		}
	}
	return moodle.Grouping{}, false
}

// cleanup deletes what the case created: the groups and groupings of the
// scratch courses whose idnumber carries the case's prefix (found by
// listing, so that a create whose answer was lost is caught too). An id is
// only deleted while it carries the prefix, so nothing the suite did not
// create is touched, even if the site reused an id.
func (f *fixture) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	groups, groupings := map[int64]bool{}, map[int64]bool{}
	for _, course := range []int64{f.tg.Course, f.tg.OtherCourse} {
		if course == 0 {
			continue
		}
		gs, err := f.c.CourseGroups(ctx, course)
		if err != nil {
			f.t.Errorf("clean-up: list groups of course %d: %v", course, err)
		}
		for _, g := range gs {
			if strings.HasPrefix(g.IDNumber, f.prefix) {
				groups[g.ID] = true
			}
		}
		ggs, err := f.c.CourseGroupings(ctx, course)
		if err != nil {
			f.t.Errorf("clean-up: list groupings of course %d: %v", course, err)
		}
		for _, g := range ggs {
			if strings.HasPrefix(g.IDNumber, f.prefix) {
				groupings[g.ID] = true
			}
		}
	}
	if err := deleteIDs(ctx, f.c.DeleteGroupings, f.c.Capacity(moodle.VarsPerID), groupings); err != nil {
		f.t.Errorf("clean-up: delete groupings: %v", err)
	}
	if err := deleteIDs(ctx, f.c.DeleteGroups, f.c.Capacity(moodle.VarsPerID), groups); err != nil {
		f.t.Errorf("clean-up: delete groups: %v", err)
	}
}

func deleteIDs(ctx context.Context, del func(context.Context, []int64) error, batch int, set map[int64]bool) error {
	var ids []int64
	for id := range set {
		ids = append(ids, id)
	}
	for start := 0; start < len(ids); start += batch {
		if err := del(ctx, ids[start:min(start+batch, len(ids))]); err != nil {
			return err
		}
	}
	return nil
}
