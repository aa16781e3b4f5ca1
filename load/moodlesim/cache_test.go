package moodlesim_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodlesim"
)

const bodyNoGrouping = `{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table groupings."}`

// kind is a group or a grouping, as the web services name them.
type kind struct {
	list                            string // "groups" or "groupings": the parameter of the create and update functions
	createFn, update, byID, listing string
	ids                             string // the parameter of byID
	noRecord                        string // byID's answer for an id that does not exist
}

var (
	groupKind = kind{"groups", "core_group_create_groups", "core_group_update_groups", "core_group_get_groups",
		"core_group_get_course_groups", "groupids", bodyNoGroup}
	groupingKind = kind{"groupings", "core_group_create_groupings", "core_group_update_groupings", "core_group_get_groupings",
		"core_group_get_course_groupings", "groupingids", bodyNoGrouping}
)

// createParams are the parameters of k.create for items named (and
// idnumbered) as given, in a course.
func (k kind) createParams(course int, names ...string) []string {
	var p []string
	for i, n := range names {
		pre := k.list + "[" + itoa(i) + "]"
		p = append(p, pre+"[courseid]", itoa(course), pre+"[name]", n, pre+"[description]", "", pre+"[idnumber]", n)
	}
	return p
}

// create creates one item and returns its id.
func (k kind) create(t *testing.T, base string, course int, name string) int {
	t.Helper()
	a := call(t, base, k.createFn, k.createParams(course, name)...)
	var out []struct{ ID int }
	if err := json.Unmarshal([]byte(a.body), &out); err != nil || len(out) != 1 {
		t.Fatalf("%s %q: %s", k.createFn, name, a.body)
	}
	return out[0].ID
}

// noOpUpdate updates an item with the name, idnumber and description it has.
func (k kind) noOpUpdate(t *testing.T, base string, id int, name string) answer {
	t.Helper()
	return call(t, base, k.update, k.list+"[0][id]", itoa(id), k.list+"[0][name]", name,
		k.list+"[0][description]", "", k.list+"[0][idnumber]", name)
}

// listed returns what the course listing of k answers, idnumber -> id.
func (k kind) listed(t *testing.T, base string, course int) map[string]int {
	t.Helper()
	a := call(t, base, k.listing, "courseid", itoa(course))
	var out []struct {
		ID       int
		IDNumber string
	}
	if err := json.Unmarshal([]byte(a.body), &out); err != nil {
		t.Fatalf("%s: %s", k.listing, a.body)
	}
	m := map[string]int{}
	for _, o := range out {
		m[o.IDNumber] = o.ID
	}
	return m
}

// phantom makes a phantom in course c of st as the reference records it:
// a create call whose first item is inserted and whose second is refused
// idnumbertaken by an existing item "taken" (made here unless it exists).
// It returns the phantom's id and the existing item's.
func phantom(t *testing.T, st site, k kind, name string) (phantomID, takenID int) {
	t.Helper()
	takenID, ok := k.listed(t, st.base, st.c)["taken"]
	if !ok {
		takenID = k.create(t, st.base, st.c, "taken")
	}
	p := k.createParams(st.c, name, "dup")
	p[len(p)-1] = "taken" // the second item's idnumber
	if a := call(t, st.base, k.createFn, p...); a.body != bodyIDNumberTaken {
		t.Fatalf("create %s and a taken idnumber: %s, want idnumbertaken", name, a.body)
	}
	phantomID, ok = k.listed(t, st.base, st.c)[name]
	if !ok {
		t.Fatalf("%s: the item of the refused call is not listed: no phantom", k.listing)
	}
	return phantomID, takenID
}

// TestGroupCachePhantom walks the reference's account of a phantom, for
// groups and for groupings.
func TestGroupCachePhantom(t *testing.T) {
	for _, k := range []kind{groupKind, groupingKind} {
		t.Run(k.list, func(t *testing.T) {
			st := newSite(t, moodlesim.Options{})
			before := st.s.State()
			id, taken := phantom(t, st, k, "good")
			if id != taken+1 {
				t.Errorf("phantom id %d, want %d: the id the rolled-back insert took", id, taken+1)
			}
			if after := st.s.State(); len(after.Groups)+len(after.Groupings) != len(before.Groups)+len(before.Groupings)+1 {
				t.Errorf("the database holds more than the one item made: %+v", after)
			}
			if a := call(t, st.base, k.byID, k.ids+"[0]", itoa(id)); a.body != k.noRecord {
				t.Errorf("%s of the phantom: %s, want invalidrecord", k.byID, a.body)
			}
			if k == groupKind {
				if a := call(t, st.base, "core_group_get_group_members", "groupids[0]", itoa(id)); a.body != bodyNoGroup {
					t.Errorf("members of the phantom: %s, want invalidrecord", a.body)
				}
			}
			if a := call(t, st.base, k.createFn, k.createParams(st.c, "good")...); a.body != bodyIDNumberTaken {
				t.Errorf("create the phantom's item again: %s, want idnumbertaken", a.body)
			}
			// Deleting the phantom's id (no such row) does not clear the cache.
			if a := call(t, st.base, "core_group_delete_"+k.list, k.ids+"[0]", itoa(id)); a.body != "null" {
				t.Errorf("delete the phantom's id: %s", a.body)
			}
			if _, ok := k.listed(t, st.base, st.c)["good"]; !ok {
				t.Errorf("the phantom went away without a change to the course's groups or groupings")
			}
			// Another course has a cache entry of its own.
			if _, ok := k.listed(t, st.base, st.d)["good"]; ok {
				t.Errorf("the phantom is listed in another course")
			}
			if a := k.noOpUpdate(t, st.base, taken, "taken"); a.body != "null" {
				t.Fatalf("no-op update: %s", a.body)
			}
			if _, ok := k.listed(t, st.base, st.c)["good"]; ok {
				t.Errorf("the phantom is still listed after a no-op update")
			}
			if got := k.create(t, st.base, st.c, "good"); got == id {
				t.Errorf("the new item took the phantom's id %d", id)
			}
		})
	}
}

// TestGroupCacheCoversGroupsAndGroupings: one entry holds a course's groups
// and groupings, so a change to either clears a phantom of the other.
func TestGroupCacheCoversGroupsAndGroupings(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	phantom(t, st, groupingKind, "good grouping")
	groupKind.create(t, st.base, st.c, "G")
	if _, ok := groupingKind.listed(t, st.base, st.c)["good grouping"]; ok {
		t.Errorf("a grouping phantom outlived the creation of a group")
	}
	phantom(t, st, groupKind, "good group")
	if a := groupingKind.noOpUpdate(t, st.base, groupingKind.listed(t, st.base, st.c)["taken"], "taken"); a.body != "null" {
		t.Fatal(a.body)
	}
	if _, ok := groupKind.listed(t, st.base, st.c)["good group"]; ok {
		t.Errorf("a group phantom outlived a no-op update of a grouping")
	}
}

// TestRefusalsThatLeaveNoPhantom: a create refused by the name check, which
// reads the database, rebuilt nothing mid-call; without the cache model no
// refusal leaves anything behind.
func TestRefusalsThatLeaveNoPhantom(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   moodlesim.Options
		second [2]string // name and idnumber of the refused item
		want   string
	}{
		{"refused by name", moodlesim.Options{}, [2]string{"taken", "other"}, bodyInvalidParam},
		{"refused by idnumber without the cache model", moodlesim.Options{NoGroupCache: true}, [2]string{"dup", "taken"}, bodyIDNumberTaken},
	} {
		for _, k := range []kind{groupKind, groupingKind} {
			t.Run(tc.name+"/"+k.list, func(t *testing.T) {
				st := newSite(t, tc.opts)
				k.create(t, st.base, st.c, "taken")
				p := k.createParams(st.c, "good", tc.second[0])
				p[len(p)-1] = tc.second[1]
				if a := call(t, st.base, k.createFn, p...); a.body != tc.want {
					t.Fatalf("refused create: %s, want %s", a.body, tc.want)
				}
				if _, ok := k.listed(t, st.base, st.c)["good"]; ok {
					t.Errorf("phantom listed")
				}
				k.create(t, st.base, st.c, "good")
			})
		}
	}
}

// TestHandChangesClearTheGroupCache: every change a teacher makes to a
// course's groups or groupings by hand drops its cache entry; membership
// changes do not.
func TestHandChangesClearTheGroupCache(t *testing.T) {
	tests := []struct {
		name  string
		do    func(st site, taken int) error
		clear bool
	}{
		{"AddGroup", func(st site, _ int) error {
			_, err := st.s.AddGroup(moodlesim.Group{CourseID: st.c, Name: "by hand"})
			return err
		}, true},
		{"RenameGroup", func(st site, taken int) error { return st.s.RenameGroup(taken, "renamed") }, true},
		{"DeleteGroup", func(st site, taken int) error { return st.s.DeleteGroup(taken) }, true},
		{"AddGrouping", func(st site, _ int) error {
			_, err := st.s.AddGrouping(moodlesim.Grouping{CourseID: st.c, Name: "by hand"})
			return err
		}, true},
		{"LoadSeed", func(st site, _ int) error {
			return st.s.LoadSeed(strings.NewReader(`{"groups": [{"course": ` + itoa(st.c) + `, "name": "seeded"}]}`))
		}, true},
		{"AddMember", func(st site, taken int) error { return st.s.AddMember(taken, st.u2) }, false},
		{"RemoveMember", func(st site, taken int) error { return st.s.RemoveMember(taken, st.u2) }, false},
		{"Unenrol", func(st site, _ int) error { return st.s.Unenrol(st.c, st.u3) }, false},
		{"SetCourseAccessible", func(st site, _ int) error { return st.s.SetCourseAccessible(st.c, true) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newSite(t, moodlesim.Options{})
			_, taken := phantom(t, st, groupKind, "good")
			if err := tc.do(st, taken); err != nil {
				t.Fatal(err)
			}
			if _, listed := groupKind.listed(t, st.base, st.c)["good"]; listed == tc.clear {
				t.Errorf("phantom listed %v after %s, want %v", listed, tc.name, !tc.clear)
			}
		})
	}
	t.Run("DeleteGrouping", func(t *testing.T) {
		st := newSite(t, moodlesim.Options{})
		_, taken := phantom(t, st, groupingKind, "good")
		if err := st.s.DeleteGrouping(taken); err != nil {
			t.Fatal(err)
		}
		if _, listed := groupingKind.listed(t, st.base, st.c)["good"]; listed {
			t.Errorf("phantom listed after DeleteGrouping")
		}
	})
}

// TestWritesClearTheGroupCache: every successful change through the web
// services drops the course's entry, a no-op one too; membership changes do
// not.
func TestWritesClearTheGroupCache(t *testing.T) {
	tests := []struct {
		name   string
		fn     string
		params func(st site, taken, grouping int) []string
		clear  bool
	}{
		{"assign grouping", "core_group_assign_grouping", func(_ site, taken, grouping int) []string {
			return []string{"assignments[0][groupingid]", itoa(grouping), "assignments[0][groupid]", itoa(taken)}
		}, true},
		{"delete groups", "core_group_delete_groups", func(_ site, taken, _ int) []string {
			return []string{"groupids[0]", itoa(taken)}
		}, true},
		{"delete groupings", "core_group_delete_groupings", func(_ site, _, grouping int) []string {
			return []string{"groupingids[0]", itoa(grouping)}
		}, true},
		{"add members", "core_group_add_group_members", func(st site, taken, _ int) []string {
			return []string{"members[0][groupid]", itoa(taken), "members[0][userid]", itoa(st.u1)}
		}, false},
		{"assign grouping already assigned", "core_group_assign_grouping", func(_ site, _, grouping int) []string {
			return []string{"assignments[0][groupingid]", itoa(grouping), "assignments[0][groupid]", "1"}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newSite(t, moodlesim.Options{})
			first := groupKind.create(t, st.base, st.c, "first") // id 1
			grouping, err := st.s.AddGrouping(moodlesim.Grouping{CourseID: st.c, Name: "GG", Groups: []int{first}})
			if err != nil {
				t.Fatal(err)
			}
			_, taken := phantom(t, st, groupKind, "good")
			if a := call(t, st.base, tc.fn, tc.params(st, taken, grouping)...); a.body != "null" {
				t.Fatalf("%s: %s", tc.fn, a.body)
			}
			if _, listed := groupKind.listed(t, st.base, st.c)["good"]; listed == tc.clear {
				t.Errorf("phantom listed %v, want %v", listed, !tc.clear)
			}
		})
	}
}

// TestStateNeverShowsPhantoms: State, SaveSeed and /_sim/state show the
// database.
func TestStateNeverShowsPhantoms(t *testing.T) {
	st := newSite(t, moodlesim.Options{})
	before := st.s.State()
	groupKind.create(t, st.base, st.c, "taken")
	id, _ := phantom(t, st, groupKind, "good")
	for _, g := range st.s.State().Groups {
		if g.ID == id {
			t.Errorf("State lists the phantom %+v", g)
		}
	}
	if after := st.s.State(); len(after.Groups) != len(before.Groups)+1 || !reflect.DeepEqual(after.Courses, before.Courses) {
		t.Errorf("State after a refused create: %+v", after)
	}
}
