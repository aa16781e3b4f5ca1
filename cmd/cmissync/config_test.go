package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envOf serves loadConfig a fixed environment.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// outOfRange is one setting that must stop cmissync at start-up.
type outOfRange struct {
	env, value string
	// want are the texts the message must hold: the key and what is allowed.
	want []string
}

// boundaryCases derives, from the min and max tags, a value just outside
// each bound of every ranged key, so that a key added later is covered too.
func boundaryCases(t *testing.T) []outOfRange {
	t.Helper()
	var out []outOfRange
	for _, k := range keys(defaultConfig()) {
		if k.Min == "" && k.Max == "" {
			continue
		}
		name := k.Section + "." + k.Key
		var below, above string
		switch k.field.Interface().(type) {
		case Duration:
			if k.Min != "" {
				below = (mustDuration(k.Min) - time.Millisecond).String()
			}
			if k.Max != "" {
				above = (mustDuration(k.Max) + time.Second).String()
			}
		case int:
			if k.Min != "" {
				below = strconv.Itoa(mustInt(k.Min) - 1)
			}
			if k.Max != "" {
				above = strconv.Itoa(mustInt(k.Max) + 1)
			}
		case float64:
			if k.Min != "" {
				below = strconv.FormatFloat(math.Nextafter(mustFloat(k.Min), math.Inf(-1)), 'g', -1, 64)
			}
			if k.Max != "" {
				above = strconv.FormatFloat(math.Nextafter(mustFloat(k.Max), math.Inf(1)), 'g', -1, 64)
			}
			// NaN passes naive bound checks and turned the guards off.
			for _, v := range []string{"NaN", "+Inf", "-Inf"} {
				out = append(out, outOfRange{k.EnvName(), v, []string{name, k.rangeText()}})
			}
		default:
			t.Fatalf("%s: min/max on an unexpected type", name)
		}
		for _, v := range []string{below, above} {
			if v != "" {
				out = append(out, outOfRange{k.EnvName(), v, []string{name, k.rangeText()}})
			}
		}
	}
	return out
}

// oneOfCases gives every key with a fixed set of values one it does not
// allow.
func oneOfCases() []outOfRange {
	var out []outOfRange
	for _, k := range keys(defaultConfig()) {
		if k.OneOf == "" {
			continue
		}
		want := append([]string{k.Section + "." + k.Key}, strings.Fields(k.OneOf)...)
		out = append(out, outOfRange{k.EnvName(), "no-such-value", want}, outOfRange{k.EnvName(), "", want})
	}
	return out
}

func TestOutOfRangeSettingsExit2(t *testing.T) {
	cases := []outOfRange{
		// Seen accepted before range checks existed.
		{"CMISSYNC_GUARD_MAX_DELETE_SHARE", "NaN", []string{"guard.max_delete_share", "0 to 1"}},
		{"CMISSYNC_GUARD_MAX_DELETE_SHARE", "+Inf", []string{"guard.max_delete_share", "0 to 1"}},
		{"CMISSYNC_STAGING_LOCK_STALE_AFTER", "0s", []string{"staging.lock_stale_after", "1m to 24h"}},
		{"CMISSYNC_MOODLE_TIMEOUT", "0s", []string{"moodle.timeout", "1s to 1h"}},
		{"CMISSYNC_MOODLE_TIMEOUT", "-30s", []string{"moodle.timeout", "1s to 1h"}},
		{"CMISSYNC_MOODLE_RETRY_WAIT", "0s", []string{"moodle.retry_wait", "1ms to 1m"}},
		{"CMISSYNC_MOODLE_RETRY_WAIT", "-1s", []string{"moodle.retry_wait", "1ms to 1m"}},
		{"CMISSYNC_MOODLE_RETRIES", "-1", []string{"moodle.retries", "0 to 10"}},
		{"CMISSYNC_LOAD_PARK_AFTER", "-1", []string{"load.park_after", "0 to 100"}},
		{"CMISSYNC_EMAIL_MAX_ROWS", "0", []string{"email.max_rows", "1 to 1000"}},
		{"CMISSYNC_EMAIL_MAX_ROWS", "-5", []string{"email.max_rows", "1 to 1000"}},
		{"CMISSYNC_EMAIL_SMTP_PORT", "99999", []string{"email.smtp_port", "0 to 65535"}},
		{"CMISSYNC_GUARD_MAX_DELETE_COUNT", "-1", []string{"guard.max_delete_count", "0 or more"}},
		{"CMISSYNC_GUARD_COURSE_MIN_ITEMS", "-1", []string{"guard.course_min_items", "0 or more"}},
		{"CMISSYNC_STAGE_GROUPING_NAME", "{module} {group}", []string{"stage.grouping_name", "{group}", "{module} {modulename}"}},
		{"CMISSYNC_STAGE_GROUP_NAME", "{module} {grp}", []string{"stage.group_name", "{grp}", "{module} {modulename} {group} {groupname}"}},

		// Templates.
		{"CMISSYNC_STAGE_GROUPING_NAME", "", []string{"stage.grouping_name", "empty"}},
		{"CMISSYNC_STAGE_GROUPING_NAME", "   ", []string{"stage.grouping_name", "empty"}},
		{"CMISSYNC_STAGE_GROUPING_NAME", "{Module}", []string{"stage.grouping_name", "{Module}"}},
		{"CMISSYNC_STAGE_GROUPING_NAME", "All groups", []string{"stage.grouping_name", "{module} or {modulename}"}},
		{"CMISSYNC_STAGE_GROUPING_NAME", "{module", []string{"stage.grouping_name", "brace"}},
		{"CMISSYNC_STAGE_GROUP_NAME", "", []string{"stage.group_name", "empty"}},
		{"CMISSYNC_STAGE_GROUP_NAME", "{module} {modulename}", []string{"stage.group_name", "{group} or {groupname}"}},
		{"CMISSYNC_STAGE_GROUP_NAME", "{module} {group}}", []string{"stage.group_name", "brace"}},
		{"CMISSYNC_STAGE_GROUP_NAME", "{module} {{group}}", []string{"stage.group_name", "brace"}},

		// Lists, addresses, names.
		{"CMISSYNC_STAGE_COURSES", "0", []string{"stage.courses", "positive"}},
		{"CMISSYNC_STAGE_COURSES", "12, -3", []string{"stage.courses", "positive"}},
		{"CMISSYNC_EMAIL_FROM", "", []string{"email.from"}},
		{"CMISSYNC_EMAIL_FROM", "cmissync", []string{"email.from", "name@example.ac.uk"}},
		{"CMISSYNC_EMAIL_FROM", "a@example.ac.uk, b@example.ac.uk", []string{"email.from"}},
		{"CMISSYNC_EMAIL_TO", "support@example.ac.uk, not an address", []string{"email.to", "not an address"}},
		{"CMISSYNC_EMAIL_SMTP_HOST", "smtp.example.ac.uk:587", []string{"email.smtp_host", "email.smtp_port"}},
		{"CMISSYNC_EMAIL_SMTP_HOST", "smtp://smtp.example.ac.uk", []string{"email.smtp_host"}},
		{"CMISSYNC_SITE_NAME", "", []string{"site.name", "1 to 100"}},
		{"CMISSYNC_SITE_NAME", "two\nlines", []string{"site.name", "one line"}},
		{"CMISSYNC_SITE_NAME", strings.Repeat("x", 101), []string{"site.name", "1 to 100"}},
		{"CMISSYNC_MOODLE_URL", "moodle.example.ac.uk", []string{"moodle.url", "http(s)://"}},
		{"CMISSYNC_MOODLE_URL", "ftp://moodle.example.ac.uk", []string{"moodle.url", "http(s)://"}},
		{"CMISSYNC_MOODLE_URL", "https://moodle.example.ac.uk/?lang=en", []string{"moodle.url", "query"}},
		{"CMISSYNC_MOODLE_URL", "https://admin:Hunter2-secret@moodle.example.ac.uk", []string{"moodle.url", "password"}},
		{"CMISSYNC_STAGING_DSN", "", []string{"staging.dsn"}},
		{"CMISSYNC_LOAD_ON_MEMBER_REMOVED", "ignore", []string{"load.on_member_removed", "restore", "respect"}},
	}
	cases = append(cases, boundaryCases(t)...)
	cases = append(cases, oneOfCases()...)
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s=%q", tc.env, tc.value), func(t *testing.T) {
			c, err := loadConfig("", false, envOf(map[string]string{tc.env: tc.value}))
			if err == nil {
				t.Fatalf("accepted; config = %+v", c)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || exitCode(err, true) != exitUsage {
				t.Fatalf("error %v (%T) is not a configuration error (exit %d)", err, err, exitCode(err, true))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "Hunter2-secret") {
				t.Errorf("message repeats a password: %q", err)
			}
		})
	}
}

// TestEveryRangeIsDocumented keeps the doc tags, the README table and the
// checks saying the same thing.
func TestEveryRangeIsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		if name, _, ok := strings.Cut(strings.TrimPrefix(line, "| `"), "` |"); ok && strings.HasPrefix(line, "| `") {
			rows[name] = line
		}
	}
	for _, k := range keys(defaultConfig()) {
		name := k.Section + "." + k.Key
		var want []string
		if k.Min != "" || k.Max != "" {
			want = append(want, k.rangeText())
		}
		want = append(want, strings.Fields(k.OneOf)...)
		for _, w := range want {
			if !strings.Contains(k.Doc, w) {
				t.Errorf("the doc tag of %s does not say %q", name, w)
			}
			if !strings.Contains(rows[name], w) {
				t.Errorf("the README row of %s does not say %q", name, w)
			}
		}
	}
}

func TestBoundsAndCanonicalValuesLoad(t *testing.T) {
	env := map[string]string{
		"CMISSYNC_STAGING_LOCK_STALE_AFTER": "1m", "CMISSYNC_MOODLE_TIMEOUT": "1h", "CMISSYNC_MOODLE_RETRY_WAIT": "1ms",
		"CMISSYNC_MOODLE_RETRIES": "10", "CMISSYNC_MOODLE_MAX_INPUT_VARS": "20", "CMISSYNC_LOAD_CONCURRENCY": "64",
		"CMISSYNC_LOAD_PARK_AFTER": "0", "CMISSYNC_EMAIL_MAX_ROWS": "1000", "CMISSYNC_EMAIL_SMTP_PORT": "65535",
		"CMISSYNC_GUARD_MAX_DELETE_SHARE": "1", "CMISSYNC_GUARD_EXTRACT_MAX_SHRINK": "0", "CMISSYNC_GUARD_MAX_DELETE_COUNT": "0",
		"CMISSYNC_SOURCE_CHARSET": "we8iso8859p1", "CMISSYNC_LOG_LEVEL": "WARN", "CMISSYNC_LOAD_ON_MEMBER_REMOVED": "Respect",
		"CMISSYNC_STAGE_GROUPING_NAME": "{modulename}", "CMISSYNC_STAGE_GROUP_NAME": "{groupname} ({module})",
		"CMISSYNC_EMAIL_FROM": "CMIS sync <cmissync@example.ac.uk>", "CMISSYNC_EMAIL_TO": "Support <support@example.ac.uk>, b@example.ac.uk",
		"CMISSYNC_EMAIL_SMTP_HOST": "::1", "CMISSYNC_MOODLE_URL": "https://moodle.example.ac.uk/moodle/", "CMISSYNC_STAGE_COURSES": "1, 99",
	}
	c, err := loadConfig("", false, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.Charset != "WE8ISO8859P1" || c.Log.Level != "warn" || c.Load.OnMemberRemoved != "respect" {
		t.Errorf("values not made canonical: charset %q, log level %q, on_member_removed %q", c.Source.Charset, c.Log.Level, c.Load.OnMemberRemoved)
	}
	if d := defaultConfig(); d.Load.OnMemberRemoved != "restore" {
		t.Errorf("load.on_member_removed defaults to %q, want restore", d.Load.OnMemberRemoved)
	}
}

func TestSecretFiles(t *testing.T) {
	secretKeys := []struct{ key, env string }{
		{"staging.dsn", "CMISSYNC_STAGING_DSN_FILE"},
		{"source.dsn", "CMISSYNC_SOURCE_DSN_FILE"},
		{"moodle.token", "CMISSYNC_MOODLE_TOKEN_FILE"},
		{"email.password", "CMISSYNC_EMAIL_PASSWORD_FILE"},
	}
	get := func(c *Config, key string) string {
		return map[string]string{"staging.dsn": c.Staging.DSN, "source.dsn": c.Source.DSN, "moodle.token": c.Moodle.Token, "email.password": c.Email.Password}[key]
	}
	const secret = `s3cr=t "with" spaces`
	good := map[string]string{
		"plain":             secret,
		"newline":           secret + "\n",
		"CRLF":              secret + "\r\nsecond line\r\n",
		"byte order mark":   "\uFEFF" + secret + "\n",
		"BOM and CRLF":      "\uFEFF" + secret + "\r\n",
		"surrounding blank": "  " + secret + " \t\r\n",
	}
	bad := map[string]string{
		"empty file":        "",
		"empty first line":  "\n" + secret + "\n",
		"only CRLF":         "\r\n",
		"only a BOM":        "\uFEFF",
		"BOM and CRLF only": "\uFEFF\r\n",
		"UTF-16":            "\xFF\xFEs\x00e\x00",
	}
	for _, sk := range secretKeys {
		for name, body := range good {
			t.Run(sk.key+"/"+name, func(t *testing.T) {
				c, err := loadConfig("", false, envOf(map[string]string{sk.env: writeFile(t, "secret", body)}))
				if err != nil {
					t.Fatal(err)
				}
				if got := get(c, sk.key); got != secret {
					t.Errorf("%s = %q, want %q", sk.key, got, secret)
				}
			})
		}
		for name, body := range bad {
			t.Run(sk.key+"/"+name, func(t *testing.T) {
				_, err := loadConfig("", false, envOf(map[string]string{sk.env: writeFile(t, "secret", body)}))
				var ce *ConfigError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), sk.key+"_file") {
					t.Fatalf("error = %v, want a configuration error naming %s_file", err, sk.key)
				}
			})
		}
	}
}

func TestRelativePathsResolveAgainstTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "cmissync.toml")
	body := `[staging]
dsn = "state/staging.db"
[source]
type = "sql"
driver = "sqlite"
dsn = "cmis.db"
queries_dir = "queries"
csv_dir = "/abs/csv"
[moodle]
token_file = "token"
ca_file = "../ca.pem"
[email]
report_dir = "reports"
`
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(cfgPath, true, envOf(map[string]string{"CMISSYNC_EMAIL_REPORT_DIR": "env-reports"}))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ got, want string }{
		"staging.dsn":        {c.Staging.DSN, filepath.Join(dir, "state/staging.db")},
		"source.dsn":         {c.Source.DSN, filepath.Join(dir, "cmis.db")},
		"source.queries_dir": {c.Source.QueriesDir, filepath.Join(dir, "queries")},
		"source.csv_dir":     {c.Source.CSVDir, "/abs/csv"},
		"moodle.token_file":  {c.Moodle.TokenFile, filepath.Join(dir, "token")},
		"moodle.token":       {c.Moodle.Token, "tok"}, // read from the resolved file
		"moodle.ca_file":     {c.Moodle.CAFile, filepath.Join(filepath.Dir(dir), "ca.pem")},
		// The environment is the working directory's.
		"email.report_dir": {c.Email.ReportDir, "env-reports"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", name, tc.got, tc.want)
		}
	}

	// A DSN is a path only for SQLite.
	mysqlCfg := writeFile(t, "m.toml", "[staging]\nengine = \"mysql\"\ndsn = \"u:p@tcp(db:3306)/s\"\n[source]\ndriver = \"oracle\"\ndsn = \"user=x\"\n")
	c, err = loadConfig(mysqlCfg, true, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Staging.DSN != "u:p@tcp(db:3306)/s" || c.Source.DSN != "user=x" {
		t.Errorf("non-file DSNs changed: %q, %q", c.Staging.DSN, c.Source.DSN)
	}
	// Defaults, not written in the file, stay as they are.
	c, err = loadConfig(writeFile(t, "empty.toml", "[site]\nname = \"x\"\n"), true, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Staging.DSN != "cmissync.db" || c.Email.ReportDir != "reports" {
		t.Errorf("defaults changed: %q, %q", c.Staging.DSN, c.Email.ReportDir)
	}
}

func TestStatusNeverCreatesAStagingFile(t *testing.T) {
	cfg := writeFile(t, "c.toml", "[staging]\ndsn = \"never-made.db\"\n")
	code, _, errs := run(t, nil, "status", "--config", cfg)
	if code != exitUsage || !strings.Contains(errs, "cmissync migrate") {
		t.Fatalf("status on a missing staging file: exit %d, %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "never-made.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("status created the staging file next to the config: %v", err)
	}
	if _, err := os.Stat("never-made.db"); !errors.Is(err, os.ErrNotExist) {
		os.Remove("never-made.db")
		t.Fatalf("status created the staging file in the working directory")
	}
	// migrate creates it, where the config file says.
	if code, out, errs := run(t, nil, "migrate", "--config", cfg); code != 0 {
		t.Fatalf("migrate: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "never-made.db")); err != nil {
		t.Fatalf("migrate did not create the staging file next to the config: %v", err)
	}
}
