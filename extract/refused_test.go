package extract_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/extract"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// The files of a small valid CSV source, one line a slice element (each
// ends with a line break in the file).
var (
	groupsCSV = []string{
		"modulecode,groupcode,modulename,groupname",
		"COMP1001,SEM01,Algorithms,Seminar 1",
		`COMP1001,SEM02,Algorithms,"Seminar 2, Friday"`,
		"MATH2002,LAB01,Calculus,Lab 1",
	}
	membersCSV = []string{
		"modulecode,groupcode,studentid",
		"COMP1001,SEM01,10000001",
		"COMP1001,SEM02,10000002",
		"MATH2002,LAB01,10000003",
	}
	tutorsCSV = []string{
		"modulecode,groupcode,staffid",
		"COMP1001,SEM01,S0001",
		"MATH2002,LAB01,S0002",
	}
)

// csvSet is the text of the three files, by file name.
type csvSet map[string]string

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func baseCSV() csvSet {
	return csvSet{
		"module_groups.csv": lines(groupsCSV...),
		"group_members.csv": lines(membersCSV...),
		"group_tutors.csv":  lines(tutorsCSV...),
	}
}

// with returns the base files with one file's text replaced.
func with(file, text string) csvSet {
	s := baseCSV()
	s[file] = text
	return s
}

// plus returns the base files with text added at the end of one file.
func plus(file, text string) csvSet {
	s := baseCSV()
	s[file] += text
	return s
}

// insert returns ls with extra lines inserted before line n (1-based).
func insert(ls []string, n int, extra ...string) []string {
	out := append([]string(nil), ls[:n-1]...)
	out = append(out, extra...)
	return append(out, ls[n-1:]...)
}

// refused is an expected refused key, with the line of the file it comes
// from and what its reason must say.
type refused struct {
	table                 store.DumpTable
	module, group, cmisid string
	line                  int64
	says                  []string
}

func (r refused) String() string {
	return fmt.Sprintf("%s %q %q %q line %d", r.table, r.module, r.group, r.cmisid, r.line)
}

const (
	mg = store.ModuleGroups
	gm = store.GroupMembers
	gt = store.GroupTutors
)

// Why a refused row of each view whose key cannot be read protects all of
// it: the reason says so.
const (
	allGroups  = "as its key cannot be read, no grouping, group or membership is deleted by this run"
	allMembers = "as its key cannot be read, no student is removed from a group by this run"
	allTutors  = "as its key cannot be read, no tutor is removed from a group by this run"
)

// TestRefusedRowsCarryTheirKeys extracts CSV files with one kind of bad
// record each and checks the keys that the refused rows protect: the parts
// that could be read, nothing for a record that could not be parsed, and a
// reason that names the field.
func TestRefusedRowsCarryTheirKeys(t *testing.T) {
	long := strings.Repeat("G", 101)
	longID := strings.Repeat("9", 101)
	cases := []struct {
		name    string
		files   csvSet
		charset string
		want    []refused
	}{
		{"bare quote", plus("module_groups.csv", "COMP1001,SEM03,Algo\"rithms,Seminar 3\n"), "", []refused{
			{mg, "", "", "", 5, []string{`CSV syntax error in modulename (field 3): bare "`, allGroups}},
		}},
		{"quote never closed, to the end of the file", with("module_groups.csv", lines(insert(groupsCSV, 4, `COMP1001,SEM03,"Algorithms,Seminar 3`)...)), "", []refused{
			{mg, "", "", "", 4, []string{"modulename (field 3)", "on line 4 is never closed", "to the end of the file (line 5)", allGroups}},
			{gm, "MATH2002", "LAB01", "10000003", 4, []string{"group not in"}},
			{gt, "MATH2002", "LAB01", "S0002", 3, []string{"group not in"}},
		}},
		{"quote never closed, until a later quote", with("module_groups.csv", lines(insert(groupsCSV, 3, `COMP1001,SEM03,"Algorithms,Seminar 3`)...)), "", []refused{
			{mg, "", "", "", 3, []string{"modulename (field 3)", "the record runs from line 3 to line 4", allGroups}},
			{gm, "COMP1001", "SEM02", "10000002", 3, []string{"group not in"}},
		}},
		{"quoted field over lines that read as records", with("module_groups.csv", lines(groupsCSV[0], groupsCSV[1],
			`COMP1001,SEM03,Algorithms,"Seminar 3`, groupsCSV[3], `(continued)"`, groupsCSV[2])), "", []refused{
			{mg, "", "", "", 3, []string{"runs from line 3 to line 5, over line 4, which reads as a record", allGroups}},
			{gm, "MATH2002", "LAB01", "10000003", 4, []string{"group not in"}},
			{gt, "MATH2002", "LAB01", "S0002", 3, []string{"group not in"}},
		}},
		{"wrong field count", plus("module_groups.csv", "COMP1001,SEM03,Algorithms\n"), "", []refused{
			{mg, "", "", "", 5, []string{"3 fields, want 4 as in the header", allGroups}},
		}},
		{"header again", with("module_groups.csv", lines(insert(groupsCSV, 3, groupsCSV[0])...)), "", []refused{
			{mg, "", "", "", 3, []string{"the header again", allGroups}},
		}},
		{"module groups cut off", with("module_groups.csv", lines(groupsCSV[:3]...)+"MATH2002,LAB01,Calc"), "", []refused{
			{mg, "", "", "", 4, []string{"the file does not end with a line break: its last record may be cut off", allGroups}},
			{gm, "MATH2002", "LAB01", "10000003", 4, []string{"group not in"}},
			{gt, "MATH2002", "LAB01", "S0002", 3, []string{"group not in"}},
		}},
		{"members cut off", with("group_members.csv", lines(membersCSV[:3]...)+"MATH2002,LAB01,1000"), "", []refused{
			{gm, "", "", "", 4, []string{"the file does not end with a line break", allMembers}},
		}},
		{"members cut off in a quoted field", with("group_members.csv", lines(membersCSV[:3]...)+`MATH2002,LAB01,"1000`), "", []refused{
			{gm, "", "", "", 4, []string{"studentid (field 3)", "never closed before the end of the file", allMembers}},
		}},
		{"tutors cut off", with("group_tutors.csv", lines(tutorsCSV[:2]...)+"MATH2002,LAB01,S00"), "", []refused{
			{gt, "", "", "", 3, []string{"the file does not end with a line break", allTutors}},
		}},
		{"tutors cut off after the header", with("group_tutors.csv", tutorsCSV[0]), "", []refused{
			{gt, "", "", "", 1, []string{"the file does not end with a line break", "the header is the last record", allTutors}},
		}},
		{"NUL byte in an id", plus("group_members.csv", "COMP1001,SEM01,1000\x000004\n"), "", []refused{
			{gm, "COMP1001", "SEM01", "", 5, []string{"control character U+0000 in studentid",
				"as its studentid cannot be read, no student is removed from group COMP1001 SEM01 by this run"}},
		}},
		{"tab in a code", plus("group_members.csv", "COMP1001,SEM\t01,10000001\n"), "", []refused{
			{gm, "COMP1001", "", "", 5, []string{"control character U+0009 in groupcode",
				"as its groupcode cannot be read, no student is removed from a group of module COMP1001 by this run"}},
		}},
		{"U+FFFD in a group code", plus("module_groups.csv", "COMP1001,SEM\uFFFD3,Algorithms,Seminar 3\n"), "", []refused{
			{mg, "COMP1001", "", "", 5, []string{extract.ReasonMangled + " in groupcode",
				"as its groupcode cannot be read, nothing of module COMP1001 (its grouping, groups and memberships) is deleted by this run"}},
		}},
		{"U+FFFD in a module code", plus("group_tutors.csv", "COMP\uFFFD1001,SEM01,S0009\n"), "", []refused{
			{gt, "", "", "", 4, []string{extract.ReasonMangled + " in modulecode",
				"as its modulecode cannot be read, no tutor is removed from a group by this run"}},
		}},
		{"invalid UTF-8 in an id", plus("group_members.csv", "COMP1001,SEM01,1000\xe90001\n"), "", []refused{
			{gm, "COMP1001", "SEM01", "", 5, []string{"invalid UTF-8 in studentid"}},
		}},
		{"blank id", plus("group_members.csv", "COMP1001,SEM01,\n"), "", []refused{
			{gm, "COMP1001", "SEM01", "", 5, []string{"missing studentid"}},
		}},
		{"whitespace-only id", plus("group_tutors.csv", "COMP1001,SEM01,   \n"), "", []refused{
			{gt, "COMP1001", "SEM01", "", 4, []string{"missing staffid",
				"as its staffid cannot be read, no tutor is removed from group COMP1001 SEM01 by this run"}},
		}},
		{"mojibake in a name", with("module_groups.csv", lines(append(groupsCSV, "COMP1001,SEM03,Algorithms,SÃ©minaire 3")...)), "", []refused{
			{mg, "COMP1001", "SEM03", "", 5, []string{extract.ReasonMangled + " in groupname"}},
		}},
		{"member of a refused group", csvSet{
			"module_groups.csv": lines(append(groupsCSV, "COMP1001,SEM03,Algorithms,SÃ©minaire 3")...),
			"group_members.csv": lines(append(membersCSV, "COMP1001,SEM03,10000009")...),
			"group_tutors.csv":  lines(tutorsCSV...),
		}, "", []refused{
			{mg, "COMP1001", "SEM03", "", 5, []string{extract.ReasonMangled + " in groupname"}},
			{gm, "COMP1001", "SEM03", "10000009", 5, []string{"group rejected from CMIS_MOODLE_V_MODULE_GROUP", "line 5"}},
		}},
		{"mojibake in a code", plus("group_members.csv", "COMP1001,SÃ‰M01,10000009\n"), "", []refused{
			{gm, "COMP1001", "", "", 5, []string{extract.ReasonMangled + " in groupcode"}},
		}},
		// A value that is only too long stays known: it can describe only
		// itself. The error table holds 100 characters of it.
		{"over-long group code", plus("module_groups.csv", "COMP1001,"+long+",Algorithms,Seminar\n"), "", []refused{
			{mg, "COMP1001", long[:100], "", 5, []string{"groupcode longer than 100 characters (101)"}},
		}},
		{"over-long id", plus("group_members.csv", "COMP1001,SEM01,"+longID+"\n"), "", []refused{
			{gm, "COMP1001", "SEM01", longID[:100], 5, []string{"studentid longer than 100 characters (101)"}},
		}},
		{"duplicate group", plus("module_groups.csv", " COMP1001 , SEM01 ,Other,Other\n"), "", []refused{
			{mg, "COMP1001", "SEM01", "", 5, []string{"duplicate of line 2"}},
		}},
		{"duplicate member", plus("group_members.csv", "COMP1001,SEM01,10000001\n"), "", []refused{
			{gm, "COMP1001", "SEM01", "10000001", 5, []string{"duplicate of line 2"}},
		}},
		{"member of an unknown group", plus("group_members.csv", "COMP1001,SEM99,10000001\n"), "", []refused{
			{gm, "COMP1001", "SEM99", "10000001", 5, []string{"group not in CMIS_MOODLE_V_MODULE_GROUP"}},
		}},
		{"Latin-1 key of a refused row", plus("module_groups.csv", "FREN1001,S\xe9M01,Litt\xe9rature,\x81\n"), extract.CharsetLatin1, []refused{
			{mg, "FREN1001", "SéM01", "", 5, []string{extract.ReasonMangled + " in groupname"}},
		}},
		{"Latin-1 byte undefined in Windows-1252 in a code", plus("group_members.csv", "COMP1001,SEM01,1000\x810001\n"), extract.CharsetLatin1, []refused{
			{gm, "COMP1001", "SEM01", "", 5, []string{extract.ReasonMangled + " in studentid"}},
		}},
	}
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			// One store for all cases: each extract replaces the dump, and
			// RefusedKeys reads the refused rows of the last one only.
			st := storetest.Open(t, engine)
			for i, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					checkRefused(t, st, fmt.Sprint("run-", i), c.files, c.charset, c.want)
				})
			}
		})
	}
}

// checkRefused extracts files into st and compares the refused keys with
// want.
func checkRefused(t *testing.T, st *store.Store, runID string, files csvSet, charset string, want []refused) {
	t.Helper()
	dir := writeFiles(t, files)
	src, err := extract.OpenCSV(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := extract.Run(context.Background(), src, st, extract.Options{RunID: runID, Charset: charset}, quietLog()); err != nil {
		t.Fatal(err)
	}
	keys, err := st.RefusedKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got, wantS []string
	for _, k := range keys {
		got = append(got, refused{k.Table, k.Module, k.Group, k.CMISID, k.Line, nil}.String())
	}
	for _, w := range want {
		wantS = append(wantS, w.String())
	}
	sort.Strings(got)
	sort.Strings(wantS)
	if strings.Join(got, "\n") != strings.Join(wantS, "\n") {
		t.Errorf("refused keys:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantS, "\n"))
	}
	for _, w := range want {
		for _, k := range keys {
			if (refused{k.Table, k.Module, k.Group, k.CMISID, k.Line, nil}).String() != w.String() {
				continue
			}
			if file := filepath.Join(dir, extract.DefaultCSVFile(k.Table)); k.Source != file {
				t.Errorf("%s: source %q, want %q", w, k.Source, file)
			}
			for _, s := range w.says {
				if !strings.Contains(k.Reason, s) {
					t.Errorf("%s: reason %q does not say %q", w, k.Reason, s)
				}
			}
		}
	}
}
