package load_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
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

// institution is a synthetic university (extract/sample) in staging and in
// the simulator, whose calls are charged by the reference's cost model.
type institution struct {
	tb  testing.TB
	d   sample.Dataset
	sim *moodlesim.Server
	mc  *moodle.Client
	st  *store.Store
	// members are the student rows of the current CMIS state.
	members [][]string
	// notEnrolled: (course, user) pairs CMIS lists that are not enrolled.
	notEnrolled int
}

// newInstitution builds the institution; every notEnrolledEvery-th
// (course, person) pair CMIS lists is not enrolled in Moodle (0: all are).
// The simulator waits scale times what each call costs a real site.
func newInstitution(tb testing.TB, spec sample.Spec, notEnrolledEvery int, scale float64) *institution {
	return newInstitutionLatency(tb, spec, notEnrolledEvery, scale, 0)
}

// newInstitutionLatency is newInstitution whose simulator also waits a
// fixed latency before answering every call.
func newInstitutionLatency(tb testing.TB, spec sample.Spec, notEnrolledEvery int, scale float64, latency time.Duration) *institution {
	ctx := context.Background()
	costs := moodlesim.ReferenceCosts()
	costs.Scale = scale
	costs.Latency = latency
	if scale > 0 {
		costs.Workers = 4 // the reference site's PHP workers
	}
	in := &institution{tb: tb, d: sample.Generate(spec), sim: moodlesim.New(moodlesim.Options{Token: token, ShowIdnumber: true, Costs: costs})}
	url, err := in.sim.Start("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { in.sim.Close() })
	if in.mc, err = moodle.New(moodle.Options{URL: url, Token: token, Timeout: time.Minute}); err != nil {
		tb.Fatal(err)
	}
	courseID := map[string]int{}
	for _, c := range in.d.Courses {
		courseID[c.ShortName] = in.sim.AddCourse(moodlesim.Course{ShortName: c.ShortName, FullName: c.FullName})
	}
	userID := map[string]int{}
	for _, p := range append(append([]sample.Person{}, in.d.Students...), in.d.Staff...) {
		userID[p.IDNumber] = in.sim.AddUser(moodlesim.User{Username: p.Username, IDNumber: p.IDNumber})
	}
	people := map[string][]string{}
	for _, r := range append(append([][]string{}, in.d.Members...), in.d.Tutors...) {
		people[r[0]] = append(people[r[0]], r[2])
	}
	in.st = storetest.Open(tb, benchEngine())
	seen := map[[2]int]bool{}
	for _, m := range in.d.Mappings {
		c := courseID[m.CourseShortName]
		for _, p := range people[m.ModuleCode] {
			k := [2]int{c, userID[p]}
			if seen[k] {
				continue
			}
			seen[k] = true
			if notEnrolledEvery > 0 && len(seen)%notEnrolledEvery == 0 {
				in.notEnrolled++
				continue
			}
			if err := in.sim.Enrol(c, userID[p]); err != nil {
				tb.Fatal(err)
			}
		}
		if err := in.st.UpsertMapping(ctx, store.Mapping{CourseID: int64(c), ModuleCode: m.ModuleCode}); err != nil {
			tb.Fatal(err)
		}
	}
	return in
}

// extract commits a CMIS extract with the student rows given.
func (in *institution) extract(members [][]string) {
	ctx := context.Background()
	in.members = members
	gen, err := in.st.BeginExtract(ctx, fmt.Sprintf("x%d", time.Now().UnixNano()))
	if err != nil {
		in.tb.Fatal(err)
	}
	for t, rows := range map[store.DumpTable][][]string{store.ModuleGroups: in.d.ModuleGroups, store.GroupMembers: members, store.GroupTutors: in.d.Tutors} {
		for start := 0; start < len(rows); start += 20000 {
			if _, err := gen.Insert(ctx, t, rows[start:min(start+20000, len(rows))]); err != nil {
				in.tb.Fatal(err)
			}
		}
	}
	if err := gen.Commit(ctx); err != nil {
		in.tb.Fatal(err)
	}
}

// every returns the student rows but one in n, from offset.
func every(rows [][]string, n, offset int) [][]string {
	var out [][]string
	for i, r := range rows {
		if i%n != offset {
			out = append(out, r)
		}
	}
	return out
}

// nightReport is what one night cost Moodle.
type nightReport struct {
	name    string
	res     *load.Result
	work    map[string]moodlesim.Work
	wall    time.Duration
	total   time.Duration
	enrol   time.Duration // enrolment checks: reads of enrolments and users, and add calls refused
	staging time.Duration // in staging's transactions (store.TxTime)
	changed int           // courses with writes
}

// share is the part of Moodle's time spent on enrolment checks.
func (r nightReport) share() float64 {
	if r.total == 0 {
		return 0
	}
	return float64(r.enrol) / float64(r.total)
}

func (r nightReport) String() string {
	var fns []string
	for fn := range r.work {
		fns = append(fns, fn)
	}
	sort.Strings(fns)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: Moodle time %s, of which enrolment checks %s (%.1f%%); %d changed courses; %s wall\n",
		r.name, r.total.Round(time.Millisecond), r.enrol.Round(time.Millisecond), 100*r.share(), r.changed, r.wall.Round(time.Millisecond))
	for _, fn := range fns {
		w := r.work[fn]
		fmt.Fprintf(&b, "    %-36s %6d calls %8d items %10s", fn, w.Calls, w.Items, w.Time.Round(time.Millisecond))
		if w.Refused > 0 {
			fmt.Fprintf(&b, " (refused %s)", w.Refused.Round(time.Millisecond))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// night stages and loads once, and reports what it cost Moodle.
func (in *institution) night(name string, opts load.Options) nightReport {
	in.tb.Helper()
	ctx := context.Background()
	if _, err := stage.Run(ctx, in.st, stage.Options{}, quiet()); err != nil {
		in.tb.Fatal(err)
	}
	in.sim.ResetCalls()
	opts.RunID = name
	if opts.Concurrency == 0 {
		opts.Concurrency = 8
	}
	start, tx := time.Now(), in.st.TxTime()
	res, err := load.Run(ctx, in.st, in.mc, opts, quiet())
	r := nightReport{name: name, res: res, work: in.sim.Work(), wall: time.Since(start), staging: in.st.TxTime() - tx}
	if err != nil {
		in.tb.Fatal(err)
	}
	for _, f := range res.Failures {
		if f.ErrorCode != "notenrolled" {
			in.tb.Fatalf("%s: failure %+v", name, f)
		}
	}
	for fn, w := range r.work {
		r.total += w.Time
		switch fn {
		case moodle.FnEnrolledUsers, moodle.FnUsersByField:
			r.enrol += w.Time
		case moodle.FnAddMembers:
			r.enrol += w.Refused
		}
	}
	for _, cp := range res.Plan.Courses {
		if cp.Counts.Writes() > 0 {
			r.changed++
		}
	}
	return r
}

// fourNights runs a first load (1% of memberships held back), a night
// that adds them, a night that removes another 1%, and a night with no
// change; or, firstOnly, the first load alone.
func (in *institution) fourNights(opts load.Options, firstOnly bool) []nightReport {
	all := in.d.Members
	in.extract(every(all, 100, 3))
	first := in.night("first", opts)
	if firstOnly {
		return []nightReport{first}
	}
	in.extract(all)
	adds := in.night("additions", opts)
	in.extract(every(all, 100, 7))
	removals := in.night("removals", opts)
	unchanged := in.night("unchanged", opts)
	return []nightReport{first, adds, removals, unchanged}
}

// TestMoodleTimeFollowsChanges checks, on a mid-sized institution with a
// few people not enrolled, what each kind of night costs Moodle under the
// reference's cost model (charged, not waited for): a first load and a
// night of additions spend at most 15% and 25% of Moodle's time on
// enrolment checks, a night of removals reads no enrolments and lists no
// course, and an unchanged night neither.
func TestMoodleTimeFollowsChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("mid-sized institution")
	}
	spec := sample.Spec{Seed: 3, Courses: 120, ModulesPerCourse: 3, GroupsPerModule: 3, StudentsPerGroup: 15, TutorsPerGroup: 1, SharedModules: 60}
	in := newInstitution(t, spec, 400, 0)
	nights := in.fourNights(load.Options{}, false)
	for _, n := range nights {
		t.Log(n)
	}
	first, adds, removals, unchanged := nights[0], nights[1], nights[2], nights[3]
	if first.share() > 0.15 {
		t.Errorf("first load: %.1f%% of Moodle's time on enrolment checks, want at most 15%%", 100*first.share())
	}
	if adds.res.MembersAdded == 0 || adds.share() > 0.25 {
		t.Errorf("additions night (%d added): %.1f%% of Moodle's time on enrolment checks, want at most 25%%", adds.res.MembersAdded, 100*adds.share())
	}
	for _, n := range []nightReport{removals, unchanged} {
		if w := n.work[moodle.FnEnrolledUsers]; w.Calls != 0 && n.res.NotEnrolled == 0 {
			t.Errorf("%s: %d enrolment reads", n.name, w.Calls)
		}
		if w := n.work[moodle.FnCourseGroups]; w.Calls != 0 {
			t.Errorf("%s: %d course listings", n.name, w.Calls)
		}
	}
	if removals.res.MembersRemoved == 0 {
		t.Errorf("removals night removed nobody: %+v", removals.res.Map())
	}
	if in.notEnrolled == 0 || first.res.NotEnrolled == 0 {
		t.Errorf("no member waited for enrolment (%d pairs not enrolled): the test does not cover them", in.notEnrolled)
	}
}

// BenchmarkLoadLarge loads the large synthetic institution (5,000 courses,
// 600,000 student memberships) into the simulator over four nights and
// reports, per night, Moodle's time as the reference's cost model charges
// it, the share of enrolment checks, writes against the minimum possible
// calls, and reads of what cmissync owns against the minimum. The
// simulator waits CMISSYNC_SIM_SCALE times the charged time (default 0:
// charged only; 1: as slow as the reference site, with 4 workers), plus a
// fixed CMISSYNC_SIM_LATENCY per call (default 20ms).
//
// It also reports how the first load compares with what its calls alone
// need: first_wall/bound is its wall time over the call-latency bound,
// (reads + writes) x the fixed latency / the load's concurrency (8); and
// first_staging_% is, at most, the share of its wall time spent on
// anything but waiting for Moodle (staging, planning, the simulator's own
// work): the wall time of the same first load on a second institution
// whose simulator answers at once, over first_s. These three come with a
// fixed latency and no scale. first_staging_tx_%, reported always (a
// scaled run too), is the time staging was busy during the first load (a
// transaction open: every write; transactions open at once count once)
// over its wall time.
//
// CMISSYNC_BENCH_STAGING=mysql stages on MariaDB (CMISSYNC_TEST_MYSQL_DSN)
// instead of SQLite; CMISSYNC_BENCH_NIGHTS=1 runs the first load alone;
// CMISSYNC_TEST_LOG=debug logs how long each part of the plan and each
// phase of the load took.
func BenchmarkLoadLarge(b *testing.B) { benchLoad(b, sample.Large()) }

// BenchmarkLoadXL is BenchmarkLoadLarge on the XL institution (14,000
// courses, 1,456,000 student memberships).
func BenchmarkLoadXL(b *testing.B) { benchLoad(b, sample.XL()) }

// benchConcurrency is the load's concurrency in the benchmarks.
const benchConcurrency = 8

func benchLoad(b *testing.B, spec sample.Spec) {
	if testing.Short() {
		b.Skip("large")
	}
	scale := 0.0
	if v := os.Getenv("CMISSYNC_SIM_SCALE"); v != "" {
		var err error
		if scale, err = strconv.ParseFloat(v, 64); err != nil {
			b.Fatalf("CMISSYNC_SIM_SCALE: %v", err)
		}
	}
	latency := 20 * time.Millisecond
	if v := os.Getenv("CMISSYNC_SIM_LATENCY"); v != "" {
		var err error
		if latency, err = time.ParseDuration(v); err != nil {
			b.Fatalf("CMISSYNC_SIM_LATENCY: %v", err)
		}
	}
	opts := load.Options{Concurrency: benchConcurrency}
	var atOnce time.Duration
	if latency > 0 {
		// The same first load with nothing to wait for: what is left is
		// cmissync's own work (and the simulator's).
		in0 := newInstitutionLatency(b, spec, 1000, 0, 0)
		in0.extract(every(in0.d.Members, 100, 3))
		atOnce = in0.night("first-at-once", opts).wall
		in0.sim.Close()
	}
	in := newInstitutionLatency(b, spec, 1000, scale, latency)
	b.ResetTimer()
	nights := in.fourNights(opts, os.Getenv("CMISSYNC_BENCH_NIGHTS") == "1")
	if first := nights[0].res; first.MembersAdded < int64(len(in.members))/2 {
		// A benchmark of a load that adds nobody measures nothing.
		b.Fatalf("the first load added %d of %d memberships: %+v", first.MembersAdded, len(in.members), first.Map())
	}
	for _, n := range nights {
		in.report(b, n)
	}
	first := nights[0]
	b.ReportMetric(100*first.staging.Seconds()/first.wall.Seconds(), "first_staging_tx_%")
	if latency > 0 && scale == 0 {
		var calls int
		for _, w := range first.work {
			calls += w.Calls
		}
		bound := time.Duration(calls) * latency / benchConcurrency
		b.ReportMetric(first.wall.Seconds()/bound.Seconds(), "first_wall/bound")
		b.ReportMetric(bound.Seconds(), "first_bound_s")
		b.ReportMetric(100*atOnce.Seconds()/first.wall.Seconds(), "first_staging_%")
		b.Logf("first load: %d calls, bound %s at %s per call and concurrency %d, wall %s (%.2f x bound); the same load answered at once: %s (%.1f%% of the wall)",
			calls, bound.Round(time.Millisecond), latency, benchConcurrency, first.wall.Round(time.Millisecond), first.wall.Seconds()/bound.Seconds(),
			atOnce.Round(time.Millisecond), 100*atOnce.Seconds()/first.wall.Seconds())
	}
}

// report puts a night's numbers in benchmark metrics and the log.
func (in *institution) report(b *testing.B, n nightReport) {
	ctx := context.Background()
	var ownedGroups, ownedGroupings int64
	if err := in.st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM cmis_groups_course WHERE moodlegroupid IS NOT NULL`).Scan(&ownedGroups); err != nil {
		b.Fatal(err)
	}
	if err := in.st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM cmis_groupings WHERE moodlegroupingid IS NOT NULL`).Scan(&ownedGroupings); err != nil {
		b.Fatal(err)
	}
	res := n.res
	items := map[string]int64{
		moodle.FnCreateGroupings: res.GroupingsCreated, moodle.FnCreateGroups: res.GroupsCreated, moodle.FnAssignGrouping: res.Assigned,
		moodle.FnAddMembers: res.MembersAdded, moodle.FnDeleteMembers: res.MembersRemoved, moodle.FnDeleteGroups: res.GroupsDeleted,
		moodle.FnDeleteGroupings: res.GroupingsDeleted, moodle.FnUpdateGroups: res.Renamed + res.Adopted,
	}
	var writes, minimum int64
	for fn, w := range n.work {
		if per, ok := writeFns[fn]; ok {
			writes += int64(w.Calls)
			capacity := int64(in.mc.Capacity(per))
			minimum += (items[fn] + capacity - 1) / capacity
		}
	}
	name := n.name
	if minimum > 0 {
		b.ReportMetric(float64(writes)/float64(minimum), name+"_calls/min")
	}
	perCall := int64(in.mc.Capacity(moodle.VarsPerReadByID))
	ceil := func(n, d int64) int64 { return (n + d - 1) / d }
	verify := int64(n.work[moodle.FnGetGroups].Calls + n.work[moodle.FnGroupMembers].Calls + n.work[moodle.FnGetGroupings].Calls)
	if minVerify := ceil(ownedGroups, perCall) + ceil(ownedGroups, perCall) + ceil(ownedGroupings, perCall-1); minVerify > 0 {
		b.ReportMetric(float64(verify)/float64(minVerify), name+"_verify_reads/min")
	}
	b.ReportMetric(n.total.Seconds(), name+"_moodle_s")
	b.ReportMetric(100*n.share(), name+"_enrolment_%")
	b.ReportMetric(float64(n.work[moodle.FnCourseGroups].Calls), name+"_listings")
	b.ReportMetric(float64(n.work[moodle.FnEnrolledUsers].Calls), name+"_enrolment_reads")
	b.ReportMetric(n.wall.Seconds(), name+"_s")
	b.Logf("%s  writes %d calls (minimum %d); %+v", n, writes, minimum, res.Map())
}

// benchEngine is the staging engine of the load benchmarks:
// CMISSYNC_BENCH_STAGING (sqlite, the default, or mysql).
func benchEngine() string {
	if e := os.Getenv("CMISSYNC_BENCH_STAGING"); e != "" {
		return e
	}
	return store.EngineSQLite
}
