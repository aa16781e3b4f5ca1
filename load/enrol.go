package load

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/report"
	"github.com/cmissync/cmissync/stage/store"
)

// Enrolment, the way Moodle's own meta-enrolment sync does it:
//
//   - load.enrol_missing = on: a person CMIS lists in a group who is not
//     enrolled in the course is enrolled with the manual enrolment plugin,
//     in the role configured for their CMIS list, and added to their groups
//     in the same run. Whether they are enrolled is read (once per course)
//     only in courses with members to add whom staging does not already
//     know as enrolled there. cmissync records every enrolment it makes.
//   - load.unenrol_action = suspend or unenrol: an enrolment cmissync made
//     is suspended or removed once the person is in no CMIS group of the
//     course. It is a deletion like any other: it needs positive evidence
//     (each of the person's memberships there removed on evidence, nothing
//     of theirs refused by the extract), is held with the rest when the
//     mass-change guard holds, passes the gate, and waits for the person's
//     removals of the same run.
//     Enrolments made any other way are never touched.
//   - a person cmissync suspended who is back in CMIS is made active again.

// Unenrol actions (load.unenrol_action).
const (
	UnenrolKeep    = "keep"    // leave the enrolment as it is (default)
	UnenrolSuspend = "suspend" // suspend it: the person keeps their data and groups
	UnenrolRemove  = "unenrol" // remove it: Moodle removes them from every group and purges their participation
)

// Stock role ids of a Moodle site, by shortname. A site can renumber or
// rename roles; load.student_role and load.tutor_role then take the id.
var stockRoles = map[string]int64{"manager": 1, "coursecreator": 2, "editingteacher": 3, "teacher": 4, "student": 5}

// Default roles of the two CMIS lists.
const (
	DefaultStudentRole = "student"
	DefaultTutorRole   = "teacher" // non-editing teacher: tutors mark, they do not edit the course
)

// ParseRole resolves a role given by id or by a stock shortname.
func ParseRole(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("role %q: a role id is a positive number", s)
		}
		return n, nil
	}
	if id, ok := stockRoles[strings.ToLower(s)]; ok {
		return id, nil
	}
	names := make([]string, 0, len(stockRoles))
	for n := range stockRoles {
		names = append(names, n)
	}
	sort.Strings(names)
	return 0, fmt.Errorf("role %q: not a stock role shortname (%s); give the role id from Site administration > Users > Define roles",
		s, strings.Join(names, ", "))
}

// NeededFunctions are the web-service functions a load with these options
// calls: moodle.RequiredFunctions, the enrolment functions its settings
// need, and core_course_get_courses_by_field to skip ended courses.
func NeededFunctions(opts Options) []string {
	out := append([]string(nil), moodle.RequiredFunctions...)
	out = append(out, moodle.EnrolFunctionsFor(opts.EnrolMissing, opts.UnenrolAction == UnenrolSuspend, opts.UnenrolAction == UnenrolRemove)...)
	if opts.SkipEndedCourses {
		out = append(out, moodle.FnCoursesByField)
	}
	return out
}

// roleID is the Moodle role of a CMIS list.
func (o *Options) roleID(role string) int64 {
	if role == store.RoleTutor {
		return o.TutorRoleID
	}
	return o.StudentRoleID
}

// evidenceReleased is the evidence of a suspension or unenrolment: the
// person is in no CMIS group of the course, and each of their memberships
// there was removed on evidence (this run: the removals the item waits for).
const evidenceReleased = "released"

// enrolmentsByCourse groups the recorded enrolments by course.
func enrolmentsByCourse(es []store.Enrolment) map[int64][]store.Enrolment {
	out := map[int64][]store.Enrolment{}
	for _, e := range es {
		out[e.CourseID] = append(out[e.CourseID], e)
	}
	return out
}

// knownEnrolled reports whether staging knows the person as enrolled in the
// course: a member recorded in one of its groups, or enrolled by cmissync.
func (b *builder) knownEnrolled(course int64, cmisid string) bool {
	return b.inCourse[course][cmisid] || b.madeEnrolment(course, cmisid) != nil
}

func (b *builder) madeEnrolment(course int64, cmisid string) *store.Enrolment {
	for i, e := range b.recorded[course] {
		if e.CMISID == cmisid {
			return &b.recorded[course][i]
		}
	}
	return nil
}

// enrolFirst plans the enrolment of a person not enrolled in the course
// (once per person and role), and returns the item their additions wait for.
func (b *builder) enrolFirst(cp *CoursePlan, m *store.MemberRow, uid int64) *Item {
	role := b.opts.roleID(m.Role)
	key := enrolKey{cp.CourseID, uid, role}
	if it := b.enrols[key]; it != nil {
		return it
	}
	it := cp.item(&Item{Action: ActEnrol, Object: "enrolment", Role: m.Role, CMISID: m.CMISID, UserID: uid, RoleID: role,
		Reason: "listed by CMIS, not enrolled in the course (load.enrol_missing = on)"})
	b.enrols[key] = it
	return it
}

type enrolKey struct{ course, user, role int64 }

// releases plans, in a course, what happens to the enrolments cmissync
// made: suspended people back in CMIS are made active again, and with
// load.unenrol_action the enrolments of people in no CMIS group of the
// course are suspended or removed.
func (b *builder) releases(cp *CoursePlan) {
	recorded := b.recorded[cp.CourseID]
	if cp.State != "ok" || len(recorded) == 0 {
		return
	}
	live := map[string]bool{} // people CMIS lists in the course
	// removals: what must happen before a person's enrolment is released:
	// their memberships removed, and the groups they are in deleted,
	// archived or given back. stuck: a membership of theirs that cmissync
	// cannot remove now (parked).
	removals := map[string][]*Item{}
	stuck := map[string]string{}
	groupGoes := map[*object]*Item{}
	for _, it := range cp.Items {
		switch {
		case it.Object == "member" && it.Action == ActRemove && it.CMISID != "":
			removals[it.CMISID] = append(removals[it.CMISID], it)
		case it.Object == "group" && it.obj != nil && (it.Action == ActDelete || it.Action == ActArchive || it.Action == ActGiveBack):
			groupGoes[it.obj] = it
		}
	}
	for _, o := range cp.staging.groups {
		for _, m := range cp.staging.members[o.key()] {
			switch {
			case !m.ToDelete:
				live[m.CMISID] = true
			case m.Parked || o.parked:
				stuck[m.CMISID] = fmt.Sprintf("their membership of group %s is parked (cmissync retry --course %d)", o.idnumber, cp.CourseID)
			case groupGoes[o] != nil:
				removals[m.CMISID] = append(removals[m.CMISID], groupGoes[o])
			}
		}
	}
	done := map[int64]bool{} // one item per person: unenrolment takes every role
	for _, e := range recorded {
		if done[e.UserID] {
			continue
		}
		switch {
		case live[e.CMISID] && e.Status == store.EnrolmentSuspended:
			if !b.canEnrol {
				continue // reported by NeededFunctions' check when a setting needs it
			}
			done[e.UserID] = true
			cp.item(&Item{Action: ActEnrol, Object: "enrolment", Role: e.Role, CMISID: e.CMISID, UserID: e.UserID, RoleID: e.RoleID,
				Reason: "back in CMIS: the enrolment cmissync suspended is made active again"})
		case live[e.CMISID]:
		case b.opts.UnenrolAction == UnenrolSuspend && e.Status == store.EnrolmentActive,
			b.opts.UnenrolAction == UnenrolRemove:
			done[e.UserID] = true
			action, why := ActSuspend, "in no CMIS group of the course any more: the enrolment cmissync made is suspended (load.unenrol_action = suspend)"
			if b.opts.UnenrolAction == UnenrolRemove {
				action, why = ActUnenrol, "in no CMIS group of the course any more: the enrolment cmissync made is removed (load.unenrol_action = unenrol)"
			}
			it := cp.item(&Item{Action: action, Object: "enrolment", Role: e.Role, CMISID: e.CMISID, UserID: e.UserID, RoleID: e.RoleID, Reason: why})
			// No weight of its own: the guard counts the memberships whose
			// removal it follows, and holds it with them.
			it.evidence, it.after = evidenceReleased, removals[e.CMISID]
			if stuck[e.CMISID] != "" {
				cp.hold(it, stuck[e.CMISID])
			}
		}
	}
}

// protectsPerson says why a release lacks evidence: a refused extract row
// that may be one of the person's memberships in the course (a refused
// member or tutor row of theirs, or with an unreadable id, in one of the
// course's modules; a refused group row of those modules), or "".
func (ix *refusalIndex) protectsPerson(modules map[string]bool, cmisid string) string {
	for _, t := range []store.DumpTable{store.ModuleGroups, store.GroupMembers, store.GroupTutors} {
		if k, ok := ix.wild[t]; ok {
			return refusedWhy(k)
		}
		for module, keys := range ix.byModule[t] {
			if !modules[module] {
				continue
			}
			for _, k := range keys {
				if t == store.ModuleGroups || k.CMISID == "" || k.CMISID == cmisid {
					return refusedWhy(k)
				}
			}
		}
	}
	return ""
}

// enrol enrols people (and reactivates suspended enrolments cmissync
// made), as many per call as max_input_vars allows; a refused call is
// split until each bad entry is alone. Their additions wait for them.
func (l *loader) enrol(ctx context.Context, items []*Item) error {
	return l.sendEnrolments(ctx, l.gate.pass(items), false)
}

// release suspends or removes enrolments cmissync made.
func (l *loader) release(ctx context.Context, items []*Item) error {
	items = l.gate.pass(items)
	var suspend, unenrol []*Item
	for _, it := range items {
		if it.Action == ActSuspend {
			suspend = append(suspend, it)
		} else {
			unenrol = append(unenrol, it)
		}
	}
	if err := l.sendEnrolments(ctx, suspend, true); err != nil {
		return err
	}
	var gone []store.Enrolment
	var audit []store.AuditEntry
	err := batches(ctx, l.opts.Concurrency, unenrol, l.mc.Capacity(moodle.VarsPerUnenrolment),
		func(ctx context.Context, b []*Item) (struct{}, error) {
			us := make([]moodle.Unenrolment, len(b))
			for i, it := range b {
				us[i] = moodle.Unenrolment{UserID: it.UserID, CourseID: it.CourseID}
			}
			return struct{}{}, l.mc.UnenrolUsers(ctx, us)
		},
		func(b []*Item, _ struct{}) error {
			for _, it := range b {
				it.Outcome = "done"
				gone = append(gone, store.Enrolment{CourseID: it.CourseID, UserID: it.UserID})
				audit = append(audit, l.audit(it, ActUnenrol, it.Reason))
			}
			return nil
		},
		func(it *Item, err error) error {
			return l.fail(ctx, it, enrolFailure(it, moodle.FnManualUnenrolUsers), err)
		})
	if err != nil {
		return err
	}
	l.count(&l.res.Unenrolled, int64(len(gone)))
	return l.st.ForgetEnrolments(ctx, gone, audit)
}

// sendEnrolments sends enrol_manual_enrol_users for the items, suspended or
// active, and records what Moodle accepted.
func (l *loader) sendEnrolments(ctx context.Context, items []*Item, suspend bool) error {
	var made []store.Enrolment
	var audit []store.AuditEntry
	status := store.EnrolmentActive
	if suspend {
		status = store.EnrolmentSuspended
	}
	err := batches(ctx, l.opts.Concurrency, items, l.mc.Capacity(moodle.VarsPerEnrolment),
		func(ctx context.Context, b []*Item) (struct{}, error) {
			return struct{}{}, l.mc.EnrolUsers(ctx, enrolmentsOf(b, suspend))
		},
		func(b []*Item, _ struct{}) error {
			for _, it := range b {
				it.Outcome = "done"
				made = append(made, store.Enrolment{CourseID: it.CourseID, UserID: it.UserID, CMISID: it.CMISID, Role: it.Role, RoleID: it.RoleID, Status: status})
				audit = append(audit, l.audit(it, it.Action, fmt.Sprintf("role %d: %s", it.RoleID, it.Reason)))
			}
			return nil
		},
		func(it *Item, err error) error {
			return l.fail(ctx, it, enrolFailure(it, moodle.FnManualEnrolUsers), err)
		})
	if err != nil {
		return err
	}
	if suspend {
		l.count(&l.res.Suspended, int64(len(made)))
	} else {
		l.count(&l.res.Enrolled, int64(len(made)))
	}
	return l.st.RecordEnrolments(ctx, made, audit)
}

func enrolmentsOf(items []*Item, suspend bool) []moodle.Enrolment {
	out := make([]moodle.Enrolment, len(items))
	for i, it := range items {
		out[i] = moodle.Enrolment{RoleID: it.RoleID, UserID: it.UserID, CourseID: it.CourseID, Suspend: suspend}
	}
	return out
}

// enrolFailure describes a failed enrolment item for the report.
func enrolFailure(it *Item, function string) report.Failure {
	f := failure(it, function, "")
	f.User = fmt.Sprintf("%s %s (Moodle user %d)", it.Role, it.CMISID, it.UserID)
	switch function {
	case moodle.FnManualUnenrolUsers:
		f.Params = moodle.UnenrolForm([]moodle.Unenrolment{{UserID: it.UserID, CourseID: it.CourseID}}).String()
	default:
		f.Params = moodle.EnrolForm(enrolmentsOf([]*Item{it}, it.Action == ActSuspend)).String()
	}
	return f
}

// enrolmentWait says why a member to add waits for their enrolment, or ""
// when they may be added.
func enrolmentWait(it *Item) string {
	e := it.enrolment
	if e == nil || e.Outcome == "done" {
		return ""
	}
	switch {
	case e.Held != "":
		return "their enrolment is held back: " + e.Held
	case e.Outcome == "failed":
		return "Moodle refused to enrol them (see the failure of their enrolment); added once enrolled"
	}
	return "not enrolled in the course yet; added once enrolled"
}
