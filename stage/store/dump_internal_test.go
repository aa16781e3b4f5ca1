package store

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestAppendTSVRow(t *testing.T) {
	for _, c := range []struct {
		row  []string
		want string
	}{
		{[]string{"COMP1001", "SEM01", "12345678"}, "COMP1001\tSEM01\t12345678\n"},
		{[]string{"", "", ""}, "\t\t\n"},
		{[]string{"a\tb", "c\nd", "e\\f"}, "a\\tb\tc\\nd\te\\\\f\n"},
		{[]string{"\\N", "NULL", "x\x00y\rz\x1a"}, "\\\\N\tNULL\tx\\0y\\rz\\Z\n"},
		{[]string{`"quoted"`, "Zoë 😀", "'"}, "\"quoted\"\tZoë 😀\t'\n"},
	} {
		if got := string(appendTSVRow(nil, c.row)); got != c.want {
			t.Errorf("appendTSVRow(%q) = %q, want %q", c.row, got, c.want)
		}
	}
}

func TestTSVReader(t *testing.T) {
	var rows [][]string
	var want strings.Builder
	for i := 0; i < 5000; i++ {
		r := []string{"M" + strings.Repeat("x", i%7), "G\t" + string(rune('a'+i%26)), strings.Repeat("\\", i%3)}
		rows = append(rows, r)
		want.Write(appendTSVRow(nil, r))
	}
	// One byte at a time, and in whatever sizes the driver asks for.
	for _, r := range []io.Reader{iotest.OneByteReader(&tsvReader{rows: rows}), &tsvReader{rows: rows}} {
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() {
			t.Fatalf("tsvReader wrote %d bytes that differ from the %d expected", len(got), want.Len())
		}
	}
	if err := iotest.TestReader(&tsvReader{rows: rows}, []byte(want.String())); err != nil {
		t.Error(err)
	}
	if n, err := (&tsvReader{}).Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("empty reader: %d, %v", n, err)
	}
}

func TestWarningRow(t *testing.T) {
	for _, c := range []struct {
		msg string
		n   int
		ok  bool
	}{
		{"Data truncated for column 'a' at row 3", 3, true},
		{"Row 4 doesn't contain data for all columns", 0, false},
		{"Incorrect string value: '\\xF0' for column `x`.`t`.`a` at row 12", 12, true},
	} {
		n, ok := warningRow(c.msg)
		if n != c.n || ok != c.ok {
			t.Errorf("warningRow(%q) = %d, %v; want %d, %v", c.msg, n, ok, c.n, c.ok)
		}
	}
}
