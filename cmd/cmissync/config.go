package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/cmissync/cmissync/load"
)

// Config is the whole configuration. Every key is documented by its `doc`
// tag; the README, `cmissync help config` and the example file list the same
// keys, and a test checks that they agree. Every key can be set by the
// environment variable CMISSYNC_<SECTION>_<KEY> (upper case), which wins
// over the file. Secrets (marked secret) can also come from a file named by
// the matching *_file key, and are never printed.
type Config struct {
	Site    SiteConfig    `toml:"site"`
	Staging StagingConfig `toml:"staging"`
	Source  SourceConfig  `toml:"source"`
	Moodle  MoodleConfig  `toml:"moodle"`
	Stage   StageConfig   `toml:"stage"`
	Load    LoadConfig    `toml:"load"`
	Guard   GuardConfig   `toml:"guard"`
	Apply   ApplyConfig   `toml:"apply"`
	Email   EmailConfig   `toml:"email"`
	Report  ReportConfig  `toml:"report"`
	Log     LogConfig     `toml:"log"`
	Metrics MetricsConfig `toml:"metrics"`
	Monitor MonitorConfig `toml:"monitor"`
}

// SiteConfig names the installation.
type SiteConfig struct {
	Name string `toml:"name" doc:"Name of this installation, shown in email subjects and logs. One line of 1 to 100 characters." default:"cmissync"`
}

// StagingConfig locates the staging database.
type StagingConfig struct {
	Engine    string   `toml:"engine" doc:"Staging database engine: sqlite (a file, the default) or mysql (MySQL/MariaDB)." default:"sqlite" oneof:"sqlite mysql"`
	DSN       string   `toml:"dsn" doc:"sqlite: path of the database file (a relative path in the config file is taken from the file's directory; only cmissync migrate creates it). mysql: user:password@tcp(host:3306)/database. Secret when it holds a password. Must not be empty." default:"cmissync.db" secret:"true" path:"sqlite"`
	DSNFile   string   `toml:"dsn_file" doc:"File holding staging.dsn (first line; a UTF-8 byte order mark and CRLF line ends are fine), instead of putting it in this file. An empty file is an error." path:"file"`
	LockStale Duration `toml:"lock_stale_after" doc:"A run lock whose holder has not renewed it for this long is presumed abandoned by a dead process and taken over; a live run renews it every quarter of this. Range: 1m to 24h." default:"10m" min:"1m" max:"24h"`
}

// SourceConfig says where CMIS data comes from.
type SourceConfig struct {
	Type       string `toml:"type" doc:"Where CMIS data comes from: sql (a database: Oracle, MySQL or SQLite) or csv (three files)." default:"sql" oneof:"sql csv"`
	Driver     string `toml:"driver" doc:"sql source driver: oracle (godror; needs Oracle Instant Client), mysql or sqlite." default:"oracle" oneof:"oracle mysql sqlite"`
	DSN        string `toml:"dsn" doc:"sql source connection string, e.g. oracle: user=\"cmis\" password=\"...\" connectString=\"db:1521/GEND\"; sqlite: a file path. Secret." secret:"true" path:"sqlite"`
	DSNFile    string `toml:"dsn_file" doc:"File holding source.dsn (first line; a UTF-8 byte order mark and CRLF line ends are fine). An empty file is an error." path:"file"`
	QueriesDir string `toml:"queries_dir" doc:"Directory with your own module_groups.sql, group_members.sql and group_tutors.sql; missing files fall back to the built-in queries. Empty: built-in queries." path:"file"`
	CSVDir     string `toml:"csv_dir" doc:"csv source: directory with module_groups.csv, group_members.csv and group_tutors.csv." path:"file"`
	Charset    string `toml:"charset" doc:"AL32UTF8 (default): Oracle converts to UTF-8 itself, which is right for a CMIS database in WE8ISO8859P1; for other sources, bytes that are not UTF-8 reject the row. WE8ISO8859P1: Oracle sends bytes unconverted (only for UTF-8 stored in Latin-1 columns); bytes that are not UTF-8 are decoded as Latin-1." default:"AL32UTF8" oneof:"AL32UTF8 WE8ISO8859P1"`
}

// MoodleConfig reaches the Moodle site.
type MoodleConfig struct {
	URL                string   `toml:"url" doc:"The Moodle site's wwwroot, exactly as in its config.php (another host name gets a redirect, not an answer): http(s)://host[:port][/path], without a user name, password, query or fragment."`
	Token              string   `toml:"token" doc:"Web-service token of the cmissync service user. Secret: prefer CMISSYNC_MOODLE_TOKEN or moodle.token_file." secret:"true"`
	TokenFile          string   `toml:"token_file" doc:"File holding the web-service token (first line; a UTF-8 byte order mark and CRLF line ends are fine). An empty file is an error." path:"file"`
	MaxInputVars       int      `toml:"max_input_vars" doc:"The site's PHP max_input_vars. Requests stay under it: PHP silently drops variables past it. Range: 20 to 100000." default:"1000" min:"20" max:"100000"`
	Timeout            Duration `toml:"timeout" doc:"Time limit of one web-service request. Range: 1s to 1h." default:"60s" min:"1s" max:"1h"`
	Retries            int      `toml:"retries" doc:"Extra attempts for transient failures (network errors, timeouts, HTTP 5xx); 0: none. Range: 0 to 10." default:"3" min:"0" max:"10"`
	RetryWait          Duration `toml:"retry_wait" doc:"First wait before a retry; doubled each attempt. Range: 1ms to 1m." default:"1s" min:"1ms" max:"1m"`
	CAFile             string   `toml:"ca_file" doc:"PEM file of extra certificate authorities to trust (an internal CA)." path:"file"`
	InsecureSkipVerify bool     `toml:"insecure_skip_verify" doc:"Turn TLS certificate checks off. Test sites only." default:"false"`
	UserMatchField     string   `toml:"user_match_field" doc:"Moodle user field that CMIS student and staff ids are matched against: idnumber, username or email. For idnumber the site must show it ($CFG->showuseridentity must include idnumber)." default:"idnumber" oneof:"idnumber username email"`
}

// StageConfig shapes the desired state.
type StageConfig struct {
	GroupingName string  `toml:"grouping_name" doc:"Template of grouping names. Placeholders: {module} {modulename}; it must use at least one of them (else every module of a course gets the same name), and braces serve only for placeholders. Must not be empty." default:"{module} {modulename}"`
	GroupName    string  `toml:"group_name" doc:"Template of group names. Placeholders: {module} {modulename} {group} {groupname}; it must use {group} or {groupname} (else every group of a module gets the same name), and braces serve only for placeholders. Keep {module} so two modules with the same group code stay distinct." default:"{module} {group}"`
	Courses      []int64 `toml:"courses" doc:"Only process these Moodle course ids (positive whole numbers; all others are left alone). Empty: every mapped course. Environment: comma-separated."`
}

// LoadConfig shapes the load step and its policies.
type LoadConfig struct {
	Concurrency      int     `toml:"concurrency" doc:"Web-service requests in flight at once, whichever part of the load sends them (enrolment reads, additions and read-backs overlap). Range: 1 to 64." default:"4" min:"1" max:"64"`
	ParkAfter        int     `toml:"park_after" doc:"An item Moodle refuses this many runs in a row is parked: skipped and reported until \"cmissync retry\". 0: never park. Range: 0 to 100." default:"5" min:"0" max:"100"`
	OnNameClash      string  `toml:"on_name_clash" doc:"A hand-made group or grouping already has the name cmissync wants: rename (create cmissync's as \"NAME (CMIS)\") or adopt (take the hand-made one over by setting cmissync's idnumber on it). Reported either way." default:"rename" oneof:"rename adopt"`
	OnDeleted        string  `toml:"on_deleted" doc:"A group or grouping cmissync made was deleted in Moodle by hand: recreate (with its members) or forget (park it until \"cmissync retry\")." default:"recreate" oneof:"recreate forget"`
	OnRenamed        string  `toml:"on_renamed" doc:"A group or grouping cmissync made was renamed in Moodle by hand: keep (Moodle's name) or restore (cmissync's name)." default:"keep" oneof:"keep restore"`
	OnMemberRemoved  string  `toml:"on_member_removed" doc:"A CMIS member cmissync added was removed from its group in Moodle by hand: restore (add them back) or respect (record the removal and leave them out while CMIS lists them)." default:"restore" oneof:"restore respect"`
	OnGroupRemoved   string  `toml:"on_group_removed" doc:"A group cmissync made is no longer in CMIS: delete (it and its memberships) or archive (keep it with its id and all its members, add load.archive_suffix to its name, take it out of cmissync's grouping, stop managing it; the report lists it)." default:"delete" oneof:"delete archive"`
	ArchiveSuffix    string  `toml:"archive_suffix" doc:"Added to the name of a group archived by load.on_group_removed = archive. 1 to 50 characters." default:" (archived)"`
	RemoveAfterRuns  int     `toml:"remove_after_runs" doc:"A membership, group or grouping absent from CMIS is removed only once it has been absent from this many consecutive complete extracts, so that one night's glitch in CMIS removes nobody; the plan shows it as pending meanwhile. Range: 1 to 100." default:"1" min:"1" max:"100"`
	FrozenCourses    []int64 `toml:"frozen_courses" doc:"Moodle course ids that get no writes at all (e.g. finished courses whose groups must stay as they were); reported once when frozen and once when thawed; naming a course with --course writes to it all the same. Environment: comma-separated."`
	EnrolMissing     string  `toml:"enrol_missing" doc:"A person CMIS lists in a group who is not enrolled in the course: off (they wait, and are reported) or on (enrol them with the manual enrolment plugin in load.student_role or load.tutor_role, then add them to their groups in the same run; cmissync records the enrolments it makes). On needs enrol_manual_enrol_users in the service." default:"off" oneof:"off on"`
	StudentRole      string  `toml:"student_role" doc:"Role of people enrolled from CMIS's student lists: a role id, or the shortname of a stock role (student, teacher, editingteacher, manager, coursecreator, taken as the stock ids 5, 4, 3, 1, 2; on a site whose roles were renumbered, give the id)." default:"student"`
	TutorRole        string  `toml:"tutor_role" doc:"Role of people enrolled from CMIS's tutor lists, as load.student_role. The stock teacher role is the non-editing teacher." default:"teacher"`
	UnenrolAction    string  `toml:"unenrol_action" doc:"An enrolment cmissync made, once the person is in no CMIS group of the course: keep, suspend (they keep their groups and data but lose access) or unenrol (Moodle removes them from every group of the course and purges their participation: grades, submissions, forum posts; prefer suspend). Enrolments made any other way are never touched. Suspend needs enrol_manual_enrol_users, unenrol enrol_manual_unenrol_users." default:"keep" oneof:"keep suspend unenrol"`
	SkipEndedCourses bool    `toml:"skip_ended_courses" doc:"Freeze courses whose end date (in Moodle) has passed: no writes, reported once when a course freezes; naming a course with --course writes to it all the same. Needs core_course_get_courses_by_field." default:"false"`
	RemoveNotInCMIS  bool    `toml:"remove_members_not_in_cmis" doc:"Also remove members of cmissync's groups that CMIS does not list, including people added by hand (the old removeMoodleGroupMembersNotSeenInCMIS). Off: only memberships cmissync added are ever removed." default:"false"`
}

// GuardConfig sets the mass-change safety rail.
type GuardConfig struct {
	ExtractMaxShrink     float64 `toml:"extract_max_shrink" doc:"Hold the extract (exit 4, email; the previous dump is kept and nothing is staged) when any dump table would lose more than this share of its rows compared with the last committed dump, or be emptied. 0: off; 1: hold only when a table would be emptied. Range: 0 to 1." default:"0.5" min:"0" max:"1"`
	MaxDeleteShare       float64 `toml:"max_delete_share" doc:"Hold back every deletion of a load (exit 4, email; the rest of the load goes ahead) when together they would delete more than this share of cmissync's groups or of its memberships, counting every kind of removal except what an RMV mapping asked for. 0: off. Range: 0 to 1." default:"0.25" min:"0" max:"1"`
	MaxDeleteCount       int     `toml:"max_delete_count" doc:"Hold back every deletion of a load when together they would delete more than this many groups plus memberships (not asked for by an RMV mapping). 0: off. Range: 0 or more." default:"0" min:"0"`
	CourseMaxDeleteShare float64 `toml:"course_max_delete_share" doc:"Hold back a course's deletions when it would lose more than this share of its memberships (courses with at least guard.course_min_items). 0: off. Range: 0 to 1." default:"0.5" min:"0" max:"1"`
	CourseMinItems       int     `toml:"course_min_items" doc:"Smallest number of memberships a course must have for guard.course_max_delete_share to apply. Range: 0 or more." default:"50" min:"0"`
}

// ApplyConfig shapes `cmissync apply`, which carries out Enrol Sync command
// files.
type ApplyConfig struct {
	CourseField string           `toml:"course_field" doc:"What the cid column of an Enrol Sync command file holds (cmissync apply): the course's id, shortname or idnumber. --course-field overrides it." default:"shortname" oneof:"id shortname idnumber"`
	UserField   string           `toml:"user_field" doc:"What the uid column of an Enrol Sync command file holds: the user's id, username, email or idnumber (CMIS ids are idnumbers). --user-field overrides it." default:"idnumber" oneof:"id username email idnumber"`
	Roles       map[string]int64 `toml:"roles" doc:"Role shortnames of this site that cmissync apply understands besides the stock ones (manager 1, coursecreator 2, editingteacher 3, teacher 4, student 5), with their role ids, e.g. { tutor = 4 }; a stock name listed here takes this id instead. Positive ids. Environment: comma-separated name=id pairs."`
}

// EmailConfig sends failure reports.
type EmailConfig struct {
	SMTPHost     string   `toml:"smtp_host" doc:"SMTP server for failure reports: a host name or IP address (the port goes in email.smtp_port). Empty: reports are only written to email.report_dir."`
	SMTPPort     int      `toml:"smtp_port" doc:"SMTP port; 0 picks 587 (starttls), 465 (tls) or 25 (none). Range: 0 to 65535." default:"0" min:"0" max:"65535"`
	TLS          string   `toml:"tls" doc:"SMTP transport security: starttls, tls or none." default:"starttls" oneof:"starttls tls none"`
	Username     string   `toml:"username" doc:"SMTP user name, if the server needs a login."`
	Password     string   `toml:"password" doc:"SMTP password. Secret." secret:"true"`
	PasswordFile string   `toml:"password_file" doc:"File holding the SMTP password (first line; a UTF-8 byte order mark and CRLF line ends are fine). An empty file is an error." path:"file"`
	From         string   `toml:"from" doc:"Sender address of reports: one address, name@host or \"Name <name@host>\"." default:"cmissync@localhost"`
	To           []string `toml:"to" doc:"Recipients of reports (support staff), each name@host or \"Name <name@host>\". Environment: comma-separated."`
	ReportDir    string   `toml:"report_dir" doc:"Directory where a report is kept as an .eml file when it cannot be sent (or no SMTP server is set)." default:"reports" path:"file"`
	MaxRows      int      `toml:"max_rows" doc:"Failures (or refused rows) shown as examples in the body of a report; identical ones are collapsed with a count, and the full list is attached as CSV whenever one is not shown. Range: 1 to 1000." default:"20" min:"1" max:"1000"`
	When         string   `toml:"when" doc:"When a step emails its report: failures (the step failed, was stopped by a safety rail, or had failed items or refused rows), notices (also deletions held back, notices such as a course retired or a group recreated, and members waiting for enrolment for the first time), changes (also whenever the load changed something in Moodle) or always (every step)." default:"notices" oneof:"failures notices changes always"`
}

// ReportConfig shapes what reports treat as needing a person.
type ReportConfig struct {
	WaitingAlertAfter Duration `toml:"waiting_alert_after" doc:"A member waiting for enrolment is listed once, then counted in one summary line; after waiting longer than this, it is reported as a failure again (exit 3), so that it reaches a person. Range: 1h to 8760h." default:"168h" min:"1h" max:"8760h"`
}

// MetricsConfig writes run metrics for Prometheus.
type MetricsConfig struct {
	Textfile string `toml:"textfile" doc:"File that every run (not dry runs) rewrites, atomically, with its metrics in the Prometheus text format, for node_exporter's textfile collector (e.g. /var/lib/prometheus/node-exporter/cmissync.prom; the name must end in .prom). Empty: no metrics."`
}

// MonitorConfig pings a dead man's switch such as healthchecks.io.
type MonitorConfig struct {
	PingURL string `toml:"ping_url" doc:"Ping URL of a monitoring check (healthchecks.io convention): every run (not dry runs) requests URL/start when it starts, URL when it ends with exit 0, and URL/CODE (the exit code) otherwise, so that a run that fails or never happens raises an alert. Secret (the URL is the check's key). Empty: no pings." secret:"true"`
}

// LogConfig shapes logs.
type LogConfig struct {
	Level  string `toml:"level" doc:"Log level: debug, info, warn or error." default:"info" oneof:"debug info warn error"`
	Format string `toml:"format" doc:"Log format: text, json, or auto (text on a terminal, json otherwise)." default:"auto" oneof:"auto text json"`
}

// Duration is a time.Duration written as "90s", "10m".
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (examples: 30s, 10m, 1h)", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ConfigError is bad configuration: exit code 2.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "configuration: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func configErrorf(format string, args ...any) error {
	return &ConfigError{Err: fmt.Errorf(format, args...)}
}

// configKey is one documented key.
type configKey struct {
	Section, Key, Doc, Default string
	Secret                     bool
	// OneOf lists the allowed values (space-separated); Min and Max bound
	// a number or duration. The doc tag says the same in words.
	OneOf, Min, Max string
	// Path is "file" for a key that names a file or directory, "sqlite"
	// for a DSN that is a file path when its driver is sqlite: set in the
	// config file, a relative path is taken from the file's directory.
	Path  string
	field reflect.Value
}

// EnvName is the environment variable of the key.
func (k configKey) EnvName() string {
	return "CMISSYNC_" + strings.ToUpper(k.Section) + "_" + strings.ToUpper(k.Key)
}

// keys walks the config struct; with a non-nil config, each key carries a
// settable field.
func keys(c *Config) []configKey {
	var out []configKey
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sec := t.Field(i)
		sv := v.Field(i)
		for j := 0; j < sec.Type.NumField(); j++ {
			f := sec.Type.Field(j)
			if f.Tag.Get("toml") == "" {
				continue
			}
			out = append(out, configKey{
				Section: sec.Tag.Get("toml"), Key: f.Tag.Get("toml"), Doc: f.Tag.Get("doc"),
				Default: f.Tag.Get("default"), Secret: f.Tag.Get("secret") == "true",
				OneOf: f.Tag.Get("oneof"), Min: f.Tag.Get("min"), Max: f.Tag.Get("max"), Path: f.Tag.Get("path"), field: sv.Field(j),
			})
		}
	}
	return out
}

// defaultConfig returns the configuration with every default applied.
func defaultConfig() *Config {
	c := &Config{}
	for _, k := range keys(c) {
		if k.Default != "" {
			if err := setField(k.field, k.Default); err != nil {
				panic(fmt.Sprintf("default of %s.%s: %v", k.Section, k.Key, err))
			}
		}
	}
	return c
}

// loadConfig reads the file (when path is non-empty), then the environment,
// then secrets from their files, and validates the result. Relative paths
// written in the file are taken from the file's directory, so that a
// command run from anywhere finds the same files; paths from the
// environment and the defaults stay relative to the working directory.
func loadConfig(path string, explicit bool, env func(string) (string, bool)) (*Config, error) {
	c := defaultConfig()
	var fromFile map[string]bool // path keys the file sets
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			if explicit || !errors.Is(err, os.ErrNotExist) {
				return nil, configErrorf("config file %s: %w", path, err)
			}
		} else {
			md, err := toml.DecodeFile(path, c)
			if err != nil {
				return nil, configErrorf("config file %s: %w", path, err)
			}
			if und := md.Undecoded(); len(und) > 0 {
				names := make([]string, len(und))
				for i, k := range und {
					names[i] = k.String()
				}
				return nil, configErrorf("config file %s: unknown keys %s (see `cmissync help config`)", path, strings.Join(names, ", "))
			}
			fromFile = map[string]bool{}
			for _, k := range keys(c) {
				if k.Path != "" && md.IsDefined(k.Section, k.Key) {
					fromFile[k.Section+"."+k.Key] = true
				}
			}
		}
	}
	for _, k := range keys(c) {
		if v, ok := env(k.EnvName()); ok {
			if err := setField(k.field, v); err != nil {
				return nil, configErrorf("%s: %v", k.EnvName(), err)
			}
			delete(fromFile, k.Section+"."+k.Key)
		}
	}
	c.resolvePaths(filepath.Dir(path), fromFile)
	for _, s := range []struct {
		name string
		file string
		dst  *string
	}{
		{"staging.dsn", c.Staging.DSNFile, &c.Staging.DSN},
		{"source.dsn", c.Source.DSNFile, &c.Source.DSN},
		{"moodle.token", c.Moodle.TokenFile, &c.Moodle.Token},
		{"email.password", c.Email.PasswordFile, &c.Email.Password},
	} {
		if s.file == "" {
			continue
		}
		secret, err := readSecretFile(s.file)
		if err != nil {
			return nil, configErrorf("%s_file: %w", s.name, err)
		}
		*s.dst = secret
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// resolvePaths makes the relative paths of the keys in fromFile absolute
// against dir, the config file's directory. A DSN is a path only for the
// sqlite driver, and not when it is a URI (file:...) or ":memory:".
func (c *Config) resolvePaths(dir string, fromFile map[string]bool) {
	sqlite := map[string]bool{
		"staging.dsn": strings.EqualFold(strings.TrimSpace(c.Staging.Engine), "sqlite"),
		"source.dsn":  strings.EqualFold(strings.TrimSpace(c.Source.Type), "sql") && strings.EqualFold(strings.TrimSpace(c.Source.Driver), "sqlite"),
	}
	for _, k := range keys(c) {
		name := k.Section + "." + k.Key
		v := k.field.String()
		switch {
		case !fromFile[name] || v == "" || filepath.IsAbs(v):
		case k.Path == "sqlite" && (!sqlite[name] || strings.HasPrefix(v, "file:") || strings.HasPrefix(v, ":memory:")):
		default:
			k.field.SetString(filepath.Join(dir, v))
		}
	}
}

// requireStagingFile refuses a SQLite staging file that does not exist:
// opening it would create an empty database (in whatever directory the
// command was run from), which every command but migrate would then refuse
// as not migrated.
func (c *Config) requireStagingFile() error {
	if c.Staging.Engine != "sqlite" {
		return nil
	}
	if _, err := os.Stat(c.Staging.DSN); errors.Is(err, os.ErrNotExist) {
		return configErrorf("the staging database %s does not exist: run `cmissync migrate` to create it, or check staging.dsn and --config (a relative path in the config file is taken from the file's directory)", c.Staging.DSN)
	}
	return nil
}

// errEmptySecretFile is a secret file with nothing on its first line.
var errEmptySecretFile = errors.New("the file holds no secret on its first line")

// readSecretFile returns the first line of a secret file without the
// surrounding blanks. Files saved by Windows editors start with a UTF-8 byte
// order mark and end lines with CRLF; both are dropped rather than sent to
// the server as part of the secret. UTF-16 (what "Unicode" means to some
// editors) is refused rather than guessed at.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if bytes.HasPrefix(b, []byte{0xFF, 0xFE}) || bytes.HasPrefix(b, []byte{0xFE, 0xFF}) {
		return "", fmt.Errorf("%s is UTF-16: save it as UTF-8", path)
	}
	b = bytes.TrimPrefix(b, []byte("\uFEFF"))
	line, _, _ := bytes.Cut(b, []byte("\n"))
	secret := strings.TrimSpace(string(line))
	if secret == "" {
		return "", fmt.Errorf("%s: %w", path, errEmptySecretFile)
	}
	return secret, nil
}

// validate checks every key against its allowed range or values and returns
// one ConfigError naming each key that is out of range, so that a bad
// setting stops the run before anything is read or deleted. Keys with a
// oneof tag are matched case-insensitively and set to their canonical
// spelling. It may be called again after a command-line override.
func (c *Config) validate() error {
	var errs []error
	for _, k := range keys(c) {
		if err := checkRange(k); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs,
		checkSiteName(c.Site.Name),
		checkMoodleURL(c.Moodle.URL),
		checkTemplate("stage.grouping_name", c.Stage.GroupingName, groupingPlaceholders, groupingPlaceholders),
		checkTemplate("stage.group_name", c.Stage.GroupName, groupPlaceholders, []string{"{group}", "{groupname}"}),
		checkCourses("stage.courses", c.Stage.Courses),
		checkCourses("load.frozen_courses", c.Load.FrozenCourses),
		checkSuffix(c.Load.ArchiveSuffix),
		checkRole("load.student_role", c.Load.StudentRole),
		checkRole("load.tutor_role", c.Load.TutorRole),
		checkRoles(c.Apply.Roles),
		checkSMTPHost(c.Email.SMTPHost),
		checkTextfile(c.Metrics.Textfile),
		checkPingURL(c.Monitor.PingURL),
		checkAddress("email.from", c.Email.From),
	)
	for _, to := range c.Email.To {
		errs = append(errs, checkAddress("email.to", to))
	}
	if c.Staging.DSN == "" {
		errs = append(errs, errors.New("staging.dsn is empty"))
	}
	if err := errors.Join(errs...); err != nil {
		return &ConfigError{Err: err}
	}
	return nil
}

// checkRole checks a role given by id or stock shortname.
func checkRole(key, v string) error {
	if _, err := load.ParseRole(v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// checkRange applies a key's oneof, min and max tags.
func checkRange(k configKey) error {
	name := k.Section + "." + k.Key
	if allowed := strings.Fields(k.OneOf); len(allowed) > 0 {
		v := k.field.String()
		for _, a := range allowed {
			if strings.EqualFold(v, a) {
				k.field.SetString(a)
				return nil
			}
		}
		return fmt.Errorf("%s = %q: want one of %s", name, v, strings.Join(allowed, ", "))
	}
	if k.Min == "" && k.Max == "" {
		return nil
	}
	// The comparisons are written so that NaN fails them: a NaN share would
	// otherwise pass both bounds and turn a guard off.
	inRange := true
	var shown string
	switch v := k.field.Interface().(type) {
	case Duration:
		d := time.Duration(v)
		inRange = (k.Min == "" || d >= mustDuration(k.Min)) && (k.Max == "" || d <= mustDuration(k.Max))
		shown = d.String()
	case int:
		inRange = (k.Min == "" || v >= mustInt(k.Min)) && (k.Max == "" || v <= mustInt(k.Max))
		shown = strconv.Itoa(v)
	case float64:
		inRange = (k.Min == "" || v >= mustFloat(k.Min)) && (k.Max == "" || v <= mustFloat(k.Max))
		shown = strconv.FormatFloat(v, 'g', -1, 64)
	default:
		panic(fmt.Sprintf("%s: min/max tags on a %T", name, v))
	}
	if !inRange {
		return fmt.Errorf("%s = %s: want %s", name, shown, k.rangeText())
	}
	return nil
}

// rangeText says a key's min and max in words, as its doc tag must.
func (k configKey) rangeText() string {
	switch {
	case k.Min != "" && k.Max != "":
		return k.Min + " to " + k.Max
	case k.Min != "":
		return k.Min + " or more"
	case k.Max != "":
		return "at most " + k.Max
	}
	return ""
}

// The bounds are tags written in this file, so a bad one is a programming
// error, caught by every test that loads a configuration.
func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

func mustInt(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func mustFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	return f
}

func checkSiteName(name string) error {
	if n := utf8.RuneCountInString(name); n < 1 || n > 100 || strings.TrimSpace(name) == "" {
		return fmt.Errorf("site.name = %q: want one line of 1 to 100 characters", name)
	}
	// It goes into email subjects, where a line break would start a header.
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("site.name = %q: want one line of 1 to 100 characters, without control characters", name)
	}
	return nil
}

// checkMoodleURL accepts an empty URL (only the load step needs one) or a
// wwwroot the client can use. A URL with a user name or password would put
// a credential into every log line that names the site, so it is refused
// without being echoed.
func checkMoodleURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("moodle.url is not a URL: want http(s)://host[:port][/path]")
	case u.User != nil:
		return fmt.Errorf("moodle.url must not hold a user name or password: the token authenticates")
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("moodle.url = %q: want http(s)://host[:port][/path]", raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("moodle.url = %q: want the wwwroot, without a query or fragment", raw)
	}
	return nil
}

var (
	groupingPlaceholders = []string{"{module}", "{modulename}"}
	groupPlaceholders    = []string{"{module}", "{modulename}", "{group}", "{groupname}"}
	placeholderRE        = regexp.MustCompile(`\{[^{}]*\}`)
)

// checkTemplate accepts a name template that uses only the allowed
// placeholders and at least one of needed, so that the objects it names
// stay distinct.
func checkTemplate(key, tmpl string, allowed, needed []string) error {
	if strings.TrimSpace(tmpl) == "" {
		return fmt.Errorf("%s is empty: want a template using %s", key, strings.Join(allowed, " "))
	}
	for _, p := range placeholderRE.FindAllString(tmpl, -1) {
		if !slices.Contains(allowed, p) {
			return fmt.Errorf("%s = %q: unknown placeholder %s (allowed: %s)", key, tmpl, p, strings.Join(allowed, " "))
		}
	}
	if strings.ContainsAny(placeholderRE.ReplaceAllString(tmpl, ""), "{}") {
		return fmt.Errorf("%s = %q: a brace outside a placeholder (allowed: %s)", key, tmpl, strings.Join(allowed, " "))
	}
	if !slices.ContainsFunc(needed, func(p string) bool { return strings.Contains(tmpl, p) }) {
		return fmt.Errorf("%s = %q: must use %s, or every name would be the same", key, tmpl, strings.Join(needed, " or "))
	}
	return nil
}

func checkCourses(key string, ids []int64) error {
	for _, id := range ids {
		if id <= 0 {
			return fmt.Errorf("%s holds %d: Moodle course ids are positive whole numbers", key, id)
		}
	}
	return nil
}

// checkSuffix keeps an archived group's name distinct and within Moodle's
// limits.
func checkSuffix(s string) error {
	if n := len([]rune(s)); strings.TrimSpace(s) == "" || n > 50 || strings.ContainsAny(s, "\r\n\t") {
		return fmt.Errorf("load.archive_suffix = %q: want 1 to 50 characters on one line, not only spaces", s)
	}
	return nil
}

// checkTextfile accepts an empty path or one ending in .prom: node_exporter's textfile
// collector reads only those, so any other name would be written and never scraped.
func checkTextfile(path string) error {
	if path != "" && !strings.HasSuffix(path, ".prom") {
		return fmt.Errorf("metrics.textfile = %q: the name must end in .prom (node_exporter reads only those)", path)
	}
	return nil
}

// checkPingURL accepts an empty URL or an http(s) URL. The URL is the check's key, so it is
// never echoed.
func checkPingURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("monitor.ping_url is not an http(s) URL")
	}
	return nil
}

// checkRoles accepts role shortnames mapped to positive role ids.
func checkRoles(roles map[string]int64) error {
	for name, id := range roles {
		if strings.TrimSpace(name) == "" || strings.ContainsAny(name, ";,= \t\r\n") {
			return fmt.Errorf("apply.roles: %q is not a role shortname", name)
		}
		if id <= 0 {
			return fmt.Errorf("apply.roles: %s = %d: role ids are positive whole numbers", name, id)
		}
	}
	return nil
}

// checkSMTPHost accepts a host name or an IP address: a port or a scheme
// here would make the mailer dial the wrong thing.
func checkSMTPHost(host string) error {
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	if strings.ContainsAny(host, ":/@[] \t\r\n") {
		return fmt.Errorf("email.smtp_host = %q: want a host name or IP address (the port goes in email.smtp_port)", host)
	}
	return nil
}

func checkAddress(key, addr string) error {
	if _, err := mail.ParseAddress(addr); err != nil {
		return fmt.Errorf("%s = %q: want an address such as name@example.ac.uk or \"Name <name@example.ac.uk>\": %w", key, addr, err)
	}
	return nil
}

// requireSource checks what the extract step needs.
func (c *Config) requireSource() error {
	switch {
	case c.Source.Type == "csv" && c.Source.CSVDir == "":
		return configErrorf("source.csv_dir is empty (source.type = csv)")
	case c.Source.Type == "sql" && c.Source.DSN == "":
		return configErrorf("source.dsn is empty: set it in the config file, CMISSYNC_SOURCE_DSN or CMISSYNC_SOURCE_DSN_FILE")
	}
	return nil
}

// requireMoodle checks what the load step needs.
func (c *Config) requireMoodle() error {
	switch {
	case c.Moodle.URL == "":
		return configErrorf("moodle.url is empty")
	case c.Moodle.Token == "":
		return configErrorf("moodle.token is empty: set CMISSYNC_MOODLE_TOKEN or moodle.token_file")
	}
	return nil
}

// secrets lists secret values, so reports and logs can scrub them.
func (c *Config) secrets() []string {
	var out []string
	for _, k := range keys(c) {
		if k.Secret && k.field.String() != "" {
			out = append(out, k.field.String())
		}
	}
	return out
}

func setField(f reflect.Value, s string) error {
	switch f.Interface().(type) {
	case Duration:
		var d Duration
		if err := d.UnmarshalText([]byte(s)); err != nil {
			return err
		}
		f.Set(reflect.ValueOf(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		f.SetInt(int64(n))
	case reflect.Float64:
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		f.SetFloat(v)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		f.SetBool(b)
	case reflect.Map:
		// name=id pairs, comma-separated.
		m := map[string]int64{}
		for _, p := range splitList(s) {
			name, v, ok := strings.Cut(p, "=")
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if !ok || err != nil {
				return fmt.Errorf("%q is not name=id", p)
			}
			m[strings.TrimSpace(name)] = n
		}
		f.Set(reflect.ValueOf(m))
	case reflect.Slice:
		parts := splitList(s)
		switch f.Type().Elem().Kind() {
		case reflect.String:
			f.Set(reflect.ValueOf(parts))
		case reflect.Int64:
			ns := make([]int64, len(parts))
			for i, p := range parts {
				n, err := strconv.ParseInt(p, 10, 64)
				if err != nil {
					return fmt.Errorf("%q is not a whole number", p)
				}
				ns[i] = n
			}
			f.Set(reflect.ValueOf(ns))
		}
	default:
		return fmt.Errorf("unsupported setting type %s", f.Type())
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// pathsNote says where relative paths are taken from.
const pathsNote = "Relative paths written in the config file (the *_file keys, source.queries_dir, source.csv_dir, moodle.ca_file, email.report_dir, and staging.dsn and source.dsn when they are SQLite files) are taken from the config file's directory; in the environment, from the working directory."

// configHelp renders the documentation of every key.
func configHelp() string {
	var b strings.Builder
	b.WriteString("Configuration keys (file section.key; environment variable; default):\n")
	sec := ""
	for _, k := range keys(defaultConfig()) {
		if k.Section != sec {
			sec = k.Section
			fmt.Fprintf(&b, "\n[%s]\n", sec)
		}
		def := k.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(&b, "  %-22s %s (default %s)\n      %s\n", k.Key, k.EnvName(), def, k.Doc)
	}
	b.WriteString("\nSecrets (staging.dsn, source.dsn, moodle.token, email.password) may also be read from the file named by the matching *_file key.\n")
	b.WriteString(pathsNote + "\n")
	return b.String()
}

// exampleConfig renders a complete, commented configuration file with every
// key at its default (cmissync.example.toml is this output).
func exampleConfig() string {
	var b strings.Builder
	b.WriteString("# cmissync configuration: every key, at its default.\n")
	b.WriteString("# Each key can also be set by the environment variable CMISSYNC_<SECTION>_<KEY>.\n")
	b.WriteString("# Keep secrets out of this file: use the environment or the *_file keys.\n")
	for _, line := range wrap(pathsNote, 76) {
		fmt.Fprintf(&b, "# %s\n", line)
	}
	b.WriteString("\n")
	sec := ""
	for _, k := range keys(defaultConfig()) {
		if k.Section != sec {
			sec = k.Section
			fmt.Fprintf(&b, "[%s]\n", sec)
		}
		for _, line := range wrap(k.Doc, 76) {
			fmt.Fprintf(&b, "# %s\n", line)
		}
		fmt.Fprintf(&b, "# Environment: %s\n", k.EnvName())
		fmt.Fprintf(&b, "%s = %s\n\n", k.Key, tomlValue(k))
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func tomlValue(k configKey) string {
	switch k.field.Kind() {
	case reflect.Slice:
		return "[]"
	case reflect.Map:
		return "{}"
	case reflect.Int, reflect.Bool, reflect.Float64:
		return k.Default
	}
	return strconv.Quote(k.Default)
}

func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
