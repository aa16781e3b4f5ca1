package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmissync/cmissync/extract"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/report"
	sqlfiles "github.com/cmissync/cmissync/sql"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
)

// Outcomes of one check.
const (
	checkOK   = "ok"
	checkWarn = "warn"
	checkFail = "fail"
	checkSkip = "skip"
)

// checkLine is one line of "cmissync check": what was checked, how it went,
// and for a warning or a failure, what to do.
type checkLine struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
	// config marks a failure of the configuration (exit 2), as opposed to
	// a server that could not be reached (exit 1).
	config bool
}

// checker runs the checks in order and remembers what later ones need.
type checker struct {
	a       *app
	cfg     *Config
	p       *pipeline // nil until staging works
	lines   []checkLine
	courses []int64 // --course: the courses whose enrolments show the match field
	sendMsg bool
	site    *moodle.SiteInfo
	mc      *moodle.Client
	secrets []string
}

func (ck *checker) add(l checkLine) { ck.lines = append(ck.lines, l) }

func (ck *checker) ok(name, detail string) {
	ck.add(checkLine{Name: name, Status: checkOK, Detail: detail})
}

func (ck *checker) warn(name, detail, fix string) {
	ck.add(checkLine{Name: name, Status: checkWarn, Detail: detail, Fix: fix})
}

func (ck *checker) fail(name string, config bool, detail, fix string) {
	ck.add(checkLine{Name: name, Status: checkFail, Detail: ck.scrub(strings.TrimPrefix(detail, "configuration: ")), Fix: fix, config: config})
}

func (ck *checker) skip(name, why string) {
	ck.add(checkLine{Name: name, Status: checkSkip, Detail: why})
}

func (ck *checker) scrub(s string) string { return report.Scrub(s, ck.secrets...) }

func (a *app) checkCommand() *cobra.Command {
	var (
		courses []int64
		asJSON  bool
		sendMsg bool
	)
	c := &cobra.Command{
		Use:   "check",
		Short: "Check everything a run needs, each with the fix: configuration, staging, source, Moodle, site, email",
		Long: `A preflight of everything "cmissync run" needs, one line each, ok, warn or
fail, with the fix for what is not ok:

  configuration   the file and the environment load, every key in range
  staging         reachable, its schema current ("cmissync migrate")
  source          reachable; the three views (or CSV files) have every column
                  the contract needs (a read of no rows)
  moodle address  the site answers at moodle.url, exactly its wwwroot
  moodle token    the token is accepted
  moodle functions  the token's service offers every function a load calls
  user match field  the site returns moodle.user_match_field for enrolled
                  users (read from one mapped course, or --course)
  site binding    staging is bound to this site, or to none yet
  email           the SMTP server answers (STARTTLS and the certificate too);
                  no mail is sent unless --send-test-email

Nothing is written to staging or Moodle. Exit status: 0 when nothing failed
(warnings allowed), 2 when a failure is one of configuration (a setting, the
token, the address, a missing function, the schema, another site), 1 when a
server could not be reached.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ck := &checker{a: a, courses: courses, sendMsg: sendMsg}
			ck.run(c.Context())
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(ck.lines); err != nil {
					return err
				}
			} else {
				writeCheck(a.stdout, ck.lines)
			}
			return ck.result()
		},
	}
	c.Flags().Int64SliceVar(&courses, "course", nil, "read the enrolled users of these Moodle courses to check the user match field (repeat or comma-separate; default: the first mapped course)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the lines as JSON")
	c.Flags().BoolVar(&sendMsg, "send-test-email", false, "also send a test report to email.to (the login and the recipients are then checked too)")
	return c
}

// run makes every check, skipping those whose prerequisite failed.
func (ck *checker) run(ctx context.Context) {
	cfg, err := ck.a.loadConfig()
	if err != nil {
		ck.fail("configuration", true, err.Error(), "fix the setting named (see cmissync config), in "+ck.a.configPath+" or the environment")
		return
	}
	ck.cfg = cfg
	ck.secrets = cfg.secrets()
	ck.checkConfig()
	ck.checkStaging(ctx)
	if ck.p == nil {
		// The Moodle and source checks need no staging: build what they need.
		ck.p = &pipeline{a: ck.a, cfg: cfg, log: newLogger(cfg, ck.a.stderr).WithField("run_id", "check"), runID: newRunID()}
	}
	ck.checkSource(ctx)
	ck.checkMoodle(ctx)
	ck.checkMatchField(ctx)
	ck.checkBinding(ctx)
	ck.checkEmail(ctx)
	if ck.p.st != nil {
		ck.p.close()
	}
}

// result is the command's error: the exit code of the worst failure.
func (ck *checker) result() error {
	var config, other int
	for _, l := range ck.lines {
		if l.Status == checkFail {
			if l.config {
				config++
			} else {
				other++
			}
		}
	}
	switch {
	case config > 0:
		return &ConfigError{Err: fmt.Errorf("%d checks failed (see above)", config+other)}
	case other > 0:
		return fmt.Errorf("%d checks failed (see above)", other)
	}
	return nil
}

func writeCheck(w io.Writer, lines []checkLine) {
	for _, l := range lines {
		fmt.Fprintf(w, "%-5s %-17s %s\n", l.Status, l.Name, l.Detail)
		if l.Fix != "" {
			fmt.Fprintf(w, "      %-17s fix: %s\n", "", l.Fix)
		}
	}
}

func (ck *checker) checkConfig() {
	cfg := ck.cfg
	where := "defaults and the environment (no config file)"
	if _, err := os.Stat(ck.a.configPath); err == nil {
		where = ck.a.configPath + " and the environment"
	}
	ck.ok("configuration", fmt.Sprintf("%s load; every key in range (site %q)", where, cfg.Site.Name))
	if len(cfg.Stage.Courses) > 0 {
		ck.warn("configuration", fmt.Sprintf("stage.courses limits every run to courses %v", cfg.Stage.Courses), "empty stage.courses to process every mapped course")
	}
}

func (ck *checker) checkStaging(ctx context.Context) {
	cfg := ck.cfg
	if err := cfg.requireStagingFile(); err != nil {
		ck.fail("staging", true, err.Error(), "cmissync migrate --config "+ck.a.configPath)
		return
	}
	st, err := store.Open(ctx, cfg.Staging.Engine, cfg.Staging.DSN)
	if err != nil {
		ck.fail("staging", false, err.Error(), "check staging.dsn and that the database server is up and reachable from this host")
		return
	}
	v, _ := st.SchemaVersion(ctx)
	if err := st.RequireSchema(ctx); err != nil {
		st.Close()
		ck.fail("staging", true, err.Error(), "cmissync migrate --config "+ck.a.configPath)
		return
	}
	st.Close()
	p, err := ck.a.pipelineFor(ctx, cfg, nil)
	if err != nil {
		ck.fail("staging", true, err.Error(), "")
		return
	}
	ck.p = p
	ck.ok("staging", fmt.Sprintf("%s reachable, schema at version %d (current)", cfg.Staging.Engine, v))
}

// openSource opens the configured CMIS source, as the extract step reads
// it.
func (p *pipeline) openSource(ctx context.Context) (extract.Source, error) {
	if err := p.cfg.requireSource(); err != nil {
		return nil, err
	}
	if p.cfg.Source.Type == "csv" {
		return extract.OpenCSV(p.cfg.Source.CSVDir, nil)
	}
	var queries fs.FS = sqlfiles.Queries()
	if p.cfg.Source.QueriesDir != "" {
		queries = overlayFS{primary: os.DirFS(p.cfg.Source.QueriesDir), fallback: queries}
	}
	return extract.OpenSQL(ctx, p.cfg.Source.Driver, p.cfg.Source.DSN, queries, extract.WithCharset(p.cfg.Source.Charset))
}

// checkSource opens each view as the extract does, which checks its
// columns against the contract, and closes it without reading a row.
func (ck *checker) checkSource(ctx context.Context) {
	src, err := ck.p.openSource(ctx)
	if err != nil {
		var ce *ConfigError
		ck.fail("source", errors.As(err, &ce), err.Error(), strings.Join(extract.Advice(err), " "))
		return
	}
	defer src.Close()
	for _, t := range store.DumpTables {
		rows, err := src.Open(ctx, t)
		if err != nil {
			var contract *extract.ContractError
			ck.fail("source", errors.As(err, &contract), fmt.Sprintf("%s: %v", src.Describe(), err), strings.Join(extract.Advice(err), " "))
			return
		}
		rows.Close()
	}
	ck.ok("source", src.Describe()+": the three views answer with every column the contract needs")
}

func (ck *checker) checkMoodle(ctx context.Context) {
	names := []string{"moodle address", "moodle token", "moodle functions"}
	skipRest := func(from int, why string) {
		for _, n := range names[from:] {
			ck.skip(n, why)
		}
	}
	if err := ck.cfg.requireMoodle(); err != nil {
		ck.fail(names[0], true, err.Error(), "set moodle.url to the site's wwwroot and the token in CMISSYNC_MOODLE_TOKEN or moodle.token_file")
		skipRest(1, "needs moodle.url and moodle.token")
		return
	}
	mc, err := ck.p.moodleClient()
	if err != nil {
		ck.fail(names[0], true, err.Error(), "")
		skipRest(1, "needs a working moodle.url")
		return
	}
	url := ck.cfg.Moodle.URL
	si, err := mc.Probe(ctx)
	if err != nil {
		problem := moodleProblem(url, err)
		var ce *ConfigError
		config := errors.As(problem, &ce)
		switch moodle.ErrorCode(err) {
		case moodle.CodeInvalidToken, moodle.CodeAccessException:
			ck.ok(names[0], url+" answers as a Moodle web-service endpoint")
			ck.fail(names[1], config, problem.Error(), "")
			skipRest(2, "needs an accepted token")
		default:
			ck.fail(names[0], config, problem.Error(), "")
			skipRest(1, "needs an answer from the site")
		}
		return
	}
	ck.mc, ck.site = mc, &si
	if self := store.SiteURLKey(siteURLOf(si, url)); self != store.SiteURLKey(url) {
		ck.warn(names[0], fmt.Sprintf("%s answers, but the site gives its own address as %s", url, si.SiteURL),
			"set moodle.url to "+si.SiteURL+", exactly the wwwroot of the site's config.php: other addresses may be redirected")
	} else {
		ck.ok(names[0], fmt.Sprintf("%s answers as %q (Moodle %s)", url, si.SiteName, si.Release))
	}
	ck.ok(names[1], fmt.Sprintf("accepted (service user %s, id %d)", si.Username, si.UserID))
	needed := neededFunctions(ck.cfg)
	if missing := si.Missing(needed); len(missing) > 0 {
		ck.fail(names[2], true, (&moodle.MissingFunctionsError{Missing: missing}).Error(), "add them to the token's external service")
	} else {
		ck.ok(names[2], fmt.Sprintf("all %d functions a load with this configuration calls are in the token's service", len(needed)))
	}
	if missing := si.Missing(moodle.OptionalFunctions); len(missing) > 0 && !slices.Contains(needed, moodle.FnCoursesByField) {
		ck.warn(names[2], "optional "+strings.Join(missing, ", ")+" is not in the service: reports name courses by id only, and telling a deleted course from an inaccessible one takes a call per course",
			"add it to the token's external service")
	}
}

// checkMatchField reads the enrolled users of one mapped course and checks
// that Moodle returns the field CMIS ids are matched against: a site that
// does not show idnumber ($CFG->showuseridentity) returns users without
// it, and then no one would ever be added to a group.
func (ck *checker) checkMatchField(ctx context.Context) {
	const name = "user match field"
	field := ck.cfg.Moodle.UserMatchField
	if ck.mc == nil || !ck.site.Has(moodle.FnEnrolledUsers) {
		ck.skip(name, "needs an accepted token and "+moodle.FnEnrolledUsers)
		return
	}
	courses := ck.courses
	if len(courses) == 0 && ck.p.st != nil {
		maps, err := ck.p.st.MappingsWithDump(ctx, ck.p.filter)
		if err != nil {
			ck.fail(name, false, err.Error(), "")
			return
		}
		for _, m := range maps {
			if stage.NormalAction(m.GroupImport) == store.ActionAdd && stage.NormalAction(m.MappingAction) == store.ActionAdd {
				courses = []int64{m.CourseID}
				break
			}
		}
	}
	if len(courses) == 0 {
		ck.warn(name, "no mapped course to read enrolled users from", "rerun with --course N, a course with enrolled users")
		return
	}
	for _, course := range courses {
		ck.matchField(ctx, course, field)
	}
}

// matchField checks the match field on the users enrolled in one course.
func (ck *checker) matchField(ctx context.Context, course int64, field string) {
	const name = "user match field"
	users, err := ck.mc.EnrolledUsers(ctx, course, field)
	if err != nil {
		ck.warn(name, fmt.Sprintf("could not read the enrolled users of course %d: %v", course, err), "rerun with --course N, a course the service user can open")
		return
	}
	with := 0
	for _, u := range users {
		if u.Field(field) != "" {
			with++
		}
	}
	switch {
	case len(users) == 0:
		ck.warn(name, fmt.Sprintf("course %d has no enrolled users to check %s with", course, field), "rerun with --course N, a course with enrolled users")
	case with == 0:
		fix := "check moodle.user_match_field"
		if field == "idnumber" {
			fix = "make the site show idnumber: $CFG->showuseridentity must include idnumber (Site administration > Users > Permissions > User policies > Show user identity)"
		}
		ck.fail(name, true, fmt.Sprintf("none of the %d users enrolled in course %d comes with a %s: no CMIS member could ever be matched", len(users), course, field), fix)
	default:
		ck.ok(name, fmt.Sprintf("%d of the %d users enrolled in course %d come with a %s", with, len(users), course, field))
	}
}

func (ck *checker) checkBinding(ctx context.Context) {
	const name = "site binding"
	if ck.p.st == nil {
		ck.skip(name, "needs staging")
		return
	}
	b, err := ck.p.st.SiteBinding(ctx)
	if err != nil {
		ck.fail(name, false, err.Error(), "")
		return
	}
	switch {
	case ck.site == nil:
		ck.skip(name, "Moodle was not reached; staging is bound to "+describeSite(b))
	case b == nil:
		ck.ok(name, fmt.Sprintf("not bound yet: the first load binds staging to %q at %s", ck.site.SiteName, siteURLOf(*ck.site, ck.cfg.Moodle.URL)))
	case b.URL != store.SiteURLKey(siteURLOf(*ck.site, ck.cfg.Moodle.URL)):
		err := &SiteMismatchError{Bound: *b, URL: siteURLOf(*ck.site, ck.cfg.Moodle.URL), Name: ck.site.SiteName, ConfiguredURL: ck.cfg.Moodle.URL}
		ck.fail(name, true, err.Error(), "point moodle.url or staging.dsn at the right one; for the same site under a new address: cmissync run --rebind-site")
	default:
		ck.ok(name, "staging belongs to this site: "+describeSite(b))
	}
}

func (ck *checker) checkEmail(ctx context.Context) {
	const name = "email"
	e := ck.cfg.Email
	if e.SMTPHost == "" {
		ck.warn(name, "email.smtp_host is empty: reports are only kept as .eml files in "+e.ReportDir, "set email.smtp_host (and email.to) so that reports reach support staff")
	} else {
		if len(e.To) == 0 {
			ck.warn(name, "email.to is empty: reports cannot be sent, only kept in "+e.ReportDir, "set email.to to support staff's address")
		}
		if err := smtpReachable(ctx, e); err != nil {
			ck.fail(name, false, err.Error(), "check email.smtp_host, email.smtp_port and email.tls, and that this host may reach the server")
		} else {
			ck.ok(name, fmt.Sprintf("%s answers (tls %s)", netAddrOf(e), e.TLS))
		}
	}
	if err := writableDir(e.ReportDir); err != nil {
		ck.fail("report directory", true, err.Error(), "set email.report_dir to a directory cmissync may write to")
	}
	if !ck.sendMsg {
		return
	}
	if ck.p.mailer == nil {
		ck.fail("test email", false, "not sent: the mailer is set up with staging, which failed above", "fix staging first")
		return
	}
	d, err := ck.p.mailer.Send(ctx, report.Report{Site: ck.cfg.Site.Name, RunID: ck.p.runID, Step: "check", Started: time.Now(), Finished: time.Now(),
		Notices: []string{"A test message from cmissync check: reports from this installation reach you."}})
	switch {
	case err != nil:
		ck.fail("test email", false, err.Error(), "")
	case d.Sent:
		ck.ok("test email", "sent to "+strings.Join(e.To, ", "))
	case e.SMTPHost == "":
		ck.warn("test email", "kept as "+d.Path+" (no SMTP server is set)", "set email.smtp_host")
	default:
		ck.fail("test email", false, fmt.Sprintf("not sent (%v); kept as %s", d.Err, d.Path), "check email.username, email.password, email.from and email.to")
	}
}

func netAddrOf(e EmailConfig) string {
	port := e.SMTPPort
	if port == 0 {
		port = map[string]int{"starttls": 587, "tls": 465, "none": 25}[e.TLS]
	}
	return net.JoinHostPort(e.SMTPHost, strconv.Itoa(port))
}

// smtpTimeout bounds the SMTP check.
const smtpTimeout = 15 * time.Second

// smtpReachable connects to the SMTP server as reports are sent, reads its
// greeting, says EHLO, and with email.tls = starttls requires and makes
// STARTTLS (so a certificate that does not verify shows here); then it
// quits. It logs in only when a test email is sent.
func smtpReachable(ctx context.Context, e EmailConfig) error {
	addr := netAddrOf(e)
	ctx, cancel := context.WithTimeout(ctx, smtpTimeout)
	defer cancel()
	d := &net.Dialer{}
	var (
		conn net.Conn
		err  error
	)
	tlsConf := &tls.Config{ServerName: e.SMTPHost, MinVersion: tls.VersionTLS12}
	if e.TLS == "tls" {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConf}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, e.SMTPHost)
	if err != nil {
		return fmt.Errorf("%s: no SMTP greeting: %w", addr, err)
	}
	defer c.Close()
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	if err := c.Hello(host); err != nil {
		return fmt.Errorf("%s: EHLO refused: %w", addr, err)
	}
	if e.TLS == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("%s does not offer STARTTLS (email.tls = starttls); use email.tls = tls for an SMTPS port (465), or none only for a relay on this host", addr)
		}
		if err := c.StartTLS(tlsConf); err != nil {
			return fmt.Errorf("%s: STARTTLS failed: %w", addr, err)
		}
	}
	return c.Quit()
}

// writableDir checks that dir (or, when it does not exist yet, the
// directory it would be made in) accepts a new file.
func writableDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	probe := dir
	for {
		fi, err := os.Stat(probe)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("email.report_dir %s: %s is not a directory", dir, probe)
			}
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			return fmt.Errorf("email.report_dir %s: %w", dir, err)
		}
		probe = parent
	}
	f, err := os.CreateTemp(probe, ".cmissync-check-*")
	if err != nil {
		return fmt.Errorf("email.report_dir %s: reports could not be kept there: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
