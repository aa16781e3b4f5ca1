package load

import (
	"fmt"
	"html"
	"sort"
	"strings"

	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
)

// Plan is what one load does: built once from staging and Moodle's real
// state, then policies move the deletions they hold back into each
// course's Held list, and the executor carries out exactly the rest. The
// plan and dry-run commands print this same value.
type Plan struct {
	// Offline: built from staging alone (plan --offline); Moodle was not
	// read, so drift is not seen.
	Offline bool          `json:"offline"`
	Courses []*CoursePlan `json:"courses"`
	Totals  PlanCounts    `json:"totals"`
	// Guard lists why the mass-change guard holds deletions, if it does.
	Guard []string `json:"guard,omitempty"`
	// Reads counts the read calls made to build the plan, per function.
	Reads map[string]int `json:"reads"`

	refused []store.RefusedKey
	// owned counts what cmissync owns, for the guard.
	ownedGroups, ownedMembers int64
}

// CoursePlan is the plan of one course.
type CoursePlan struct {
	CourseID int64 `json:"courseid"`
	// State is ok, deleted (retired: positive evidence), inaccessible or
	// unreadable (nothing is written to it this run and nothing of it is
	// forgotten).
	State   string     `json:"state"`
	Problem string     `json:"problem,omitempty"`
	Counts  PlanCounts `json:"counts"`
	// Items run in the order of the load's phases; Held are deletions a
	// policy holds back, each with its reason.
	Items []*Item `json:"items"`
	Held  []*Item `json:"held"`

	staging *courseStaging
	// dirty: Moodle's group cache of the course may hold phantoms; it is
	// cleared before the next create.
	dirty bool
	// ran: the items before it have been through the load's constructive
	// phases (items are planned in more than one go: see loader.begin).
	ran int
}

// Item is one change. Action and Object say what (create group, add
// member, ...); the other fields say which and why.
type Item struct {
	Action   string `json:"action"`
	Object   string `json:"object"` // grouping, group, member, enrolment or course
	CourseID int64  `json:"courseid"`
	IDNumber string `json:"idnumber,omitempty"` // of the grouping or group
	Name     string `json:"name,omitempty"`     // the name it has, or gets
	From     string `json:"from,omitempty"`     // a rename's old name
	MoodleID int64  `json:"moodleid,omitempty"` // of the grouping or group
	Role     string `json:"role,omitempty"`
	CMISID   string `json:"cmisid,omitempty"`
	UserID   int64  `json:"userid,omitempty"` // Moodle user
	RoleID   int64  `json:"roleid,omitempty"` // an enrolment's Moodle role
	Reason   string `json:"reason,omitempty"`
	// Held is why a policy holds the item back; empty for items that run.
	Held string `json:"held,omitempty"`
	// Outcome is filled by the load: done, failed, held or waiting; Note
	// says more where the outcome is not the plan's (why a member waits).
	Outcome string `json:"outcome,omitempty"`
	Note    string `json:"note,omitempty"`

	obj    *object          // the grouping or group (for members and assignments: the group)
	parent *object          // an assignment's grouping
	member *store.MemberRow // member items
	// evidence is a deletion's reason: a store.Reason* value, or
	// evidenceNotInCMIS for load.remove_members_not_in_cmis removals.
	evidence string
	// weight is what the mass-change guard counts: memberships removed (a
	// group counts its owned members too), groups deleted.
	weightGroups, weightMembers int64
	// after: deletions that must succeed first (a grouping waits for its
	// groups).
	after []*Item
	owned bool // a recorded member: cmissync added it
	// enrolment: the enrolment a member's addition waits for.
	enrolment *Item
	// newcomer: an addition of someone not known to be enrolled in the
	// course (sent in smaller batches: one not enrolled refuses a call);
	// retry: an addition of someone waiting for enrolment, tried alone.
	newcomer, retry bool
}

// Actions. The first group writes to Moodle and passes the gate; the rest
// only bring staging in line with what Moodle already holds.
const (
	ActCreate   = "create"    // a grouping or group, also to recreate one deleted by hand
	ActAdopt    = "adopt"     // a hand-made one with the wanted name takes cmissync's idnumber
	ActRename   = "rename"    // a new name (or idnumber) for one cmissync owns
	ActAssign   = "assign"    // a group into its grouping
	ActAdd      = "add"       // a member
	ActRemove   = "remove"    // a member
	ActGiveBack = "give-back" // an adopted group or grouping is handed back
	ActArchive  = "archive"   // a group no longer in CMIS is kept, renamed, and no longer managed
	ActDelete   = "delete"    // a grouping or group
	ActEnrol    = "enrol"     // a person CMIS lists, into the course (load.enrol_missing), or back from suspended
	ActSuspend  = "suspend"   // an enrolment cmissync made, once the person is in no CMIS group of the course
	ActUnenrol  = "unenrol"   // the same, removed (load.unenrol_action)

	ActRecord   = "record"          // found in Moodle as wanted: recorded (a crash, a member already there)
	ActKeepName = "keep-name"       // renamed in Moodle by hand; the name is kept
	ActRespect  = "respect-removal" // a member removed by hand stays out
	ActForget   = "forget"          // already gone from Moodle
	ActPark     = "park"            // deleted in Moodle by hand; not recreated until `cmissync retry`
	ActRetire   = "retire"          // the course was deleted in Moodle
	ActFreeze   = "freeze"          // the course is frozen: no writes until it thaws
	ActThaw     = "thaw"            // the course is no longer frozen
	ActWait     = "wait"            // a member not enrolled in the course yet
)

// writes reports whether the action writes to Moodle.
func writes(action string) bool {
	switch action {
	case ActCreate, ActAdopt, ActRename, ActAssign, ActAdd, ActRemove, ActGiveBack, ActArchive, ActDelete,
		ActEnrol, ActSuspend, ActUnenrol:
		return true
	}
	return false
}

// deletes reports whether the item removes something from Moodle, or hands
// it back: such items need evidence and pass the deletion policies.
func (it *Item) deletes() bool {
	switch it.Action {
	case ActDelete, ActRemove, ActGiveBack, ActArchive, ActSuspend, ActUnenrol:
		return true
	}
	return false
}

// evidenceNotInCMIS is the evidence of a removal by
// load.remove_members_not_in_cmis: the member is in an owned group and no
// CMIS row lists them.
const evidenceNotInCMIS = "notincmis"

// PlanCounts counts a plan's items.
type PlanCounts struct {
	CreateGroupings int `json:"create_groupings"`
	CreateGroups    int `json:"create_groups"`
	Adopt           int `json:"adopt"`
	Rename          int `json:"rename"`
	Assign          int `json:"assign"`
	AddMembers      int `json:"add_members"`
	RemoveMembers   int `json:"remove_members"`
	GiveBack        int `json:"give_back"`
	DeleteGroups    int `json:"delete_groups"`
	DeleteGroupings int `json:"delete_groupings"`
	Enrol           int `json:"enrol,omitempty"`
	Suspend         int `json:"suspend,omitempty"`
	Unenrol         int `json:"unenrol,omitempty"`
	Repairs         int `json:"repairs"` // staging-only items
	Waiting         int `json:"waiting"` // members not enrolled yet
	Held            int `json:"held"`
}

func (c *PlanCounts) count(it *Item) {
	switch {
	case it.Held != "":
		c.Held++
	case it.Action == ActCreate && it.Object == "grouping":
		c.CreateGroupings++
	case it.Action == ActCreate:
		c.CreateGroups++
	case it.Action == ActAdopt:
		c.Adopt++
	case it.Action == ActRename:
		c.Rename++
	case it.Action == ActAssign:
		c.Assign++
	case it.Action == ActAdd:
		c.AddMembers++
	case it.Action == ActRemove:
		c.RemoveMembers++
	case it.Action == ActGiveBack, it.Action == ActArchive:
		c.GiveBack++
	case it.Action == ActDelete && it.Object == "grouping":
		c.DeleteGroupings++
	case it.Action == ActDelete:
		c.DeleteGroups++
	case it.Action == ActEnrol:
		c.Enrol++
	case it.Action == ActSuspend:
		c.Suspend++
	case it.Action == ActUnenrol:
		c.Unenrol++
	case it.Action == ActWait:
		c.Waiting++
	default:
		c.Repairs++
	}
}

func (c *PlanCounts) add(o PlanCounts) {
	c.CreateGroupings += o.CreateGroupings
	c.CreateGroups += o.CreateGroups
	c.Adopt += o.Adopt
	c.Rename += o.Rename
	c.Assign += o.Assign
	c.AddMembers += o.AddMembers
	c.RemoveMembers += o.RemoveMembers
	c.GiveBack += o.GiveBack
	c.DeleteGroups += o.DeleteGroups
	c.DeleteGroupings += o.DeleteGroupings
	c.Enrol += o.Enrol
	c.Suspend += o.Suspend
	c.Unenrol += o.Unenrol
	c.Repairs += o.Repairs
	c.Waiting += o.Waiting
	c.Held += o.Held
}

// Writes is the number of planned writes to Moodle.
func (c PlanCounts) Writes() int {
	return c.CreateGroupings + c.CreateGroups + c.Adopt + c.Rename + c.Assign + c.AddMembers + c.RemoveMembers +
		c.GiveBack + c.DeleteGroups + c.DeleteGroupings + c.Enrol + c.Suspend + c.Unenrol
}

// Empty reports whether nothing is planned, held or waiting.
func (c PlanCounts) Empty() bool { return c == PlanCounts{} }

// hold moves an item to its course's held list.
func (cp *CoursePlan) hold(it *Item, why string) {
	if it.Held != "" {
		return
	}
	it.Held = why
	for i, x := range cp.Items {
		if x == it {
			cp.Items = append(cp.Items[:i], cp.Items[i+1:]...)
			break
		}
	}
	cp.Held = append(cp.Held, it)
}

// recount recomputes the counts after policies moved items.
func (p *Plan) recount() {
	p.Totals = PlanCounts{}
	for _, cp := range p.Courses {
		cp.Counts = PlanCounts{}
		for _, it := range cp.Items {
			cp.Counts.count(it)
		}
		for _, it := range cp.Held {
			cp.Counts.count(it)
		}
		p.Totals.add(cp.Counts)
	}
}

// builder builds a plan.
type builder struct {
	opts  *Options
	state *moodleState
	plan  *Plan
	// pending holds, per course, desired members whose Moodle user is
	// resolved before they become items.
	pending map[int64][]pendingMember
	// users maps CMIS ids to Moodle users: from staging, and looked up by
	// the match field for the others.
	users map[string]int64
	// recorded: the enrolments cmissync made, by course; inCourse: the
	// people recorded as members of a group, by course (so enrolled);
	// enrols: the enrolments planned; canEnrol: the service offers
	// enrol_manual_enrol_users.
	recorded map[int64][]store.Enrolment
	inCourse map[int64]map[string]bool
	enrols   map[enrolKey]*Item
	canEnrol bool
}

// pendingMember is a member to add (or restore) once its user is known.
type pendingMember struct {
	m      *store.MemberRow
	group  *object
	reason string
}

// nameKey compares names as Moodle's database does: without case and
// trailing spaces.
func nameKey(s string) string { return strings.ToLower(strings.TrimRight(s, " ")) }

// moodleName is a name as Moodle answers it, without the HTML escaping
// format_string adds ("&" read back as "&amp;").
func moodleName(s string) string { return html.UnescapeString(s) }

// ours reports whether Moodle's object carries the staged object's
// idnumber, in its current or its legacy form.
func ours(o *object, m *moodleObject) bool {
	if m.idnumber == o.idnumber {
		return true
	}
	if o.kind == kindGroup {
		return m.idnumber == stage.LegacyGroupIDNumber(o.module, o.group)
	}
	return m.idnumber == stage.LegacyGroupingIDNumber(o.module)
}

// course plans one course.
func (b *builder) course(cs *courseStaging) *CoursePlan {
	cp := &CoursePlan{CourseID: cs.id, State: "ok", staging: cs, Items: []*Item{}, Held: []*Item{}}
	info := b.state.course(cs.id)
	switch info.state {
	case courseDeleted:
		cp.State = "deleted"
		cp.Items = append(cp.Items, &Item{Action: ActRetire, Object: "course", CourseID: cs.id,
			Reason: "the course no longer exists in Moodle: its mappings are set to RMV and its staged rows forgotten"})
		return cp
	case courseInaccessible:
		cp.State = "inaccessible"
		cp.Problem = "cmissync's web-service user cannot open this course (" + errText(info.err) + "): nothing in it was changed or forgotten. " +
			"Check the service user's role in the course (it needs moodle/course:view and moodle/course:managegroups)"
		return cp
	case courseUnreadable:
		cp.State = "unreadable"
		cp.Problem = "could not read the course's state from Moodle (" + errText(info.err) + "): nothing in it was changed this run"
		return cp
	}
	cp.dirty = b.hasPhantom(cs, info)
	names := [2]*nameSet{newNameSet(info.groupings), newNameSet(info.groups)}
	for _, o := range cs.groupings {
		b.object(cp, o, info, names[kindGrouping])
	}
	for _, o := range cs.groups {
		b.object(cp, o, info, names[kindGroup])
	}
	b.assignments(cp)
	for _, objs := range [][]*object{cs.groupings, cs.groups} {
		for _, o := range objs {
			o.seen = o.live
		}
	}
	b.members(cp)
	b.groupingDeletions(cp)
	return cp
}

// item appends an item to the course plan.
func (cp *CoursePlan) item(it *Item) *Item {
	it.CourseID = cp.CourseID
	cp.Items = append(cp.Items, it)
	return it
}

func objectItem(action string, o *object, reason string) *Item {
	it := &Item{Action: action, Object: o.kind.String(), IDNumber: o.idnumber, Name: o.name, MoodleID: o.moodleID, Reason: reason, obj: o}
	if o.live != nil {
		it.Name, it.MoodleID = moodleName(o.live.name), o.live.id
	}
	return it
}

// hasPhantom reports a listing object with the idnumber of a staged object
// that a read by id says does not exist: a phantom a refused create left in
// Moodle's group cache, which would refuse cmissync's create of that
// idnumber until the cache is cleared.
func (b *builder) hasPhantom(cs *courseStaging, info *courseInfo) bool {
	for k, objs := range [2][]*moodleObject{info.groupings, info.groups} {
		for _, m := range objs {
			if !m.confirmed && b.state.gone[k][m.id] && stage.IsOwnedIDNumber(m.idnumber) {
				return true
			}
		}
	}
	return false
}

// liveByIDNumber finds a confirmed object of the course listing with the
// staged object's idnumber.
func liveByIDNumber(info *courseInfo, o *object) *moodleObject {
	list := info.groups
	if o.kind == kindGrouping {
		list = info.groupings
	}
	for _, m := range list {
		if m.confirmed && ours(o, m) {
			return m
		}
	}
	return nil
}

// object plans one staged grouping or group: whether it exists in Moodle
// as staging recorded, was deleted, renamed or moved by hand, is to be
// created (under which name), adopted, renamed, given back or deleted.
func (b *builder) object(cp *CoursePlan, o *object, info *courseInfo, names *nameSet) {
	if o.parked {
		return
	}
	if o.moodleID != 0 {
		live := b.state.objects[o.kind][o.moodleID]
		if live != nil && !ours(o, live) && !o.adopted {
			live = nil // its idnumber was changed by hand: no longer cmissync's
		}
		if live == nil {
			if m := liveByIDNumber(info, o); m != nil {
				// Found again under another id.
				o.live = m
				cp.item(objectItem(ActRecord, o, fmt.Sprintf("found in Moodle under id %d (was %d)", m.id, o.moodleID)))
				o.recorded = true
			}
		} else {
			o.live = live
		}
		if o.live != nil {
			b.existing(cp, o, names)
			return
		}
		switch {
		case o.toDelete:
			cp.item(objectItem(ActForget, o, "already deleted in Moodle"))
		case b.opts.OnDeleted == DeletedForget:
			cp.item(objectItem(ActPark, o, "deleted in Moodle by hand; not recreated (load.on_deleted = forget) until `cmissync retry`"))
		default:
			it := cp.item(objectItem(ActCreate, o, "deleted in Moodle by hand: recreated (load.on_deleted = recreate)"))
			b.createName(o, it, names)
		}
		return
	}
	if !o.toAdd {
		return
	}
	if m := liveByIDNumber(info, o); m != nil {
		o.live = m
		cp.item(objectItem(ActRecord, o, "already in Moodle with cmissync's idnumber (an earlier run stopped before recording it)"))
		o.recorded = true
		b.existing(cp, o, names)
		return
	}
	if clash := names.confirmed(o.name); clash != nil && b.opts.OnNameClash == ClashAdopt && clash.idnumber == "" {
		o.live = clash
		it := cp.item(objectItem(ActAdopt, o, fmt.Sprintf("a hand-made %s is already called %q: taken over (load.on_name_clash = adopt); its members stay", o.kind, moodleName(clash.name))))
		it.Name = moodleName(clash.name)
		return
	}
	it := cp.item(objectItem(ActCreate, o, "new in CMIS"))
	if phantomOf(info, o, b.state) {
		it.Reason += "; Moodle's course listing shows a phantom of it (left by a refused create) that does not exist by id: the course's group cache is cleared first"
	}
	b.createName(o, it, names)
}

// phantomOf: the course listing shows an object with o's idnumber that a
// read by id says does not exist.
func phantomOf(info *courseInfo, o *object, st *moodleState) bool {
	list := info.groups
	if o.kind == kindGrouping {
		list = info.groupings
	}
	for _, m := range list {
		if !m.confirmed && st.gone[o.kind][m.id] && ours(o, m) {
			return true
		}
	}
	return false
}

// createName picks the name to create an object under: the wanted one, or,
// when a group or grouping of the course already has it, "NAME (CMIS)".
func (b *builder) createName(o *object, it *Item, names *nameSet) {
	name := o.name
	if names.taken(name) {
		name = o.name + " (CMIS)"
		for i := 2; names.taken(name); i++ {
			name = fmt.Sprintf("%s (CMIS %d)", o.name, i)
		}
		it.Reason += fmt.Sprintf("; a %s of the course is already called %q, so cmissync's is created as %q and the other is left alone", o.kind, o.name, name)
	}
	names.use(name)
	o.createdAs = name
	it.Name, it.MoodleID = name, 0
}

// existing plans an object that exists in Moodle: a deletion (or giving
// back) when stage flagged it, else a rename when its name or idnumber is
// not the wanted one.
func (b *builder) existing(cp *CoursePlan, o *object, names *nameSet) {
	live := o.live
	if o.toDelete {
		if o.adopted {
			it := cp.item(objectItem(ActGiveBack, o, "no longer in CMIS: the hand-made "+o.kind.String()+" cmissync adopted is given back (its idnumber cleared), never deleted"))
			it.evidence = o.deleteReason
			return
		}
		if o.kind == kindGroup && b.opts.OnGroupRemoved == GroupArchive {
			name := moodleName(live.name) + b.opts.ArchiveSuffix
			for i := 2; names.takenByOther(name, live.id); i++ {
				name = fmt.Sprintf("%s%s %d", moodleName(live.name), b.opts.ArchiveSuffix, i)
			}
			names.use(name)
			it := cp.item(objectItem(ActArchive, o, DeleteReasonText(o.deleteReason)+": archived (load.on_group_removed = archive): kept with its id and members, renamed, out of cmissync's grouping, no longer managed"))
			it.From, it.Name, it.evidence = moodleName(live.name), name, o.deleteReason
			return
		}
		it := cp.item(objectItem(ActDelete, o, DeleteReasonText(o.deleteReason)))
		it.evidence = o.deleteReason
		if o.kind == kindGroup {
			it.weightGroups = 1
			for _, m := range cp.staging.members[o.key()] {
				if m.Owned && !m.ToAdd && m.MoodleUserID != 0 {
					it.weightMembers++
				}
			}
		}
		return
	}
	current := moodleName(live.name)
	handRenamed := o.moodleName != "" && current != o.moodleName
	want, why := current, ""
	switch {
	case o.adopted:
		// An adopted object keeps its teacher's name.
	case o.toRename:
		want, why = o.name, "its wanted name changed (template or CMIS title)"
	case handRenamed && b.opts.OnRenamed == RenamedRestore:
		// cmissync's name, or the one it last set when another object of
		// the course took that (a name clash made it "NAME (CMIS)").
		want = o.name
		if names.takenByOther(want, live.id) {
			want = o.moodleName
		}
		why = fmt.Sprintf("renamed in Moodle by hand to %q: cmissync's name restored (load.on_renamed = restore)", current)
	}
	newIDNumber := live.idnumber != o.idnumber
	switch {
	case want != current || newIDNumber:
		if newIDNumber && why == "" {
			why = "its idnumber is in the form older versions used"
		}
		if want != current && names.takenByOther(want, live.id) {
			cp.item(objectItem(ActKeepName, o, fmt.Sprintf("cannot be renamed to %q: another %s of the course has that name", want, o.kind)))
			return
		}
		it := cp.item(objectItem(ActRename, o, why))
		it.From, it.Name = current, want
		names.rename(current, want)
	case handRenamed:
		cp.item(objectItem(ActKeepName, o, fmt.Sprintf("renamed in Moodle by hand from %q to %q: kept (load.on_renamed = keep)", o.moodleName, current)))
	case !o.recorded && (o.toRename || current != o.moodleName):
		cp.item(objectItem(ActRecord, o, reasonSameName))
	}
}

// reasonGivenBack removes the members cmissync added to a group it gives
// back: they go when the group does.
const reasonGivenBack = "the group is given back: cmissync removes the members it added"

// reasonSameName records a name Moodle already has; it is not news.
const reasonSameName = "Moodle already has the wanted name"

// DeleteReasonText says in words why stage flagged a row for deletion (a
// store.Reason* value).
func DeleteReasonText(reason string) string {
	switch reason {
	case store.ReasonRMV:
		return "its mapping is set to RMV"
	case store.ReasonUnmapped:
		return "its mapping row was removed from mapped_modules"
	case store.ReasonBadMapping:
		return "its mapping row is not understood"
	}
	return "no longer in the CMIS extract"
}

// willExist reports whether an object exists in Moodle after this run (if
// nothing fails): it does and stays, or it is created.
func (cp *CoursePlan) willExist(o *object) bool {
	if o == nil || o.parked {
		return false
	}
	if o.live != nil {
		return !o.toDelete
	}
	return o.createdAs != ""
}

// assignments puts every group that will exist into its grouping, unless
// Moodle shows it there already: new groups, groups recreated, and groups
// someone took out of their grouping by hand.
func (b *builder) assignments(cp *CoursePlan) {
	for _, o := range cp.staging.groups {
		if !cp.willExist(o) {
			continue
		}
		g := cp.staging.grouping(o.module)
		if !cp.willExist(g) {
			continue
		}
		if o.live != nil && g.live != nil && b.state.inGrouping[g.live.id][o.live.id] {
			continue
		}
		why := "not in its grouping yet"
		switch {
		case o.live == nil:
			why = "a group being created"
		case g.live == nil:
			why = "its grouping is being created"
		case o.assigned && o.moodleID != 0:
			why = "taken out of its grouping in Moodle: put back"
		}
		it := cp.item(&Item{Action: ActAssign, Object: "group", IDNumber: o.idnumber, Name: o.name, Reason: why, obj: o, parent: g})
		if o.live != nil {
			it.MoodleID, it.Name = o.live.id, moodleName(o.live.name)
		} else {
			it.Name = o.createdAs
		}
	}
}

// members plans the memberships of every group of the course.
func (b *builder) members(cp *CoursePlan) {
	cs := cp.staging
	for _, o := range cs.groups {
		if o.parked {
			continue
		}
		rows := cs.members[o.key()]
		givenBack := o.live != nil && o.toDelete && o.adopted
		switch {
		case o.live != nil && o.toDelete && !givenBack:
			continue // its members go with it (deleted), or stay with it (archived)
		case o.live == nil && o.createdAs == "" && !cp.willExist(o):
			continue // not in Moodle and not created: nothing to do yet
		}
		var current map[int64]bool
		if o.live != nil {
			current = b.state.members[o.live.id]
		}
		wanted := map[int64]bool{} // users another staged row keeps in the group
		for _, m := range rows {
			if !m.ToDelete && m.MoodleUserID != 0 {
				wanted[m.MoodleUserID] = true
			}
		}
		for _, m := range rows {
			if !m.ToAdd && m.MoodleUserID != 0 {
				if b.inCourse[cp.CourseID] == nil {
					b.inCourse[cp.CourseID] = map[string]bool{}
				}
				b.inCourse[cp.CourseID][m.CMISID] = true
			}
			if m.Parked {
				continue
			}
			b.member(cp, o, m, current, wanted, givenBack)
		}
	}
}

// memberItem plans a membership of group o as the plan saw it (o.seen):
// the same item whether or not the load has created the group since.
func memberItem(action string, o *object, m *store.MemberRow, reason string) *Item {
	it := &Item{Action: action, Object: "member", IDNumber: o.idnumber, Name: o.name, Role: m.Role, CMISID: m.CMISID,
		UserID: m.MoodleUserID, Reason: reason, obj: o, member: m}
	if o.seen != nil {
		it.MoodleID, it.Name = o.seen.id, moodleName(o.seen.name)
	} else if o.createdAs != "" {
		it.Name = o.createdAs
	}
	return it
}

// member plans one staged membership.
func (b *builder) member(cp *CoursePlan, o *object, m *store.MemberRow, current, wanted map[int64]bool, givenBack bool) {
	switch {
	case m.ToDelete || givenBack:
		if !m.Owned || m.MoodleUserID == 0 || m.ToAdd || !current[m.MoodleUserID] {
			if !m.ToDelete {
				return // a desired member of a group given back stays with it
			}
			cp.item(memberItem(ActForget, o, m, "not in the group in Moodle (any more), or not cmissync's"))
			return
		}
		if !givenBack && wanted[m.MoodleUserID] {
			cp.item(memberItem(ActForget, o, m, "the same user stays in the group in another role"))
			return
		}
		reason, evidence := DeleteReasonText(m.DeleteReason), m.DeleteReason
		if givenBack {
			reason, evidence = reasonGivenBack, o.deleteReason
		}
		it := cp.item(memberItem(ActRemove, o, m, reason))
		it.evidence, it.weightMembers = evidence, 1
	case m.RemovedInMoodle:
		// Removed by hand earlier and respected: stays out.
	case o.live != nil && !m.ToAdd && m.MoodleUserID != 0:
		if current[m.MoodleUserID] {
			return // in step
		}
		if b.opts.OnMemberRemoved == MemberRespect {
			cp.item(memberItem(ActRespect, o, m, "removed from the group in Moodle by hand: left out (load.on_member_removed = respect)"))
			return
		}
		b.pending[cp.CourseID] = append(b.pending[cp.CourseID], pendingMember{m, o, "removed from the group in Moodle by hand: added back (load.on_member_removed = restore)"})
	default:
		reason := "new in CMIS"
		if o.live == nil {
			reason = "member of a group being created"
		}
		b.pending[cp.CourseID] = append(b.pending[cp.CourseID], pendingMember{m, o, reason})
	}
}

// unseen plans, with load.remove_members_not_in_cmis, the removal of the
// members of owned groups that no staged row lists: people added by hand.
// It runs once the course's members are resolved, so that a CMIS member
// already in the group is never taken for a stranger. Like resolve, it
// sees the groups as the plan read them (o.seen), whatever the load has
// written since.
func (b *builder) unseen(cp *CoursePlan) {
	known := map[*object]map[int64]bool{}
	mark := func(o *object, u int64) {
		if u == 0 {
			return
		}
		if known[o] == nil {
			known[o] = map[int64]bool{}
		}
		known[o][u] = true
	}
	for _, o := range cp.staging.groups {
		for _, m := range cp.staging.members[o.key()] {
			mark(o, m.MoodleUserID)
		}
	}
	for _, it := range cp.Items {
		if it.Object == "member" && it.obj != nil {
			mark(it.obj, it.UserID)
		}
	}
	for _, o := range cp.staging.groups {
		if o.parked || o.seen == nil || o.toDelete || o.adopted {
			continue
		}
		var extra []int64
		for u := range b.state.members[o.seen.id] {
			if !known[o][u] {
				extra = append(extra, u)
			}
		}
		sortInt64(extra)
		for _, u := range extra {
			it := cp.item(&Item{Action: ActRemove, Object: "member", IDNumber: o.idnumber, Name: moodleName(o.seen.name), MoodleID: o.seen.id, UserID: u,
				Reason: "in cmissync's group but not in CMIS (load.remove_members_not_in_cmis)", obj: o})
			it.evidence, it.weightMembers = evidenceNotInCMIS, 1
		}
	}
}

// resolve turns the pending members of a course into items once its
// enrolments are known: not enrolled (waiting), already in the group
// (recorded), or to add.
func (b *builder) resolve(cp *CoursePlan, audit map[auditKey]bool) {
	info := b.state.course(cp.CourseID)
	for _, p := range b.pending[cp.CourseID] {
		m, o := p.m, p.group
		var uid int64
		var enrol *Item // the enrolment the addition waits for
		switch {
		case info.enrolErr != nil:
			it := cp.item(memberItem(ActWait, o, m, "could not read the course's enrolments: "+errText(info.enrolErr)))
			it.UserID = 0
			continue
		case info.enrolledRead:
			// The course's enrolments were read (it has members waiting,
			// or people to enrol): they decide.
			var ok bool
			if uid, ok = info.enrolled[m.CMISID]; ok {
				break
			}
			if uid = b.users[m.CMISID]; b.opts.EnrolMissing && uid != 0 && !b.opts.Offline {
				enrol = b.enrolFirst(cp, m, uid)
				break
			}
			why := fmt.Sprintf("no user with %s %q is enrolled in the course; added once enrolled", b.opts.UserField, m.CMISID)
			if b.opts.EnrolMissing {
				why = fmt.Sprintf("no Moodle user has %s %q; enrolled and added once the account exists", b.opts.UserField, m.CMISID)
			}
			it := cp.item(memberItem(ActWait, o, m, why))
			it.UserID = 0
			continue
		default:
			// Known from staging or looked up by field; whether they are
			// enrolled, the add finds out (Moodle refuses a member who is
			// not, and only then is the course's enrolment read).
			if uid = b.users[m.CMISID]; uid == 0 {
				it := cp.item(memberItem(ActWait, o, m, fmt.Sprintf("no Moodle user has %s %q; added once the account exists and is enrolled", b.opts.UserField, m.CMISID)))
				it.UserID = 0
				continue
			}
			if !m.WaitingSince.IsZero() {
				// Waiting already: tried again on its own, by a single
				// add, on the runs retryDue allows.
				if !retryDue(m.WaitingRuns) {
					it := cp.item(memberItem(ActWait, o, m, fmt.Sprintf("not enrolled in the course when last tried (waiting for %d runs); tried again every %d runs after the first %d",
						m.WaitingRuns, retryEvery, retryEvery)))
					it.UserID = uid
					continue
				}
				it := cp.item(memberItem(ActAdd, o, m, p.reason+" (waiting for enrolment: tried on its own)"))
				it.UserID, it.retry = uid, true
				continue
			}
		}
		if o.seen != nil && b.state.members[o.seen.id][uid] {
			// Already there: cmissync owns it only if it put it there (an
			// intent recorded before a crash, or its audit trail).
			owned := m.MoodleUserID == uid || audit[auditKey{o.idnumber, uid}]
			why := "already in the group (put there by someone else): recorded, never removed by cmissync"
			if owned {
				why = "already in the group, added by an earlier run that stopped before recording it"
			}
			it := cp.item(memberItem(ActRecord, o, m, why))
			it.UserID, it.owned = uid, owned
			continue
		}
		reason := p.reason
		if b.opts.Offline {
			reason += " (offline: enrolment not checked)"
		}
		if enrol != nil {
			reason += ", once enrolled"
		}
		it := cp.item(memberItem(ActAdd, o, m, reason))
		it.UserID, it.enrolment = uid, enrol
		it.newcomer = !info.enrolledRead && !b.knownEnrolled(cp.CourseID, m.CMISID)
	}
	delete(b.pending, cp.CourseID)
	if b.opts.RemoveUnseenMembers {
		b.unseen(cp)
	}
}

type auditKey struct {
	idnumber string
	user     int64
}

// groupingDeletions makes a grouping's deletion wait for its groups'.
func (b *builder) groupingDeletions(cp *CoursePlan) {
	var groupDeletes []*Item
	for _, it := range cp.Items {
		if it.Object == "group" && (it.Action == ActDelete || it.Action == ActGiveBack || it.Action == ActArchive) {
			groupDeletes = append(groupDeletes, it)
		}
	}
	for _, it := range cp.Items {
		if it.Action != ActDelete || it.Object != "grouping" {
			continue
		}
		for _, g := range groupDeletes {
			if g.obj.module == it.obj.module {
				it.after = append(it.after, g)
			}
		}
	}
}

// nameSet is the names of a course's groups or groupings, for clashes.
type nameSet struct {
	byName map[string][]*moodleObject
	used   map[string]bool
}

func newNameSet(objs []*moodleObject) *nameSet {
	s := &nameSet{byName: map[string][]*moodleObject{}, used: map[string]bool{}}
	for _, o := range objs {
		k := nameKey(moodleName(o.name))
		s.byName[k] = append(s.byName[k], o)
	}
	return s
}

// taken: a confirmed object has the name, or this plan gives it out.
func (s *nameSet) taken(name string) bool {
	k := nameKey(name)
	if s.used[k] {
		return true
	}
	for _, o := range s.byName[k] {
		if o.confirmed || !isPhantomCandidate(o) {
			return true
		}
	}
	return false
}

// takenByOther: taken by an object other than id.
func (s *nameSet) takenByOther(name string, id int64) bool {
	k := nameKey(name)
	if s.used[k] {
		return true
	}
	for _, o := range s.byName[k] {
		if o.id != id && (o.confirmed || !isPhantomCandidate(o)) {
			return true
		}
	}
	return false
}

// confirmed returns a confirmed object with the name.
func (s *nameSet) confirmed(name string) *moodleObject {
	for _, o := range s.byName[nameKey(name)] {
		if o.confirmed {
			return o
		}
	}
	return nil
}

func (s *nameSet) use(name string) { s.used[nameKey(name)] = true }

func (s *nameSet) rename(from, to string) {
	delete(s.used, nameKey(from))
	s.used[nameKey(to)] = true
}

// isPhantomCandidate: an object seen in a listing only, with cmissync's
// idnumber, could be a phantom; its name does not block a create (the name
// check reads the database), its idnumber does until the cache is cleared.
func isPhantomCandidate(o *moodleObject) bool {
	return !o.confirmed && stage.IsOwnedIDNumber(o.idnumber)
}

func errText(err error) string {
	if err == nil {
		return "no details"
	}
	return err.Error()
}

func sortInt64(s []int64) { sort.Slice(s, func(i, j int) bool { return s[i] < s[j] }) }
