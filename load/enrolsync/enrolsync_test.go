package enrolsync

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// seedSample reads the sample of the Enrol Sync documentation (the
// project's seed 003), as printed there: its header names the columns in
// another order than its lines use.
func seedSample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/seed_sample.csv")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustParse(t *testing.T, text string) *File {
	t.Helper()
	f, err := Parse(strings.NewReader(text), "f.csv")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

// TestSeedSampleReadsAsItsHeaderSays: the header decides which field is
// which, so the sample's lines read with the user in uid, the role in cid
// and the course in rolename; apply then fails them with a reason, and
// the same lines under a header in their order read as meant.
func TestSeedSampleReadsAsItsHeaderSays(t *testing.T) {
	f := mustParse(t, seedSample(t))
	if len(f.Lines) != 5 {
		t.Fatalf("%d lines, want 5", len(f.Lines))
	}
	l := f.Lines[0]
	if l.Err != nil || l.User != "john.doe" || l.Course != "student" || l.Role != "COURSE1" || l.GroupCmd != GAdd ||
		!reflect.DeepEqual(l.Groups, []string{"All Students", "G1"}) {
		t.Errorf("line 2 = %+v", l)
	}
	fixed := mustParse(t, strings.Replace(seedSample(t), "cmd;uid;cid;rolename", "cmd;uid;rolename;cid", 1))
	want := []struct {
		cmd, user, role, course, gcmd string
		groups                        []string
	}{
		{Add, "john.doe", "student", "COURSE1", GAdd, []string{"All Students", "G1"}},
		{Add, "bill.smith", "student", "COURSE1", GAdd, []string{"All Students", "G2"}},
		{Add, "tom.bridges", "student", "COURSE1", GAdd, []string{"All Students", "G1"}},
		{Add, "tom.sludges", "editingteacher", "COURSE1", GAdd, []string{"G1", "G2"}},
		{Shift, "tim.sloane", "teacher", "COURSE1", "", nil},
	}
	for i, w := range want {
		l := fixed.Lines[i]
		if l.Err != nil || l.No != i+2 || l.Cmd != w.cmd || l.User != w.user || l.Role != w.role || l.Course != w.course ||
			l.GroupCmd != w.gcmd || !reflect.DeepEqual(l.Groups, w.groups) || l.Hidden != "0" {
			t.Errorf("line %d = %+v (err %v), want %+v", i+2, l, l.Err, w)
		}
	}
}

func TestEncodingsAndLineEnds(t *testing.T) {
	body := "cmd;rolename;cid;uid\nadd;student;C1;100001\n"
	for name, text := range map[string]string{
		"LF":             body,
		"CRLF":           strings.ReplaceAll(body, "\n", "\r\n"),
		"BOM":            "\uFEFF" + body,
		"BOM and CRLF":   "\uFEFF" + strings.ReplaceAll(body, "\n", "\r\n"),
		"CR only":        strings.ReplaceAll(body, "\n", "\r"),
		"no last end":    strings.TrimSuffix(body, "\n"),
		"comments":       "# made by hand\n" + body + "// done\n",
		"blank lines":    "\n\n" + strings.Replace(body, "\nadd", "\n\n;;;\nadd", 1),
		"spaces, case":   " CMD ; RoleName ;CID; uid \n ADD ; student ; C1 ; 100001 \n",
		"trailing semis": "cmd;rolename;cid;uid;;\nadd;student;C1;100001;;;\n",
	} {
		t.Run(name, func(t *testing.T) {
			f := mustParse(t, text)
			if len(f.Lines) != 1 {
				t.Fatalf("%d lines, want 1", len(f.Lines))
			}
			l := f.Lines[0]
			if l.Err != nil || l.Cmd != Add || l.Role != "student" || l.Course != "C1" || l.User != "100001" {
				t.Errorf("line = %+v, err %v", l, l.Err)
			}
			if got, want := f.BOM, strings.HasPrefix(text, "\uFEFF"); got != want {
				t.Errorf("BOM %v, want %v", got, want)
			}
			if got, want := f.LineEnd == "\r\n", strings.Contains(text, "\r\n"); got != want {
				t.Errorf("line end %q", f.LineEnd)
			}
		})
	}
}

func TestQuotedFields(t *testing.T) {
	f := mustParse(t, "cmd;rolename;cid;uid;gcmd;g1;g2\n"+`add;student;C1;100001;gadd;"Lab; Tuesday";"The ""A"" team"`+"\n")
	if l := f.Lines[0]; l.Err != nil || !reflect.DeepEqual(l.Groups, []string{"Lab; Tuesday", `The "A" team`}) {
		t.Errorf("line = %+v, err %v", l, l.Err)
	}
}

func TestGroupColumnsInNumberOrder(t *testing.T) {
	f := mustParse(t, "g2;cmd;g10;cid;uid;g1;gcmd\nB;add;C;C1;u1;A;gadd\n")
	if l := f.Lines[0]; l.Role != "" || !reflect.DeepEqual(l.Groups, []string{"A", "B", "C"}) {
		t.Errorf("line = %+v", l)
	}
	// add needs a role; the line says so.
	if l := f.Lines[0]; l.Err == nil || !strings.Contains(l.Err.Error(), "role") {
		t.Errorf("err = %v, want one about the missing role", l.Err)
	}
}

func TestBadLines(t *testing.T) {
	const head = "cmd;rolename;cid;uid;hidden;gcmd;g1\n"
	cases := []struct {
		line, code, want string
	}{
		{"enrol;student;C1;u1;0;;", CodeUnknownVerb, `unknown verb "enrol"`},
		{";student;C1;u1;0;;", CodeBadLine, "cmd column is empty"},
		{"add;student;C1;u1;0;gjoin;G1", CodeUnknownVerb, `unknown group verb "gjoin"`},
		{"add;;C1;u1;0;;", CodeBadLine, "needs a role"},
		{"shift;;C1;u1;0;;", CodeBadLine, "needs a role"},
		{"add;student;;u1;0;;", CodeBadLine, "cid"},
		{"add;student;C1;;0;;", CodeBadLine, "uid"},
		{"add;student;C1;u1;yes;;", CodeBadLine, "hidden"},
		{"add;student;C1;u1;0;;G1", CodeBadLine, "without a group verb"},
		{"add;student;C1;u1;0;gadd;G1;extra", CodeBadLine, "has no column"},
		{`add;student;C1;u1;0;gadd;"G1`, CodeBadLine, "quote is not closed"},
		{`add;student;C1;u1;0;gadd;"G1"x`, CodeBadLine, "after a closing quote"},
		{"add;student;C1;u\xff1;0;;", CodeBadLine, "UTF-8"},
	}
	for _, tc := range cases {
		f := mustParse(t, head+tc.line+"\n")
		if len(f.Lines) != 1 {
			t.Fatalf("%q: %d lines", tc.line, len(f.Lines))
		}
		var le *LineError
		if err := f.Lines[0].Err; !errors.As(err, &le) || le.Code != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %s mentioning %q", tc.line, err, tc.code, tc.want)
		}
		if f.Lines[0].Raw != tc.line || f.Lines[0].No != 2 {
			t.Errorf("%q: raw %q, no %d", tc.line, f.Lines[0].Raw, f.Lines[0].No)
		}
	}
	// del needs no role: every role goes.
	if l := mustParse(t, head+"del;;C1;u1;;;\n").Lines[0]; l.Err != nil {
		t.Errorf("del without a role: %v", l.Err)
	}
}

func TestBadFiles(t *testing.T) {
	cases := map[string]struct{ text, want string }{
		"empty":           {"", "no header"},
		"only comments":   {"# nothing\n", "no header"},
		"unknown column":  {"cmd;rolename;course;uid\n", `unknown column "course"`},
		"no cmd":          {"rolename;cid;uid\n", "no cmd column"},
		"no uid":          {"cmd;rolename;cid\n", "no uid column"},
		"twice":           {"cmd;cid;uid;cid\n", `"cid" is named twice`},
		"unnamed":         {"cmd;;cid;uid\n", "column 2 has no name"},
		"groups, no gcmd": {"cmd;cid;uid;g1\n", "without a gcmd column"},
		"UTF-16":          {"\xff\xfec\x00m\x00d\x00", "UTF-16"},
		"bad header":      {"cmd;c\xffid;uid\n", "UTF-8"},
	}
	for name, tc := range cases {
		_, err := Parse(strings.NewReader(tc.text), "f.csv")
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "f.csv") {
			t.Errorf("%s: err %v, want a format error naming the file and %q", name, err, tc.want)
		}
	}
}

// TestTrybackRoundTrip: the tryback file holds the header and each failed
// line unchanged after its reason, keeps the byte order mark and the line
// ends, reads back as the same lines, and keeps each line's first origin
// through a second round.
func TestTrybackRoundTrip(t *testing.T) {
	text := "\uFEFF# corrections\r\ncmd;rolename;cid;uid;gcmd;g1\r\nadd;student;C1;u1;gadd;G1\r\nadd;student;C9;u2;;\r\ndel;;C1;u3;;\r\n"
	f, err := Parse(strings.NewReader(text), "fix.csv")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	failed := []Failed{{f.Lines[1], "no course has shortname \"C9\"\nsecond line"}, {f.Lines[2], "held: a call failed"}}
	if err := WriteTryback(&buf, f, failed, "cmissync apply: lines of fix.csv that failed\nrerun: cmissync apply fix.tryback.csv"); err != nil {
		t.Fatal(err)
	}
	want := "\uFEFF# cmissync apply: lines of fix.csv that failed\r\n# rerun: cmissync apply fix.tryback.csv\r\n" +
		"cmd;rolename;cid;uid;gcmd;g1\r\n" +
		"# failed at fix.csv:4: no course has shortname \"C9\" second line\r\nadd;student;C9;u2;;\r\n" +
		"# failed at fix.csv:5: held: a call failed\r\ndel;;C1;u3;;\r\n"
	if buf.String() != want {
		t.Fatalf("tryback:\n%q\nwant\n%q", buf.String(), want)
	}
	back, err := Parse(bytes.NewReader(buf.Bytes()), "fix.tryback.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Lines) != 2 || back.Lines[0].Raw != "add;student;C9;u2;;" || back.Lines[0].Origin != "fix.csv:4" ||
		back.Lines[1].Origin != "fix.csv:5" || back.Lines[0].Where(back.Name) != "fix.tryback.csv:5 (from fix.csv:4)" {
		t.Fatalf("read back %+v %+v", back.Lines[0], back.Lines[1])
	}
	buf.Reset()
	if err := WriteTryback(&buf, back, []Failed{{back.Lines[0], "still no course"}}, "again"); err != nil {
		t.Fatal(err)
	}
	again, err := Parse(bytes.NewReader(buf.Bytes()), "fix.tryback.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Lines) != 1 || again.Lines[0].Origin != "fix.csv:4" || again.Lines[0].Source(again.Name) != "fix.csv:4" {
		t.Fatalf("second round: %+v", again.Lines)
	}
}
