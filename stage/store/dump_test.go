package store_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// writePath is one way a generation writes rows: each engine's own, and on
// MySQL also the INSERT fallback used when the server has local_infile OFF.
type writePath struct {
	name    string
	engine  string
	prepare func(g *store.Generation)
}

var writePaths = []writePath{
	{"sqlite", store.EngineSQLite, nil},
	{"mysql_load_data", store.EngineMySQL, nil},
	{"mysql_insert", store.EngineMySQL, store.DisableLoadData},
}

func eachWritePath(t *testing.T, fn func(t *testing.T, st *store.Store, begin func(runID string) *store.Generation)) {
	for _, p := range writePaths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			st := storetest.Open(t, p.engine)
			begin := func(runID string) *store.Generation {
				t.Helper()
				g, err := st.BeginExtract(context.Background(), runID)
				if err != nil {
					t.Fatal(err)
				}
				if p.prepare != nil {
					p.prepare(g)
				}
				return g
			}
			fn(t, st, begin)
		})
	}
}

// readTable returns a dump table's rows, sorted, each joined with "|".
// awkward holds values that a text transfer could get wrong.
var awkward = [][]string{
	{"MOD", "G1", "tab\there", "line\nbreak"},
	{"MOD", "G2", `back\slash \N \t`, "NULL"},
	{"MOD", "G3", "cr\rnul\x00ctrlz\x1a", `"quoted", 'single'`},
	{"MOD", "G4", "Zoë 😀 Ünïcödé", ""},
	{"MOD", "G5", "  padded  ", strings.Repeat("é", 254)},
}

func TestInsertKeepsValuesAndSkipsDuplicates(t *testing.T) {
	eachWritePath(t, func(t *testing.T, st *store.Store, begin func(string) *store.Generation) {
		ctx := context.Background()
		g := begin("r1")
		if g.WriteMethod() == "" {
			t.Error("no write method reported")
		}
		added, err := g.Insert(ctx, store.ModuleGroups, awkward)
		if err != nil {
			t.Fatal(err)
		}
		if added != int64(len(awkward)) {
			t.Errorf("added %d module groups, want %d", added, len(awkward))
		}
		// Duplicates within a batch and across batches are skipped and not
		// counted, whatever the other columns hold.
		added, err = g.Insert(ctx, store.ModuleGroups, [][]string{{"MOD", "G1", "other", "other"}, {"MOD", "G6", "", ""}, {"MOD", "G6", "x", "y"}})
		if err != nil {
			t.Fatal(err)
		}
		if added != 1 {
			t.Errorf("added %d, want 1 (two duplicates skipped)", added)
		}
		members := make([][]string, 0, 1200)
		for i := range 1200 {
			members = append(members, []string{"MOD", "G1", fmt.Sprintf("%08d", i%1100)})
		}
		if added, err = g.Insert(ctx, store.GroupMembers, members); err != nil || added != 1100 {
			t.Errorf("members: added %d, %v; want 1100", added, err)
		}
		if added, err = g.Insert(ctx, store.GroupTutors, nil); err != nil || added != 0 {
			t.Errorf("no rows: added %d, %v", added, err)
		}
		if c := g.Counts(); c[store.ModuleGroups] != 6 || c[store.GroupMembers] != 1100 {
			t.Errorf("counts %v", c)
		}
		if err := g.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		want := []string{}
		for _, r := range awkward {
			want = append(want, strings.Join(r, "|"))
		}
		want = append(want, "MOD|G6||")
		sort.Strings(want)
		got := storetest.DumpRows(t, st, store.ModuleGroups)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("module groups after a round trip:\n%q\nwant:\n%q", got, want)
		}
		if c, _ := st.DumpCounts(ctx); c[store.GroupMembers] != 1100 || c[store.GroupTutors] != 0 {
			t.Errorf("dump counts %v", c)
		}
	})
}

func TestInsertRefusesBadValues(t *testing.T) {
	eachWritePath(t, func(t *testing.T, st *store.Store, begin func(string) *store.Generation) {
		if st.Engine() == store.EngineSQLite {
			t.Skip("SQLite does not enforce column lengths; the extract step checks them before Insert")
		}
		ctx := context.Background()
		g := begin("r1")
		long := strings.Repeat("S", 101)
		_, err := g.Insert(ctx, store.GroupMembers, [][]string{{"MOD", "G1", "1"}, {"MOD", "G1", long}, {"MOD", "G1", "1"}})
		if err == nil {
			t.Fatal("a 101-character student id was stored")
		}
		t.Logf("error for a 101-character value: %v", err)
		if !strings.Contains(err.Error(), "cmis_groupmembers_dump_next") || !strings.Contains(err.Error(), "studentid") {
			t.Errorf("error does not name the table and column: %v", err)
		}
		if g.Counts()[store.GroupMembers] != 0 {
			t.Errorf("counts %v after a refused batch", g.Counts())
		}
		// Nothing of the refused batch was kept: the same rows without the
		// bad one all go in.
		added, err := g.Insert(ctx, store.GroupMembers, [][]string{{"MOD", "G1", "1"}, {"MOD", "G1", "2"}})
		if err != nil || added != 2 {
			t.Fatalf("added %d, %v after a refused batch; want 2", added, err)
		}
		if _, err := g.Insert(ctx, store.GroupMembers, [][]string{{"MOD", "G1"}}); err == nil {
			t.Error("a row with two values was accepted")
		}
		if err := g.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := storetest.DumpRows(t, st, store.GroupMembers); strings.Join(got, ",") != "MOD|G1|1,MOD|G1|2" {
			t.Errorf("members %q", got)
		}
		if _, err := g.Insert(ctx, store.GroupMembers, [][]string{{"MOD", "G1", "3"}}); err == nil {
			t.Error("insert after commit accepted")
		}
	})
}

func TestWriteMethod(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, store.EngineMySQL)
	var on int
	if err := st.DB().QueryRow("SELECT @@local_infile").Scan(&on); err != nil {
		t.Fatal(err)
	}
	g, err := st.BeginExtract(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Abort(ctx)
	method := g.WriteMethod()
	if on == 1 && !strings.HasPrefix(method, "LOAD DATA") {
		t.Errorf("local_infile is ON but the method is %q", method)
	}
	if on == 0 && !strings.Contains(method, "local_infile OFF") {
		t.Errorf("local_infile is OFF but the method %q does not say so", method)
	}
}

// TestCommitReplacesDumps commits three generations in a row, with an
// abandoned one between, and checks each commit replaces every dump whole.
// On MySQL the third commit meets a shadow that a migration changed, and
// copies instead of swapping.
func TestCommitReplacesDumps(t *testing.T) {
	eachWritePath(t, func(t *testing.T, st *store.Store, begin func(string) *store.Generation) {
		ctx := context.Background()
		load := func(runID string, n int) {
			t.Helper()
			g := begin(runID)
			var groups, members [][]string
			for i := range n {
				groups = append(groups, []string{runID, fmt.Sprint("G", i), "", ""})
				members = append(members, []string{runID, fmt.Sprint("G", i), "S1"})
			}
			if _, err := g.Insert(ctx, store.ModuleGroups, groups); err != nil {
				t.Fatal(err)
			}
			if _, err := g.Insert(ctx, store.GroupMembers, members); err != nil {
				t.Fatal(err)
			}
			if err := g.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := g.Commit(ctx); err == nil {
				t.Error("second commit of one generation accepted")
			}
			got := storetest.DumpRows(t, st, store.ModuleGroups)
			if len(got) != n || (n > 0 && !strings.HasPrefix(got[0], runID+"|")) {
				t.Fatalf("after committing %s: %d module groups (%q), want %d of %s", runID, len(got), got[:min(len(got), 3)], n, runID)
			}
			if c, _ := st.DumpCounts(ctx); c[store.GroupMembers] != int64(n) || c[store.GroupTutors] != 0 {
				t.Fatalf("after committing %s: counts %v", runID, c)
			}
		}
		load("first", 30)
		load("second", 20)

		g := begin("abandoned")
		if _, err := g.Insert(ctx, store.ModuleGroups, [][]string{{"X", "Y", "", ""}}); err != nil {
			t.Fatal(err)
		}
		if err := g.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if got := storetest.DumpRows(t, st, store.ModuleGroups); len(got) != 20 || !strings.HasPrefix(got[0], "second|") {
			t.Fatalf("abort changed the dump: %q", got)
		}

		if st.Engine() == store.EngineMySQL {
			if _, err := st.DB().Exec("ALTER TABLE cmis_groups_dump_next ADD COLUMN note VARCHAR(10) NOT NULL DEFAULT ''"); err != nil {
				t.Fatal(err)
			}
		}
		load("third", 10)
		if st.Engine() == store.EngineMySQL {
			// Copied, not swapped: the changed table is still the shadow.
			var n int
			if err := st.DB().QueryRow(`SELECT COUNT(*) FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'cmis_groups_dump' AND COLUMN_NAME = 'note'`).Scan(&n); err != nil || n != 0 {
				t.Errorf("the dump got the shadow's extra column (%d, %v): swapped tables of different shapes", n, err)
			}
		}
		load("empty", 0)
	})
}
