package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Release builds may set these with -ldflags "-X main.version=… -X
// main.commit=… -X main.buildDate=…"; otherwise they come from the build
// information Go records in the binary (the module version, and the VCS
// revision and commit time of a build from a checkout).
var (
	version   string
	commit    string
	buildDate string
)

// versionText is what --version prints: the version, the commit (marked
// "modified" when built from a checkout with uncommitted changes), the
// build date (the commit time when the build did not record one) and the
// Go release.
func versionText() string {
	v, c, d, modified := version, commit, buildDate, false
	goVersion := "unknown Go"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.time":
				if d == "" {
					d = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	parts := []string{"cmissync " + v}
	if c != "" {
		if len(c) > 12 {
			c = c[:12]
		}
		if modified {
			c += " (modified)"
		}
		parts = append(parts, "commit "+c)
	} else {
		parts = append(parts, "commit unknown")
	}
	if d != "" {
		parts = append(parts, "built "+d)
	} else {
		parts = append(parts, "build date unknown")
	}
	return fmt.Sprintf("%s, %s", strings.Join(parts, ", "), goVersion)
}
