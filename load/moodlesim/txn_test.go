package moodlesim

import (
	"bytes"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// deepCopy copies a state, indexes and group cache included, as the
// simulator did before each write call before it had a journal. The copy has
// no open transaction. Cache entries are shared: they are never changed in
// place.
func deepCopy(st *state) *state {
	copySet := func(m map[int]bool) map[int]bool {
		out := make(map[int]bool, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	copyIndex := func(idx map[int]map[int]bool) map[int]map[int]bool {
		out := make(map[int]map[int]bool, len(idx))
		for k, m := range idx {
			out[k] = copySet(m)
		}
		return out
	}
	c := &state{idCounters: st.idCounters,
		courses: map[int]*courseRec{}, users: map[int]*userRec{}, groups: map[int]*groupRec{}, groupings: map[int]*groupingRec{},
		enrol: map[int]map[int]*enrolment{}, courseGroups: copyIndex(st.courseGroups),
		courseGroupings: copyIndex(st.courseGroupings), groupGroupings: copyIndex(st.groupGroupings),
		groupCache: make(map[int]*groupData, len(st.groupCache)), noGroupCache: st.noGroupCache}
	for id, d := range st.groupCache {
		c.groupCache[id] = d
	}
	for cid, m := range st.enrol {
		cm := make(map[int]*enrolment, len(m))
		for uid, e := range m {
			cm[uid] = e.clone()
		}
		c.enrol[cid] = cm
	}
	for id, r := range st.courses {
		cp := *r
		c.courses[id] = &cp
	}
	for id, r := range st.users {
		cp := *r
		c.users[id] = &cp
	}
	for id, r := range st.groups {
		cp := *r
		cp.members = copySet(r.members)
		c.groups[id] = &cp
	}
	for id, r := range st.groupings {
		cp := *r
		cp.groups = copySet(r.groups)
		c.groupings[id] = &cp
	}
	return c
}

// sameState reports whether two states hold the same data, indexes and
// counters; open transactions are ignored.
func sameState(a, b *state) bool { return reflect.DeepEqual(deepCopy(a), deepCopy(b)) }

// checkIndexes fails the test unless st's indexes match its records.
func checkIndexes(t *testing.T, st *state) {
	t.Helper()
	courseGroups, courseGroupings, groupGroupings := map[int]map[int]bool{}, map[int]map[int]bool{}, map[int]map[int]bool{}
	for id, g := range st.groups {
		addTo(courseGroups, g.courseid, id)
	}
	for id, g := range st.groupings {
		addTo(courseGroupings, g.courseid, id)
		for gid := range g.groups {
			if st.groups[gid] == nil {
				t.Fatalf("grouping %d links missing group %d", id, gid)
			}
			addTo(groupGroupings, gid, id)
		}
	}
	for cid, m := range st.enrol {
		if len(m) == 0 {
			t.Fatalf("empty enrolment map for course %d", cid)
		}
		for uid, e := range m {
			if e == nil || len(e.methods) == 0 {
				t.Fatalf("user %d is enrolled in course %d by no method", uid, cid)
			}
		}
	}
	if !reflect.DeepEqual(courseGroups, st.courseGroups) || !reflect.DeepEqual(courseGroupings, st.courseGroupings) ||
		!reflect.DeepEqual(groupGroupings, st.groupGroupings) {
		t.Fatalf("indexes out of step:\ncourseGroups %v, want %v\ncourseGroupings %v, want %v\ngroupGroupings %v, want %v",
			st.courseGroups, courseGroups, st.courseGroupings, courseGroupings, st.groupGroupings, groupGroupings)
	}
}

// smallSite has three courses, eight users, groups with members and
// groupings, one of which links a group of another course.
func smallSite(t *testing.T) *Server {
	t.Helper()
	s := New(Options{Debug: true})
	var courses, users []int
	for i := 0; i < 3; i++ {
		courses = append(courses, s.AddCourse(Course{ShortName: "C" + strconv.Itoa(i)}))
	}
	for i := 0; i < 8; i++ {
		users = append(users, s.AddUser(User{Username: "u" + strconv.Itoa(i), LastName: strconv.Itoa(7 - i)}))
	}
	for i, u := range users {
		for j, c := range courses {
			if (i+j)%3 != 0 {
				if err := s.Enrol(c, u); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var groups []int
	for j, c := range courses {
		enrolled := s.State().Enrolments[c]
		for k, name := range []string{"A", "B", "C"} {
			id, err := s.AddGroup(Group{CourseID: c, Name: name, IDNumber: name + strconv.Itoa(j), Members: enrolled[k:]})
			if err != nil {
				t.Fatal(err)
			}
			groups = append(groups, id)
		}
	}
	for j, c := range courses {
		if _, err := s.AddGrouping(Grouping{CourseID: c, Name: "GG", IDNumber: "gg" + strconv.Itoa(j), Groups: groups[3*j : 3*j+2]}); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	s.st.assignGroup(s.st.groupings[1], groups[4]) // a group of another course
	s.mu.Unlock()
	checkIndexes(t, s.st)
	return s
}

// TestRollbackRestoresEverything makes every kind of change in one
// transaction, deletes of groups with members and grouping links included,
// and checks that a rollback restores the state exactly and that a commit
// keeps what the same changes give outside a transaction.
func TestRollbackRestoresEverything(t *testing.T) {
	changes := func(st *state) {
		st.addMember(st.groups[1], 8)
		st.removeMember(st.groups[2], lastMember(st, 2))
		st.editGroup(st.groups[3], func(g *groupRec) { g.name, g.visibility = "Renamed", 2 })
		st.deleteGroup(1) // members and a grouping link
		st.deleteGroup(5) // linked from a grouping of another course
		st.insertGroup(&groupRec{id: st.newGroupID(), courseid: 2, name: "New", members: map[int]bool{3: true}})
		st.addMember(st.groups[st.nextGroup-1], 4)
		st.assignGroup(st.groupings[2], st.nextGroup-1)
		st.unassignGroup(st.groupings[3], 8)
		st.editGrouping(st.groupings[2], func(g *groupingRec) { g.idnumber = "changed" })
		st.deleteGrouping(3)
		st.insertGrouping(&groupingRec{id: st.newGroupingID(), courseid: 3, name: "New", groups: map[int]bool{9: true, 2: true}})
		st.unenrol(3, 4)
		st.enrolUser(4, 3, MethodManual, ueRec{}, RoleStudent)
		st.enrolUser(3, 5, "self", ueRec{suspended: true}, RoleTeacher) // a second method
		st.enrolUser(3, 6, MethodManual, ueRec{suspended: true, timeend: 99}, RoleTeacher)
		st.unenrolMethod(3, 5, MethodManual) // another method is left: memberships stay
		st.unenrolMethod(3, 7, MethodManual) // the last one: memberships go
		st.editCourse(st.courses[3], func(c *courseRec) { c.enddate, c.manualDisabled = 12345, true })
		st.deleteCourse(2)
		st.insertCourse(&courseRec{id: 9, shortname: "N"})
		st.insertUser(&userRec{id: 20, username: "n"})
		st.enrolUser(9, 20, MethodManual, ueRec{})
	}
	s := smallSite(t)
	st := s.st
	before, before2 := deepCopy(st), deepCopy(st)
	beforeState := st.snapshot()

	st.begin()
	changes(st)
	checkIndexes(t, st)
	st.rollback()
	if st.inTx || st.undo != nil {
		t.Fatal("transaction still open after rollback")
	}
	before.idCounters = st.idCounters // counters are not rolled back, nor is the group cache
	before.groupCache = st.groupCache
	if !sameState(st, before) {
		t.Fatalf("rollback changed the state:\n got %+v\nwant %+v", st.snapshot(), beforeState)
	}
	if !reflect.DeepEqual(st.snapshot(), beforeState) {
		t.Fatal("rollback changed State()")
	}
	checkIndexes(t, st)

	st.idCounters = before2.idCounters
	st.begin()
	changes(st)
	st.commit()
	changes(before2)
	if !sameState(st, before2) {
		t.Fatalf("committed changes differ from the same changes outside a transaction:\n got %+v\nwant %+v", st.snapshot(), before2.snapshot())
	}
	checkIndexes(t, st)
	st.rollback() // after a commit: nothing
	if !sameState(st, before2) {
		t.Fatal("rollback after commit changed the state")
	}
}

// lastMember returns the member of group id with the highest id.
func lastMember(st *state, id int) int {
	ids := sortedKeys(st.groups[id].members)
	return ids[len(ids)-1]
}

// form builds a form body from name, value pairs, in order.
func form(pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(pairs[i]) + "=" + url.QueryEscape(pairs[i+1]))
	}
	return b.String()
}

// randomWrite builds a random write call on small ids and a few names, so
// that many calls fail part-way through.
func randomWrite(r *rand.Rand) (string, []string) {
	pick := func(xs ...string) string { return xs[r.Intn(len(xs))] }
	n := func(max int) string { return strconv.Itoa(r.Intn(max + 1)) }
	var p []string
	item := func(list string, i int, kv ...string) {
		for j := 0; j+1 < len(kv); j += 2 {
			p = append(p, list+"["+strconv.Itoa(i)+"]["+kv[j]+"]", kv[j+1])
		}
	}
	names := []string{"A", "a", "B", "C ", "D", "E", "New", "  "}
	idnumbers := []string{"", "A1", "x", "y", "1", "01", "gg1"}
	fn := pick("core_group_create_groups", "core_group_update_groups", "core_group_delete_groups",
		"core_group_create_groupings", "core_group_update_groupings", "core_group_delete_groupings",
		"core_group_assign_grouping", "core_group_unassign_grouping", "core_group_add_group_members",
		"core_group_delete_group_members", "enrol_manual_enrol_users", "enrol_manual_unenrol_users")
	for i, k := 0, 1+r.Intn(5); i < k; i++ {
		switch fn {
		case "core_group_create_groups":
			item("groups", i, "courseid", n(5), "name", pick(names...), "description", "", "idnumber", pick(idnumbers...))
		case "core_group_update_groups":
			item("groups", i, "id", n(14), "name", pick(names...), "idnumber", pick(idnumbers...), "enrolmentkey", pick("", "k"),
				"visibility", pick("0", "1"), "participation", pick("0", "1"))
		case "core_group_delete_groups":
			p = append(p, "groupids["+strconv.Itoa(i)+"]", n(14))
		case "core_group_create_groupings":
			item("groupings", i, "courseid", n(5), "name", pick(names...), "description", "d", "idnumber", pick(idnumbers...))
		case "core_group_update_groupings":
			item("groupings", i, "id", n(6), "name", pick(names...), "description", "e", "idnumber", pick(idnumbers...))
		case "core_group_delete_groupings":
			p = append(p, "groupingids["+strconv.Itoa(i)+"]", n(6))
		case "core_group_assign_grouping":
			item("assignments", i, "groupingid", n(6), "groupid", n(14))
		case "core_group_unassign_grouping":
			item("unassignments", i, "groupingid", n(6), "groupid", n(14))
		case "core_group_add_group_members", "core_group_delete_group_members":
			item("members", i, "groupid", n(14), "userid", n(11))
		case "enrol_manual_enrol_users":
			item("enrolments", i, "roleid", pick("5", "5", "4", "2"), "userid", n(11), "courseid", n(5), "suspend", pick("0", "1", "0"))
		case "enrol_manual_unenrol_users":
			item("enrolments", i, "userid", n(11), "courseid", n(5), "roleid", pick("5", "4"))
		}
	}
	return fn, p
}

// TestJournalMatchesCopies runs random write calls, many of which fail
// part-way, and checks each against the former implementation: the call run
// on a deep copy that replaces the state only on success, except for the id
// counters and the group cache, which a failed call changes all the same.
func TestJournalMatchesCopies(t *testing.T) {
	var s *Server
	r := rand.New(rand.NewSource(1))
	failed, succeeded := 0, 0
	for i := 0; i < 3000; i++ {
		if i%300 == 0 {
			s = smallSite(t) // a fresh site now and then, so that small ids stay in use
		}
		fn, params := randomWrite(r)
		body := form(append([]string{"wstoken", DefaultToken, "wsfunction", fn, "moodlewsrestformat", "json"}, params...)...)
		newReq := func() *request {
			hr := httptest.NewRequest(http.MethodPost, RESTPath, strings.NewReader(body))
			hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return s.parseRequest(hr)
		}

		// The reference: run on a copy.
		f := functionsByName[fn]
		before := deepCopy(s.st)
		ref := deepCopy(s.st)
		var want []byte
		pv, werr := validate(f.params, newReq().params)
		if werr == nil {
			var res any
			res, werr = f.run(&callCtx{s: s, st: ref}, pv.(map[string]any))
			if werr == nil && f.returns != nil {
				out, cerr := clean(f.returns, res)
				if cerr != nil {
					t.Fatalf("%s %v: clean: %v", fn, params, cerr)
				}
				var b bytes.Buffer
				writeJSON(&b, out)
				want = b.Bytes()
			}
		}
		if werr != nil {
			want = werr.json(true)
			before.idCounters, before.groupCache = ref.idCounters, ref.groupCache
			ref = before
		}

		got, _ := s.handle(newReq())
		if f.returns == nil && werr == nil {
			want = []byte("null")
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("call %d %s %v:\n got %s\nwant %s", i, fn, params, got, want)
		}
		if !sameState(s.st, ref) {
			t.Fatalf("call %d %s %v (error %v): state\n got %+v\nwant %+v", i, fn, params, werr, s.st.snapshot(), ref.snapshot())
		}
		if s.st.inTx || s.st.undo != nil {
			t.Fatalf("call %d: transaction left open", i)
		}
		checkIndexes(t, s.st)
		if werr != nil {
			failed++
		} else {
			succeeded++
		}
	}
	if failed < 500 || succeeded < 500 {
		t.Errorf("%d calls failed, %d succeeded: the mix does not test both", failed, succeeded)
	}
}

// TestBadSeedRestoresCounters checks that a failing seed leaves the id
// counters as they were, unlike a failing web-service call.
func TestBadSeedRestoresCounters(t *testing.T) {
	s := smallSite(t)
	before := deepCopy(s.st)
	bad := `{"courses": [{"shortname": "N"}], "users": [{"username": "n"}],
		"groups": [{"course": "N", "name": "G"}, {"course": "N", "name": "G"}]}`
	if err := s.LoadSeed(strings.NewReader(bad)); err == nil {
		t.Fatal("duplicate group name accepted")
	}
	if !sameState(s.st, before) || s.st.inTx {
		t.Fatal("bad seed changed the state")
	}
}
