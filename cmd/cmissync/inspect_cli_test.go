package main

import (
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	code, out, errs := run(t, nil, "--version")
	if code != exitOK || !strings.HasPrefix(out, "cmissync ") || !strings.Contains(out, "commit ") || !strings.Contains(out, "go1.") {
		t.Fatalf("--version: exit %d\n%s\n%s", code, out, errs)
	}
	version, commit, buildDate = "v1.2.3", "0123456789abcdef", "2026-11-29T02:15:00Z"
	defer func() { version, commit, buildDate = "", "", "" }()
	if got := versionText(); !strings.HasPrefix(got, "cmissync v1.2.3, commit 0123456789ab, built 2026-11-29T02:15:00Z, go1.") {
		t.Fatalf("versionText with release values = %q", got)
	}
}
