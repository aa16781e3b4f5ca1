package contract

import "testing"

// phantomVariant is one walk through a phantom of Moodle's group cache: of a
// group or a grouping, cleared by a no-op update of a group or a grouping.
type phantomVariant struct {
	name    string
	phantom kind // the kind of the phantom
	clearBy kind // the kind of the object whose no-op update clears it
}

// phantomVariants: the cache holds a course's groups and groupings together,
// so an update of either clears a phantom of either.
var phantomVariants = []phantomVariant{
	{"groups", groupKind, groupKind},
	{"groupings", groupingKind, groupingKind},
	{"grouping cleared by a group update", groupingKind, groupKind},
}

// phantomAfterRefusedCreate runs every phantom variant.
func phantomAfterRefusedCreate(t *testing.T, tg *Target) {
	for _, v := range phantomVariants {
		t.Run(v.name, func(t *testing.T) { phantom(t, tg, v) })
	}
}

// phantom walks the reference's account of a create call refused on its
// second item by idnumbertaken after its first item was inserted. The
// database is rolled back, Moodle's per-course group cache is not: the first
// item stays listed by the course (a phantom) with the id it took, does not
// exist by id, blocks its own creation (the idnumber check reads the cache),
// survives a delete of its id, and goes with a no-op update of any existing
// group or grouping of the course, after which it can be created.
//
// It takes a testing.TB so that a meta-test can show that it fails on a
// site without the cache (see TestPhantomCasesNeedTheCache).
func phantom(t testing.TB, tg *Target, v phantomVariant) {
	f := newFixture(t, tg)
	k := v.phantom
	taken := f.mustCreate(k, "taken")
	clearer := taken
	if v.clearBy != k {
		clearer = f.mustCreate(v.clearBy, "clearer")
	}
	// Whatever happens below, leave the course's cache clear.
	t.Cleanup(func() {
		if err := f.noOpUpdate(v.clearBy, clearer); err != nil {
			t.Errorf("clean-up: clear the group cache: %v", err)
		}
	})
	good, dup := f.spec("good"), f.spec("dup")
	dup.IDNumber = taken.IDNumber
	_, err := f.create(k, tg.Course, good, dup)
	tg.wantErr(t, err, errIDNumberTaken)

	p, ok := f.listed(k, tg.Course, good.IDNumber)
	if !ok {
		t.Fatalf("the %s inserted before the refusal is not listed by the course: no phantom (the reference records one on Moodle 4.5)", k.name)
	}
	if p.ID == taken.ID || p.Name != good.Name {
		t.Errorf("phantom %+v, want %q with an id of its own", p, good.Name)
	}
	_, err = f.byID(k, p.ID)
	tg.wantErr(t, err, k.notFound)
	if !k.grouping {
		_, err := f.c.MembersOf(f.ctx, []int64{p.ID})
		tg.wantErr(t, err, errNoGroup)
	}
	_, err = f.create(k, tg.Course, good)
	tg.wantErr(t, err, errIDNumberTaken)

	// Deleting the phantom's id deletes nothing, so it changes nothing.
	if err := f.deleteAll(f.ctx, k, []int64{p.ID}); err != nil {
		t.Errorf("delete the phantom's id: %v, want null", err)
	}
	if _, ok := f.listed(k, tg.Course, good.IDNumber); !ok {
		t.Errorf("the phantom went with a delete of an id that does not exist")
	}

	if err := f.noOpUpdate(v.clearBy, clearer); err != nil {
		t.Fatalf("no-op update of %s %d: %v, want null", v.clearBy.name, clearer.ID, err)
	}
	if _, ok := f.listed(k, tg.Course, good.IDNumber); ok {
		t.Errorf("the phantom is still listed after a no-op update of %s %d", v.clearBy.name, clearer.ID)
	}
	if _, err := f.create(k, tg.Course, good); err != nil {
		t.Errorf("create the %s again once the cache is clear: %v", k.name, err)
	}
}
