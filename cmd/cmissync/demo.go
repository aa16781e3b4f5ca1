package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/cmissync/cmissync/extract/sample"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
)

func (a *app) demoCommand() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on embedded defaults: sample CMIS data, SQLite, a simulated Moodle",
		Long: `Runs cmissync end to end with no configuration and no server:

  1. generates a small sample CMIS dataset (3 courses, 6 module mappings,
     groups, students and tutors) in a SQLite file, as the CMIS views;
  2. starts the Moodle simulator on a loopback port with those courses and
     users (one student is left unenrolled on purpose, and one course has a
     hand-made group that cmissync must not touch);
  3. runs extract, stage and load on a SQLite staging database and prints
     what was created in Moodle;
  4. runs again and shows that nothing changes.

Reports are written as .eml files whose paths are printed. Every file
is kept in --dir (default: a new temporary directory).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return a.demo(c.Context(), dir)
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory for the demo's files (default: a new temporary directory)")
	return a.withHelp(c)
}

// demoUnenrolled is how many students the demo leaves unenrolled, to show
// how cmissync reports them.
const demoUnenrolled = 1

func (a *app) demo(ctx context.Context, dir string) error {
	out := a.stdout
	if dir == "" {
		d, err := os.MkdirTemp("", "cmissync-demo-")
		if err != nil {
			return err
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(out, "cmissync demo: files in %s\n\n", dir)

	// 1. Sample CMIS data, as the CMIS views in a SQLite file.
	data := sample.Generate(sample.Demo())
	cmisPath := filepath.Join(dir, "cmis.db")
	_ = os.Remove(cmisPath)
	src, err := sql.Open("sqlite", cmisPath)
	if err != nil {
		return err
	}
	err = sample.WriteSQL(ctx, src, data)
	src.Close()
	if err != nil {
		return fmt.Errorf("write sample CMIS data: %w", err)
	}
	fmt.Fprintf(out, "CMIS sample: %d module groups, %d student and %d tutor memberships (%s)\n",
		len(data.ModuleGroups), len(data.Members), len(data.Tutors), cmisPath)

	// 2. A simulated Moodle with the courses, users and enrolments.
	token := randomToken()
	sim := moodlesim.New(moodlesim.Options{Token: token, ShowIdnumber: true, SiteName: "cmissync demo Moodle"})
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start the Moodle simulator: %w", err)
	}
	defer sim.Close()
	seed, err := seedDemoMoodle(sim, data, demoUnenrolled)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Moodle simulator: %s (%d courses, %d users; %d student left unenrolled on purpose)\n",
		url, len(data.Courses), len(data.Students)+len(data.Staff), demoUnenrolled)

	// 3. Configuration: embedded defaults pointed at the files above.
	cfg := defaultConfig()
	cfg.Site.Name = "demo"
	cfg.Staging.DSN = filepath.Join(dir, "staging.db")
	// Each demo's Moodle is a new simulated site: staging from an earlier
	// demo in the same directory belongs to one that is gone, and a run
	// would rightly refuse it (the site binding).
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(cfg.Staging.DSN + suffix)
	}
	cfg.Source.Driver = "sqlite"
	cfg.Source.DSN = cmisPath
	cfg.Moodle.URL = url
	cfg.Moodle.Token = token
	cfg.Moodle.RetryWait = Duration(10_000_000) // 10ms: the simulator is local
	cfg.Email.ReportDir = filepath.Join(dir, "reports")
	cfg.Log.Level = "warn"
	if a.logLevel != "" {
		cfg.Log.Level = a.logLevel
	}
	st, err := store.Open(ctx, cfg.Staging.Engine, cfg.Staging.DSN)
	if err != nil {
		return err
	}
	if _, err := st.Migrate(ctx); err != nil {
		st.Close()
		return err
	}
	for _, m := range data.Mappings {
		if err := st.UpsertMapping(ctx, store.Mapping{CourseID: seed.courseIDs[m.CourseShortName], ModuleCode: m.ModuleCode}); err != nil {
			st.Close()
			return err
		}
	}
	st.Close()
	fmt.Fprintf(out, "Staging: %s (SQLite), %d rows in mapped_modules\n", cfg.Staging.DSN, len(data.Mappings))

	// 4. First run.
	fmt.Fprintf(out, "\n== First run: cmissync run ==\n")
	first, err := a.demoRun(ctx, cfg)
	if err != nil && !isPartial(err) {
		return err
	}
	if err != nil {
		fmt.Fprintf(out, "Run finished with exit code %d: %v\n", exitCode(err, true), err)
	}
	printDemoMoodle(out, sim.State(), seed)
	printDemoReports(out, first.reports)

	// 5. Second run: nothing should change.
	fmt.Fprintf(out, "\n== Second run: cmissync run (nothing changed in CMIS) ==\n")
	before := sim.State()
	sim.ResetCalls()
	second, err := a.demoRun(ctx, cfg)
	if err != nil && !isPartial(err) {
		return err
	}
	writes, refused := writeCalls(sim.Calls()), refusedWrites(sim.Work())
	fmt.Fprintf(out, "Moodle write calls: %d", writes)
	if refused > 0 {
		fmt.Fprintf(out, " (%d refused: members waiting for enrolment, tried again alone)", refused)
	}
	fmt.Fprintf(out, "; read calls: %d\n", totalCalls(sim.Calls())-writes)
	if second.writes != 0 || writes != refused || !sameState(before, sim.State()) {
		return fmt.Errorf("demo: the second run changed Moodle (%d writes): this is a bug", writes)
	}
	fmt.Fprintln(out, "Nothing changed: Moodle was already in step with CMIS.")
	if second.notEnrolled > 0 {
		fmt.Fprintf(out, "(%d memberships of the unenrolled student still wait; they are reported each run and added once the student is enrolled.)\n", second.notEnrolled)
	}
	printDemoReports(out, second.reports)
	// Leave a configuration for the demo's staging, so that the inspection
	// commands can be tried on it (the simulated Moodle is gone).
	cfgPath := filepath.Join(dir, "cmissync.toml")
	conf := fmt.Sprintf("# The demo's staging and sample source; the simulated Moodle stopped with the demo.\n[staging]\ndsn = %q\n\n[source]\ndriver = \"sqlite\"\ndsn = %q\n\n[email]\nreport_dir = %q\n",
		cfg.Staging.DSN, cfg.Source.DSN, cfg.Email.ReportDir)
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nTry next, on the demo's staging database:\n")
	course := seed.courseIDs[data.Courses[0].ShortName]
	for _, c := range []string{"status", "audit", "plan --offline", fmt.Sprintf("explain --offline --course %d", course), "map list"} {
		fmt.Fprintf(out, "  go run ./cmd/cmissync %s --config %s\n", c, cfgPath)
	}
	return nil
}

type demoResult struct {
	writes      int64
	notEnrolled int64
	reports     []string
}

func (a *app) demoRun(ctx context.Context, cfg *Config) (demoResult, error) {
	p, err := a.pipelineFor(ctx, cfg, nil)
	if err != nil {
		return demoResult{}, err
	}
	defer p.close()
	err = p.run(ctx, false)
	var r demoResult
	if p.lastLoad != nil {
		r.writes = p.lastLoad.Writes()
		r.notEnrolled = p.lastLoad.NotEnrolled
		fmt.Fprintf(a.stdout, "load: %d groupings and %d groups created, %d members added, %d removed, %d groups deleted; %d memberships wait for enrolment\n",
			p.lastLoad.GroupingsCreated, p.lastLoad.GroupsCreated, p.lastLoad.MembersAdded, p.lastLoad.MembersRemoved,
			p.lastLoad.GroupsDeleted, p.lastLoad.NotEnrolled)
	}
	for _, d := range p.deliveries {
		if d.Path != "" {
			r.reports = append(r.reports, d.Path)
		}
	}
	return r, err
}

// demoSeed is what the demo put in the simulator.
type demoSeed struct {
	courseIDs   map[string]int64
	courseNames map[int64]string
	handmade    string
}

// seedDemoMoodle creates the courses and users, enrols every student and
// tutor of each mapped module in its courses (but one student), and adds a
// hand-made group to the first course.
func seedDemoMoodle(sim *moodlesim.Server, d sample.Dataset, unenrolled int) (demoSeed, error) {
	seed := demoSeed{courseIDs: map[string]int64{}, courseNames: map[int64]string{}}
	for _, c := range d.Courses {
		id := int64(sim.AddCourse(moodlesim.Course{ShortName: c.ShortName, FullName: c.FullName}))
		seed.courseIDs[c.ShortName] = id
		seed.courseNames[id] = c.ShortName
	}
	users := map[string]int{}
	for _, p := range append(append([]sample.Person{}, d.Students...), d.Staff...) {
		users[p.IDNumber] = sim.AddUser(moodlesim.User{Username: p.Username, IDNumber: p.IDNumber, Email: p.Email, FirstName: p.FirstName, LastName: p.LastName})
	}
	byModule := map[string][]string{}
	for _, m := range d.Members {
		byModule[m[0]] = append(byModule[m[0]], m[2])
	}
	for _, t := range d.Tutors {
		byModule[t[0]] = append(byModule[t[0]], t[2])
	}
	skip := map[string]bool{}
	for i := 0; i < unenrolled && i < len(d.Members); i++ {
		skip[d.Members[i][2]] = true // left unenrolled on purpose
	}
	enrolled := map[[2]int]bool{}
	for _, m := range d.Mappings {
		cid := int(seed.courseIDs[m.CourseShortName])
		for _, idn := range byModule[m.ModuleCode] {
			k := [2]int{cid, users[idn]}
			if skip[idn] || enrolled[k] {
				continue
			}
			enrolled[k] = true
			if err := sim.Enrol(cid, users[idn]); err != nil {
				return seed, fmt.Errorf("enrol %s: %w", idn, err)
			}
		}
	}
	if len(d.Courses) > 0 {
		// A teacher's own group, with one of the CMIS students in it:
		// cmissync must leave both the group and the membership alone.
		seed.handmade = "Study buddies (made by a teacher)"
		cid := int(seed.courseIDs[d.Courses[0].ShortName])
		gid, err := sim.AddGroup(moodlesim.Group{CourseID: cid, Name: seed.handmade})
		if err != nil {
			return seed, err
		}
		for _, m := range d.Mappings {
			if m.CourseShortName != d.Courses[0].ShortName {
				continue
			}
			for _, idn := range byModule[m.ModuleCode] {
				if !skip[idn] {
					if err := sim.AddMember(gid, users[idn]); err != nil {
						return seed, err
					}
					return seed, nil
				}
			}
		}
	}
	return seed, nil
}

func printDemoMoodle(w io.Writer, s moodlesim.State, seed demoSeed) {
	fmt.Fprintln(w, "\nMoodle now holds:")
	byCourse := map[int][]moodlesim.Group{}
	for _, g := range s.Groups {
		byCourse[g.CourseID] = append(byCourse[g.CourseID], g)
	}
	groupings := map[int][]moodlesim.Grouping{}
	for _, g := range s.Groupings {
		groupings[g.CourseID] = append(groupings[g.CourseID], g)
	}
	var ids []int
	for id := range byCourse {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		fmt.Fprintf(w, "  course %d %s\n", id, seed.courseNames[int64(id)])
		for _, gg := range groupings[id] {
			fmt.Fprintf(w, "    grouping %-24q idnumber %-18s %d groups\n", gg.Name, gg.IDNumber, len(gg.Groups))
		}
		for _, g := range byCourse[id] {
			owner := "cmissync"
			if !stage.IsOwnedIDNumber(g.IDNumber) {
				owner = "hand-made, left alone"
			}
			fmt.Fprintf(w, "    group    %-24q idnumber %-18s %2d members (%s)\n", g.Name, g.IDNumber, len(g.Members), owner)
		}
	}
}

func printDemoReports(w io.Writer, paths []string) {
	for _, p := range paths {
		fmt.Fprintf(w, "Report (email kept as a file): %s\n", p)
	}
}

// writeFunctions are the web-service functions that change Moodle.
var writeFunctions = map[string]bool{
	moodle.FnCreateGroupings: true, moodle.FnCreateGroups: true, moodle.FnAssignGrouping: true,
	moodle.FnAddMembers: true, moodle.FnDeleteMembers: true, moodle.FnDeleteGroups: true,
	moodle.FnDeleteGroupings: true, moodle.FnUpdateGroups: true, moodle.FnUnassignGrouping: true,
	moodle.FnManualEnrolUsers: true, moodle.FnManualUnenrolUsers: true, moodle.FnUnassignRoles: true,
	moodle.FnUpdateGroupings: true,
}

// refusedWrites counts the write calls Moodle refused.
func refusedWrites(work map[string]moodlesim.Work) int {
	n := 0
	for fn, w := range work {
		if writeFunctions[fn] {
			n += w.RefusedCalls
		}
	}
	return n
}

func writeCalls(calls map[string]int) int {
	n := 0
	for fn, c := range calls {
		if writeFunctions[fn] {
			n += c
		}
	}
	return n
}

func totalCalls(calls map[string]int) int {
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}

func sameState(a, b moodlesim.State) bool {
	return fmt.Sprint(a.Groups) == fmt.Sprint(b.Groups) && fmt.Sprint(a.Groupings) == fmt.Sprint(b.Groupings)
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
