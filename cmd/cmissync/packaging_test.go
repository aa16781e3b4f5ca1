package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitSettings reads a systemd unit file: every Key=value, by key.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: not a setting: %q", path, line)
			continue
		}
		out[k] = append(out[k], v)
	}
	return out
}

func TestSystemdUnits(t *testing.T) {
	dir := filepath.Join("..", "..", "scripts", "systemd")
	svc := unitSettings(t, filepath.Join(dir, "cmissync.service"))
	for key, want := range map[string]string{
		"Type": "oneshot", "User": "cmissync", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"PrivateTmp": "yes", "StateDirectory": "cmissync", "ProtectHome": "yes", "CapabilityBoundingSet": "",
		"ExecStart":   "/usr/local/bin/cmissync run --config /etc/cmissync/cmissync.toml",
		"Environment": "CMISSYNC_MOODLE_TOKEN_FILE=%d/moodle_token",
	} {
		if got := svc[key]; len(got) == 0 || got[0] != want {
			t.Errorf("cmissync.service: %s = %q, want %q", key, got, want)
		}
	}
	if got := svc["LoadCredential"]; len(got) == 0 || !strings.HasPrefix(got[0], "moodle_token:") {
		t.Errorf("cmissync.service does not load the token as a credential: %q", got)
	}
	timer := unitSettings(t, filepath.Join(dir, "cmissync.timer"))
	for key, want := range map[string]string{"OnCalendar": "*-*-* 02:15:00", "Persistent": "true", "RandomizedDelaySec": "10min", "WantedBy": "timers.target"} {
		if got := timer[key]; len(got) == 0 || got[0] != want {
			t.Errorf("cmissync.timer: %s = %q, want %q", key, got, want)
		}
	}
	// systemd's own check, where systemd is installed; it needs the
	// binary the unit names to exist, so it checks a copy naming this one.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the units were only read, not verified by systemd")
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	unit, err := os.ReadFile(filepath.Join(dir, "cmissync.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit = bytes.ReplaceAll(unit, []byte("/usr/local/bin/cmissync"), []byte(self))
	if err := os.WriteFile(filepath.Join(tmp, "cmissync.service"), unit, 0o644); err != nil {
		t.Fatal(err)
	}
	timerText, _ := os.ReadFile(filepath.Join(dir, "cmissync.timer"))
	if err := os.WriteFile(filepath.Join(tmp, "cmissync.timer"), timerText, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", "--man=no", "cmissync.service", "cmissync.timer")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestManPagesAndExampleFromTheCommands(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := run(t, map[string]string{"SOURCE_DATE_EPOCH": "1767225600"}, "man", "--dir", dir)
	if code != 0 {
		t.Fatalf("man: exit %d: %s", code, errs)
	}
	for _, page := range []string{"cmissync.1", "cmissync-run.1", "cmissync-config.1", "cmissync-status.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatalf("no page %s: %v", page, err)
		}
		if !bytes.HasPrefix(b, []byte(".nh\n.TH \"CMISSYNC\" \"1\" \"Jan 2026\"")) {
			t.Errorf("%s: header %q", page, b[:min(len(b), 60)])
		}
	}
	root, _ := os.ReadFile(filepath.Join(dir, "cmissync.1"))
	// The exit codes stay a table, not a reflowed paragraph.
	if !bytes.Contains(root, []byte("130  interrupted")) {
		t.Errorf("cmissync.1 lost the exit codes' layout:\n%s", root)
	}
	code, out, _ := run(t, nil, "config", "--example")
	if code != 0 || out != exampleConfig() {
		t.Errorf("config --example: exit %d, not the example configuration", code)
	}
}

// The release's static build: no cgo, so no Oracle, and nothing to load
// at run time.
func TestStaticBuildWithoutOracle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmissync without cgo (about a minute on a cold cache)")
	}
	bin := filepath.Join(t.TempDir(), "cmissync")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Skipf("not an ELF system: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the static build has a program interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the static build needs %v", libs)
	}
	out, err := exec.Command(bin, "config", "--example").Output()
	if err != nil || string(out) != exampleConfig() {
		t.Errorf("the static build does not run: %v", err)
	}
}
