package moodlesim

import (
	"bytes"
	"strings"
	"testing"
)

// dump renders a phpArray compactly for comparisons.
func dump(v any) string {
	switch v := v.(type) {
	case string:
		return "'" + v + "'"
	case *phpArray:
		var parts []string
		for _, k := range v.keys {
			parts = append(parts, k+"=>"+dump(v.vals[k]))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return "?"
}

func TestPHPInputParsing(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{"a=1&b=2", "[a=>'1',b=>'2']"},
		{"groups[0][name]=G+1&groups[0][courseid]=2", "[groups=>[0=>[name=>'G 1',courseid=>'2']]]"},
		{"ids[]=7&ids[]=8", "[ids=>[0=>'7',1=>'8']]"},
		{"a.b=1&a+c=2", "[a_b=>'1',a_c=>'2']"},
		{"a[x=1", "[a_x=>'1']"},
		{"a[x][y=1", "[a=>[x=>'1']]"},
		{"a[x]junk=1", "[a=>[x=>'1']]"},
		{"a=1&a=2", "[a=>'2']"},
		{"%41=%zz", "[A=>'%zz']"},
		{"=1&&b", "[b=>'']"},
		{"m[5][g]=1&m[2][g]=2", "[m=>[5=>[g=>'1'],2=>[g=>'2']]]"},
	}
	for _, tc := range tests {
		if got := dump(parseBodyVars(tc.body, -1)); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.body, got, tc.want)
		}
	}
}

func TestMaxInputVarsCounting(t *testing.T) {
	body := "a=1&b=2&c=3&d=4&e=5"
	// A body keeps N+1 variables, a query string N.
	if got := dump(parseBodyVars(body, 3)); got != "[a=>'1',b=>'2',c=>'3',d=>'4']" {
		t.Errorf("body: %s", got)
	}
	if got := dump(parseQueryVars(body, 3)); got != "[a=>'1',b=>'2',c=>'3']" {
		t.Errorf("query: %s", got)
	}
	// Empty segments count in a body, not in a query string.
	if got := dump(parseBodyVars("a=1&&b=2&c=3", 1)); got != "[a=>'1']" {
		t.Errorf("body with empty segment: %s", got)
	}
	if got := dump(parseQueryVars("a=1&&b=2&c=3", 2)); got != "[a=>'1',b=>'2']" {
		t.Errorf("query with empty segment: %s", got)
	}
	// A trailing '&' is not a variable.
	if got := dump(parseBodyVars("a=1&b=2&", 1)); got != "[a=>'1',b=>'2']" {
		t.Errorf("trailing &: %s", got)
	}
}

func TestArrayMerge(t *testing.T) {
	get := parseQueryVars("wstoken=t&x=1", -1)
	post := parseBodyVars("x=2&y=3", -1)
	if got := dump(arrayMerge(get, post)); got != "[wstoken=>'t',x=>'2',y=>'3']" {
		t.Errorf("merge: %s", got)
	}
}

func TestPHPJSONStrings(t *testing.T) {
	var b bytes.Buffer
	writePHPString(&b, "a/b \"é\" \\ 😀\n")
	if want := `"a\/b \"\u00e9\" \\ \ud83d\ude00\n"`; b.String() != want {
		t.Errorf("got %s, want %s", b.String(), want)
	}
}

func TestValidateScalar(t *testing.T) {
	ok := map[ptype][]string{
		paramInt:  {"0", "12", "-5"},
		paramBool: {"0", "1"},
		paramText: {"Lab A", "a < b", ""},
	}
	bad := map[ptype][]string{
		paramInt:   {"", "abc", "012", "+1", " 1", "1.0", "-0", "99999999999999999999"},
		paramBool:  {"true", "", "2"},
		paramText:  {"<b>x</b>", "a<b", "\xff"},
		paramAlpha: {"ab1"},
	}
	for typ, vals := range ok {
		for _, v := range vals {
			if _, err := validateScalar(typ, v); err != nil {
				t.Errorf("%s %q rejected", typ, v)
			}
		}
	}
	for typ, vals := range bad {
		for _, v := range vals {
			if _, err := validateScalar(typ, v); err == nil {
				t.Errorf("%s %q accepted", typ, v)
			}
		}
	}
}
