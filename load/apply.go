package load

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/load/enrolsync"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/report"
	"github.com/cmissync/cmissync/stage/store"
)

// `cmissync apply`: the lines of an Enrol Sync command file (load/enrolsync)
// carried out in Moodle, as support staff's one-off corrections. Like the
// load, apply reads Moodle's real state first, plans every line against it,
// and sends the changes through the gate, in batches that a refused call
// splits until the bad item is alone, and reads every write back:
//
//   - apply.go is the entry point, the options and the outcome of each line;
//   - apply_find.go finds the courses, users and roles the lines name;
//   - apply_plan.go reads each course's enrolments (with roles) and groups
//     (with members) and plans each line against them: what it changes, or
//     why it fails, before anything is sent;
//   - apply_send.go creates groups, enrols, adds members, removes members,
//     removes roles and unenrols, in that order, and reads each back.
//
// A line is carried out whole or reported: it fails before anything is sent
// when something it names cannot be found, or when it would change a group
// cmissync owns; a line whose step fails is not taken further. Lines about
// the same person in the same course run in the file's order, one wave
// after the other, so a later line sees what an earlier one did.

// StockRoles are the role ids of a stock Moodle site, by shortname. No web
// service lists a site's roles: ApplyOptions.Roles adds or overrides names.
var StockRoles = map[string]int64{"manager": 1, "coursecreator": 2, "editingteacher": 3, "teacher": 4, "student": 5}

// Fields a command file may name courses and users by.
var (
	CourseFields = []string{"id", "shortname", "idnumber"}
	UserFields   = []string{"id", "username", "email", "idnumber"}
)

// ApplyOptions control an apply.
type ApplyOptions struct {
	RunID string
	// CourseField is the course field the cid column holds: id, shortname
	// (default) or idnumber. UserField is the user field of uid: id,
	// username, email or idnumber (default).
	CourseField, UserField string
	// Roles maps role shortnames to Moodle role ids, over StockRoles.
	Roles map[string]int64
	// Force lets lines change groups cmissync owns.
	Force bool
	// OwnedAddsUndone: the load removes members of its groups that CMIS
	// does not list (load.remove_members_not_in_cmis), so adding one by
	// hand is refused like a removal.
	OwnedAddsUndone bool
	// DryRun plans every line and sends nothing.
	DryRun bool
	// Concurrency is how many requests are in flight at once (default 4).
	Concurrency int
}

func (o *ApplyOptions) defaults() error {
	if o.CourseField == "" {
		o.CourseField = "shortname"
	}
	if o.UserField == "" {
		o.UserField = "idnumber"
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if !slices.Contains(CourseFields, o.CourseField) {
		return fmt.Errorf("course field %q: want one of %s", o.CourseField, strings.Join(CourseFields, ", "))
	}
	if !slices.Contains(UserFields, o.UserField) {
		return fmt.Errorf("user field %q: want one of %s", o.UserField, strings.Join(UserFields, ", "))
	}
	roles := maps.Clone(StockRoles)
	for k, v := range o.Roles {
		if v <= 0 {
			return fmt.Errorf("role %q: id %d is not a Moodle role id", k, v)
		}
		roles[strings.ToLower(strings.TrimSpace(k))] = v
	}
	o.Roles = roles
	return nil
}

// ApplyFunctions lists the web-service functions an apply of f needs: the
// lookups and reads always, the writes its verbs use. Only apply asks for
// the enrolment functions.
func ApplyFunctions(f *enrolsync.File) []string {
	need := []string{moodle.FnSiteInfo, moodle.FnCoursesByField, moodle.FnUsersByField, moodle.FnEnrolledUsers}
	add := func(fns ...string) {
		for _, fn := range fns {
			if !slices.Contains(need, fn) {
				need = append(need, fn)
			}
		}
	}
	for _, l := range f.Lines {
		if l.Err != nil {
			continue
		}
		switch l.Cmd {
		case enrolsync.Add:
			add(moodle.FnManualEnrolUsers)
		case enrolsync.Shift:
			add(moodle.FnManualEnrolUsers, moodle.FnUnassignRoles)
		case enrolsync.Del:
			add(moodle.FnUnassignRoles, moodle.FnManualUnenrolUsers, moodle.FnCourseGroups, moodle.FnGroupMembers)
		}
		switch l.GroupCmd {
		case enrolsync.GAdd:
			add(moodle.FnCourseGroups, moodle.FnGroupMembers, moodle.FnAddMembers)
		case enrolsync.GReplace:
			add(moodle.FnCourseGroups, moodle.FnGroupMembers, moodle.FnAddMembers, moodle.FnDeleteMembers)
		case enrolsync.GAddCreate:
			add(moodle.FnCourseGroups, moodle.FnGroupMembers, moodle.FnAddMembers, moodle.FnCreateGroups, moodle.FnUpdateGroups)
		case enrolsync.GReplaceCreate:
			add(moodle.FnCourseGroups, moodle.FnGroupMembers, moodle.FnAddMembers, moodle.FnDeleteMembers, moodle.FnCreateGroups, moodle.FnUpdateGroups)
		}
	}
	return need
}

// ApplyResult is what an apply did, line by line.
type ApplyResult struct {
	File   *enrolsync.File
	Lines  []*LineOutcome
	Counts ApplyCounts
	// Failures are the failed lines in the reports' shape (Params holds
	// FILE:LINE and the line as written).
	Failures []report.Failure
	// Warnings are about the whole file (the hidden column ignored); a
	// line's own are in its outcome.
	Warnings []string
}

// ApplyCounts counts an apply's lines and changes.
type ApplyCounts struct {
	Lines, LinesDone, LinesUnchanged, LinesFailed                     int64
	GroupsCreated, Enrolled, RolesRemoved, Unenrolled, Added, Removed int64
}

// Map flattens the counts for the runs table.
func (c ApplyCounts) Map() map[string]int64 {
	return map[string]int64{
		"lines": c.Lines, "lines_done": c.LinesDone, "lines_unchanged": c.LinesUnchanged, "lines_failed": c.LinesFailed,
		"groups_created": c.GroupsCreated, "enrolled": c.Enrolled, "roles_removed": c.RolesRemoved,
		"unenrolled": c.Unenrolled, "members_added": c.Added, "members_removed": c.Removed,
	}
}

// LineOutcome is what became of one line.
type LineOutcome struct {
	Line *enrolsync.Line
	// CourseID and UserID are Moodle's, once found; Course names the
	// course for people.
	CourseID, UserID int64
	Course           string
	// Done lists the line's changes that were made (on a dry run: that
	// would be made); Notes what is worth knowing (already enrolled, ...);
	// Warnings what support staff must hear of: groups the CMIS sync owns
	// touched.
	Done, Notes, Warnings []string
	// Failed: the line failed, for Reason (Code is its errorcode); its
	// changes after the failing one were not made.
	Failed       bool
	Code, Reason string
}

// Text renders the outcome on one line for people.
func (o *LineOutcome) Text(file string, dry bool) string {
	l := o.Line
	var b strings.Builder
	fmt.Fprintf(&b, "line %d", l.No)
	if l.Origin != "" {
		fmt.Fprintf(&b, " (from %s)", l.Origin)
	}
	if l.Err == nil {
		what := l.Cmd
		if l.Role != "" {
			what += " " + l.Role
		}
		fmt.Fprintf(&b, ": %s %s in %s", what, l.User, l.Course)
		if l.GroupCmd != "" {
			fmt.Fprintf(&b, ", %s %s", l.GroupCmd, quoteAll(l.Groups))
		}
	}
	switch {
	case o.Failed && len(o.Done) > 0:
		fmt.Fprintf(&b, ": FAILED after %s: %s", strings.Join(o.Done, "; "), o.Reason)
	case o.Failed:
		b.WriteString(": FAILED: " + o.Reason)
	case len(o.Done) > 0 && dry:
		b.WriteString(": would " + strings.Join(o.Done, "; "))
	case len(o.Done) > 0:
		b.WriteString(": done: " + strings.Join(o.Done, "; "))
	default:
		b.WriteString(": nothing to do")
	}
	notes := o.Notes
	for _, w := range o.Warnings {
		notes = append(notes, "warning: "+w)
	}
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, "; ") + ")")
	}
	return b.String()
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 0 {
		return "(no group)"
	}
	return strings.Join(q, ", ")
}

// Codes of the reasons apply fails a line itself (Moodle's answers keep
// their errorcodes).
const (
	codeUnknownCourse  = "unknowncourse"
	codeUnknownUser    = "unknownuser"
	codeUnknownRole    = "unknownrole"
	codeUnknownGroup   = "unknowngroup"
	codeOwned          = "ownedbycmis"
	codeNotEnrolled    = "notenrolled"
	codeCourse         = "course"
	codeNotDone        = "notdone"
	codeHeld           = "held"
	codeNotVerified    = "notverified"
	codeRoleManaged    = "rolemanaged"
	codeOtherEnrolment = "otherenrolment"
)

// lineRun is a line being carried out.
type lineRun struct {
	out    *LineOutcome
	l      *enrolsync.Line
	course *applyCourse
	user   int64
	// roleID is the role of add and shift, and of del when the file names
	// it by a known name or id; roleName is the name the file gives.
	roleID   int64
	roleName string
	wave     int
	// finished: the line's wave ran to its end.
	finished bool
}

func (r *lineRun) failed() bool { return r.out.Failed }

// warn adds a warning to the line's outcome.
func (r *lineRun) warn(msg string) { r.out.Warnings = append(r.out.Warnings, msg) }

// applier carries out one command file.
type applier struct {
	st   *store.Store
	mc   *moodle.Client
	opts ApplyOptions
	log  logrus.FieldLogger
	file *enrolsync.File
	res  *ApplyResult

	mu      sync.Mutex // guards res and the outcomes while batches run
	gate    *gate
	courses map[int64]*applyCourse
	users   map[string]userRef
	// owned lists, per course, the Moodle ids of the groups staging
	// records: the groups cmissync owns.
	owned map[int64]map[int64]bool
}

// Apply carries out the command file's lines in Moodle (or, on a dry run,
// plans them and sends nothing) and says what became of each. It returns
// an error only for what stops the whole file (staging unreachable, a bad
// token, a function missing from the service, an interruption); the lines
// it stopped are then failed too, and the result says what was done.
// Failed lines are in the result, and, unless it is a dry run, in
// rest_error_logs.
func Apply(ctx context.Context, st *store.Store, mc *moodle.Client, f *enrolsync.File, opts ApplyOptions, log logrus.FieldLogger) (*ApplyResult, error) {
	res := &ApplyResult{File: f}
	if err := opts.defaults(); err != nil {
		return res, err
	}
	a := &applier{st: st, mc: mc, opts: opts, log: log, file: f, res: res, courses: map[int64]*applyCourse{}}
	var runs []*lineRun
	var hidden []string
	for _, l := range f.Lines {
		out := &LineOutcome{Line: l}
		res.Lines = append(res.Lines, out)
		var le *enrolsync.LineError
		if errors.As(l.Err, &le) {
			a.failLine(out, le.Code, le.Msg, "", nil)
			continue
		}
		if l.Hidden == "1" {
			hidden = append(hidden, strconv.Itoa(l.No))
		}
		runs = append(runs, &lineRun{out: out, l: l, roleName: strings.ToLower(l.Role)})
	}
	if len(hidden) > 0 {
		msg := fmt.Sprintf("%s: hidden = 1 on line %s is ignored: Moodle no longer has hidden role assignments", f.Name, strings.Join(hidden, ", "))
		res.Warnings = append(res.Warnings, msg)
		log.Warn(msg)
	}
	err := a.run(ctx, runs)
	if err != nil {
		// What the error stopped is not done: those lines fail too, so
		// that the tryback file holds them.
		for _, r := range runs {
			if !r.failed() && !r.finished {
				a.failLine(r.out, codeNotDone, "not carried out: apply stopped ("+err.Error()+")", "", nil)
			}
		}
	}
	a.count()
	if !opts.DryRun {
		rows := make([]store.RestError, 0, len(res.Failures))
		for _, fl := range res.Failures {
			rows = append(rows, store.RestError{RunID: opts.RunID, Step: "apply", CourseID: int64(fl.CourseID), Object: fl.User,
				Function: fl.Function, Params: report.Scrub(fl.Params), Exception: fl.Exception, ErrorCode: fl.ErrorCode, Message: fl.Message})
		}
		err = errors.Join(err, st.RecordRestErrors(context.WithoutCancel(ctx), rows))
	}
	return res, err
}

// run checks the service, finds what the lines name, and carries the lines
// out, wave after wave.
func (a *applier) run(ctx context.Context, runs []*lineRun) error {
	if _, err := a.mc.CheckFunctions(ctx, ApplyFunctions(a.file)); err != nil {
		return err
	}
	if err := a.resolve(ctx, runs); err != nil {
		return err
	}
	for _, wave := range a.waves(runs) {
		if err := a.wave(ctx, wave); err != nil {
			return err
		}
		for _, r := range wave {
			r.finished = true
		}
	}
	return nil
}

// failLine fails a line: its outcome, and a failure for the report. err,
// when set, is Moodle's answer.
func (a *applier) failLine(out *LineOutcome, code, reason, function string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if out.Failed {
		return
	}
	f := report.Failure{CourseID: int(out.CourseID), Function: function, ErrorCode: code, Exception: "cmissync", Message: reason,
		Params: out.Line.Where(a.file.Name) + ": " + out.Line.Raw}
	if c := a.courses[out.CourseID]; c != nil {
		f.CourseName = c.label
	}
	if out.Line.User != "" {
		f.User = out.Line.User
		if out.UserID != 0 {
			f.User += fmt.Sprintf(" (Moodle user %d)", out.UserID)
		}
	}
	var me *moodle.Error
	var te *moodle.TransportError
	switch {
	case errors.As(err, &me):
		f.ErrorCode, f.Exception = me.ErrorCode, me.Exception
		if f.ErrorCode == "" {
			f.ErrorCode = me.Exception
		}
	case errors.As(err, &te):
		f.ErrorCode, f.Exception = report.CodeTransient, "transport"
	case err != nil:
		f.ErrorCode = "error"
	}
	if err != nil {
		reason += ": " + callError(err)
		f.Message = reason
	}
	if f.Function == "" {
		f.Function = "(apply)"
	}
	out.Failed, out.Code, out.Reason = true, f.ErrorCode, reason
	a.res.Failures = append(a.res.Failures, f)
	a.log.WithFields(logrus.Fields{"line": out.Line.No, "course": out.CourseID, "user": out.UserID, "errorcode": f.ErrorCode}).Warn("line failed: " + reason)
}

// callError says briefly what went wrong with a call: Moodle's answer, or
// that none came (the HTTP status, not the page a proxy sent).
func callError(err error) string {
	var me *moodle.Error
	var te *moodle.TransportError
	switch {
	case errors.As(err, &me) && me.Exception == "cmissync":
		return me.Message
	case errors.As(err, &me):
		code := me.ErrorCode
		if code == "" {
			code = me.Exception
		}
		return "Moodle answered " + code + ": " + me.Message
	case errors.As(err, &te) && te.Status != 0:
		return fmt.Sprintf("no answer from Moodle (%s: HTTP %d)", te.Function, te.Status)
	case errors.As(err, &te):
		return fmt.Sprintf("no answer from Moodle (%s: %v)", te.Function, te.Err)
	}
	return err.Error()
}

func (a *applier) count() {
	c := &a.res.Counts
	for _, o := range a.res.Lines {
		c.Lines++
		switch {
		case o.Failed:
			c.LinesFailed++
		case len(o.Done) > 0:
			c.LinesDone++
		default:
			c.LinesUnchanged++
		}
	}
}
