package extract_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"
	"unicode/utf8"

	_ "github.com/go-sql-driver/mysql"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	_ "modernc.org/sqlite"

	"github.com/cmissync/cmissync/extract"
	"github.com/cmissync/cmissync/extract/sample"
	sqlfiles "github.com/cmissync/cmissync/sql"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// medium is big enough for several batches and for names with non-ASCII
// characters, small enough to write quickly to MariaDB.
var medium = sample.Spec{Seed: 7, Courses: 40, ModulesPerCourse: 3, GroupsPerModule: 4, StudentsPerGroup: 12, TutorsPerGroup: 1, SharedModules: 10}

// cmisDB creates the CMIS views as tables filled with d in a fresh database
// of the engine, and returns a handle to it plus the driver and DSN that
// OpenSQL takes.
func cmisDB(t *testing.T, engine string, d sample.Dataset) (*sql.DB, string, string) {
	t.Helper()
	var dsn string
	switch engine {
	case store.EngineSQLite:
		dsn = filepath.Join(t.TempDir(), "cmis.db")
	case store.EngineMySQL:
		dsn = storetest.NewMySQLDatabase(t)
	default:
		t.Fatalf("unknown engine %s", engine)
	}
	db, err := sql.Open(engine, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sample.WriteSQL(context.Background(), db, d); err != nil {
		t.Fatal(err)
	}
	return db, engine, dsn
}

func openSQL(t *testing.T, driver, dsn string, queries fs.FS) extract.Source {
	t.Helper()
	src, err := extract.OpenSQL(context.Background(), driver, dsn, queries)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func counts(d sample.Dataset) map[store.DumpTable]int64 {
	return map[store.DumpTable]int64{
		store.ModuleGroups: int64(len(d.ModuleGroups)),
		store.GroupMembers: int64(len(d.Members)),
		store.GroupTutors:  int64(len(d.Tutors)),
	}
}

func dumpCounts(t *testing.T, st *store.Store) map[store.DumpTable]int64 {
	t.Helper()
	c, err := st.DumpCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func equalCounts(a, b map[store.DumpTable]int64) bool {
	for _, tb := range store.DumpTables {
		if a[tb] != b[tb] {
			return false
		}
	}
	return true
}

type badRow struct {
	source string
	line   int64
	row    string
	reason string
}

func badRows(t *testing.T, st *store.Store, runID string) []badRow {
	t.Helper()
	rows, err := st.DB().Query(`SELECT source, line, rowdata, reason FROM cmis_error_data_dump WHERE run_id = ? ORDER BY id`, runID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []badRow
	for rows.Next() {
		var b badRow
		if err := rows.Scan(&b.source, &b.line, &b.row, &b.reason); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func hasBadRow(bad []badRow, source, reason string) bool {
	for _, b := range bad {
		if strings.HasSuffix(b.source, source) && strings.Contains(b.reason, reason) {
			return true
		}
	}
	return false
}

func quietLog() logrus.FieldLogger {
	l, _ := test.NewNullLogger()
	return l
}

// moduleGroupsDump reads the committed module groups, sorted.
func moduleGroupsDump(t *testing.T, st *store.Store) []string {
	t.Helper()
	rows, err := st.DB().Query(`SELECT modulecode, groupcode, modulename, groupname FROM cmis_groups_dump`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a, b, c, d string
		if err := rows.Scan(&a, &b, &c, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{a, b, c, d}, "|"))
	}
	sort.Strings(out)
	return out
}

func joinRows(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.Join(r, "|")
	}
	sort.Strings(out)
	return out
}

// TestDefaultQueries runs the shipped queries against the CMIS views made by
// sample.WriteSQL in SQLite and in MariaDB, into staging on both engines,
// with a few bad rows added to the views.
func TestDefaultQueries(t *testing.T) {
	d := sample.Generate(medium)
	for _, srcEngine := range []string{store.EngineSQLite, store.EngineMySQL} {
		for _, stEngine := range storetest.Engines {
			t.Run(srcEngine+"_to_"+stEngine, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				db, driver, dsn := cmisDB(t, srcEngine, d)
				g0, m0 := d.ModuleGroups[0], d.Members[0]
				for _, q := range []struct {
					sql  string
					args []any
				}{
					{"INSERT INTO CMIS_MOODLE_V_MODULE_GROUP (MODULE_CODE, GROUP_CODE, MODULE_NAME, GROUP_NAME) VALUES (?, ?, ?, ?)",
						[]any{"LONG9999", strings.Repeat("G", 150), "Too long", "Too long"}},
					{"INSERT INTO CMIS_MOODLE_V_MODULE_GROUP (MODULE_CODE, GROUP_CODE, MODULE_NAME, GROUP_NAME) VALUES (?, ?, ?, ?)",
						[]any{"LONG9999", strings.Repeat("G", 90), "Too long an idnumber", ""}},
					{"INSERT INTO CMIS_MOODLE_V_MODULE_GROUP (MODULE_CODE, GROUP_CODE, MODULE_NAME, GROUP_NAME) VALUES (?, ?, ?, ?)",
						[]any{g0[0], g0[1], "Duplicate", "Duplicate"}},
					{"INSERT INTO CMIS_MOODLE_V_GROUP_MEMBER (MODULE_CODE, GROUP_CODE, STUDENT_ID) VALUES (?, ?, NULL)", []any{g0[0], g0[1]}},
					{"INSERT INTO CMIS_MOODLE_V_GROUP_MEMBER (MODULE_CODE, GROUP_CODE, STUDENT_ID) VALUES (?, ?, ?)", []any{"NOPE9999", "SEM01", "12345678"}},
					{"INSERT INTO CMIS_MOODLE_V_GROUP_MEMBER (MODULE_CODE, GROUP_CODE, STUDENT_ID) VALUES (?, ?, ?)", []any{m0[0], m0[1], m0[2]}},
					{"INSERT INTO CMIS_MOODLE_V_GROUP_MEMBER (MODULE_CODE, GROUP_CODE, STUDENT_ID) VALUES (?, ?, ?)", []any{g0[0], g0[1], "  00000001 "}},
					{"INSERT INTO CMIS_MOODLE_V_GROUP_TUTOR (MODULE_CODE, GROUP_CODE, STAFF_ID) VALUES (?, ?, ?)", []any{"LONG9999", strings.Repeat("G", 90), "S000001"}},
				} {
					if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
						t.Fatal(err)
					}
				}
				src := openSQL(t, driver, dsn, nil)
				st := storetest.Open(t, stEngine)
				res, err := extract.Run(ctx, src, st, extract.Options{RunID: "run-1", BatchSize: 100}, quietLog())
				if err != nil {
					t.Fatal(err)
				}
				want := counts(d)
				want[store.GroupMembers]++ // the padded 00000001
				if got := dumpCounts(t, st); !equalCounts(got, want) {
					t.Errorf("dump counts %v, want %v", got, want)
				}
				if !equalCounts(res.Loaded, want) {
					t.Errorf("loaded %v, want %v", res.Loaded, want)
				}
				wantRejected := map[store.DumpTable]int64{store.ModuleGroups: 3, store.GroupMembers: 3, store.GroupTutors: 1}
				if !equalCounts(res.Rejected, wantRejected) {
					t.Errorf("rejected %v, want %v", res.Rejected, wantRejected)
				}
				for _, tb := range store.DumpTables {
					if res.Read[tb] != res.Loaded[tb]+res.Rejected[tb] {
						t.Errorf("%s: read %d != loaded %d + rejected %d", tb, res.Read[tb], res.Loaded[tb], res.Rejected[tb])
					}
				}
				if !strings.HasPrefix(res.Source, srcEngine+" (") {
					t.Errorf("source %q", res.Source)
				}
				bad := badRows(t, st, "run-1")
				for _, w := range []struct{ source, reason string }{
					{"module_groups.sql", "groupcode longer than 100 characters (150)"},
					{"module_groups.sql", "modulecode and groupcode too long together: the Moodle idnumber cmis:LONG9999:GGG"},
					{"module_groups.sql", "duplicate of line"},
					{"group_members.sql", "missing studentid"},
					{"group_members.sql", "group not in CMIS_MOODLE_V_MODULE_GROUP (module_groups.sql)"},
					{"group_members.sql", "duplicate of line"},
					{"group_tutors.sql", "group rejected from CMIS_MOODLE_V_MODULE_GROUP (module_groups.sql) line " + fmt.Sprint(len(d.ModuleGroups)+2) + " (modulecode and groupcode too long together"},
				} {
					if !hasBadRow(bad, w.source, w.reason) {
						t.Errorf("no bad row from %s with reason %q in %+v", w.source, w.reason, bad)
					}
				}
				for _, b := range bad {
					if b.line <= 0 || b.row == "" {
						t.Errorf("bad row without line or rendering: %+v", b)
					}
				}
				checkDumpContract(t, st)
				// Every module group arrives intact, non-ASCII names included.
				got, wantGroups := moduleGroupsDump(t, st), joinRows(d.ModuleGroups)
				if strings.Join(got, "\n") != strings.Join(wantGroups, "\n") {
					t.Errorf("module groups dump differs from the dataset (%d vs %d rows)", len(got), len(wantGroups))
				}
				var n int
				if err := st.DB().QueryRow(`SELECT COUNT(*) FROM cmis_groupmembers_dump WHERE studentid = '00000001'`).Scan(&n); err != nil || n != 1 {
					t.Errorf("padded student id not trimmed: %d, %v", n, err)
				}
			})
		}
	}
}

func TestDatasetHasNonASCIINames(t *testing.T) {
	d := sample.Generate(medium)
	for _, g := range d.ModuleGroups {
		for _, r := range g[2] {
			if r > 127 {
				return
			}
		}
	}
	t.Error("medium dataset has no non-ASCII module name; the round-trip test would not cover UTF-8")
}

// TestSampleCSV extracts the CSV files written by sample.WriteCSV.
func TestSampleCSV(t *testing.T) {
	d := sample.Generate(medium)
	dir := t.TempDir()
	if err := sample.WriteCSV(dir, d); err != nil {
		t.Fatal(err)
	}
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			st := storetest.Open(t, engine)
			src, err := extract.OpenCSV(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if got, want := src.Describe(), "csv (dir "+dir+")"; got != want {
				t.Errorf("Describe = %q, want %q", got, want)
			}
			res, err := extract.Run(context.Background(), src, st, extract.Options{RunID: "csv"}, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			if got := dumpCounts(t, st); !equalCounts(got, counts(d)) {
				t.Errorf("dump counts %v, want %v (rejected %v)", got, counts(d), res.Rejected)
			}
			if got, want := moduleGroupsDump(t, st), joinRows(d.ModuleGroups); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Error("module groups dump differs from the dataset")
			}
		})
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCSVFormats covers quoting, a byte order mark, CRLF, header names in
// any case and order, extra columns, wrong field counts and syntax errors.
func TestCSVFormats(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"groups.csv": "\xEF\xBB\xBFGROUPCODE,ModuleCode,Notes,GroupName,MODULENAME\r\n" +
			"SEM01,COMP1001,x,\"Seminar, \"\"the first\"\"\",Algorithms\r\n" +
			"LAB02,COMP1001,x,\"Lab\r\nmorning\",Algorithms\r\n" +
			"SEM03,COMP1001,x\r\n" +
			"SEM04,COMP1001,x,Seminar 4,Algorithms,surplus\r\n" +
			"SEM05,COMP1001,x,\"Zoë's group\",\"Algorithms\"\r\n",
		"group_members.csv": "studentid,modulecode,groupcode\n" +
			"12345678,COMP1001,SEM01\n" +
			"\"12345679\",\"COMP1001\",\"LAB02\"\n" +
			"12345680,COMP1001,SEM03\n" +
			"12345681,COMP1001,SE\"M05\n" +
			"12345682,COMP1001,SEM05\n",
		"group_tutors.csv": "modulecode,groupcode,staffid\r\nCOMP1001,SEM01,S000001\r\n",
	})
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			st := storetest.Open(t, engine)
			src, err := extract.OpenCSV(dir, map[store.DumpTable]string{store.ModuleGroups: "groups.csv"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := extract.Run(context.Background(), src, st, extract.Options{RunID: "fmt"}, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			want := []string{
				"COMP1001|LAB02|Algorithms|Lab morning",
				`COMP1001|SEM01|Algorithms|Seminar, "the first"`,
				"COMP1001|SEM05|Algorithms|Zoë's group",
			}
			if got := moduleGroupsDump(t, st); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("module groups:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			wantCounts := map[store.DumpTable]int64{store.ModuleGroups: 3, store.GroupMembers: 3, store.GroupTutors: 1}
			if got := dumpCounts(t, st); !equalCounts(got, wantCounts) {
				t.Errorf("dump counts %v, want %v", got, wantCounts)
			}
			if res.Rejected[store.ModuleGroups] != 2 || res.Rejected[store.GroupMembers] != 2 {
				t.Errorf("rejected %v", res.Rejected)
			}
			bad := badRows(t, st, "fmt")
			wantBad := []badRow{
				{filepath.Join(dir, "groups.csv"), 5, "SEM03 COMP1001 x", "3 fields, want 5 as in the header"},
				{filepath.Join(dir, "groups.csv"), 6, "", "6 fields, want 5 as in the header"},
				{filepath.Join(dir, "group_members.csv"), 4, "modulecode=COMP1001 groupcode=SEM03 studentid=12345680", "group not in CMIS_MOODLE_V_MODULE_GROUP (" + filepath.Join(dir, "groups.csv") + ")"},
				{filepath.Join(dir, "group_members.csv"), 5, "", `CSV syntax error in groupcode (field 3): bare " in non-quoted-field`},
			}
			if len(bad) != len(wantBad) {
				t.Fatalf("bad rows %+v, want %+v", bad, wantBad)
			}
			for i, w := range wantBad {
				b := bad[i]
				if b.source != w.source || b.line != w.line || !strings.Contains(b.reason, w.reason) || (w.row != "" && b.row != w.row) {
					t.Errorf("bad row %d = %+v, want %+v", i, b, w)
				}
			}
		})
	}
}

func TestCSVMissingHeaderColumn(t *testing.T) {
	d := sample.Generate(sample.Demo())
	dir := t.TempDir()
	if err := sample.WriteCSV(dir, d); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "group_tutors.csv")
	if err := os.WriteFile(path, []byte("modulecode,groupcode,staff_id\nCOMP1001,SEM01,S1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := storetest.Open(t, store.EngineSQLite)
	src, err := extract.OpenCSV(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = extract.Run(context.Background(), src, st, extract.Options{}, quietLog())
	want := path + `: missing column "staffid" (columns found: modulecode, groupcode, staff_id)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
	var ce *extract.ContractError
	if !errors.As(err, &ce) || ce.Column != "staffid" || ce.Origin != path {
		t.Errorf("error is not a ContractError for staffid in %s: %#v", path, ce)
	}
	if got := dumpCounts(t, st); !equalCounts(got, map[store.DumpTable]int64{}) {
		t.Errorf("dump not empty after a failed first extract: %v", got)
	}

	if _, err := extract.OpenCSV(dir, map[store.DumpTable]string{store.GroupMembers: "nope.csv"}); err == nil || !strings.Contains(err.Error(), "nope.csv") {
		t.Errorf("missing file: %v", err)
	}
}

// TestCharsetOption reads Latin-1 bytes: rejected as invalid UTF-8 by
// default, decoded with WE8ISO8859P1.
func TestCharsetOption(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"module_groups.csv": "modulecode,groupcode,modulename,groupname\n" +
			"FREN1001,SEM01,Litt\xe9rature fran\xe7aise,S\xe9minaire 1\n" +
			"FREN1001,SEM02,Ã‰tudes,Séminaire 2\n" +
			"FREN1001,SEM03,Études,Séminaire 3\n",
		"group_members.csv": "modulecode,groupcode,studentid\nFREN1001,SEM01,12345678\nFREN1001,SEM03,12345678\n",
		"group_tutors.csv":  "modulecode,groupcode,staffid\n",
	})
	for _, c := range []struct {
		charset  string
		groups   []string
		reasons  []string
		members  int64
		rejected int64
	}{
		{"", []string{"FREN1001|SEM03|Études|Séminaire 3"},
			[]string{"invalid UTF-8 in modulename, check the source charset setting", extract.ReasonMangled}, 1, 3},
		{"WE8ISO8859P1", []string{"FREN1001|SEM01|Littérature française|Séminaire 1", "FREN1001|SEM03|Études|Séminaire 3"},
			[]string{extract.ReasonMangled}, 2, 1},
	} {
		t.Run("charset="+c.charset, func(t *testing.T) {
			st := storetest.Open(t, store.EngineSQLite)
			src, err := extract.OpenCSV(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := extract.Run(context.Background(), src, st, extract.Options{RunID: "cs", Charset: c.charset}, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			if got := moduleGroupsDump(t, st); strings.Join(got, "\n") != strings.Join(c.groups, "\n") {
				t.Errorf("groups %q, want %q", got, c.groups)
			}
			if res.Loaded[store.GroupMembers] != c.members {
				t.Errorf("members loaded %d, want %d", res.Loaded[store.GroupMembers], c.members)
			}
			var total int64
			for _, n := range res.Rejected {
				total += n
			}
			if total != c.rejected {
				t.Errorf("rejected %v, want %d in all", res.Rejected, c.rejected)
			}
			bad := badRows(t, st, "cs")
			for _, r := range c.reasons {
				if !hasBadRow(bad, "module_groups.csv", r) {
					t.Errorf("no bad row with reason %q in %+v", r, bad)
				}
			}
			for _, b := range bad {
				if strings.Contains(b.reason, "invalid UTF-8") && !strings.Contains(b.row, `\xe9`) {
					t.Errorf("invalid bytes not escaped in the rendered row: %q", b.row)
				}
			}
		})
	}
}

func TestMissingColumnInCustomQuery(t *testing.T) {
	d := sample.Generate(sample.Demo())
	_, driver, dsn := cmisDB(t, store.EngineSQLite, d)
	queries := fstest.MapFS{}
	for _, tb := range store.DumpTables {
		b, err := fs.ReadFile(sqlfiles.Queries(), extract.DefaultQueryFile(tb))
		if err != nil {
			t.Fatal(err)
		}
		queries[extract.DefaultQueryFile(tb)] = &fstest.MapFile{Data: b}
	}
	queries["group_members.sql"] = &fstest.MapFile{Data: []byte(
		"-- a site's own query, missing the student id\nSELECT MODULE_CODE AS modulecode, GROUP_CODE AS groupcode, STUDENT_ID AS student FROM CMIS_MOODLE_V_GROUP_MEMBER;\n")}
	st := storetest.Open(t, store.EngineSQLite)

	// A first good extract, which the failed one must leave alone.
	good := openSQL(t, driver, dsn, nil)
	if _, err := extract.Run(context.Background(), good, st, extract.Options{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	src := openSQL(t, driver, dsn, queries)
	_, err := extract.Run(context.Background(), src, st, extract.Options{}, quietLog())
	if err == nil {
		t.Fatal("no error for a query without studentid")
	}
	for _, want := range []string{`missing column "studentid"`, "group_members.sql", "columns found: modulecode, groupcode, student", "cmis_groupmembers_dump"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got := dumpCounts(t, st); !equalCounts(got, counts(d)) {
		t.Errorf("dump counts %v after a failed extract, want the first extract's %v", got, counts(d))
	}

	// A query file that is missing altogether is caught by OpenSQL.
	delete(queries, "group_tutors.sql")
	if _, err := extract.OpenSQL(context.Background(), driver, dsn, queries); err == nil || !strings.Contains(err.Error(), "group_tutors.sql") {
		t.Errorf("missing query file: %v", err)
	}
}

// faultSource wraps a Source: after a number of rows of one table it calls
// fault, which may return an error (the stream breaks) or do something to
// the world (cancel the context) and return nil.
type faultSource struct {
	extract.Source
	table store.DumpTable
	after int
	fault func() error
}

func (f *faultSource) Open(ctx context.Context, t store.DumpTable) (extract.Rows, error) {
	r, err := f.Source.Open(ctx, t)
	if err != nil || t != f.table {
		return r, err
	}
	return &faultRows{Rows: r, after: f.after, fault: f.fault}, nil
}

type faultRows struct {
	extract.Rows
	n, after int
	fault    func() error
	err      error
}

func (r *faultRows) Next() bool {
	if r.err != nil {
		return false
	}
	if r.n == r.after {
		if err := r.fault(); err != nil {
			r.err = err
			return false
		}
	}
	r.n++
	return r.Rows.Next()
}

func (r *faultRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.Rows.Err()
}

// TestInterruptedExtractKeepsDump commits a first extract, then runs a
// second, bigger one that fails midway in several ways: the dump must stay
// the first one. A last clean run then replaces it.
func TestInterruptedExtractKeepsDump(t *testing.T) {
	first := sample.Generate(sample.Demo())
	second := sample.Generate(medium)
	firstDir := t.TempDir()
	if err := sample.WriteCSV(firstDir, first); err != nil {
		t.Fatal(err)
	}
	_, driver, dsn := cmisDB(t, store.EngineSQLite, second)

	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			st := storetest.Open(t, engine)
			csvSrc, err := extract.OpenCSV(firstDir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := extract.Run(context.Background(), csvSrc, st, extract.Options{RunID: "first"}, quietLog()); err != nil {
				t.Fatal(err)
			}
			want := counts(first)
			if got := dumpCounts(t, st); !equalCounts(got, want) {
				t.Fatalf("first extract: %v, want %v", got, want)
			}
			broken := errors.New("ORA-03113: end-of-file on communication channel")
			for _, c := range []struct {
				name  string
				run   func(src extract.Source) error
				check func(t *testing.T, err error)
			}{
				{"source error", func(src extract.Source) error {
					fs := &faultSource{Source: src, table: store.GroupMembers, after: 1000, fault: func() error { return broken }}
					_, err := extract.Run(context.Background(), fs, st, extract.Options{RunID: "broken", BatchSize: 100}, quietLog())
					return err
				}, func(t *testing.T, err error) {
					if !errors.Is(err, broken) {
						t.Errorf("error %v does not wrap the source's", err)
					}
					for _, w := range []string{"extract cmis_groupmembers_dump from group_members.sql, after row 1000: ORA-03113"} {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("error %q does not name %s", err, w)
						}
					}
				}},
				{"cancelled", func(src extract.Source) error {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					fs := &faultSource{Source: src, table: store.GroupMembers, after: 1000, fault: func() error { cancel(); return nil }}
					_, err := extract.Run(ctx, fs, st, extract.Options{RunID: "cancelled", BatchSize: 100}, quietLog())
					return err
				}, func(t *testing.T, err error) {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("error %v is not context.Canceled", err)
					}
				}},
				{"cancelled in the last table", func(src extract.Source) error {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					fs := &faultSource{Source: src, table: store.GroupTutors, after: 10, fault: func() error { cancel(); return nil }}
					_, err := extract.Run(ctx, fs, st, extract.Options{RunID: "cancelled2"}, quietLog())
					return err
				}, func(t *testing.T, err error) {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("error %v is not context.Canceled", err)
					}
				}},
				{"refused before commit", func(src extract.Source) error {
					guard := func(_ context.Context, r extract.Result) error {
						return fmt.Errorf("extract has %d members, far more than before", r.Loaded[store.GroupMembers])
					}
					_, err := extract.Run(context.Background(), src, st, extract.Options{RunID: "guard", BeforeCommit: guard}, quietLog())
					return err
				}, func(t *testing.T, err error) {
					if !strings.Contains(err.Error(), "far more than before") {
						t.Errorf("error %v", err)
					}
				}},
			} {
				src := openSQL(t, driver, dsn, nil)
				err := c.run(src)
				if err == nil {
					t.Fatalf("%s: no error", c.name)
				}
				c.check(t, err)
				if got := dumpCounts(t, st); !equalCounts(got, want) {
					t.Errorf("%s: dump counts %v, want the first extract's %v", c.name, got, want)
				}
			}
			src := openSQL(t, driver, dsn, nil)
			if _, err := extract.Run(context.Background(), src, st, extract.Options{RunID: "second"}, quietLog()); err != nil {
				t.Fatal(err)
			}
			if got := dumpCounts(t, st); !equalCounts(got, counts(second)) {
				t.Errorf("second extract: %v, want %v", got, counts(second))
			}
		})
	}
}

// TestStagingFailureKeepsDump breaks staging in the middle of an extract
// (the members' shadow table disappears while batches are being written):
// the error names the table and the batch, the advice points at staging
// rather than the source, and the previous dump stays. Once staging is
// repaired, the next extract goes through.
func TestStagingFailureKeepsDump(t *testing.T) {
	d := sample.Generate(medium)
	dir := t.TempDir()
	if err := sample.WriteCSV(dir, d); err != nil {
		t.Fatal(err)
	}
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := storetest.Open(t, engine)
			src, err := extract.OpenCSV(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := extract.Run(ctx, src, st, extract.Options{RunID: "first"}, quietLog()); err != nil {
				t.Fatal(err)
			}
			want := counts(d)
			rename := func(from, to string) error {
				_, err := st.DB().ExecContext(ctx, "ALTER TABLE "+from+" RENAME TO "+to)
				return err
			}
			broken := &faultSource{Source: src, table: store.GroupMembers, after: 300, fault: func() error {
				return rename("cmis_groupmembers_dump_next", "cmis_groupmembers_dump_away")
			}}
			_, err = extract.Run(ctx, broken, st, extract.Options{RunID: "broken", BatchSize: 100}, quietLog())
			if err == nil {
				t.Fatal("no error with the shadow table gone")
			}
			for _, w := range []string{"extract cmis_groupmembers_dump from " + filepath.Join(dir, "group_members.csv") + ", in the batch ending at line", "cmis_groupmembers_dump_next"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if advice := strings.Join(extract.Advice(err), " "); !strings.Contains(advice, "staging database failed") {
				t.Errorf("advice %q does not point at staging", advice)
			}
			if got := dumpCounts(t, st); !equalCounts(got, want) {
				t.Errorf("dump %v after a staging failure, want the previous %v", got, want)
			}
			if err := rename("cmis_groupmembers_dump_away", "cmis_groupmembers_dump_next"); err != nil {
				t.Fatal(err)
			}
			if _, err := extract.Run(ctx, src, st, extract.Options{RunID: "repaired", BatchSize: 100}, quietLog()); err != nil {
				t.Fatalf("extract after the repair: %v", err)
			}
			if got := dumpCounts(t, st); !equalCounts(got, want) {
				t.Errorf("dump %v after the repair, want %v", got, want)
			}
		})
	}
}

// TestLargeExtract extracts the Large dataset (700,000 rows) from SQLite
// into MariaDB staging, as production does from Oracle.
func TestLargeExtract(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 700,000-row extract")
	}
	d := sample.Generate(sample.Large())
	_, driver, dsn := cmisDB(t, store.EngineSQLite, d)
	want := counts(d)
	d = sample.Dataset{} // let the dataset go: Run must not need it
	st := storetest.Open(t, store.EngineMySQL)
	res, err := extract.Run(context.Background(), openSQL(t, driver, dsn, nil), st, extract.Options{RunID: "large"}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if got := dumpCounts(t, st); !equalCounts(got, want) || !equalCounts(res.Loaded, want) {
		t.Errorf("dump %v, loaded %v, want %v", got, res.Loaded, want)
	}
}

func TestRunOptions(t *testing.T) {
	st := storetest.Open(t, store.EngineSQLite)
	src, err := extract.OpenCSV(writeFiles(t, map[string]string{
		"module_groups.csv": "modulecode,groupcode\nA,B\n",
		"group_members.csv": "modulecode,groupcode,studentid\n",
		"group_tutors.csv":  "modulecode,groupcode,staffid\n",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := extract.Run(context.Background(), src, st, extract.Options{Charset: "KOI8R"}, nil); err == nil || !strings.Contains(err.Error(), "KOI8R") {
		t.Errorf("unknown charset: %v", err)
	}
	logger, hook := test.NewNullLogger()
	res, err := extract.Run(context.Background(), src, st, extract.Options{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if res.Loaded[store.ModuleGroups] != 1 {
		t.Errorf("loaded %v", res.Loaded)
	}
	var committed, empty bool
	for _, e := range hook.AllEntries() {
		committed = committed || e.Message == "extract committed"
		empty = empty || (e.Message == "view extracted with no rows" && e.Level == logrus.WarnLevel)
	}
	if !committed || !empty {
		t.Errorf("log lacks the commit or the empty-view warning: %v", hook.AllEntries())
	}
}

// TestOracle runs the default queries against a real CMIS on Oracle when
// CMIS_ORACLE_DSN is set (a godror DSN; CMIS_ORACLE_CHARSET optionally sets
// source.charset); it needs the Oracle client libraries. Every view must
// give rows, and the dump must meet the column contract.
func TestOracle(t *testing.T) {
	dsn := os.Getenv("CMIS_ORACLE_DSN")
	if dsn == "" {
		t.Skip("CMIS_ORACLE_DSN is not set: no Oracle database to extract from (set it to a godror DSN, e.g. " +
			`user="cmis" password="..." connectString="host:1521/SERVICE", to run this test)`)
	}
	ctx := context.Background()
	charset := os.Getenv("CMIS_ORACLE_CHARSET")
	src, err := extract.OpenSQL(ctx, "oracle", dsn, nil, extract.WithCharset(charset))
	if err != nil {
		t.Fatalf("%v\nadvice: %s", err, strings.Join(extract.Advice(err), "\n"))
	}
	defer src.Close()
	if !strings.HasPrefix(src.Describe(), "oracle (") {
		t.Errorf("Describe = %q", src.Describe())
	}
	st := storetest.Open(t, store.EngineSQLite)
	res, err := extract.Run(ctx, src, st, extract.Options{RunID: "oracle", Charset: charset}, quietLog())
	if err != nil {
		t.Fatalf("%v\nadvice: %s", err, strings.Join(extract.Advice(err), "\n"))
	}
	t.Logf("extracted from %s: read %v, loaded %v, rejected %v", res.Source, res.Read, res.Loaded, res.Rejected)
	for _, tb := range store.DumpTables {
		if res.Loaded[tb] == 0 {
			t.Errorf("no rows loaded into %s from %s (read %d, rejected %d)", tb, extract.DefaultQueryFile(tb), res.Read[tb], res.Rejected[tb])
		}
	}
	if got := dumpCounts(t, st); !equalCounts(got, res.Loaded) {
		t.Errorf("dump counts %v, loaded %v", got, res.Loaded)
	}
	checkDumpContract(t, st)
	if bad := badRows(t, st, "oracle"); len(bad) > 0 {
		t.Logf("%d bad rows, e.g. %+v", len(bad), bad[0])
	}
}

// checkDumpContract checks the committed dump against the column contract
// and Moodle's limits: codes and ids present, trimmed, printable and short
// enough, names short enough, idnumbers within 100 characters, and every
// member and tutor in a group of the module-groups dump.
func checkDumpContract(t *testing.T, st *store.Store) {
	t.Helper()
	for _, tb := range store.DumpTables {
		cols := tb.Columns()
		rows, err := st.DB().Query("SELECT " + strings.Join(cols, ", ") + " FROM " + string(tb))
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		var problems int
		for rows.Next() && problems < 10 {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				limit, required := extract.MaxCodeLen, true
				if tb == store.ModuleGroups && i >= 2 {
					limit, required = extract.MaxNameLen, false
				}
				n := utf8.RuneCountInString(v)
				if !utf8.ValidString(v) || n > limit || (required && v == "") || strings.TrimSpace(v) != v ||
					strings.IndexFunc(v, unicode.IsControl) >= 0 {
					t.Errorf("%s: %s = %q breaks the contract", tb, cols[i], v)
					problems++
				}
			}
			if tb == store.ModuleGroups && utf8.RuneCountInString("cmis:"+vals[0]+":"+vals[1]) > extract.MaxIDNumberLen {
				t.Errorf("%s: idnumber cmis:%s:%s too long", tb, vals[0], vals[1])
				problems++
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if tb == store.ModuleGroups {
			continue
		}
		var orphans int
		if err := st.DB().QueryRow("SELECT COUNT(*) FROM " + string(tb) + " m WHERE NOT EXISTS (SELECT 1 FROM cmis_groups_dump g " +
			"WHERE g.modulecode = m.modulecode AND g.groupcode = m.groupcode)").Scan(&orphans); err != nil {
			t.Fatal(err)
		}
		if orphans > 0 {
			t.Errorf("%s: %d rows of groups missing from cmis_groups_dump", tb, orphans)
		}
	}
}
