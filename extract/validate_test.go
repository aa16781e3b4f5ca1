package extract

import (
	"strings"
	"testing"

	"github.com/cmissync/cmissync/stage/store"
)

// TestCheckReasons feeds rows through one checker, in order (module groups
// first, as Run does), and checks each verdict.
func TestCheckReasons(t *testing.T) {
	long := strings.Repeat("X", 101)
	type step struct {
		name    string
		table   store.DumpTable
		row     []string
		reason  string   // substring of the expected reason; "" = accepted
		want    []string // accepted row, after normalisation (nil = same as row)
		charset string   // "" = AL32UTF8
	}
	steps := []step{
		{name: "good group", table: store.ModuleGroups, row: []string{"COMP1001", "SEM01", "Algorithms", "Seminar 1"}},
		{name: "trimmed", table: store.ModuleGroups, row: []string{" COMP1001 ", "\tLAB02 ", " Algorithms", "Lab 2 "},
			want: []string{"COMP1001", "LAB02", "Algorithms", "Lab 2"}},
		{name: "names optional and blank", table: store.ModuleGroups, row: []string{"COMP1001", "SEM03", "", ""}},
		{name: "line break in a name becomes a space", table: store.ModuleGroups, row: []string{"COMP1001", "SEM04", "Algo\r\nrithms", "Seminar\t4"},
			want: []string{"COMP1001", "SEM04", "Algo rithms", "Seminar 4"}},
		{name: "non-ASCII names are fine", table: store.ModuleGroups, row: []string{"FREN1001", "SEM01", "Littérature française", "Séminaire — Zoë’s group"}},
		{name: "duplicate group", table: store.ModuleGroups, row: []string{"COMP1001", "SEM01", "Other", "Other"}, reason: "duplicate of line 1"},
		{name: "blank module code", table: store.ModuleGroups, row: []string{"  ", "SEM01", "", ""}, reason: "missing modulecode"},
		{name: "blank group code", table: store.ModuleGroups, row: []string{"COMP1001", "", "", ""}, reason: "missing groupcode"},
		{name: "long module code", table: store.ModuleGroups, row: []string{long, "SEM01", "", ""}, reason: "modulecode longer than 100 characters (101)"},
		{name: "long group name", table: store.ModuleGroups, row: []string{"COMP1001", "SEM09", "", strings.Repeat("é", 255)}, reason: "groupname longer than 254 characters (255)"},
		{name: "name at the limit", table: store.ModuleGroups, row: []string{"COMP1001", "SEM10", strings.Repeat("é", 254), ""}},
		{name: "idnumber too long", table: store.ModuleGroups, row: []string{strings.Repeat("M", 50), strings.Repeat("G", 45), "", ""},
			reason: "too long together: the Moodle idnumber cmis:"},
		{name: "idnumber at the limit", table: store.ModuleGroups, row: []string{strings.Repeat("M", 50), strings.Repeat("G", 44), "", ""}},
		// ":" and "%" are written %3A and %25 in the idnumber: 95 characters
		// of codes make a 115-character idnumber.
		{name: "escaped idnumber too long", table: store.ModuleGroups, row: []string{strings.Repeat(":", 10) + strings.Repeat("M", 35), strings.Repeat("G", 44), "", ""},
			reason: "the Moodle idnumber cmis:" + strings.Repeat("%3A", 10) + strings.Repeat("M", 35) + ":" + strings.Repeat("G", 44) + " would have 115 characters, the limit is 100"},
		{name: "escaped idnumber at the limit", table: store.ModuleGroups, row: []string{"A%B", strings.Repeat("G", 88), "", ""}},
		{name: "control character in a code", table: store.ModuleGroups, row: []string{"COMP\x001002", "SEM01", "", ""}, reason: "control character U+0000 in modulecode"},
		{name: "tab inside a code", table: store.ModuleGroups, row: []string{"COMP1002", "SEM\t01", "", ""}, reason: "control character U+0009 in groupcode"},
		{name: "invalid UTF-8 rejected", table: store.ModuleGroups, row: []string{"COMP1003", "SEM01", "Jos\xe9", ""},
			reason: "invalid UTF-8 in modulename, check the source charset setting"},
		{name: "invalid UTF-8 decoded as Latin-1", table: store.ModuleGroups, row: []string{"COMP1004", "SEM01", "Jos\xe9 \x93quoted\x94", "Gr\xfcppe"},
			want: []string{"COMP1004", "SEM01", "José “quoted”", "Grüppe"}, charset: CharsetLatin1},
		{name: "valid UTF-8 kept with Latin-1 charset", table: store.ModuleGroups, row: []string{"COMP1005", "SEM01", "José", ""}, charset: CharsetLatin1},
		{name: "undefined cp1252 byte is mangled", table: store.ModuleGroups, row: []string{"COMP1006", "SEM01", "A\x81B", ""}, reason: ReasonMangled, charset: CharsetLatin1},
		{name: "mojibake e-acute", table: store.ModuleGroups, row: []string{"COMP1007", "SEM01", "JosÃ©", ""}, reason: ReasonMangled},
		{name: "mojibake apostrophe", table: store.ModuleGroups, row: []string{"COMP1008", "SEM01", "", "Zoeâ€™s group"}, reason: ReasonMangled},
		{name: "mojibake in a code", table: store.ModuleGroups, row: []string{"COMP1009", "SÃ‰M01", "", ""}, reason: ReasonMangled},
		{name: "replacement character", table: store.ModuleGroups, row: []string{"COMP1010", "SEM01", "Jos\uFFFD", ""}, reason: ReasonMangled},
		{name: "C1 control", table: store.ModuleGroups, row: []string{"COMP1011", "SEM01", "Jos\u0089", ""}, reason: ReasonMangled},
		{name: "wrong value count", table: store.ModuleGroups, row: []string{"COMP1012", "SEM01"}, reason: "2 values, want 4"},

		{name: "good member", table: store.GroupMembers, row: []string{"COMP1001", "SEM01", "12345678"}},
		{name: "member of the Latin-1 group", table: store.GroupMembers, row: []string{"COMP1004", "SEM01", "12345678"}, charset: CharsetLatin1},
		{name: "duplicate member", table: store.GroupMembers, row: []string{"COMP1001", " SEM01", "12345678 "}, reason: "duplicate of line 28"},
		{name: "same student in another group", table: store.GroupMembers, row: []string{"COMP1001", "LAB02", "12345678"}},
		{name: "blank student", table: store.GroupMembers, row: []string{"COMP1001", "SEM01", ""}, reason: "missing studentid"},
		{name: "long student id", table: store.GroupMembers, row: []string{"COMP1001", "SEM01", long}, reason: "studentid longer than 100"},
		{name: "unknown group", table: store.GroupMembers, row: []string{"COMP1001", "SEM99", "12345678"}, reason: "group not in CMIS_MOODLE_V_MODULE_GROUP (groups.sql)"},
		{name: "group codes are case-sensitive", table: store.GroupMembers, row: []string{"comp1001", "SEM01", "12345678"}, reason: "group not in"},
		{name: "group that was rejected", table: store.GroupMembers, row: []string{"COMP1007", "SEM01", "12345678"},
			reason: "group rejected from CMIS_MOODLE_V_MODULE_GROUP (groups.sql) line 22 (" + ReasonMangled + " in modulename)"},

		{name: "good tutor", table: store.GroupTutors, row: []string{"COMP1001", "SEM01", "S123456"}},
		{name: "tutor keys are separate from members", table: store.GroupTutors, row: []string{"COMP1001", "SEM01", "12345678"}},
		{name: "duplicate tutor", table: store.GroupTutors, row: []string{"COMP1001", "SEM01", "S123456"}, reason: "duplicate of line 37"},
		{name: "blank staff", table: store.GroupTutors, row: []string{"COMP1001", "SEM01", " "}, reason: "missing staffid"},
	}
	checkers := map[string]*checker{}
	for i, s := range steps {
		cs := s.charset
		if cs == "" {
			cs = CharsetUTF8
		}
		// One checker per charset, sharing nothing: each charset's steps
		// form their own sequence.
		c := checkers[cs]
		if c == nil {
			c = newChecker(cs)
			checkers[cs] = c
		}
		origin := "groups.sql"
		if s.table != store.ModuleGroups {
			origin = "members.sql"
		}
		line := int64(i + 1)
		got, reason := c.check(s.table, origin, line, s.row)
		if s.reason == "" {
			if reason != "" {
				t.Errorf("%d %s: rejected with %q", line, s.name, reason)
				continue
			}
			want := s.want
			if want == nil {
				want = s.row
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("%d %s: got %q, want %q", line, s.name, got, want)
			}
			continue
		}
		if !strings.Contains(reason, s.reason) {
			t.Errorf("%d %s: reason %q, want it to contain %q", line, s.name, reason, s.reason)
		}
		if got != nil {
			t.Errorf("%d %s: rejected row returned values %q", line, s.name, got)
		}
	}
	// The member of the group accepted only under the Latin-1 checker is
	// unknown to the UTF-8 one: the checkers are independent.
	if _, reason := checkers[CharsetUTF8].check(store.GroupMembers, "m", 99, []string{"COMP1004", "SEM01", "1"}); !strings.Contains(reason, "group not in") {
		t.Errorf("UTF-8 checker knows a group only the Latin-1 one saw: %q", reason)
	}
}

func TestMojibake(t *testing.T) {
	for _, s := range []string{"Ã©", "Ã¼ber", "â€™", "â€œquotedâ€\u009d", "Ã\u0089", "ðŸ˜€", "Ãƒ©"} {
		if !mojibake(s) && checkChars(s) == "" {
			t.Errorf("%q not detected as mangled", s)
		}
	}
	for _, s := range []string{"José", "Zoë", "Ångström", "São Paulo", "Ça va", "naïve café", "Æsir", "Straße", "Østergaard", "Łukasz", "Şahin", "日本語", "Ñandú", "ÂGE"} {
		if r := checkChars(s); r != "" {
			t.Errorf("%q flagged: %s", s, r)
		}
	}
}

func TestRenderRow(t *testing.T) {
	got := renderRow(store.GroupMembers, []string{"COMP1001", "SEM 01", "12\xff"})
	want := `modulecode=COMP1001 groupcode="SEM 01" studentid="12\xff"`
	if got != want {
		t.Errorf("renderRow = %s, want %s", got, want)
	}
	if got := quoteValue(strings.Repeat("é", 500)); len([]rune(got)) > maxRendered+10 || !strings.HasSuffix(got, "...") {
		t.Errorf("long value not cut: %d runes", len([]rune(got)))
	}
}

func TestNormalCharset(t *testing.T) {
	for in, want := range map[string]string{"": CharsetUTF8, "al32utf8": CharsetUTF8, "UTF-8": CharsetUTF8, "WE8ISO8859P1": CharsetLatin1, "latin1": CharsetLatin1} {
		if got, err := normalCharset(in); err != nil || got != want {
			t.Errorf("normalCharset(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := normalCharset("EBCDIC"); err == nil || !strings.Contains(err.Error(), "EBCDIC") {
		t.Errorf("unknown charset: %v", err)
	}
}
