package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// dumps renders the three committed dumps, e.g.
// "groups=M|G1|a|b members=M|G1|s1 tutors=".
func dumps(t *testing.T, st *store.Store) string {
	t.Helper()
	var parts []string
	for _, d := range []struct {
		name  string
		table store.DumpTable
	}{{"groups", store.ModuleGroups}, {"members", store.GroupMembers}, {"tutors", store.GroupTutors}} {
		parts = append(parts, d.name+"="+strings.Join(storetest.DumpRows(t, st, d.table), ","))
	}
	return strings.Join(parts, " ")
}

// extractRows is one small extract: a group, a member and a tutor, all
// named after the run.
func extractRows(run string) map[store.DumpTable][][]string {
	return map[store.DumpTable][][]string{
		store.ModuleGroups: {{run, "G1", "Module " + run, "Group 1"}},
		store.GroupMembers: {{run, "G1", "s-" + run}},
		store.GroupTutors:  {{run, "G1", "t-" + run}},
	}
}

func fill(t *testing.T, g *store.Generation, rows map[store.DumpTable][][]string) {
	t.Helper()
	for _, table := range store.DumpTables {
		if _, err := g.Insert(context.Background(), table, rows[table]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestContractDumpCommit: nothing of a generation is visible before Commit;
// Commit replaces all three dumps at once, whole (a table the new extract
// left empty is empty after it); Abort, and a generation never finished,
// leave the dump as it was.
func TestContractDumpCommit(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if run, err := st.DumpRun(ctx); err != nil || run != "" {
			t.Fatalf("DumpRun before any extract = %q, %v", run, err)
		}
		if got := dumps(t, st); got != "groups= members= tutors=" {
			t.Fatalf("dumps before any extract: %s", got)
		}
		g, err := st.BeginExtract(ctx, "A")
		if err != nil {
			t.Fatal(err)
		}
		fill(t, g, extractRows("A"))
		// More than one batch, and a duplicate that is skipped.
		var many [][]string
		for i := range 600 {
			many = append(many, []string{"A", "G1", fmt.Sprintf("s%04d", i)})
		}
		added, err := g.Insert(ctx, store.GroupMembers, append(many, []string{"A", "G1", "s0000"}))
		if err != nil || added != 600 {
			t.Fatalf("added %d, %v; want 600 (one duplicate skipped)", added, err)
		}
		if c := g.Counts(); c[store.ModuleGroups] != 1 || c[store.GroupMembers] != 601 || c[store.GroupTutors] != 1 {
			t.Errorf("Counts = %v", c)
		}
		if c, _ := st.DumpCounts(ctx); c[store.GroupMembers] != 0 {
			t.Fatalf("rows visible before commit: %v", c)
		}
		if err := g.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if c, err := st.DumpCounts(ctx); err != nil || fmt.Sprint(c) != "map[cmis_groupmembers_dump:601 cmis_groups_dump:1 cmis_tutgroupmembers_dump:1]" {
			t.Fatalf("DumpCounts after commit = %v, %v", c, err)
		}
		if run, _ := st.DumpRun(ctx); run != "A" {
			t.Errorf("DumpRun = %q, want A", run)
		}
		// The finished generation refuses more work; Abort is a no-op.
		if _, err := g.Insert(ctx, store.GroupMembers, [][]string{{"A", "G1", "late"}}); err == nil {
			t.Error("Insert after Commit accepted")
		}
		if err := g.Commit(ctx); err == nil {
			t.Error("a second Commit accepted")
		}
		if err := g.Abort(ctx); err != nil {
			t.Errorf("Abort after Commit = %v", err)
		}

		// B replaces all three dumps; a reader sees A until the commit.
		g, err = st.BeginExtract(ctx, "B")
		if err != nil {
			t.Fatal(err)
		}
		fill(t, g, extractRows("B"))
		before := dumps(t, st)
		if !strings.HasPrefix(before, "groups=A|G1|Module A|Group 1 members=A|G1|s-A,A|G1|s0000") || !strings.HasSuffix(before, "tutors=A|G1|t-A") {
			t.Fatalf("dumps before B's commit: %.200s", before)
		}
		if err := g.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := dumps(t, st); got != "groups=B|G1|Module B|Group 1 members=B|G1|s-B tutors=B|G1|t-B" {
			t.Fatalf("dumps after B's commit: %s", got)
		}

		// An aborted extract leaves B.
		g, err = st.BeginExtract(ctx, "C")
		if err != nil {
			t.Fatal(err)
		}
		fill(t, g, extractRows("C"))
		if err := g.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if err := g.Abort(ctx); err != nil {
			t.Errorf("a second Abort = %v", err)
		}
		if _, err := g.Insert(ctx, store.ModuleGroups, [][]string{{"C", "G2", "", ""}}); err == nil {
			t.Error("Insert after Abort accepted")
		}
		if err := g.Commit(ctx); err == nil {
			t.Error("Commit after Abort accepted")
		}
		if run, _ := st.DumpRun(ctx); run != "B" {
			t.Errorf("DumpRun after an abort = %q, want B", run)
		}

		// An extract that died without Commit or Abort leaves its rows in
		// the shadows; the next extract starts empty all the same.
		g, err = st.BeginExtract(ctx, "D")
		if err != nil {
			t.Fatal(err)
		}
		fill(t, g, extractRows("D"))
		g, err = st.BeginExtract(ctx, "E")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Insert(ctx, store.ModuleGroups, [][]string{{"E", "G1", "", ""}}); err != nil {
			t.Fatal(err)
		}
		if err := g.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		// E had groups only: the members and tutors dumps are empty now,
		// not B's, and nothing of D came in.
		if got := dumps(t, st); got != "groups=E|G1|| members= tutors=" {
			t.Fatalf("dumps after E's commit: %s", got)
		}
		if run, _ := st.DumpRun(ctx); run != "E" {
			t.Errorf("DumpRun = %q, want E", run)
		}
	})
}

// TestContractInsertRefusesMalformedRows: rows Insert cannot take are an
// error and change nothing, on every engine.
func TestContractInsertRefusesMalformedRows(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		g, err := st.BeginExtract(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		defer g.Abort(ctx)
		if g.WriteMethod() == "" {
			t.Error("no write method reported")
		}
		for _, c := range []struct {
			table store.DumpTable
			rows  [][]string
		}{
			{"cmis_groups_course", [][]string{{"a", "b"}}},
			{store.ModuleGroups, [][]string{{"M", "G", "name"}}},
			{store.GroupMembers, [][]string{{"M", "G", "s1"}, {"M", "G", "s2", "extra"}}},
		} {
			if n, err := g.Insert(ctx, c.table, c.rows); err == nil || n != 0 {
				t.Errorf("Insert(%s, %q) = %d, %v; want an error", c.table, c.rows, n, err)
			}
		}
		if c := g.Counts(); len(c) != 0 {
			t.Errorf("Counts after refused rows = %v", c)
		}
		if n, err := g.Insert(ctx, store.GroupTutors, nil); n != 0 || err != nil {
			t.Errorf("Insert of no rows = %d, %v", n, err)
		}
	})
}

// TestDumpTableColumns: each dump table names its columns in Insert order.
func TestDumpTableColumns(t *testing.T) {
	for _, c := range []struct {
		table store.DumpTable
		want  string
	}{
		{store.ModuleGroups, "modulecode groupcode modulename groupname"},
		{store.GroupMembers, "modulecode groupcode studentid"},
		{store.GroupTutors, "modulecode groupcode staffid"},
		{"cmis_groups_course", ""},
	} {
		if got := strings.Join(c.table.Columns(), " "); got != c.want {
			t.Errorf("%s.Columns() = %q, want %q", c.table, got, c.want)
		}
	}
	if len(store.DumpTables) != 3 {
		t.Errorf("DumpTables = %v", store.DumpTables)
	}
}

// TestContractBadRowsAndRefusedKeys: refused rows are kept per run; only
// those of the run whose extract is the current dump protect it, and only
// those with a view.
func TestContractBadRowsAndRefusedKeys(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := st.RecordBadRows(ctx, "A", nil); err != nil {
			t.Fatal(err)
		}
		if keys, err := st.RefusedKeys(ctx); err != nil || len(keys) != 0 {
			t.Fatalf("RefusedKeys before any extract = %v, %v", keys, err)
		}
		badA := []store.BadRow{
			{Source: "group_members.csv", Line: 4, Row: "M1,G1,", Reason: "studentid is blank", Table: store.GroupMembers, Module: "M1", Group: "G1"},
			{Source: "module_groups.sql", Line: 0, Row: "garbled", Reason: strings.Repeat("x", 1200), Table: store.ModuleGroups},
			// A failure of the whole source, with no view: reported, and
			// protecting nothing by itself.
			{Source: strings.Repeat("s", 300), Row: "", Reason: "could not read"},
		}
		g, err := st.BeginExtract(ctx, "A")
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Reject(ctx, badA); err != nil {
			t.Fatal(err)
		}
		// Another run's refusals, recorded but never committed.
		if err := st.RecordBadRows(ctx, "Z", []store.BadRow{{Source: "x.csv", Line: 1, Row: "z", Reason: "other run", Table: store.GroupTutors, Module: "M9"}}); err != nil {
			t.Fatal(err)
		}
		if keys, _ := st.RefusedKeys(ctx); len(keys) != 0 {
			t.Fatalf("refusals of an uncommitted extract protect the dump: %+v", keys)
		}
		if err := g.Commit(ctx); err != nil {
			t.Fatal(err)
		}

		bad, err := st.BadRows(ctx, "A")
		if err != nil {
			t.Fatal(err)
		}
		if len(bad) != 3 || bad[0].Source != "group_members.csv" || bad[0].Line != 4 || bad[0].Row != "M1,G1," || bad[0].Reason != "studentid is blank" {
			t.Fatalf("BadRows(A) = %+v", bad)
		}
		if len(bad[1].Reason) != 1000 || len(bad[2].Source) != 255 {
			t.Errorf("long reason and source kept %d and %d characters, want 1000 and 255", len(bad[1].Reason), len(bad[2].Source))
		}
		if z, _ := st.BadRows(ctx, "Z"); len(z) != 1 || z[0].Reason != "other run" {
			t.Errorf("BadRows(Z) = %+v", z)
		}
		if none, err := st.BadRows(ctx, "nobody"); err != nil || len(none) != 0 {
			t.Errorf("BadRows(nobody) = %+v, %v", none, err)
		}

		keys, err := st.RefusedKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range keys {
			got = append(got, fmt.Sprintf("%s/%s/%s/%s@%s:%d", k.Table, k.Module, k.Group, k.CMISID, k.Source, k.Line))
		}
		if want := "cmis_groupmembers_dump/M1/G1/@group_members.csv:4 cmis_groups_dump///@module_groups.sql:0"; strings.Join(got, " ") != want {
			t.Errorf("RefusedKeys = %s\nwant %s", strings.Join(got, " "), want)
		}
		if d, err := st.CurrentDump(ctx); err != nil || d.RunID != "A" || d.Refused != 2 {
			t.Errorf("CurrentDump = %+v, %v; want run A with 2 refused", d, err)
		}

		// A clean extract replaces the refusals that protect the dump.
		g, err = st.BeginExtract(ctx, "B")
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if keys, _ := st.RefusedKeys(ctx); len(keys) != 0 {
			t.Errorf("RefusedKeys after a clean extract = %+v", keys)
		}
		if bad, _ := st.BadRows(ctx, "A"); len(bad) != 3 {
			t.Errorf("BadRows(A) after a later extract = %d rows, want 3 still", len(bad))
		}
	})
}

// TestContractCurrentDumpSteps: CurrentDump reports the extract step of the
// dump's run, unfinished or missing as it may be.
func TestContractCurrentDumpSteps(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		commit := func(run string) {
			t.Helper()
			g, err := st.BeginExtract(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// No cmissync_runs row at all (trimmed by hand): still current.
		commit("no-steps")
		d, err := st.CurrentDump(ctx)
		if err != nil || d == nil || d.RunID != "no-steps" || !d.Started.IsZero() || d.Finished != nil {
			t.Fatalf("CurrentDump without steps = %+v, %v", d, err)
		}
		// The step started and was never recorded as finished.
		if _, err := st.StartStep(ctx, "unfinished", "extract"); err != nil {
			t.Fatal(err)
		}
		commit("unfinished")
		if d, err := st.CurrentDump(ctx); err != nil || d.RunID != "unfinished" || d.Started.IsZero() || d.Finished != nil {
			t.Fatalf("CurrentDump of an unfinished step = %+v, %v", d, err)
		}
	})
}

func TestRefusedKeyCovers(t *testing.T) {
	for _, c := range []struct {
		key                   store.RefusedKey
		module, group, cmisid string
		want                  bool
	}{
		{store.RefusedKey{}, "M1", "G1", "s1", true}, // nothing could be read
		{store.RefusedKey{Module: "M1"}, "M1", "G1", "s1", true},
		{store.RefusedKey{Module: "M1"}, "M2", "", "", false},
		{store.RefusedKey{Module: "M1", Group: "G1"}, "M1", "", "", true}, // the grouping of its module
		{store.RefusedKey{Module: "M1", Group: "G1"}, "M1", "G1", "", true},
		{store.RefusedKey{Module: "M1", Group: "G1"}, "M1", "G2", "", false},
		{store.RefusedKey{Module: "M1", Group: "G1"}, "M1", "G1", "s9", true},
		{store.RefusedKey{Module: "M1", Group: "G1", CMISID: "s1"}, "M1", "G1", "", true}, // its group
		{store.RefusedKey{Module: "M1", Group: "G1", CMISID: "s1"}, "M1", "G1", "s1", true},
		{store.RefusedKey{Module: "M1", Group: "G1", CMISID: "s1"}, "M1", "G1", "s2", false},
		{store.RefusedKey{Module: "M1", Group: "G1", CMISID: "s1"}, "M1", "G2", "s1", false},
		{store.RefusedKey{Module: "M1", CMISID: "s1"}, "M1", "G2", "s2", true}, // parts after an unknown one are unknown
	} {
		if got := c.key.Covers(c.module, c.group, c.cmisid); got != c.want {
			t.Errorf("%+v.Covers(%q, %q, %q) = %v, want %v", c.key, c.module, c.group, c.cmisid, got, c.want)
		}
	}
	r := store.RefusedRow{BadRow: store.BadRow{Source: "f.csv", Line: 3, Reason: "r", Table: store.GroupMembers, Module: "M1", Group: "G1", CMISID: "s1"}, RunID: "A"}
	if k := r.Key(); k != (store.RefusedKey{Table: store.GroupMembers, Module: "M1", Group: "G1", CMISID: "s1", Source: "f.csv", Line: 3, Reason: "r"}) {
		t.Errorf("Key() = %+v", k)
	}
}
