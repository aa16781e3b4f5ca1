package extract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"testing/iotest"

	sqlfiles "github.com/cmissync/cmissync/sql"
	"github.com/cmissync/cmissync/stage/store"
)

func TestDescribeDSNHidesPassword(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	for _, c := range []struct{ driver, dsn, want string }{
		{"oracle", `user="cmis" password="` + secret + `" connectString="cmis-db:1521/GEND"`, "oracle (cmis-db:1521/GEND)"},
		{"oracle", "cmis/" + secret + "@cmis-db:1521/GEND", "oracle (cmis-db:1521/GEND)"},
		{"oracle", "oracle://cmis:" + secret + "@cmis-db:1521/GEND", "oracle (cmis-db:1521/GEND)"},
		{"mysql", "cmis:" + secret + "@tcp(127.0.0.1:3306)/cmis", "mysql (127.0.0.1:3306/cmis)"},
		{"sqlite", "file:/data/cmis.db?mode=ro", "sqlite (file /data/cmis.db)"},
	} {
		desc, _, pw, err := describeDSN(c.driver, c.dsn)
		if err != nil {
			t.Errorf("%s %s: %v", c.driver, c.want, err)
			continue
		}
		if desc != c.want {
			t.Errorf("describe %s = %q, want %q", c.driver, desc, c.want)
		}
		if strings.Contains(desc, secret) {
			t.Errorf("description %q contains the password", desc)
		}
		if c.driver != "sqlite" && pw != secret {
			t.Errorf("%s: password not found for scrubbing", c.want)
		}
	}
	for _, c := range []struct{ driver, dsn string }{
		{"mysql", "cmis:" + secret + "@tcp(127.0.0.1:3306/cmis"},
		{"oracle", "oracle://cmis:" + secret + "@cmis-db:port/GEND"},
		{"postgres", "x"},
		{"sqlite", ""},
	} {
		_, _, _, err := describeDSN(c.driver, c.dsn)
		if err == nil {
			t.Errorf("%s %q: no error", c.driver, c.dsn)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains the password", err)
		}
	}
	e := scrubbed(errors.New("ORA-01017: login "+secret+" denied"), secret)
	if strings.Contains(e.Error(), secret) {
		t.Errorf("scrubbed error still holds the password: %v", e)
	}
}

func TestOpenSQLErrorsHidePassword(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	// Nothing listens on port 1 of loopback: the connection fails fast.
	_, err := OpenSQL(context.Background(), "mysql", "cmis:"+secret+"@tcp(127.0.0.1:1)/cmis", nil)
	if err == nil {
		t.Fatal("no error connecting to a closed port")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error contains the password: %v", err)
	}
	if !strings.Contains(err.Error(), "mysql (127.0.0.1:1/cmis)") {
		t.Errorf("error does not name the source: %v", err)
	}
}

// oraNumber stands for godror.Number (a string type with a String method),
// which only cgo builds have; oracle_fake_test.go uses the real one.
type oraNumber string

func (n oraNumber) String() string { return string(n) }

func TestText(t *testing.T) {
	for _, c := range []struct {
		v       any
		numeric bool
		want    string
	}{
		{nil, false, ""},
		{"COMP1001", false, "COMP1001"},
		{[]byte("SEM01"), false, "SEM01"},
		{int64(12345678), true, "12345678"},
		{float64(12345678), true, "12345678"},
		{float64(1.5), true, "1.5"},
		{float32(7), true, "7"},
		{oraNumber("12345678"), true, "12345678"},
		{oraNumber("12345678.000"), true, "12345678"},
		{[]byte("12345678.0"), true, "12345678"},
		{"12345678.0", false, "12345678.0"}, // text columns keep their text
		{"-3.00", true, "-3"},
		{"3.50", true, "3.50"},
		{"1e5", true, "1e5"},
		{true, false, "1"},
	} {
		if got := text(c.v, c.numeric); got != c.want {
			t.Errorf("text(%#v, %v) = %q, want %q", c.v, c.numeric, got, c.want)
		}
	}
}

func TestReadQuery(t *testing.T) {
	q, err := readQuery(sqlfiles.Queries(), store.GroupMembers)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(q, "SELECT") || strings.Contains(q, "--") {
		t.Errorf("default query not stripped of its header: %q", q)
	}
	fsys := fstest.MapFS{
		"module_groups.sql": {Data: []byte("-- c\r\n\r\nselect 1 from dual;\r\n/\r\n")},
		"group_members.sql": {Data: []byte("-- only a comment\n")},
	}
	if q, err := readQuery(fsys, store.ModuleGroups); err != nil || q != "select 1 from dual" {
		t.Errorf("readQuery = %q, %v", q, err)
	}
	if _, err := readQuery(fsys, store.GroupMembers); err == nil || !strings.Contains(err.Error(), "group_members.sql") {
		t.Errorf("empty query: %v", err)
	}
	if _, err := readQuery(fsys, store.GroupTutors); err == nil || !strings.Contains(err.Error(), "group_tutors.sql") {
		t.Errorf("missing query file: %v", err)
	}
}

// readAll drains CSV rows, checking the invariants every Rows must keep.
func readAll(t *testing.T, r *csvRows, table store.DumpTable) (rows [][]string, bad []string) {
	t.Helper()
	width := len(table.Columns())
	for i := 0; r.Next(); i++ {
		if i > 1<<20 {
			t.Fatal("Next does not stop")
		}
		row := r.Row()
		reason, _ := r.Malformed()
		switch {
		case reason != "":
			if row != nil {
				t.Fatalf("malformed record with a row %q", row)
			}
			bad = append(bad, reason)
		case len(row) != width:
			t.Fatalf("row with %d values, want %d: %q", len(row), width, row)
		default:
			rows = append(rows, append([]string(nil), row...))
		}
		// Line 1 is the header, which is a malformed record when the file
		// may have been cut off after it.
		if r.Line() < 2 && (reason == "" || r.Line() < 1) {
			t.Fatalf("line %d for a data record", r.Line())
		}
	}
	return rows, bad
}

func TestCSVReader(t *testing.T) {
	data := "\xEF\xBB\xBFGroupCode,\"MODULECODE\",Extra,GroupName\r\n" +
		"SEM01,COMP1001,x,\"Seminar, \"\"A\"\"\"\r\n" +
		"LAB02,COMP1001,x,\"Lab\r\nmorning\"\r\n" +
		"SEM03,COMP1001\r\n" +
		"\r\n" +
		"SEM04,COMP1001,x,bare \" quote\r\n" +
		"SEM05,COMP1001,x,\r\n"
	r, err := newCSVRows(strings.NewReader(data), "groups.csv", store.ModuleGroups)
	if err != nil {
		t.Fatal(err)
	}
	var lines []int64
	var rows [][]string
	var bad []string
	for r.Next() {
		lines = append(lines, r.Line())
		if reason, _ := r.Malformed(); reason != "" {
			bad = append(bad, reason)
			continue
		}
		rows = append(rows, append([]string(nil), r.Row()...))
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	want := [][]string{
		{"COMP1001", "SEM01", "", `Seminar, "A"`},
		{"COMP1001", "LAB02", "", "Lab\nmorning"},
		{"COMP1001", "SEM05", "", ""},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %q, want %q", rows, want)
	}
	for i := range want {
		if strings.Join(rows[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("row %d = %q, want %q", i, rows[i], want[i])
		}
	}
	if strings.Join(bad, ";") != `2 fields, want 4 as in the header;CSV syntax error in GroupName (field 4): bare " in non-quoted-field` {
		t.Errorf("bad records: %q", bad)
	}
	if got := []int64{2, 3, 5, 7, 8}; len(lines) != len(got) || lines[2] != 5 || lines[3] != 7 || lines[4] != 8 {
		t.Errorf("lines %v, want %v", lines, got)
	}
}

// TestCSVReaderKeepsRecordText reads a file many times larger than the
// reader's buffer, with records larger than it, in small reads: each record
// must still be seen whole, so the reader's view of the raw text (where a
// record ends, which lines it covers) stays right as it forgets old bytes.
func TestCSVReaderKeepsRecordText(t *testing.T) {
	var b strings.Builder
	b.WriteString("modulecode,groupcode,modulename,groupname\r\n")
	want := 0
	for i := range 20000 {
		name := fmt.Sprintf("Name %d", i)
		switch i % 1000 {
		case 7:
			name = `"` + strings.Repeat("long, ", 30000) + `"`
		case 8:
			name = "\"Two\r\nlines\""
		}
		fmt.Fprintf(&b, "M%05d,G1,Module,%s\r\n", i, name)
		want++
	}
	r, err := newCSVRows(iotest.HalfReader(strings.NewReader(b.String())), "big.csv", store.ModuleGroups)
	if err != nil {
		t.Fatal(err)
	}
	rows, bad := readAll(t, r, store.ModuleGroups)
	if r.Err() != nil || len(bad) != 0 || len(rows) != want {
		t.Fatalf("%d rows, bad %q, err %v; want %d rows", len(rows), bad[:min(len(bad), 3)], r.Err(), want)
	}
	if got := rows[len(rows)-1][0]; got != fmt.Sprintf("M%05d", want-1) {
		t.Errorf("last row %q", got)
	}
	if n := len(r.raw.buf); n > 1<<20 {
		t.Errorf("the reader holds %d bytes of text; it should forget what it has read", n)
	}
}

func TestCSVHeaderErrors(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{"", "empty file: a header row naming the columns (modulecode, groupcode, studentid) is required"},
		{"modulecode,group,studentid\nA,B,C\n", `members.csv: missing column "groupcode" (columns found: modulecode, group, studentid)`},
		{"modulecode;groupcode;studentid\n", `the file seems to use ";" as separator`},
		{"modulecode,groupcode,studentid,STUDENTID\n", `duplicated column "studentid"`},
		{"\xFF\xFEm\x00", "UTF-16"},
	} {
		_, err := newCSVRows(strings.NewReader(c.data), "members.csv", store.GroupMembers)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("header %q: error %v, want %q", c.data, err, c.want)
		}
	}
}

// FuzzCSV checks that the CSV reader never panics, always ends, and never
// yields a row with the wrong number of values, whatever the bytes; and that
// the row checker copes with whatever the reader yields.
func FuzzCSV(f *testing.F) {
	for _, seed := range []string{
		"modulecode,groupcode,studentid\nCOMP1001,SEM01,12345678\n",
		"\xEF\xBB\xBFmodulecode,groupcode,studentid\r\nCOMP1001,SEM01,12345678\r\n",
		"STUDENTID,ModuleCode,groupcode,extra\n1,\"A,B\",\"C\nD\",\"x\"\"y\"\n",
		"modulecode,groupcode,studentid\nA,B\nA,B,C,D\n\"unterminated\n",
		"modulecode,groupcode,studentid\nA,B,\"C\"x\nbare\"quote,B,C\n",
		"modulecode,groupcode,studentid\nJos\xe9,SEM01,1\n\x00,\x01,\x02\n",
		"modulecode,groupcode,studentid,modulecode\n",
		"\"modulecode\",\"groupcode\",\"studentid\"\r\r\n,,\n",
		"moduleCode,groupCode,studentid",
		"modulecode,groupcode,studentid\nA,\"B\nA,B,C\nC\"\n",
		"",
		"\xFF\xFE",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, table := range []store.DumpTable{store.GroupMembers, store.ModuleGroups} {
			r, err := newCSVRows(bytes.NewReader(data), "fuzz.csv", table)
			if err != nil {
				if r != nil {
					t.Fatal("rows returned with an error")
				}
				continue
			}
			rows, _ := readAll(t, r, table)
			for _, cs := range []string{CharsetUTF8, CharsetLatin1} {
				c := newChecker(cs)
				for i, row := range rows {
					vals, reason := c.check(table, "fuzz.csv", int64(i+2), row)
					if reason == "" && len(vals) != len(row) {
						t.Fatalf("checked row has %d values, want %d", len(vals), len(row))
					}
					_ = renderRow(table, row)
				}
			}
		}
	})
}
