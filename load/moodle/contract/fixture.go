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
// idnumber; they are deleted in t.Cleanup. It takes a testing.TB so that a
// meta-test can run a case under a recorder.
type fixture struct {
	t      testing.TB
	tg     *Target
	c      *moodle.Client
	ctx    context.Context
	prefix string
}

func newFixture(t testing.TB, tg *Target) *fixture {
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

// object is a group or a grouping, as the cases that treat both alike see
// it.
type object struct {
	ID             int64
	Name, IDNumber string
}

// spec is a new object named and idnumbered prefix+name.
func (f *fixture) spec(name string) object { return object{Name: f.name(name), IDNumber: f.name(name)} }

// kind is groups or groupings, for the cases that treat both alike.
type kind struct {
	name     string // "group" or "grouping"
	grouping bool
	notFound moodleErr // a read by id of an id that does not exist
}

var (
	groupKind    = kind{"group", false, errNoGroup}
	groupingKind = kind{"grouping", true, errNoGrouping}
)

func toObjects[T any](xs []T, o func(T) object) []object {
	out := make([]object, len(xs))
	for i, x := range xs {
		out[i] = o(x)
	}
	return out
}

func groupObject(g moodle.Group) object       { return object{g.ID, g.Name, g.IDNumber} }
func groupingObject(g moodle.Grouping) object { return object{g.ID, g.Name, g.IDNumber} }

// create creates objects of kind k in a course, in one call.
func (f *fixture) create(k kind, course int64, items ...object) ([]object, error) {
	if k.grouping {
		in := make([]moodle.Grouping, len(items))
		for i, o := range items {
			in[i] = moodle.Grouping{CourseID: course, Name: o.Name, IDNumber: o.IDNumber, Description: description}
		}
		out, err := f.c.CreateGroupings(f.ctx, in)
		return toObjects(out, groupingObject), err
	}
	in := make([]moodle.Group, len(items))
	for i, o := range items {
		in[i] = moodle.Group{CourseID: course, Name: o.Name, IDNumber: o.IDNumber, Description: description}
	}
	out, err := f.c.CreateGroups(f.ctx, in)
	return toObjects(out, groupObject), err
}

// mustCreate creates one object of kind k in the scratch course.
func (f *fixture) mustCreate(k kind, name string) object {
	f.t.Helper()
	objs, err := f.create(k, f.tg.Course, f.spec(name))
	if err != nil {
		f.t.Fatalf("create %s %q: %v", k.name, name, err)
	}
	return objs[0]
}

// list is the course listing of kind k (from Moodle's group cache).
func (f *fixture) list(ctx context.Context, k kind, course int64) ([]object, error) {
	if k.grouping {
		gs, err := f.c.CourseGroupings(ctx, course)
		return toObjects(gs, groupingObject), err
	}
	gs, err := f.c.CourseGroups(ctx, course)
	return toObjects(gs, groupObject), err
}

// listed returns the object of kind k that the course listing shows with
// idnumber, if any.
func (f *fixture) listed(k kind, course int64, idnumber string) (object, bool) {
	f.t.Helper()
	objs, err := f.list(f.ctx, k, course)
	if err != nil {
		f.t.Fatalf("list the %ss of course %d: %v", k.name, course, err)
	}
	for _, o := range objs {
		if o.IDNumber == idnumber {
			return o, true
		}
	}
	return object{}, false
}

// byID reads objects of kind k by id in one call (from Moodle's database).
func (f *fixture) byID(k kind, ids ...int64) ([]object, error) {
	if k.grouping {
		gs, err := f.c.GroupingsWithGroups(f.ctx, ids)
		return toObjects(gs, groupingObject), err
	}
	gs, err := f.c.GroupsByID(f.ctx, ids)
	return toObjects(gs, groupObject), err
}

// noOpUpdate updates an object the case made with the name, idnumber and
// description it has. It changes nothing but clears the course's group
// cache, and so its phantoms. It has a context of its own, so that it also
// serves in clean-up.
func (f *fixture) noOpUpdate(k kind, o object) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), 2*time.Minute)
	defer cancel()
	u := []moodle.Update{{ID: o.ID, Name: o.Name, IDNumber: moodle.Ptr(o.IDNumber), Description: moodle.Ptr(description)}}
	if k.grouping {
		return f.c.UpdateGroupings(ctx, u)
	}
	return f.c.UpdateGroups(ctx, u)
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

// coursesByFieldID calls core_course_get_courses_by_field with field=id
// and returns its courses, checking the shape of the answer:
// {"courses":[...],"warnings":[]}.
func (f *fixture) coursesByFieldID(t testing.TB, id int64) []any {
	t.Helper()
	form := &moodle.Form{}
	form.Add("field", "id")
	form.AddInt("value", id)
	var out map[string]any
	if err := f.c.Call(f.ctx, moodle.FnCoursesByField, form, &out); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, "courses by field", out, true, "courses", "warnings")
	if w, ok := out["warnings"].([]any); !ok || len(w) != 0 {
		t.Errorf("warnings %v, want []", out["warnings"])
	}
	courses, ok := out["courses"].([]any)
	if !ok {
		t.Fatalf("courses %v, want a list", out["courses"])
	}
	return courses
}

// cleanup deletes what the case created: the groups and groupings of the
// scratch courses whose idnumber carries the case's prefix (found by
// listing, so that a create whose answer was lost is caught too). An id is
// only deleted while it carries the prefix, so nothing the suite did not
// create is touched, even if the site reused an id.
//
// A phantom of Moodle's group cache (left by a refused create) is listed but
// cannot be deleted. Any change to its course's groups clears it, deleting
// the case's real objects included; where the listing still shows one after
// that, a group is created and deleted for the purpose.
func (f *fixture) cleanup() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), 5*time.Minute)
	defer cancel()
	for _, course := range []int64{f.tg.Course, f.tg.OtherCourse} {
		if course == 0 {
			continue
		}
		found := f.ours(ctx, course)
		if len(found) == 0 {
			continue
		}
		// Groupings first: they only link groups.
		for _, k := range []kind{groupingKind, groupKind} {
			if err := f.deleteAll(ctx, k, found[k]); err != nil {
				f.t.Errorf("clean-up: delete %ss of course %d: %v", k.name, course, err)
			}
		}
		if len(f.ours(ctx, course)) == 0 {
			continue
		}
		gs, err := f.c.CreateGroups(ctx, []moodle.Group{f.newGroup(course, "clean-up")})
		if err == nil {
			err = f.c.DeleteGroups(ctx, []int64{gs[0].ID})
		}
		if err != nil {
			f.t.Errorf("clean-up: clear the group cache of course %d: %v", course, err)
		}
		if left := f.ours(ctx, course); len(left) > 0 {
			f.t.Errorf("clean-up: course %d still lists %v", course, left)
		}
	}
}

// ours lists the ids of a course's groups and groupings that carry the
// case's prefix, by kind.
func (f *fixture) ours(ctx context.Context, course int64) map[kind][]int64 {
	found := map[kind][]int64{}
	for _, k := range []kind{groupKind, groupingKind} {
		objs, err := f.list(ctx, k, course)
		if err != nil {
			f.t.Errorf("clean-up: list the %ss of course %d: %v", k.name, course, err)
		}
		for _, o := range objs {
			if strings.HasPrefix(o.IDNumber, f.prefix) {
				found[k] = append(found[k], o.ID)
			}
		}
	}
	return found
}

// deleteAll deletes objects of kind k in batches under max_input_vars.
func (f *fixture) deleteAll(ctx context.Context, k kind, ids []int64) error {
	del := f.c.DeleteGroups
	if k.grouping {
		del = f.c.DeleteGroupings
	}
	batch := f.c.Capacity(moodle.VarsPerID)
	for start := 0; start < len(ids); start += batch {
		if err := del(ctx, ids[start:min(start+batch, len(ids))]); err != nil {
			return err
		}
	}
	return nil
}
