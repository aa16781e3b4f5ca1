package sample_test

import (
	"context"
	"database/sql"
	"encoding/csv"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite"

	"github.com/cmissync/cmissync/extract/sample"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

var (
	studentID = regexp.MustCompile(`^[0-9]{8}$`)
	staffID   = regexp.MustCompile(`^S[0-9]+$`)
	codeRe    = regexp.MustCompile(`^[A-Z]{4}[0-9]{4}$`)
	groupRe   = regexp.MustCompile(`^(SEM|LAB)[0-9]{2}$`)
)

// checkDataset checks what every dataset must satisfy: unique keys, members
// and tutors of existing groups, well-formed ids, mappings of existing
// courses and modules, unique usernames.
func checkDataset(t *testing.T, d sample.Dataset) {
	t.Helper()
	groups := map[[2]string]bool{}
	modules := map[string]bool{}
	for _, g := range d.ModuleGroups {
		if len(g) != 4 || !codeRe.MatchString(g[0]) || !groupRe.MatchString(g[1]) || g[2] == "" || g[3] == "" {
			t.Fatalf("bad module group %q", g)
		}
		k := [2]string{g[0], g[1]}
		if groups[k] {
			t.Fatalf("duplicate group %q", g)
		}
		groups[k] = true
		modules[g[0]] = true
	}
	people := func(rows [][]string, re *regexp.Regexp, what string) {
		seen := make(map[[3]string]bool, len(rows))
		for _, r := range rows {
			if len(r) != 3 || !groups[[2]string{r[0], r[1]}] || !re.MatchString(r[2]) {
				t.Fatalf("bad %s row %q", what, r)
			}
			k := [3]string{r[0], r[1], r[2]}
			if seen[k] {
				t.Fatalf("duplicate %s row %q", what, r)
			}
			seen[k] = true
		}
	}
	people(d.Members, studentID, "member")
	people(d.Tutors, staffID, "tutor")
	courses := map[string]bool{}
	for _, c := range d.Courses {
		if courses[c.ShortName] || c.FullName == "" {
			t.Fatalf("bad or duplicate course %+v", c)
		}
		courses[c.ShortName] = true
	}
	mapped := map[[2]string]bool{}
	for _, m := range d.Mappings {
		if !courses[m.CourseShortName] || !modules[m.ModuleCode] || mapped[[2]string{m.CourseShortName, m.ModuleCode}] {
			t.Fatalf("bad mapping %+v", m)
		}
		mapped[[2]string{m.CourseShortName, m.ModuleCode}] = true
	}
	users := map[string]bool{}
	ids := map[string]bool{}
	for _, p := range append(append([]sample.Person(nil), d.Students...), d.Staff...) {
		if users[p.Username] || ids[p.IDNumber] || p.Username != strings.ToLower(p.Username) || !strings.Contains(p.Email, "@") || p.FirstName == "" || p.LastName == "" {
			t.Fatalf("bad or duplicate person %+v", p)
		}
		users[p.Username] = true
		ids[p.IDNumber] = true
	}
	for _, s := range d.Students {
		if !studentID.MatchString(s.IDNumber) {
			t.Fatalf("student id %q", s.IDNumber)
		}
	}
	for _, s := range d.Staff {
		if !staffID.MatchString(s.IDNumber) {
			t.Fatalf("staff id %q", s.IDNumber)
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, b := sample.Generate(sample.Demo()), sample.Generate(sample.Demo())
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two datasets of the same spec differ")
	}
	s := sample.Demo()
	s.Seed++
	if reflect.DeepEqual(a, sample.Generate(s)) {
		t.Fatal("another seed gives the same dataset")
	}
}

func TestDemo(t *testing.T) {
	d := sample.Generate(sample.Demo())
	checkDataset(t, d)
	if len(d.Courses) != 3 || len(d.Mappings) != 6 {
		t.Errorf("%d courses, %d mappings; want 3 and 6", len(d.Courses), len(d.Mappings))
	}
	groupsOf := map[string][]string{}
	for _, g := range d.ModuleGroups {
		groupsOf[g[0]] = append(groupsOf[g[0]], g[1])
	}
	for m, gs := range groupsOf {
		if len(gs) < 2 || len(gs) > 3 {
			t.Errorf("module %s has %d groups, want 2 or 3", m, len(gs))
		}
	}
	// Known issue 7 of the old tool: a course taking two modules that both
	// have a group SEM01.
	sem01 := map[string]int{}
	coursesOf := map[string]int{}
	for _, m := range d.Mappings {
		coursesOf[m.ModuleCode]++
		for _, g := range groupsOf[m.ModuleCode] {
			if g == "SEM01" {
				sem01[m.CourseShortName]++
			}
		}
	}
	found := false
	for _, n := range sem01 {
		found = found || n >= 2
	}
	if !found {
		t.Error("no course takes two modules with a group SEM01")
	}
	shared := 0
	for _, n := range coursesOf {
		if n == 2 {
			shared++
		}
	}
	if shared != 1 {
		t.Errorf("%d modules mapped to two courses, want 1", shared)
	}
	perGroup := map[[2]string]int{}
	for _, r := range d.Members {
		perGroup[[2]string{r[0], r[1]}]++
	}
	for g, n := range perGroup {
		if n < 5 || n > 7 {
			t.Errorf("group %v has %d students, want about 6", g, n)
		}
	}
	tutors := map[[2]string]int{}
	for _, r := range d.Tutors {
		tutors[[2]string{r[0], r[1]}]++
	}
	if len(tutors) != len(d.ModuleGroups) {
		t.Errorf("%d of %d groups have tutors", len(tutors), len(d.ModuleGroups))
	}
	nonASCII := 0
	for _, p := range d.Students {
		if strings.ContainsFunc(p.FirstName+p.LastName, func(r rune) bool { return r > 127 }) {
			nonASCII++
		}
	}
	if nonASCII == 0 {
		t.Error("no student has a non-ASCII name")
	}
}

func TestLarge(t *testing.T) {
	d := sample.Generate(sample.Large())
	if len(d.Courses) != 5000 || len(d.ModuleGroups) != 40000 || len(d.Members) != 600000 || len(d.Tutors) != 60000 {
		t.Errorf("large: %d courses, %d groups, %d members, %d tutors; want 5000, 40000, 600000, 60000",
			len(d.Courses), len(d.ModuleGroups), len(d.Members), len(d.Tutors))
	}
	checkDataset(t, d)
}

func TestWriteSQL(t *testing.T) {
	d := sample.Generate(sample.Demo())
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			_, dsn := storetest.DSN(t, engine)
			db, err := sql.Open(engine, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			if err := sample.WriteSQL(ctx, db, d); err != nil {
				t.Fatal(err)
			}
			for table, want := range map[string]int{
				sample.ModuleGroupView: len(d.ModuleGroups),
				sample.GroupMemberView: len(d.Members),
				sample.GroupTutorView:  len(d.Tutors),
			} {
				var n int
				if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != want {
					t.Errorf("%s: %d rows, %v; want %d", table, n, err, want)
				}
			}
			g := d.ModuleGroups[len(d.ModuleGroups)-1]
			var name string
			if err := db.QueryRowContext(ctx, "SELECT MODULE_NAME FROM "+sample.ModuleGroupView+" WHERE MODULE_CODE = ? AND GROUP_CODE = ?", g[0], g[1]).Scan(&name); err != nil || name != g[2] {
				t.Errorf("module name %q, %v; want %q", name, err, g[2])
			}
			if err := sample.WriteSQL(ctx, db, d); err == nil || !strings.Contains(err.Error(), sample.ModuleGroupView) {
				t.Errorf("writing over existing tables: %v", err)
			}
		})
	}
}

func TestWriteCSV(t *testing.T) {
	d := sample.Generate(sample.Demo())
	dir := filepath.Join(t.TempDir(), "cmis")
	if err := sample.WriteCSV(dir, d); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][][]string{
		"module_groups.csv": append([][]string{{"modulecode", "groupcode", "modulename", "groupname"}}, d.ModuleGroups...),
		"group_members.csv": append([][]string{{"modulecode", "groupcode", "studentid"}}, d.Members...),
		"group_tutors.csv":  append([][]string{{"modulecode", "groupcode", "staffid"}}, d.Tutors...),
	} {
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs from the dataset", file)
		}
	}
}

func BenchmarkGenerateLarge(b *testing.B) {
	for b.Loop() {
		sample.Generate(sample.Large())
	}
}
