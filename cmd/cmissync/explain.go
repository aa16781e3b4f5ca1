package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
)

func (a *app) explainCommand() *cobra.Command {
	var (
		courses []int64
		opts    explainOptions
		asJSON  bool
	)
	c := &cobra.Command{
		Use:   "explain",
		Short: "Explain why a course, group or person is as it is, with the fix",
		Long: `Follows the data for a course, one screen each, and ends with a verdict in
plain words and the fix:

  mappings   its mapped_modules rows and what the stage step makes of them
  CMIS       what the last extract lists for its modules (groups, members),
             and the rows that extract refused that may concern it
  staging    its staged groupings, groups and memberships: flags, owned or
             found, parked, attempts, last error, waiting for enrolment
  Moodle     its real state now, read from Moodle as a load reads it (the
             load's own plan, sending nothing): what was changed by hand,
             what the next load does, and what it holds back and why;
             --offline skips Moodle
  audit      the last changes cmissync made there, and the last failures

--user narrows it to one person (a CMIS student or staff id, or a Moodle
user id): "why isn't student X in group Y?"; --group to one group (its CMIS
group code, its idnumber cmis:MODULE:GROUP, or its Moodle id).

The verdicts are, for example: the course has no mapping; a mapping is RMV
or not understood; a module had no groups in the last extract; rows were
refused; a student is not enrolled (waiting since when); an item is parked
(the last error); a group was deleted, renamed or taken out of its grouping
in Moodle by hand; a deletion is held back (why); or all is in step.`,
		Args: cobra.NoArgs,
		RunE: a.withPipeline(&courses, func(ctx context.Context, p *pipeline) error {
			if len(courses) == 0 {
				return &usageError{err: errors.New("--course is required: the Moodle course to explain")}
			}
			opts.user, opts.group = strings.TrimSpace(opts.user), strings.TrimSpace(opts.group)
			var out []*explanation
			for _, course := range courses {
				e, err := p.explain(ctx, course, opts)
				if err != nil {
					return err
				}
				out = append(out, e)
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			for i, e := range out {
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				e.writeText(a.stdout)
			}
			return nil
		}),
	}
	courseFlag(c, &courses)
	c.Flags().StringVar(&opts.user, "user", "", "only this person: a CMIS student or staff id, or a Moodle user id")
	c.Flags().StringVar(&opts.group, "group", "", "only this group: its CMIS group code, its idnumber (cmis:MODULE:GROUP) or its Moodle id")
	c.Flags().BoolVar(&opts.offline, "offline", false, "do not read Moodle: staging and the last extract only")
	c.Flags().BoolVar(&asJSON, "json", false, "print the explanation as JSON (a list, one entry per course)")
	c.Flags().IntVar(&opts.limit, "limit", 10, "audit entries and failures to show")
	return a.withHelp(c)
}

type explainOptions struct {
	user, group string
	offline     bool
	limit       int
}

// explanation is everything explain found for one course.
type explanation struct {
	Course     int64            `json:"courseid"`
	CourseName string           `json:"course_name,omitempty"`
	User       string           `json:"user,omitempty"`
	Group      string           `json:"group,omitempty"`
	Mappings   []mappingView    `json:"mappings"`
	Extract    *statusDump      `json:"last_extract"`
	CMIS       []explainModule  `json:"cmis"`
	Refused    []explainRefused `json:"refused_rows"`
	// RefusedTotal counts the refused rows that may concern the course,
	// of which Refused shows the first.
	RefusedTotal int64          `json:"refused_rows_total"`
	Staged       explainStaged  `json:"staged"`
	Moodle       explainMoodle  `json:"moodle"`
	Audit        []explainAudit `json:"audit"`
	Failures     []explainFail  `json:"failures"`
	Verdicts     []verdict      `json:"verdicts"`
}

// explainModule is what the last extract lists for a mapped module.
type explainModule struct {
	Module string             `json:"modulecode"`
	Name   string             `json:"modulename,omitempty"`
	Groups []store.DumpGroup  `json:"groups"`
	Total  int                `json:"groups_total"`
	Person []explainDumpEntry `json:"person_rows,omitempty"`
}

type explainDumpEntry struct {
	Group string `json:"groupcode"`
	Role  string `json:"role"`
}

type explainRefused struct {
	Source string `json:"source"`
	Line   int64  `json:"line"`
	Row    string `json:"row"`
	Reason string `json:"reason"`
	Module string `json:"modulecode"`
	Group  string `json:"groupcode"`
	CMISID string `json:"cmisid"`
}

type explainStaged struct {
	Groupings []explainObject `json:"groupings"`
	Groups    []explainObject `json:"groups"`
	// Members lists the memberships of the person or group asked about,
	// else only those with something to say (parked, failing, waiting,
	// removed by hand).
	Members []explainMember `json:"members"`
	// MemberCount counts every staged membership of the groups shown.
	MemberCount int `json:"member_count"`
}

type explainObject struct {
	IDNumber   string `json:"idnumber"`
	Name       string `json:"name"`
	MoodleName string `json:"moodle_name,omitempty"`
	MoodleID   int64  `json:"moodleid,omitempty"`
	Module     string `json:"modulecode"`
	Group      string `json:"groupcode,omitempty"`
	// Flags says what staging records, in words: to add, to delete (why),
	// to rename, in its grouping, adopted, parked.
	Flags     []string `json:"flags"`
	Attempts  int      `json:"attempts"`
	LastError string   `json:"last_error,omitempty"`
	Members   int      `json:"members,omitempty"`
	Owned     int      `json:"members_added_by_cmissync,omitempty"`
	Found     int      `json:"members_found,omitempty"`
	Waiting   int      `json:"members_waiting,omitempty"`
	parked    bool
	assigned  bool
	toRename  bool
	lastSet   string // the name cmissync last set in Moodle
}

type explainMember struct {
	IDNumber        string     `json:"group_idnumber"`
	Role            string     `json:"role"`
	CMISID          string     `json:"cmisid"`
	MoodleUserID    int64      `json:"moodle_userid,omitempty"`
	Flags           []string   `json:"flags"`
	Attempts        int        `json:"attempts"`
	LastError       string     `json:"last_error,omitempty"`
	WaitingSince    *time.Time `json:"waiting_since,omitempty"`
	WaitingRuns     int        `json:"waiting_runs,omitempty"`
	owned, toAdd    bool
	removed, parked bool
}

type explainMoodle struct {
	// Read: Moodle was read just now; Offline: the plan was built from
	// staging alone (--offline).
	Read    bool   `json:"read"`
	Offline bool   `json:"offline"`
	Problem string `json:"problem,omitempty"`
	// State of the course: ok, deleted, inaccessible or unreadable.
	State string       `json:"state,omitempty"`
	Items []*load.Item `json:"items"`
	Held  []*load.Item `json:"held"`
	// Guard: the mass-change guard holds deletions in this plan.
	Guard []string `json:"guard,omitempty"`
}

type explainAudit struct {
	Time     time.Time `json:"time"`
	RunID    string    `json:"run_id"`
	Action   string    `json:"action"`
	Object   string    `json:"object"`
	IDNumber string    `json:"idnumber"`
	Name     string    `json:"name,omitempty"`
	MoodleID int64     `json:"moodleid,omitempty"`
	User     string    `json:"user,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

type explainFail struct {
	Time      time.Time `json:"time"`
	RunID     string    `json:"run_id"`
	Object    string    `json:"object"`
	Function  string    `json:"function"`
	ErrorCode string    `json:"errorcode"`
	Message   string    `json:"message"`
}

// verdict is one conclusion, in plain words, with what to do.
type verdict struct {
	Code string `json:"code"`
	Text string `json:"text"`
	Fix  string `json:"fix,omitempty"`
}

// selection is what --user and --group narrow the explanation to.
type selection struct {
	user       string
	moodleUser int64 // --user read as a Moodle user id
	group      string
	// groups are the (module, group) pairs --group matched, idnumbers
	// their idnumbers.
	groups    map[[2]string]bool
	idnumbers map[string]bool
}

func (s *selection) wantGroup(module, group string) bool {
	return s.group == "" || s.groups[[2]string{module, group}]
}

func (s *selection) wantPerson(cmisid string, moodleUser int64) bool {
	return s.user == "" || cmisid == s.user || (s.moodleUser != 0 && moodleUser == s.moodleUser)
}

// wantItem: a plan item about the selection.
func (s *selection) wantItem(it *load.Item) bool {
	if s.group != "" && (it.Object == "grouping" || !s.idnumbers[it.IDNumber]) {
		return false
	}
	if s.user != "" && (it.Object != "member" || !s.wantPerson(it.CMISID, it.UserID)) {
		return false
	}
	return true
}

// explain gathers everything about a course and concludes.
func (p *pipeline) explain(ctx context.Context, course int64, opts explainOptions) (*explanation, error) {
	e := &explanation{Course: course, User: opts.user, Group: opts.group, Mappings: []mappingView{}, CMIS: []explainModule{},
		Refused: []explainRefused{}, Audit: []explainAudit{}, Failures: []explainFail{}, Verdicts: []verdict{}}
	sel := &selection{user: opts.user, group: opts.group, groups: map[[2]string]bool{}, idnumbers: map[string]bool{}}
	maps, err := p.st.MappingsWithDump(ctx, store.Filter{Courses: []int64{course}})
	if err != nil {
		return nil, err
	}
	for _, m := range maps {
		e.Mappings = append(e.Mappings, viewMapping(m))
	}
	staged, err := p.st.StagedCourse(ctx, course)
	if err != nil {
		return nil, err
	}
	sel.resolveUser(staged)
	if sel.user != opts.user {
		e.User = fmt.Sprintf("%s (Moodle user %s)", sel.user, opts.user)
	}
	dump, err := p.st.CurrentDump(ctx)
	if err != nil {
		return nil, err
	}
	if dump != nil {
		e.Extract = &statusDump{RunID: dump.RunID, Started: dump.Started, Finished: dump.Finished, Refused: dump.Refused}
	}
	if err := p.explainCMIS(ctx, e, sel, staged, dump != nil); err != nil {
		return nil, err
	}
	if err := p.explainRefused(ctx, e, sel); err != nil {
		return nil, err
	}
	e.explainStaged(sel, staged)
	if err := p.explainMoodle(ctx, e, sel, opts.offline); err != nil {
		return nil, err
	}
	if err := p.explainHistory(ctx, e, sel, opts.limit); err != nil {
		return nil, err
	}
	e.conclude(sel, staged, p.cfg)
	return e, nil
}

// resolveUser reads --user as a Moodle user id too, and when it is one
// that staging knows under a CMIS id, follows that CMIS id instead.
func (s *selection) resolveUser(staged *store.CourseStaged) {
	if s.user == "" {
		return
	}
	uid, err := strconv.ParseInt(s.user, 10, 64)
	if err != nil || uid <= 0 {
		return
	}
	s.moodleUser = uid
	cmisid := ""
	for _, m := range staged.Members {
		if m.CMISID == s.user {
			return // a CMIS id
		}
		if m.MoodleUserID == uid {
			cmisid = m.CMISID
		}
	}
	if cmisid != "" {
		s.user = cmisid
	}
}

// explainCMIS reads the last extract for each mapped module, and resolves
// --group against it and staging.
func (p *pipeline) explainCMIS(ctx context.Context, e *explanation, sel *selection, staged *store.CourseStaged, extracted bool) error {
	if sel.group != "" {
		for _, g := range staged.Groups {
			if g.GroupCode == sel.group || g.IDNumber == sel.group || (g.MoodleID != 0 && strconv.FormatInt(g.MoodleID, 10) == sel.group) {
				sel.groups[[2]string{g.ModuleCode, g.GroupCode}] = true
			}
		}
	}
	modules := map[string]bool{}
	for _, m := range e.Mappings {
		if modules[m.ModuleCode] || !extracted {
			continue
		}
		modules[m.ModuleCode] = true
		groups, err := p.st.DumpGroups(ctx, m.ModuleCode)
		if err != nil {
			return err
		}
		em := explainModule{Module: m.ModuleCode, Groups: []store.DumpGroup{}, Total: len(groups)}
		for _, g := range groups {
			em.Name = g.ModuleName
			if sel.group != "" && (g.Group == sel.group || stage.GroupIDNumber(g.Module, g.Group) == sel.group) {
				sel.groups[[2]string{g.Module, g.Group}] = true
			}
		}
		for _, g := range groups {
			if sel.wantGroup(g.Module, g.Group) {
				em.Groups = append(em.Groups, g)
			}
		}
		if sel.user != "" {
			rows, err := p.st.DumpMemberships(ctx, m.ModuleCode, sel.user)
			if err != nil {
				return err
			}
			for _, r := range rows {
				if sel.wantGroup(r.Module, r.Group) {
					em.Person = append(em.Person, explainDumpEntry{Group: r.Group, Role: r.Role})
				}
			}
		}
		e.CMIS = append(e.CMIS, em)
	}
	for k := range sel.groups {
		sel.idnumbers[stage.GroupIDNumber(k[0], k[1])] = true
	}
	for _, g := range staged.Groups {
		if sel.groups[[2]string{g.ModuleCode, g.GroupCode}] {
			sel.idnumbers[g.IDNumber] = true
		}
	}
	return nil
}

// explainRefused lists the refused rows of the last extract that may
// describe what is asked about.
func (p *pipeline) explainRefused(ctx context.Context, e *explanation, sel *selection) error {
	var modules []string
	for _, m := range e.Mappings {
		modules = append(modules, m.ModuleCode)
	}
	if len(modules) == 0 {
		return nil
	}
	rows, _, err := p.st.RefusedRows(ctx, modules, 0)
	if err != nil {
		return err
	}
	for _, r := range rows {
		k := r.Key()
		if sel.group != "" && !anyCovers(k, sel.groups) {
			continue
		}
		if sel.user != "" && r.CMISID != "" && r.CMISID != sel.user {
			continue
		}
		e.RefusedTotal++
		if len(e.Refused) < refusedShown {
			e.Refused = append(e.Refused, explainRefused{Source: r.Source, Line: r.Line, Row: r.Row, Reason: r.Reason, Module: r.Module, Group: r.Group, CMISID: r.CMISID})
		}
	}
	return nil
}

// refusedShown bounds the refused rows explain lists.
const refusedShown = 10

func anyCovers(k store.RefusedKey, groups map[[2]string]bool) bool {
	for g := range groups {
		if k.Covers(g[0], g[1], "") {
			return true
		}
	}
	return false
}

// explainStaged summarises the staged rows of the course.
func (e *explanation) explainStaged(sel *selection, staged *store.CourseStaged) {
	s := &e.Staged
	s.Groupings, s.Groups, s.Members = []explainObject{}, []explainObject{}, []explainMember{}
	for _, g := range staged.Groupings {
		if sel.group != "" {
			continue
		}
		s.Groupings = append(s.Groupings, stagedObject(g.GroupingRow.IDNumber, g.Name, g.MoodleName, g.MoodleID, g.ModuleCode, "",
			g.ToAdd, g.ToDelete, g.ToRename, g.Parked, g.Adopted, false, g.DeleteReason, g.StagedState))
	}
	byGroup := map[string]*explainObject{}
	for _, g := range staged.Groups {
		if !sel.wantGroup(g.ModuleCode, g.GroupCode) {
			continue
		}
		o := stagedObject(g.IDNumber, g.Name, g.MoodleName, g.MoodleID, g.ModuleCode, g.GroupCode,
			g.ToAdd, g.ToDelete, g.ToRename, g.Parked, g.Adopted, g.Assigned, g.DeleteReason, g.StagedState)
		s.Groups = append(s.Groups, o)
	}
	for i := range s.Groups {
		byGroup[s.Groups[i].IDNumber] = &s.Groups[i]
	}
	for _, m := range staged.Members {
		idn := stage.GroupIDNumber(m.ModuleCode, m.GroupCode)
		o := byGroup[idn]
		if o == nil {
			// A group row with an idnumber of the legacy form.
			for _, g := range staged.Groups {
				if g.ModuleCode == m.ModuleCode && g.GroupCode == m.GroupCode {
					o, idn = byGroup[g.IDNumber], g.IDNumber
				}
			}
		}
		if o == nil && !(sel.group == "" && sel.user != "") {
			continue
		}
		if o != nil {
			s.MemberCount++
			o.Members++
			switch {
			case m.ToAdd:
			case m.Owned:
				o.Owned++
			default:
				o.Found++
			}
			if !m.WaitingSince.IsZero() {
				o.Waiting++
			}
		}
		em := stagedMember(idn, m)
		notable := m.Parked || m.Attempts > 0 || !m.WaitingSince.IsZero() || m.RemovedInMoodle
		if sel.wantPerson(m.CMISID, m.MoodleUserID) && (sel.user != "" || sel.group != "" || notable) && len(s.Members) < membersShown {
			s.Members = append(s.Members, em)
		}
	}
}

// membersShown bounds the memberships explain lists.
const membersShown = 40

func stagedObject(idnumber, name, moodleName string, moodleID int64, module, group string, toAdd, toDelete, toRename, parked, adopted, assigned bool, deleteReason string, st store.StagedState) explainObject {
	o := explainObject{IDNumber: idnumber, Name: name, MoodleID: moodleID, Module: module, Group: group, Attempts: st.Attempts, LastError: st.LastError,
		Flags: []string{}, parked: parked, assigned: assigned, toRename: toRename, lastSet: moodleName}
	if moodleName != "" && moodleName != name {
		o.MoodleName = moodleName
	}
	switch {
	case moodleID != 0:
		o.Flags = append(o.Flags, "in Moodle")
	case toAdd:
		o.Flags = append(o.Flags, "to create")
	}
	if group != "" && moodleID != 0 {
		if assigned {
			o.Flags = append(o.Flags, "in its grouping")
		} else {
			o.Flags = append(o.Flags, "not in its grouping yet")
		}
	}
	if toDelete {
		o.Flags = append(o.Flags, "to delete ("+load.DeleteReasonText(deleteReason)+")")
	}
	if toRename {
		o.Flags = append(o.Flags, "to rename")
	}
	if adopted {
		o.Flags = append(o.Flags, "adopted (hand-made; given back, never deleted)")
	}
	if parked {
		o.Flags = append(o.Flags, "parked")
	}
	return o
}

func stagedMember(idnumber string, m store.StagedMember) explainMember {
	em := explainMember{IDNumber: idnumber, Role: m.Role, CMISID: m.CMISID, MoodleUserID: m.MoodleUserID, Flags: []string{},
		Attempts: m.Attempts, LastError: m.LastError, WaitingRuns: m.WaitingRuns,
		owned: m.Owned && !m.ToAdd && m.MoodleUserID != 0, toAdd: m.ToAdd, removed: m.RemovedInMoodle, parked: m.Parked}
	switch {
	case m.ToAdd:
		em.Flags = append(em.Flags, "to add")
	case m.Owned:
		em.Flags = append(em.Flags, "added by cmissync")
	default:
		em.Flags = append(em.Flags, "found in the group (not cmissync's: never removed by it)")
	}
	if m.ToDelete {
		em.Flags = append(em.Flags, "to remove ("+load.DeleteReasonText(m.DeleteReason)+")")
	}
	if m.RemovedInMoodle {
		em.Flags = append(em.Flags, "removed in Moodle by hand, left out")
	}
	if !m.WaitingSince.IsZero() {
		since := m.WaitingSince
		em.WaitingSince = &since
		em.Flags = append(em.Flags, fmt.Sprintf("waiting for enrolment since %s (%d runs)", localTime(since), m.WaitingRuns))
	}
	if m.Parked {
		em.Flags = append(em.Flags, "parked")
	}
	return em
}

// explainMoodle builds the load's own plan for the course, reading Moodle
// (or not, offline), after the same checks a run makes.
func (p *pipeline) explainMoodle(ctx context.Context, e *explanation, sel *selection, offline bool) error {
	m := &e.Moodle
	m.Items, m.Held = []*load.Item{}, []*load.Item{}
	if !offline {
		if err := p.preflight(ctx); err != nil {
			var sm *SiteMismatchError
			if errors.As(err, &sm) {
				m.Problem = sm.Error()
				e.verdict("site-mismatch", fmt.Sprintf("moodle.url answers as another Moodle site (%q at %s) than the one staging belongs to (%q at %s): runs against it are refused, and Moodle was not read", sm.Name, sm.URL, sm.Bound.Name, sm.Bound.URL),
					"point moodle.url (or staging.dsn) at the right site; only for the same site under a new address: cmissync run --rebind-site")
			} else {
				m.Problem = errorText(err, p.cfg)
				e.verdict("moodle-unavailable", "Moodle could not be read: "+m.Problem, "cmissync check says what to fix; cmissync explain --offline explains from staging alone")
			}
			offline = true
		}
	}
	p.filter = store.Filter{Courses: []int64{e.Course}}
	pl, err := p.makePlan(ctx, offline)
	if err != nil {
		if offline {
			return err
		}
		m.Problem = errorText(err, p.cfg)
		e.verdict("moodle-unavailable", "Moodle could not be read: "+m.Problem, "cmissync check says what to fix; cmissync explain --offline explains from staging alone")
		if pl, err = p.makePlan(ctx, true); err != nil {
			return err
		}
		offline = true
	}
	m.Read, m.Offline = !offline, offline
	if !offline && p.site.info != nil && p.site.info.Has(moodle.FnCoursesByField) {
		if cs, err := p.mc.CoursesByID(ctx, []int64{e.Course}); err == nil && len(cs) == 1 {
			e.CourseName = fmt.Sprintf("%s (%s)", cs[0].FullName, cs[0].ShortName)
		}
	}
	m.Guard = pl.Guard
	for _, cp := range pl.Courses {
		if cp.CourseID != e.Course {
			continue
		}
		m.State = cp.State
		if cp.Problem != "" {
			m.Problem = cp.Problem
		}
		for _, it := range cp.Items {
			if sel.wantItem(it) {
				m.Items = append(m.Items, it)
			}
		}
		for _, it := range cp.Held {
			if sel.wantItem(it) {
				m.Held = append(m.Held, it)
			}
		}
	}
	return nil
}

// errorText renders an error for the explanation, without secrets.
func errorText(err error, cfg *Config) string {
	return strings.TrimPrefix(scrubErr(err, cfg).Error(), "configuration: ")
}

// explainHistory reads the audit trail and the REST failures.
func (p *pipeline) explainHistory(ctx context.Context, e *explanation, sel *selection, limit int) error {
	q := store.AuditQuery{Courses: []int64{e.Course}, User: sel.user, Limit: limit}
	if sel.group != "" && len(sel.idnumbers) == 1 {
		for idn := range sel.idnumbers {
			q.IDNumber = idn
		}
	}
	entries, err := p.st.FindAudit(ctx, q)
	if err != nil {
		return err
	}
	for _, a := range entries {
		if sel.group != "" && !sel.idnumbers[a.IDNumber] {
			continue
		}
		e.Audit = append(e.Audit, explainAudit{Time: a.Created, RunID: a.RunID, Action: a.Action, Object: a.Object, IDNumber: a.IDNumber,
			Name: a.Name, MoodleID: a.MoodleID, User: auditUser(a.AuditEntry), Detail: a.Detail})
	}
	fails, err := p.st.CourseRestErrors(ctx, []int64{e.Course}, 0)
	if err != nil {
		return err
	}
	var groups map[string]bool
	if sel.user != "" {
		groups = map[string]bool{}
		for _, m := range e.Staged.Members {
			groups[m.IDNumber] = true
		}
	}
	for i := len(fails) - 1; i >= 0 && len(e.Failures) < limit; i-- {
		f := fails[i]
		if (sel.group != "" && !sel.idnumbers[f.Object]) || (groups != nil && !groups[f.Object]) {
			continue
		}
		e.Failures = append([]explainFail{{Time: f.Created, RunID: f.RunID, Object: f.Object, Function: f.Function, ErrorCode: f.ErrorCode, Message: f.Message}}, e.Failures...)
	}
	return nil
}

func (e *explanation) verdict(code, text, fix string) {
	e.Verdicts = append(e.Verdicts, verdict{Code: code, Text: text, Fix: fix})
}

// who names the person asked about.
func (e *explanation) who(sel *selection, role string) string {
	if role == "" {
		role = "person"
		for _, m := range e.Staged.Members {
			if m.CMISID == sel.user {
				role = m.Role
			}
		}
	}
	return role + " " + sel.user
}

// conclude turns what was found into verdicts, following the data from
// the mapping to Moodle.
func (e *explanation) conclude(sel *selection, staged *store.CourseStaged, cfg *Config) {
	course := e.Course
	if len(e.Mappings) == 0 {
		fix := fmt.Sprintf("map it: cmissync map add --course %d --module CODE (or in whatever maintains mapped_modules)", course)
		if len(staged.Groups) > 0 {
			fix += fmt.Sprintf("; staging still records %d groups of it: a mapping set to RMV removes them, cmissync forget --course %d forgets them", len(staged.Groups), course)
		}
		e.verdict("no-mapping", fmt.Sprintf("course %d has no mapping: no row of mapped_modules gives it the groups of a CMIS module", course), fix)
		e.concludeMoodle(sel, staged)
		e.finish(sel)
		return
	}
	byModule := map[string]explainModule{}
	for _, m := range e.CMIS {
		byModule[m.Module] = m
	}
	noExtract := false
	for _, m := range e.Mappings {
		switch m.State {
		case mapNotUnderstood:
			e.verdict("mapping-not-understood", fmt.Sprintf("the mapping of module %s is not understood: %s", m.ModuleCode, m.Meaning),
				fmt.Sprintf("cmissync map set --course %d --module %s --group-import ADD --mapping-action ADD (or RMV)", course, m.ModuleCode))
			continue
		case mapGroupsRemoved, mapMappingRemoved:
			n := countStaged(staged, m.ModuleCode)
			text := fmt.Sprintf("module %s is mapped with RMV (group_import %s, mapping_action %s): cmissync removes its groups from course %d", m.ModuleCode, m.GroupImport, m.MappingAction, course)
			if n == 0 {
				text = fmt.Sprintf("module %s is mapped with RMV (group_import %s, mapping_action %s): course %d does not take its groups, and nothing of it is left to remove", m.ModuleCode, m.GroupImport, m.MappingAction, course)
			}
			e.verdict("mapping-rmv", text, fmt.Sprintf("if the course should have them: cmissync map set --course %d --module %s --group-import ADD --mapping-action ADD", course, m.ModuleCode))
			continue
		}
		if e.Extract == nil {
			noExtract = true
			continue
		}
		cm := byModule[m.ModuleCode]
		switch {
		case cm.Total == 0:
			e.verdict("module-empty", fmt.Sprintf("module %s had no groups in the last extract (%s)", m.ModuleCode, localMinute(e.Extract.Started)),
				fmt.Sprintf("check the module code (cmissync map list --course %d) and that CMIS timetables groups for it (the view CMIS_MOODLE_V_MODULE_GROUP); the next run picks them up", course))
		case countStaged(staged, m.ModuleCode) == 0:
			e.verdict("not-staged", fmt.Sprintf("module %s has %d groups in the last extract, but the stage step has not staged them for course %d yet", m.ModuleCode, cm.Total, course),
				fmt.Sprintf("the next run does it; now: cmissync stage --course %d && cmissync load --course %d", course, course))
		}
	}
	if noExtract {
		e.verdict("no-extract", "no extract has run yet: staging knows nothing of CMIS", "cmissync run (or cmissync extract)")
	}
	if e.RefusedTotal > 0 {
		where := make([]string, 0, len(e.Refused))
		for _, r := range e.Refused {
			where = append(where, fmt.Sprintf("%s line %d", r.Source, r.Line))
		}
		if int64(len(where)) < e.RefusedTotal {
			where = append(where, fmt.Sprintf("and %d more", e.RefusedTotal-int64(len(where))))
		}
		e.verdict("refused-rows", fmt.Sprintf("the last extract refused %s that may describe this (%s): what they describe is kept as it is, neither updated nor deleted", plural(int(e.RefusedTotal), "row"), strings.Join(where, ", ")),
			"fix the rows in CMIS (or the CSV files) as the reasons above say; the next run takes them")
	}
	e.concludeSelection(sel)
	e.concludeMoodle(sel, staged)
	e.finish(sel)
}

// localMinute renders a time for a verdict: local, to the minute.
func localMinute(t time.Time) string {
	if t.IsZero() {
		return "time unknown"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func countStaged(staged *store.CourseStaged, module string) int {
	n := 0
	for _, g := range staged.Groups {
		if g.ModuleCode == module {
			n++
		}
	}
	return n
}

// concludeSelection says whether CMIS knows the group or person asked
// about.
func (e *explanation) concludeSelection(sel *selection) {
	if e.Extract == nil {
		return
	}
	if sel.group != "" && len(sel.groups) == 0 {
		e.verdict("group-unknown", fmt.Sprintf("%q is neither a group of the modules mapped to course %d in the last extract nor a group cmissync staged there", sel.group, e.Course),
			"check the group code, idnumber (cmis:MODULE:GROUP) or Moodle id; cmissync explain --course N lists the course's groups")
		return
	}
	if sel.user == "" {
		return
	}
	var in []string
	for _, m := range e.CMIS {
		for _, r := range m.Person {
			in = append(in, m.Module+"/"+r.Group)
		}
	}
	if len(in) > 0 {
		return
	}
	where := "any group of the modules mapped to course " + strconv.FormatInt(e.Course, 10)
	if sel.group != "" {
		where = "group " + sel.group
	}
	text := fmt.Sprintf("CMIS does not list %s in %s (last extract, %s)", sel.user, where, localMinute(e.Extract.Started))
	if sel.moodleUser != 0 {
		for _, m := range e.Staged.Members {
			if m.MoodleUserID == sel.moodleUser {
				return // a Moodle user id: the staged rows say who it is
			}
		}
	}
	e.verdict("not-in-cmis", text, "CMIS (the timetable) must list them in the group; the next run adds them once it does")
}

// concludeMoodle reads the plan and the staged rows for what blocks, what
// was changed by hand, and what the next load does.
func (e *explanation) concludeMoodle(sel *selection, staged *store.CourseStaged) {
	course := e.Course
	m := &e.Moodle
	switch m.State {
	case "deleted":
		e.verdict("course-deleted", fmt.Sprintf("course %d no longer exists in Moodle: the next load retires its mappings (sets them to RMV) and forgets its staged rows", course),
			"nothing to do; if it was deleted by mistake and restored, set its mappings to ADD again (cmissync map set)")
	case "inaccessible":
		e.verdict("course-inaccessible", fmt.Sprintf("cmissync's web-service user cannot open course %d: nothing in it is changed or forgotten", course),
			"give the service user a role in the course with moodle/course:view and moodle/course:managegroups")
	case "unreadable":
		e.verdict("course-unreadable", fmt.Sprintf("course %d could not be read from Moodle: %s", course, m.Problem), "rerun; cmissync check if it persists")
	}
	objects := map[string]explainObject{}
	for _, o := range append(append([]explainObject{}, e.Staged.Groupings...), e.Staged.Groups...) {
		objects[o.IDNumber] = o
		if o.parked {
			e.verdict("parked", fmt.Sprintf("%s %s %q is parked after %s; last error: %s", kindOf(o), o.IDNumber, o.Name, plural(o.Attempts, "failed attempt"), orNone(o.LastError)),
				fmt.Sprintf("fix the cause the error names, then: cmissync retry --course %d", course))
		} else if o.Attempts > 0 {
			e.verdict("failing", fmt.Sprintf("Moodle refused %s %s %s in a row; last error: %s", kindOf(o), o.IDNumber, plural(o.Attempts, "time"), orNone(o.LastError)),
				"fix the cause the error names; the next load tries again (it is parked after load.park_after failures)")
		}
	}
	members := allMembers(staged)
	for _, mm := range e.Staged.Members {
		switch {
		case mm.removed:
			e.verdict("member-removed-respected", fmt.Sprintf("%s %s was removed from %s in Moodle by hand, and cmissync leaves them out (load.on_member_removed = respect)", mm.Role, mm.CMISID, mm.IDNumber),
				"add them back in Moodle, or set load.on_member_removed = restore")
		case mm.parked:
			e.verdict("parked", fmt.Sprintf("%s %s in %s is parked after %s; last error: %s", mm.Role, mm.CMISID, mm.IDNumber, plural(mm.Attempts, "failed attempt"), orNone(mm.LastError)),
				fmt.Sprintf("fix the cause the error names, then: cmissync retry --course %d", course))
		case !mm.owned && !mm.toAdd && sel.user != "":
			e.verdict("found", fmt.Sprintf("%s %s was already in %s when cmissync came (put there by someone else): cmissync records it and never removes it", mm.Role, mm.CMISID, mm.IDNumber), "")
		}
	}
	var waiting []*load.Item
	pending := map[string]int{}
	// What a recreation brings along (its assignment, its members) is part
	// of the verdict that says it is recreated.
	recreated := map[string]bool{}
	for _, it := range m.Items {
		if o, ok := objects[it.IDNumber]; ok && it.Action == load.ActCreate && o.MoodleID != 0 {
			recreated[it.IDNumber] = true
		}
	}
	for _, it := range m.Items {
		if recreated[it.IDNumber] && it.Action != load.ActCreate {
			continue
		}
		o, staged := objects[it.IDNumber]
		switch {
		case it.Action == load.ActWait:
			waiting = append(waiting, it)
		case it.Action == load.ActAdd && it.Object == "member" && waitingMember(members, it):
			// Waiting already, and tried again (alone) by the next run.
			waiting = append(waiting, it)
		case it.Action == load.ActCreate && staged && o.MoodleID != 0:
			e.verdict("deleted-by-hand", fmt.Sprintf("%s %s %q (Moodle id %d) was deleted in Moodle by hand; the next run recreates it, with its members", it.Object, it.IDNumber, o.Name, o.MoodleID),
				fmt.Sprintf("nothing to do (load.on_deleted = recreate); now: cmissync load --course %d", course))
		case it.Action == load.ActPark && staged:
			e.verdict("deleted-by-hand", fmt.Sprintf("%s %s %q (Moodle id %d) was deleted in Moodle by hand; it is not recreated (load.on_deleted = forget)", it.Object, it.IDNumber, o.Name, o.MoodleID),
				fmt.Sprintf("to have it back: cmissync retry --course %d", course))
		case it.Action == load.ActAssign && staged && o.assigned && it.MoodleID != 0:
			e.verdict("moved-out-of-grouping", fmt.Sprintf("group %s %q was taken out of its grouping in Moodle by hand; the next run puts it back", it.IDNumber, it.Name),
				fmt.Sprintf("nothing to do; now: cmissync load --course %d", course))
		case it.Action == load.ActKeepName && staged && o.lastSet != "" && o.lastSet != it.Name:
			e.verdict("renamed-by-hand", fmt.Sprintf("%s %s was renamed in Moodle by hand from %q to %q; cmissync keeps that name (load.on_renamed = keep)", it.Object, it.IDNumber, o.lastSet, it.Name),
				"nothing to do; set load.on_renamed = restore to have cmissync's name back")
		case it.Action == load.ActKeepName:
			e.verdict("name-taken", fmt.Sprintf("%s %s keeps its name %q: %s", it.Object, it.IDNumber, it.Name, it.Reason),
				"rename the other one in Moodle, or change stage.group_name / stage.grouping_name")
		case it.Action == load.ActRename && staged && !o.toRename:
			e.verdict("renamed-by-hand", fmt.Sprintf("%s %s was renamed in Moodle by hand to %q; the next run restores %q (load.on_renamed = restore)", it.Object, it.IDNumber, it.From, it.Name),
				"nothing to do; set load.on_renamed = keep to keep names teachers give")
		case it.Action == load.ActAdd && it.Object == "member":
			// A member staging recorded in a group that is in Moodle (not
			// one being recreated) was taken out by hand.
			if mm, ok := members[it.IDNumber+"\x00"+it.Role+"\x00"+it.CMISID]; ok && !mm.toAdd && mm.MoodleUserID != 0 && it.MoodleID != 0 {
				e.verdict("member-removed-by-hand", fmt.Sprintf("%s %s was removed from %s in Moodle by hand; the next run adds them back (load.on_member_removed = restore)", it.Role, it.CMISID, it.IDNumber),
					"nothing to do; set load.on_member_removed = respect to leave such removals alone")
			} else {
				pending[it.Action+" "+it.Object]++
			}
		case it.Action == load.ActRespect:
			e.verdict("member-removed-respected", fmt.Sprintf("%s %s was removed from %s in Moodle by hand, and cmissync leaves them out (load.on_member_removed = respect)", it.Role, it.CMISID, it.IDNumber),
				"add them back in Moodle, or set load.on_member_removed = restore")
		case isWrite(it.Action):
			pending[it.Action+" "+it.Object]++
		}
	}
	e.concludeWaiting(sel, waiting, members)
	e.concludeHeld()
	if len(pending) > 0 {
		var parts []string
		for k, n := range pending {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(parts)
		text := fmt.Sprintf("the next load makes these changes in course %d: %s", course, strings.Join(parts, ", "))
		if m.Offline {
			text += " (from staging alone: Moodle was not read)"
		}
		e.verdict("pending", text, fmt.Sprintf("nothing to do, the next run makes them; now: cmissync load --course %d (cmissync plan --course %d lists them)", course, course))
	}
}

// allMembers is every staged membership of the course, by group
// idnumber, role and CMIS id, as plan items name them.
func allMembers(staged *store.CourseStaged) map[string]explainMember {
	idn := map[[2]string]string{}
	for _, g := range staged.Groups {
		idn[[2]string{g.ModuleCode, g.GroupCode}] = g.IDNumber
	}
	out := make(map[string]explainMember, len(staged.Members))
	for _, m := range staged.Members {
		group := idn[[2]string{m.ModuleCode, m.GroupCode}]
		if group == "" {
			group = stage.GroupIDNumber(m.ModuleCode, m.GroupCode)
		}
		out[group+"\x00"+m.Role+"\x00"+m.CMISID] = stagedMember(group, m)
	}
	return out
}

// waitingMember reports whether staging records the member of an item as
// waiting for enrolment.
func waitingMember(members map[string]explainMember, it *load.Item) bool {
	mm, ok := members[it.IDNumber+"\x00"+it.Role+"\x00"+it.CMISID]
	return ok && mm.WaitingSince != nil
}

// concludeWaiting reports members who are not enrolled in the course.
func (e *explanation) concludeWaiting(sel *selection, waiting []*load.Item, members map[string]explainMember) {
	if len(waiting) == 0 {
		return
	}
	fix := fmt.Sprintf("enrol them in course %d (or set load.enrol_missing = on); cmissync tries them every run in their first week of waiting, then weekly: after enrolling them, cmissync retry --course %d makes the next run add them", e.Course, e.Course)
	if sel.user != "" {
		it := waiting[0]
		text := fmt.Sprintf("%s %s is not enrolled in course %d", it.Role, it.CMISID, e.Course)
		if mm, ok := members[it.IDNumber+"\x00"+it.Role+"\x00"+it.CMISID]; ok && mm.WaitingSince != nil {
			text += fmt.Sprintf(": waiting since %s (%d runs)", localMinute(*mm.WaitingSince), mm.WaitingRuns)
		}
		var groups []string
		for _, w := range waiting {
			groups = append(groups, w.IDNumber)
		}
		text += "; CMIS puts them in " + strings.Join(groups, ", ")
		e.verdict("not-enrolled", text, fix)
		return
	}
	people := map[string]bool{}
	var names []string
	for _, w := range waiting {
		if !people[w.CMISID] {
			people[w.CMISID] = true
			names = append(names, w.Role+" "+w.CMISID)
		}
	}
	sort.Strings(names)
	shown := names
	if len(shown) > 5 {
		shown = append(append([]string{}, names[:5]...), fmt.Sprintf("and %d more", len(names)-5))
	}
	verb := "are"
	if len(names) == 1 {
		verb = "is"
	}
	e.verdict("not-enrolled", fmt.Sprintf("%s that CMIS puts in groups of course %d %s not enrolled in it, so %s: %s", plural(len(names), "person", "people"), e.Course, verb, plural(len(waiting), "membership waits", "memberships wait"), strings.Join(shown, ", ")),
		fix+"; cmissync explain --course N --user ID says since when")
}

// concludeHeld reports deletions a policy holds back, by reason.
func (e *explanation) concludeHeld() {
	var reasons []string
	byReason := map[string][]string{}
	for _, it := range e.Moodle.Held {
		if byReason[it.Held] == nil {
			reasons = append(reasons, it.Held)
		}
		what := it.Action + " " + it.Object + " " + it.IDNumber
		if it.Object == "member" {
			what += " " + it.Role + " " + it.CMISID
		}
		byReason[it.Held] = append(byReason[it.Held], what)
	}
	for _, r := range reasons {
		items := byReason[r]
		shown := items
		if len(shown) > 3 {
			shown = append(append([]string{}, items[:3]...), fmt.Sprintf("and %d more", len(items)-3))
		}
		fix := "fix what the reason names; the deletion follows at the next run once nothing protects it"
		if len(e.Moodle.Guard) > 0 {
			fix = fmt.Sprintf("if the deletions are intended: cmissync load --course %d --approve-deletes (this plan counts course %d alone; a run's guard counts every course: cmissync plan)", e.Course, e.Course)
		}
		e.verdict("held", fmt.Sprintf("%s held back (%s): %s", plural(len(items), "deletion"), r, strings.Join(shown, "; ")), fix)
	}
}

// finish concludes "in step" when nothing else was found.
func (e *explanation) finish(sel *selection) {
	if len(e.Verdicts) > 0 {
		return
	}
	if !e.Moodle.Read {
		e.verdict("in-step-offline", fmt.Sprintf("staging has nothing left to do for course %d; Moodle was not read (--offline), so changes made there by hand are not seen", e.Course), "")
		return
	}
	switch {
	case sel.user != "":
		var groups []string
		for _, m := range e.Staged.Members {
			if !m.toAdd && m.MoodleUserID != 0 {
				groups = append(groups, m.IDNumber)
			}
		}
		text := fmt.Sprintf("%s is in step: in Moodle in %s, as CMIS says", e.who(sel, ""), strings.Join(groups, ", "))
		if len(groups) == 0 {
			text = fmt.Sprintf("%s is in step: in no group of course %d, as CMIS says", e.who(sel, ""), e.Course)
		}
		e.verdict("in-step", text, "")
	case sel.group != "":
		var idns []string
		for idn := range sel.idnumbers {
			idns = append(idns, idn)
		}
		sort.Strings(idns)
		subject, them := "group "+strings.Join(idns, ", ")+" is", "it"
		if len(idns) > 1 {
			subject, them = "groups "+strings.Join(idns, ", ")+" are", "them"
		}
		e.verdict("in-step", fmt.Sprintf("%s in step: Moodle holds %s with the members CMIS lists", subject, them), "")
	default:
		e.verdict("in-step", fmt.Sprintf("course %d is in step: Moodle holds its %d groupings and %d groups with the members CMIS lists", e.Course, len(e.Staged.Groupings), len(e.Staged.Groups)), "")
	}
}

// plural says "1 row" or "3 rows"; with a second form, "1 person" or
// "3 people".
func plural(n int, one string, many ...string) string {
	if len(many) > 0 {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many[0])
	}
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

func kindOf(o explainObject) string {
	if o.Group == "" {
		return "grouping"
	}
	return "group"
}

func orNone(s string) string {
	if s == "" {
		return "none recorded"
	}
	return s
}

// isWrite: the plan item changes Moodle.
func isWrite(action string) bool {
	switch action {
	case load.ActCreate, load.ActAdopt, load.ActRename, load.ActAssign, load.ActAdd, load.ActRemove, load.ActGiveBack, load.ActDelete:
		return true
	}
	return false
}

// writeText prints the explanation for people.
func (e *explanation) writeText(w io.Writer) {
	title := fmt.Sprintf("Course %d", e.Course)
	if e.CourseName != "" {
		title += ": " + e.CourseName
	}
	if e.User != "" {
		title += ", person " + e.User
	}
	if e.Group != "" {
		title += ", group " + e.Group
	}
	fmt.Fprintln(w, title)

	fmt.Fprintln(w, "\nMapping (mapped_modules)")
	if len(e.Mappings) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, m := range e.Mappings {
		fmt.Fprintf(w, "  %s  group_import %s  mapping_action %s: %s\n", m.ModuleCode, m.GroupImport, m.MappingAction, m.Meaning)
	}

	if e.Extract == nil {
		fmt.Fprintln(w, "\nCMIS: no extract has run yet")
	} else {
		fmt.Fprintf(w, "\nCMIS (last extract: run %s, %s)\n", e.Extract.RunID, localTime(e.Extract.Started))
		if len(e.CMIS) == 0 {
			fmt.Fprintln(w, "  no module is mapped to the course")
		}
		for _, m := range e.CMIS {
			name := ""
			if m.Name != "" {
				name = fmt.Sprintf(" %q", m.Name)
			}
			fmt.Fprintf(w, "  %s%s: %s\n", m.Module, name, plural(m.Total, "group"))
			for _, g := range m.Groups {
				fmt.Fprintf(w, "    %s %q: %s, %s\n", g.Group, g.GroupName, plural(int(g.Students), "student"), plural(int(g.Tutors), "tutor"))
			}
			for _, r := range m.Person {
				fmt.Fprintf(w, "    %s %s is in %s\n", r.Role, e.User, r.Group)
			}
		}
		if e.RefusedTotal > 0 {
			fmt.Fprintf(w, "  refused by that extract, and may describe this: %s\n", plural(int(e.RefusedTotal), "row"))
			for _, r := range e.Refused {
				fmt.Fprintf(w, "    %s line %d: %s (%s)\n", r.Source, r.Line, r.Reason, oneLine(r.Row, 80))
			}
		}
	}

	fmt.Fprintln(w, "\nStaging")
	s := e.Staged
	if len(s.Groupings)+len(s.Groups) == 0 {
		fmt.Fprintln(w, "  nothing staged")
	}
	for _, o := range append(append([]explainObject{}, s.Groupings...), s.Groups...) {
		line := fmt.Sprintf("  %s %s %q", kindOf(o), o.IDNumber, o.Name)
		if o.MoodleName != "" {
			line += fmt.Sprintf(" (in Moodle %q)", o.MoodleName)
		}
		if o.MoodleID != 0 {
			line += fmt.Sprintf(" Moodle id %d", o.MoodleID)
		}
		line += ": " + strings.Join(o.Flags, ", ")
		if o.Group != "" {
			line += fmt.Sprintf("; %d members (%d added by cmissync, %d found", o.Members, o.Owned, o.Found)
			if o.Waiting > 0 {
				line += fmt.Sprintf(", %d waiting", o.Waiting)
			}
			line += ")"
		}
		if o.Attempts > 0 {
			line += fmt.Sprintf("; %d failed attempts, last: %s", o.Attempts, oneLine(o.LastError, 100))
		}
		fmt.Fprintln(w, line)
	}
	for _, m := range s.Members {
		line := fmt.Sprintf("  member %s %s of %s", m.Role, m.CMISID, m.IDNumber)
		if m.MoodleUserID != 0 {
			line += fmt.Sprintf(" (Moodle user %d)", m.MoodleUserID)
		}
		line += ": " + strings.Join(m.Flags, ", ")
		if m.Attempts > 0 {
			line += fmt.Sprintf("; %d failed attempts, last: %s", m.Attempts, oneLine(m.LastError, 100))
		}
		fmt.Fprintln(w, line)
	}

	m := e.Moodle
	switch {
	case m.Read:
		fmt.Fprintln(w, "\nMoodle now (read just now; the load's plan, nothing sent)")
	case m.Problem != "":
		fmt.Fprintln(w, "\nMoodle: not read; the plan from staging alone")
	default:
		fmt.Fprintln(w, "\nMoodle: not read (--offline); the plan from staging alone")
	}
	if m.State != "" && m.State != "ok" && m.Problem != "" {
		fmt.Fprintf(w, "  course %s: %s\n", m.State, m.Problem)
	}
	if len(m.Items)+len(m.Held) == 0 {
		fmt.Fprintln(w, "  nothing to change")
	}
	for i, it := range m.Items {
		if i == membersShown {
			fmt.Fprintf(w, "  … and %d more (cmissync plan --course %d --json lists every item)\n", len(m.Items)-membersShown, e.Course)
			break
		}
		fmt.Fprintf(w, "  %s\n", it.Line())
	}
	for _, it := range m.Held {
		fmt.Fprintf(w, "  held back: %s\n", it.Line())
	}

	if len(e.Audit) == 0 {
		fmt.Fprintln(w, "\nAudit trail: cmissync has changed nothing of this here")
	} else {
		fmt.Fprintf(w, "\nAudit trail (the last %s cmissync made here)\n", plural(len(e.Audit), "change"))
	}
	for _, a := range e.Audit {
		line := fmt.Sprintf("  %s  %s %s %s", localTime(a.Time), a.Action, a.Object, a.IDNumber)
		if a.Name != "" {
			line += fmt.Sprintf(" %q", a.Name)
		}
		if a.MoodleID != 0 {
			line += fmt.Sprintf(" id %d", a.MoodleID)
		}
		if a.User != "" {
			line += " user " + a.User
		}
		if a.Detail != "" {
			line += ": " + oneLine(a.Detail, 100)
		}
		fmt.Fprintln(w, line)
	}
	if len(e.Failures) == 0 {
		fmt.Fprintln(w, "\nFailures (rest_error_logs): none")
	} else {
		fmt.Fprintf(w, "\nFailures (rest_error_logs, the last %d)\n", len(e.Failures))
	}
	for _, f := range e.Failures {
		fmt.Fprintf(w, "  %s  run %s %s %s: %s (%s)\n", localTime(f.Time), f.RunID, f.Object, f.Function, oneLine(f.Message, 120), f.ErrorCode)
	}

	fmt.Fprintln(w, "\nVerdict")
	for _, v := range e.Verdicts {
		fmt.Fprintf(w, "  - %s\n", v.Text)
		if v.Fix != "" {
			fmt.Fprintf(w, "    fix: %s\n", v.Fix)
		}
	}
}
