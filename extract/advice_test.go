package extract

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/go-sql-driver/mysql"

	sqlfiles "github.com/cmissync/cmissync/sql"
	"github.com/cmissync/cmissync/stage/store"
)

func TestShrinkFor(t *testing.T) {
	m := func(g, mem, tut int64) map[store.DumpTable]int64 {
		return map[store.DumpTable]int64{store.ModuleGroups: g, store.GroupMembers: mem, store.GroupTutors: tut}
	}
	for _, c := range []struct {
		name           string
		previous, next map[store.DumpTable]int64
		threshold      float64
		want           []store.DumpTable
	}{
		{"first extract", m(0, 0, 0), m(10, 100, 5), 0.5, nil},
		{"empty first extract", m(0, 0, 0), m(0, 0, 0), 0.5, nil},
		{"growth", m(10, 100, 5), m(20, 200, 10), 0.5, nil},
		{"outage", m(10, 100, 5), m(0, 0, 0), 0.5, store.DumpTables},
		{"outage, threshold 1", m(10, 100, 5), m(0, 0, 0), 1, store.DumpTables},
		{"half the members", m(10, 100, 5), m(10, 50, 5), 0.5, nil},
		{"more than half the members", m(10, 100, 5), m(10, 49, 5), 0.5, []store.DumpTable{store.GroupMembers}},
		{"most members, threshold 1", m(10, 100, 5), m(10, 1, 5), 1, nil},
		{"tutors emptied", m(10, 100, 5), m(10, 100, 0), 0.9, []store.DumpTable{store.GroupTutors}},
		{"a table that was empty", m(10, 0, 5), m(10, 0, 5), 0.5, nil},
	} {
		se := shrinkFor(c.previous, c.next, c.threshold)
		var got []store.DumpTable
		if se != nil {
			got = se.Tables
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: tables %v, want %v", c.name, got, c.want)
		}
	}
	se := shrinkFor(m(10, 1000, 5), m(10, 0, 5), 0.5)
	want := "extract held by the shrink guard: cmis_groupmembers_dump would go from 1000 to 0 rows (-100%), more than the 50% a table may lose. " +
		"The previous dump is kept and Moodle is not changed from this extract. Check that the CMIS views are complete; if CMIS really holds that much less, rerun with --approve-shrink"
	if se.Error() != want {
		t.Errorf("message:\n%s\nwant:\n%s", se, want)
	}
	if se = shrinkFor(m(10, 1000, 5), m(10, 0, 5), 1); !strings.Contains(se.Error(), "(-100%), emptying it.") {
		t.Errorf("message with threshold 1: %s", se)
	}
	if got := percent(0.125); got != "12.5%" {
		t.Errorf("percent(0.125) = %q", got)
	}
}

// TestAdvice checks the advice for each kind of failure. Where it can, it
// gets the error from the real code path (a missing file, a closed port, a
// SQLite query on a missing view); Oracle errors are made from their text,
// as godror's error type cannot be built outside godror.
func TestAdvice(t *testing.T) {
	ctx := context.Background()
	open := func(driver, dataSource string, queries fstest.MapFS) error {
		t.Helper()
		var q = sqlfiles.Queries()
		if queries != nil {
			q = queries
		}
		src, err := OpenSQL(ctx, driver, dataSource, q)
		if err == nil {
			src.Close()
			t.Fatalf("OpenSQL %s: no error", driver)
		}
		return err
	}
	sqliteFile := filepath.Join(t.TempDir(), "empty.db")
	db, err := sql.Open("sqlite", sqliteFile)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, sqliteErr := NewSQL(db, "sqlite (test)", nil).Open(ctx, store.ModuleGroups)
	_, csvErr := OpenCSV(filepath.Join(t.TempDir(), "nope"), nil)
	contract := &ContractError{Origin: "group_members.sql", Column: "studentid", Problem: "missing", Found: []string{"modulecode", "groupcode", "student"}}
	wrap := func(err error) error {
		return fmt.Errorf("extract cmis_groups_dump from module_groups.sql: run query: %w", err)
	}

	for _, c := range []struct {
		name string
		err  error
		want []string // each must appear in the advice
	}{
		{"shrink", fmt.Errorf("extract: not committed: %w", &ShrinkError{Threshold: 0.5, Tables: []store.DumpTable{store.GroupMembers},
			Previous: map[store.DumpTable]int64{store.GroupMembers: 10}, New: map[store.DumpTable]int64{}}), []string{"--approve-shrink", "previous dump is kept"}},
		{"interrupted", fmt.Errorf("extract: %w", context.Canceled), []string{"interrupted", "Run it again"}},
		{"contract", fmt.Errorf("extract: %w", contract), []string{`group_members.sql does not return the column "studentid"`, "student", "AS studentid"}},
		{"staging", fmt.Errorf("extract: commit: %w", &stagingError{errors.New("Error 1205: Lock wait timeout")}), []string{"staging database failed, not the CMIS source"}},
		{"staging schema", fmt.Errorf("extract: %w", &stagingError{fmt.Errorf("%w: run `cmissync migrate`", store.ErrSchema)}), []string{"cmissync migrate"}},
		{"csv dir missing", csvErr, []string{"source.csv_dir", "does not exist"}},
		{"query file missing", open("sqlite", sqliteFile, fstest.MapFS{}), []string{"source.queries_dir", "does not exist"}},
		{"sqlite file missing", open("sqlite", filepath.Join(t.TempDir(), "nope.db"), nil), []string{"source.dsn", "path of an existing database file", "does not exist"}},
		{"sqlite view missing", sqliteErr, []string{"SQLite source failed", "CMIS_MOODLE_V_MODULE_GROUP"}},
		{"mysql unreachable", open("mysql", "cmis:pw@tcp(127.0.0.1:1)/cmis", nil), []string{"could not be reached", "host and port in source.dsn"}},
		{"mysql password", wrap(&mysql.MySQLError{Number: 1045, Message: "Access denied"}), []string{"user name or password"}},
		{"mysql view missing", wrap(&mysql.MySQLError{Number: 1146, Message: "Table doesn't exist"}), []string{"CMIS_MOODLE_V_GROUP_MEMBER", "source.queries_dir"}},
		{"no instant client", errors.New("oracle (db:1521/GEND): connect: DPI-1047: Cannot locate a 64-bit Oracle Client library"), []string{"Instant Client", "ldconfig", "LD_LIBRARY_PATH"}},
		{"unresolved", wrap(errors.New("ORA-12154: TNS:could not resolve the connect identifier specified")), []string{"ORA-12154", "connectString", "tnsnames.ora"}},
		{"no listener", wrap(errors.New("ORA-12541: TNS:no listener")), []string{"ORA-12541", "port"}},
		{"timeout", wrap(errors.New("ORA-12170: TNS:Connect timeout occurred")), []string{"ORA-12170", "firewall"}},
		{"login", wrap(errors.New("ORA-01017: invalid username/password; logon denied")), []string{"ORA-01017", "user and password in source.dsn"}},
		{"view missing or no grant", wrap(errors.New("ORA-00942: table or view does not exist")), []string{"ORA-00942", "GRANT SELECT", "CMIS_MOODLE_V_GROUP_TUTOR", "CURRENT_SCHEMA"}},
		{"column missing", wrap(errors.New("ORA-00904: \"STUDENT_ID\": invalid identifier")), []string{"ORA-00904", "DESCRIBE"}},
		{"connection lost", wrap(errors.New("ORA-03113: end-of-file on communication channel")), []string{"connection to Oracle was lost"}},
		{"other oracle error", wrap(errors.New("ORA-01652: unable to extend temp segment")), []string{"ORA-01652", "oerr ora 1652"}},
		{"anything else", errors.New("something odd"), []string{"Read the error above", "source.*"}},
	} {
		if c.err == nil {
			t.Errorf("%s: no error to advise on", c.name)
			continue
		}
		advice := Advice(c.err)
		if len(advice) == 0 {
			t.Errorf("%s: no advice for %v", c.name, c.err)
			continue
		}
		all := strings.Join(advice, "\n")
		for _, w := range c.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: advice for %q lacks %q:\n%s", c.name, c.err, w, all)
			}
		}
	}
	if Advice(nil) != nil {
		t.Error("advice for no error")
	}
}

func TestOracleErrorCode(t *testing.T) {
	for _, c := range []struct {
		text string
		code int
		ok   bool
	}{
		{"ORA-00942: table or view does not exist", 942, true},
		{"extract x: run query: ORA-12541: TNS:no listener", 12541, true},
		{"DPI-1047: Cannot locate a 64-bit Oracle Client library", -1047, true},
		{"DPI-1080: connection was closed by ORA-3113", -1080, true},
		{"FORA-12345 is not a code", 0, false},
		{"no code here", 0, false},
	} {
		code, ok := oracleErrorCode(errors.New(c.text))
		if code != c.code || ok != c.ok {
			t.Errorf("oracleErrorCode(%q) = %d, %v; want %d, %v", c.text, code, ok, c.code, c.ok)
		}
	}
}

// TestOracleParams checks the client character set OpenSQL asks godror
// for: UTF-8 unless source.charset says WE8ISO8859P1, and never over a
// charset the DSN sets itself.
func TestOracleParams(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	base := `user="cmis" password="` + secret + `" connectString="cmis-db:1521/GEND"`
	for _, c := range []struct{ dsn, charset, want string }{
		{base, "", "UTF-8"},
		{base, "AL32UTF8", "UTF-8"},
		{base, "WE8ISO8859P1", "ISO-8859-1"},
		{base + ` charset="WE8MSWIN1252"`, "AL32UTF8", "WE8MSWIN1252"},
		{"cmis/" + secret + "@cmis-db:1521/GEND", "latin1", "ISO-8859-1"},
	} {
		p, err := oracleParams(c.dsn, c.charset)
		if err != nil {
			t.Errorf("%q: %v", c.charset, err)
			continue
		}
		if p.Charset != c.want {
			t.Errorf("charset %q with DSN %q: client charset %q, want %q", c.charset, strings.ReplaceAll(c.dsn, secret, "***"), p.Charset, c.want)
		}
		if p.ConnectString != "cmis-db:1521/GEND" || p.Password.Secret() != secret {
			t.Errorf("DSN not kept: %q", p.ConnectString)
		}
	}
	if _, err := oracleParams(base, "KOI8R"); err == nil || !strings.Contains(err.Error(), "KOI8R") {
		t.Errorf("unknown charset: %v", err)
	}
	if _, err := oracleParams("oracle://cmis:"+secret+"@cmis-db:port/GEND", ""); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("bad DSN: %v", err)
	}
}
