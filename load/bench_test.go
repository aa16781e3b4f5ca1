package load_test

import (
	"context"
	"testing"
	"time"

	"github.com/cmissync/cmissync/extract/sample"
	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// writeFns are the write functions and the form variables per item.
var writeFns = map[string]int{
	moodle.FnCreateGroupings: moodle.VarsPerNewGrouping, moodle.FnCreateGroups: moodle.VarsPerNewGroup,
	moodle.FnAssignGrouping: moodle.VarsPerPair, moodle.FnAddMembers: moodle.VarsPerPair,
	moodle.FnDeleteMembers: moodle.VarsPerPair, moodle.FnDeleteGroups: moodle.VarsPerID,
	moodle.FnDeleteGroupings: moodle.VarsPerID, moodle.FnUpdateGroups: moodle.VarsPerUpdate,
	moodle.FnUpdateGroupings: moodle.VarsPerUpdate, moodle.FnUnassignGrouping: moodle.VarsPerPair,
}

// night loads once and reports calls made against the minimum possible:
// for each write function, items / items per request, rounded up.
func night(b *testing.B, name string, st *store.Store, sim *moodlesim.Server, mc *moodle.Client) {
	b.Helper()
	ctx := context.Background()
	if _, err := stage.Run(ctx, st, stage.Options{}, quiet()); err != nil {
		b.Fatal(err)
	}
	// What a night must verify: every group and grouping cmissync owns.
	var ownedGroups, ownedGroupings int64
	if err := st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM cmis_groups_course WHERE moodlegroupid IS NOT NULL`).Scan(&ownedGroups); err != nil {
		b.Fatal(err)
	}
	if err := st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM cmis_groupings WHERE moodlegroupingid IS NOT NULL`).Scan(&ownedGroupings); err != nil {
		b.Fatal(err)
	}
	sim.ResetCalls()
	start := time.Now()
	res, err := load.Run(ctx, st, mc, load.Options{RunID: name, Concurrency: 8}, quiet())
	wall := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if len(res.Failures) != 0 {
		b.Fatalf("%s: %d failures, first %+v", name, len(res.Failures), res.Failures[0])
	}
	items := map[string]int64{
		moodle.FnCreateGroupings: res.GroupingsCreated, moodle.FnCreateGroups: res.GroupsCreated, moodle.FnAssignGrouping: res.Assigned,
		moodle.FnAddMembers: res.MembersAdded, moodle.FnDeleteMembers: res.MembersRemoved, moodle.FnDeleteGroups: res.GroupsDeleted,
		moodle.FnDeleteGroupings: res.GroupingsDeleted, moodle.FnUpdateGroups: res.Renamed + res.Adopted,
	}
	var writes, minimum, reads int64
	for fn, n := range sim.Calls() {
		if per, ok := writeFns[fn]; ok {
			writes += int64(n)
			capacity := int64(mc.Capacity(per))
			minimum += (items[fn] + capacity - 1) / capacity
		} else {
			reads += int64(n)
		}
	}
	b.ReportMetric(float64(writes), name+"_write_calls")
	if minimum > 0 {
		b.ReportMetric(float64(writes)/float64(minimum), name+"_calls/min")
	}
	b.ReportMetric(float64(reads), name+"_read_calls")
	// Reads by id against the minimum: owned ids / ids per call, for each
	// of the three reads that verify everything owned.
	perCall := int64(mc.Capacity(moodle.VarsPerReadByID))
	ceil := func(n, d int64) int64 { return (n + d - 1) / d }
	calls := sim.Calls()
	verify := int64(calls[moodle.FnGetGroups] + calls[moodle.FnGroupMembers] + calls[moodle.FnGetGroupings])
	minVerify := ceil(ownedGroups, perCall) + ceil(ownedGroups, perCall) + ceil(ownedGroupings, perCall-1)
	if minVerify > 0 {
		b.ReportMetric(float64(verify)/float64(minVerify), name+"_verify_reads/min")
	}
	b.ReportMetric(float64(calls[moodle.FnCourseGroups]), name+"_listings")
	b.ReportMetric(float64(calls[moodle.FnEnrolledUsers]), name+"_enrolment_reads")
	courses := 0
	for _, cp := range res.Plan.Courses {
		if cp.Counts.Writes() > 0 {
			courses++
		}
	}
	if courses > 0 {
		b.ReportMetric(float64(reads)/float64(courses), name+"_reads/changed_course")
	}
	b.ReportMetric(wall.Seconds(), name+"_s")
	b.Logf("%s: %d changed courses, %d writes (minimum %d), %d reads (verifying %d owned groups and %d groupings: %d calls, minimum %d; %d listings), %s; reads by function %v; %+v",
		name, courses, writes, minimum, reads, ownedGroups, ownedGroupings, verify, minVerify, calls[moodle.FnCourseGroups], wall.Round(time.Millisecond), res.Plan.Reads, res.Map())
}

// BenchmarkLoadLarge loads the large synthetic institution into the
// simulator with 20 ms of latency per call: a first full load, a night
// with 1% of memberships changed, and a night with no change.
func BenchmarkLoadLarge(b *testing.B) {
	if testing.Short() {
		b.Skip("large")
	}
	ctx := context.Background()
	d := sample.Generate(sample.Large())
	sim := moodlesim.New(moodlesim.Options{Token: token, ShowIdnumber: true})
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	mc, err := moodle.New(moodle.Options{URL: url, Token: token, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	courseID := map[string]int{}
	for _, c := range d.Courses {
		courseID[c.ShortName] = sim.AddCourse(moodlesim.Course{ShortName: c.ShortName, FullName: c.FullName})
	}
	userID := map[string]int{}
	for _, p := range append(append([]sample.Person{}, d.Students...), d.Staff...) {
		userID[p.IDNumber] = sim.AddUser(moodlesim.User{Username: p.Username, IDNumber: p.IDNumber})
	}
	people := map[string][]string{}
	for _, r := range append(append([][]string{}, d.Members...), d.Tutors...) {
		people[r[0]] = append(people[r[0]], r[2])
	}
	st := storetest.Open(b, store.EngineSQLite)
	enrolled := map[[2]int]bool{}
	for _, m := range d.Mappings {
		c := courseID[m.CourseShortName]
		for _, p := range people[m.ModuleCode] {
			if k := [2]int{c, userID[p]}; !enrolled[k] {
				enrolled[k] = true
				if err := sim.Enrol(c, userID[p]); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := st.UpsertMapping(ctx, store.Mapping{CourseID: int64(c), ModuleCode: m.ModuleCode}); err != nil {
			b.Fatal(err)
		}
	}
	dump := func(members [][]string) {
		gen, err := st.BeginExtract(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		for t, rows := range map[store.DumpTable][][]string{store.ModuleGroups: d.ModuleGroups, store.GroupMembers: members, store.GroupTutors: d.Tutors} {
			for start := 0; start < len(rows); start += 20000 {
				if _, err := gen.Insert(ctx, t, rows[start:min(start+20000, len(rows))]); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := gen.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	dump(d.Members)
	sim.SetFaults(moodlesim.Faults{Latency: 20 * time.Millisecond})
	b.ResetTimer()
	night(b, "first", st, sim, mc)
	// 1% of student memberships leave CMIS.
	var fewer [][]string
	for i, r := range d.Members {
		if i%100 != 7 {
			fewer = append(fewer, r)
		}
	}
	dump(fewer)
	night(b, "one_percent", st, sim, mc)
	night(b, "unchanged", st, sim, mc)
}
