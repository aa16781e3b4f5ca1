//go:build cgo

package extract_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/godror/godror"

	"github.com/cmissync/cmissync/extract"
	sqlfiles "github.com/cmissync/cmissync/sql"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// fakeOracle is a database/sql driver that answers the default extraction
// queries the way godror does against CMIS: upper-case column names, NUMBER
// columns as godror.Number (or float64, or int64, depending on settings),
// CHAR columns padded, NULLs. Oracle cannot run here; this is the only fake
// in the tests.
type fakeOracle struct{}

type fakeResult struct {
	cols  []string
	types []string
	rows  [][]driver.Value
}

var fakeViews = map[string]fakeResult{
	"CMIS_MOODLE_V_MODULE_GROUP": {
		cols:  []string{"MODULECODE", "GROUPCODE", "MODULENAME", "GROUPNAME"},
		types: []string{"VARCHAR2", "CHAR", "VARCHAR2", "VARCHAR2"},
		rows: [][]driver.Value{
			{"COMP1001", "SEM01     ", "Algorithms", nil},
			{[]byte("COMP1001"), "LAB02     ", nil, "Lab Group 02"},
		},
	},
	"CMIS_MOODLE_V_GROUP_MEMBER": {
		cols:  []string{"MODULECODE", "GROUPCODE", "STUDENTID"},
		types: []string{"VARCHAR2", "CHAR", "NUMBER"},
		rows: [][]driver.Value{
			{"COMP1001", "SEM01     ", godror.Number("12345678")},
			{"COMP1001", "SEM01     ", float64(23456789)},
			{"COMP1001", "LAB02     ", int64(34567890)},
			{"COMP1001", "LAB02     ", godror.Number("45678901.0")},
			{"COMP1001", "LAB02     ", nil},
		},
	},
	"CMIS_MOODLE_V_GROUP_TUTOR": {
		cols:  []string{"MODULECODE", "GROUPCODE", "STAFFID"},
		types: []string{"VARCHAR2", "CHAR", "CHAR"},
		rows: [][]driver.Value{
			{"COMP1001", "SEM01     ", "S000001 "},
		},
	},
}

func (fakeOracle) Connect(context.Context) (driver.Conn, error) { return fakeConn{}, nil }
func (fakeOracle) Driver() driver.Driver                        { return nil }

type fakeConn struct{}

func (fakeConn) Prepare(q string) (driver.Stmt, error) { return fakeStmt{q}, nil }
func (fakeConn) Close() error                          { return nil }
func (fakeConn) Begin() (driver.Tx, error)             { return nil, errors.New("read-only") }

type fakeStmt struct{ q string }

func (fakeStmt) Close() error                               { return nil }
func (fakeStmt) NumInput() int                              { return 0 }
func (fakeStmt) Exec([]driver.Value) (driver.Result, error) { return nil, errors.New("read-only") }
func (s fakeStmt) Query([]driver.Value) (driver.Rows, error) {
	if strings.HasSuffix(strings.TrimSpace(s.q), ";") {
		return nil, errors.New("ORA-00911: invalid character")
	}
	for view, res := range fakeViews {
		if strings.Contains(s.q, view) {
			return &fakeRows{res: res}, nil
		}
	}
	return nil, errors.New("ORA-00942: table or view does not exist")
}

type fakeRows struct {
	res fakeResult
	i   int
}

func (r *fakeRows) Columns() []string                       { return r.res.cols }
func (r *fakeRows) Close() error                            { return nil }
func (r *fakeRows) ColumnTypeDatabaseTypeName(i int) string { return r.res.types[i] }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.i >= len(r.res.rows) {
		return io.EOF
	}
	copy(dest, r.res.rows[r.i])
	r.i++
	return nil
}

// TestFakeOracle extracts through the Oracle-shaped fake: column names are
// matched case-insensitively, numbers come out as integers in text, CHAR
// padding is trimmed, NULL names become "", a NULL id is a bad row.
func TestFakeOracle(t *testing.T) {
	db := sql.OpenDB(fakeOracle{})
	defer db.Close()
	src := extract.NewSQL(db, "oracle (fake)", nil)
	st := storetest.Open(t, store.EngineSQLite)
	res, err := extract.Run(context.Background(), src, st, extract.Options{RunID: "ora"}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if res.Source != "oracle (fake)" {
		t.Errorf("source %q", res.Source)
	}
	want := map[store.DumpTable][]string{
		store.ModuleGroups: {"COMP1001|LAB02||Lab Group 02", "COMP1001|SEM01|Algorithms|"},
		store.GroupMembers: {"COMP1001|LAB02|34567890", "COMP1001|LAB02|45678901", "COMP1001|SEM01|12345678", "COMP1001|SEM01|23456789"},
		store.GroupTutors:  {"COMP1001|SEM01|S000001"},
	}
	for tb, w := range want {
		got := storetest.DumpRows(t, st, tb)
		if strings.Join(got, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s:\n%s\nwant:\n%s", tb, strings.Join(got, "\n"), strings.Join(w, "\n"))
		}
	}
	if res.Rejected[store.GroupMembers] != 1 {
		t.Errorf("rejected %v, want the NULL student", res.Rejected)
	}
	bad := badRows(t, st, "ora")
	if len(bad) != 1 || !strings.HasPrefix(bad[0].reason, "missing studentid;") || bad[0].line != 5 || bad[0].source != "group_members.sql" {
		t.Errorf("bad rows %+v", bad)
	}
	checkDumpContract(t, st)
}

// TestFakeOracleMissingView runs a site's query on a view the fake Oracle
// does not have: the extract fails with ORA-00942, keeps the previous dump,
// and the advice says what to check.
func TestFakeOracleMissingView(t *testing.T) {
	db := sql.OpenDB(fakeOracle{})
	defer db.Close()
	st := storetest.Open(t, store.EngineSQLite)
	if _, err := extract.Run(context.Background(), extract.NewSQL(db, "oracle (fake)", nil), st, extract.Options{}, quietLog()); err != nil {
		t.Fatal(err)
	}
	before := dumpCounts(t, st)
	queries := fstest.MapFS{}
	for _, tb := range store.DumpTables {
		b, err := fs.ReadFile(sqlfiles.Queries(), extract.DefaultQueryFile(tb))
		if err != nil {
			t.Fatal(err)
		}
		queries[extract.DefaultQueryFile(tb)] = &fstest.MapFile{Data: b}
	}
	queries["group_tutors.sql"] = &fstest.MapFile{Data: []byte("SELECT MODULECODE, GROUPCODE, STAFFID FROM CMIS.TUTOR_VIEW")}
	_, err := extract.Run(context.Background(), extract.NewSQL(db, "oracle (fake)", queries), st, extract.Options{}, quietLog())
	if err == nil || !strings.Contains(err.Error(), "ORA-00942") || !strings.Contains(err.Error(), "group_tutors.sql") {
		t.Fatalf("error %v, want ORA-00942 from group_tutors.sql", err)
	}
	if got := dumpCounts(t, st); !equalCounts(got, before) {
		t.Errorf("dump %v after a failed extract, want %v", got, before)
	}
	if advice := strings.Join(extract.Advice(err), " "); !strings.Contains(advice, "GRANT SELECT") {
		t.Errorf("advice %q", advice)
	}
}
