package stage

import (
	"strings"
	"testing"
)

// expand replaces placeholders as the strings.Replacer it stands for.
func TestExpandAsReplacer(t *testing.T) {
	vals := []string{"COMP1001", "Intro {group} to {module}", "SEM01", "Seminar {modulename}"}
	for _, tmpl := range []string{"", "plain", "{module} {modulename}", "{module} {group}", "{groupname}{group}{modulename}{module}",
		"{{module}}", "{modul", "{group", "x{unknown}y", "{modulename}{", "é{module}ü"} {
		want := strings.NewReplacer("{module}", vals[0], "{modulename}", vals[1], "{group}", vals[2], "{groupname}", vals[3]).Replace(tmpl)
		if got := expand(tmpl, vals[0], vals[1], vals[2], vals[3]); got != want {
			t.Errorf("expand(%q) = %q, want %q", tmpl, got, want)
		}
	}
}
