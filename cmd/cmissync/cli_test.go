package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmissync/cmissync/stage/store"
)

var update = flag.Bool("update", false, "rewrite cmissync.example.toml")

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errs bytes.Buffer
	code := execute(context.Background(), args, &out, &errs, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return code, out.String(), errs.String()
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadUsageAndConfigurationExit2(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		cfg  string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown command", "", []string{"frobnicate"}, nil, "unknown command"},
		{"unknown flag", "", []string{"run", "--no-such-flag"}, nil, "unknown flag"},
		{"missing config file", "", []string{"status", "--config", filepath.Join(dir, "nope.toml")}, nil, "nope.toml"},
		{"unknown key", "[moodle]\nurl = \"http://x\"\ntokn = \"x\"\n", []string{"status"}, nil, "moodle.tokn"},
		{"bad value", "[staging]\nengine = \"postgres\"\n", []string{"status"}, nil, "staging.engine"},
		{"bad duration", "[moodle]\ntimeout = \"soon\"\n", []string{"status"}, nil, "not a duration"},
		{"bad env value", "", []string{"status"}, map[string]string{"CMISSYNC_MOODLE_MAX_INPUT_VARS": "lots"}, "CMISSYNC_MOODLE_MAX_INPUT_VARS"},
		{"schema not migrated", "[staging]\ndsn = \"" + filepath.Join(dir, "empty.db") + "\"\n", []string{"status"}, nil, "cmissync migrate"},
		{"missing token", "[staging]\ndsn = \"" + filepath.Join(dir, "m.db") + "\"\n[moodle]\nurl = \"http://127.0.0.1:1\"\n[email]\nreport_dir = \"" + filepath.Join(dir, "reports") + "\"\n", []string{"load"}, nil, "moodle.token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.cfg != "" {
				args = append(args, "--config", writeFile(t, "c.toml", tc.cfg))
				if tc.name == "missing token" {
					if code, out, errs := run(t, nil, "migrate", "--config", args[len(args)-1]); code != 0 {
						t.Fatalf("migrate: %d %s %s", code, out, errs)
					}
				}
			}
			code, _, errs := run(t, tc.env, args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, errs)
			}
			if !strings.Contains(errs, tc.want) {
				t.Fatalf("stderr %q does not mention %q", errs, tc.want)
			}
		})
	}
}

func TestSecondRunExits5WhileLockHeld(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "s.db")
	cfg := writeFile(t, "c.toml", "[staging]\ndsn = \""+db+"\"\n[source]\ndriver = \"sqlite\"\ndsn = \""+db+"\"\n[email]\nreport_dir = \""+filepath.Join(dir, "reports")+"\"\n")
	if code, _, errs := run(t, nil, "migrate", "--config", cfg); code != 0 {
		t.Fatal(errs)
	}
	st, err := store.Open(context.Background(), store.EngineSQLite, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lock, err := st.AcquireLock(context.Background(), "a run that is still going", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"run", "extract", "stage", "load"} {
		code, _, errs := run(t, nil, cmd, "--config", cfg)
		if code != exitLocked || !strings.Contains(errs, "still going") {
			t.Fatalf("%s with the lock held: exit %d (want %d), stderr %q", cmd, code, exitLocked, errs)
		}
	}
	lock.Release()
	// Free again: the run gets past the lock (and fails later, on the empty
	// source, with a fatal error rather than 5).
	if code, _, errs := run(t, nil, "run", "--config", cfg); code == exitLocked {
		t.Fatalf("run after release still locked: %s", errs)
	}
}

func TestEnvironmentAndSecretFiles(t *testing.T) {
	tokenFile := writeFile(t, "token", "tok-from-file\nignored second line\n")
	cfg := writeFile(t, "c.toml", "[moodle]\nurl = \"http://file\"\ntoken_file = \""+tokenFile+"\"\n[stage]\ncourses = [5]\n")
	c, err := loadConfig(cfg, true, func(k string) (string, bool) {
		v, ok := map[string]string{"CMISSYNC_MOODLE_URL": "http://env", "CMISSYNC_STAGE_COURSES": "7, 8", "CMISSYNC_EMAIL_TO": "a@x, b@x"}[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Moodle.URL != "http://env" || c.Moodle.Token != "tok-from-file" || len(c.Stage.Courses) != 2 || c.Stage.Courses[1] != 8 || len(c.Email.To) != 2 {
		t.Fatalf("config = %+v", c)
	}
	for _, s := range c.secrets() {
		if s == "http://env" {
			t.Fatal("a non-secret is listed as secret")
		}
	}
	if got := c.secrets(); len(got) != 2 { // staging.dsn (a path here) and the token
		t.Fatalf("secrets = %v", got)
	}
}

func TestExampleConfigIsCurrentAndLoads(t *testing.T) {
	want := exampleConfig()
	if *update {
		if err := os.WriteFile("cmissync.example.toml", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("cmissync.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("cmissync.example.toml is out of date: go test ./cmd/cmissync -run ExampleConfig -update")
	}
	c, err := loadConfig("cmissync.example.toml", true, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", *c) != fmt.Sprintf("%+v", *defaultConfig()) {
		t.Fatalf("the example does not load to the defaults:\n%+v\n%+v", *c, *defaultConfig())
	}
}

func TestReadmeAndHelpDocumentEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, help, _ := run(t, nil, "config")
	for _, k := range keys(defaultConfig()) {
		name := k.Section + "." + k.Key
		if !bytes.Contains(readme, []byte("`"+name+"`")) || !bytes.Contains(readme, []byte(k.EnvName())) {
			t.Errorf("README does not document %s (%s)", name, k.EnvName())
		}
		if !strings.Contains(help, k.EnvName()) {
			t.Errorf("cmissync config does not list %s", k.EnvName())
		}
		if k.Doc == "" {
			t.Errorf("%s has no doc tag", name)
		}
	}
	for _, cmd := range []string{"run", "extract", "stage", "load", "plan", "status", "migrate", "demo", "moodle-sim", "config",
		"check", "explain", "map", "forget", "audit", "retry", "apply"} {
		if !bytes.Contains(readme, []byte("| `"+cmd)) {
			t.Errorf("README's command table lacks %s", cmd)
		}
		code, out, _ := run(t, nil, cmd, "--help")
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
	}
	for _, code := range []string{"| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 5 |", "| 130 |", "| 10 |", "| 11 |", "| 12 |", "| 13 |"} {
		if !bytes.Contains(readme, []byte(code)) {
			t.Errorf("README's exit code table lacks %s", code)
		}
	}
}

// TestDemo runs the README's first command: the whole pipeline on embedded
// defaults, twice, the second run changing nothing.
func TestDemo(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	code, out, errs := run(t, nil, "demo")
	if code != exitOK {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"== First run", "== Second run", "Nothing changed: Moodle was already in step with CMIS."} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
