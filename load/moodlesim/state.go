package moodlesim

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// User is a Moodle user account.
type User struct {
	ID        int    `json:"id"`
	Username  string `json:"username"`
	IDNumber  string `json:"idnumber"`
	Email     string `json:"email"`
	FirstName string `json:"firstname"`
	LastName  string `json:"lastname"`
}

// Course is a Moodle course. Inaccessible marks a course the web-service
// user may not access (see Server.SetCourseAccessible). StartDate and
// EndDate are unix times: a StartDate of 0 is the simulator's fixed time
// (2025-01-01), an EndDate of 0 means no end date (see
// Server.SetCourseEndDate). ManualDisabled marks a course whose manual
// enrolment method is disabled (see Server.SetManualEnrolEnabled).
type Course struct {
	ID             int    `json:"id"`
	ShortName      string `json:"shortname"`
	FullName       string `json:"fullname"`
	IDNumber       string `json:"idnumber"`
	Inaccessible   bool   `json:"inaccessible,omitempty"`
	StartDate      int64  `json:"startdate,omitempty"`
	EndDate        int64  `json:"enddate,omitempty"`
	ManualDisabled bool   `json:"manualdisabled,omitempty"`
	Hidden         bool   `json:"hidden,omitempty"`
}

// Group is a course group. Members holds user ids, sorted.
type Group struct {
	ID          int    `json:"id"`
	CourseID    int    `json:"courseid"`
	Name        string `json:"name"`
	IDNumber    string `json:"idnumber"`
	Description string `json:"description"`
	Members     []int  `json:"members"`
}

// Grouping is a course grouping. Groups holds group ids, sorted.
type Grouping struct {
	ID          int    `json:"id"`
	CourseID    int    `json:"courseid"`
	Name        string `json:"name"`
	IDNumber    string `json:"idnumber"`
	Description string `json:"description"`
	Groups      []int  `json:"groups"`
}

// UserEnrolment is a user's enrolment in a course through one enrolment
// method (a row of Moodle's user_enrolments). Method is the enrolment
// plugin: "manual" (what enrol_manual_enrol_users makes, and the default of
// the seeding API), or any other name ("self", "cohort", "database", ...),
// which the web services never change. TimeStart and TimeEnd are unix times
// (0: no limit).
type UserEnrolment struct {
	CourseID  int    `json:"courseid"`
	UserID    int    `json:"userid"`
	Method    string `json:"enrol"`
	Suspended bool   `json:"suspended"`
	TimeStart int64  `json:"timestart,omitempty"`
	TimeEnd   int64  `json:"timeend,omitempty"`
}

// RoleAssignment is a role a user holds in a course's context. Role ids are
// those of a stock site (see RoleStudent and its siblings).
type RoleAssignment struct {
	CourseID int `json:"courseid"`
	UserID   int `json:"userid"`
	RoleID   int `json:"roleid"`
}

// Role ids of a stock Moodle site, the only roles the simulator knows. The
// web-service user may assign manager, editingteacher, teacher and student.
const (
	RoleManager        = 1
	RoleCourseCreator  = 2
	RoleEditingTeacher = 3
	RoleTeacher        = 4
	RoleStudent        = 5
	RoleGuest          = 6
	RoleUser           = 7
	RoleFrontpage      = 8
)

// roleShortNames are the stock roles by id; a stock role's sortorder is its
// id, and its name is empty in the database (Moodle shows a translated one).
var roleShortNames = map[int]string{
	RoleManager: "manager", RoleCourseCreator: "coursecreator", RoleEditingTeacher: "editingteacher",
	RoleTeacher: "teacher", RoleStudent: "student", RoleGuest: "guest", RoleUser: "user", RoleFrontpage: "frontpage",
}

// MethodManual is the manual enrolment plugin, the one the enrol_manual
// web services use.
const MethodManual = "manual"

// State is a deep copy of the whole site. Every slice is sorted by ID;
// Enrolments maps a course id to its enrolled user ids (by any method,
// suspended or not), sorted, and lists only courses with at least one
// enrolment. UserEnrolments and RoleAssignments give the detail, sorted by
// course, user, then method or role. GET /_sim/state answers it as JSON with
// the keys shown in the tags.
type State struct {
	Courses         []Course         `json:"courses"`
	Users           []User           `json:"users"`
	Enrolments      map[int][]int    `json:"enrolments"`
	UserEnrolments  []UserEnrolment  `json:"user_enrolments"`
	RoleAssignments []RoleAssignment `json:"role_assignments"`
	Groups          []Group          `json:"groups"`
	Groupings       []Grouping       `json:"groupings"`
}

// Column sizes of Moodle's tables, in characters.
const (
	maxGroupName     = 254
	maxGroupIDNumber = 100
	maxEnrolmentKey  = 50
)

// Ids Moodle uses before any real record: course 1 is the site, users 1 and
// 2 are guest and admin.
const (
	firstCourseID = 2
	firstUserID   = 3
	siteUserID    = 2
	siteUsername  = "admin"
	firstGroupID  = 1
)

type courseRec struct {
	id                            int
	shortname, fullname, idnumber string
	inaccessible                  bool  // the web-service user may not access it
	startdate, enddate            int64 // startdate 0: fixedTime; enddate 0: none
	manualDisabled                bool  // the course's manual enrolment method is disabled
	hidden                        bool  // hidden, and out of the web-service user's sight
}

// start is the course's start date as Moodle reports it.
func (c *courseRec) start() int64 {
	if c.startdate == 0 {
		return fixedTime
	}
	return c.startdate
}

// ueRec is one row of Moodle's user_enrolments: a user's enrolment in a
// course through one enrolment method.
type ueRec struct {
	suspended          bool
	timestart, timeend int64
}

// enrolment is one user in one course: the user's enrolments by method and
// the roles the user holds in the course's context. A stored enrolment is
// never changed in place: a change stores a new value (state.putEnrolment),
// so that the journal can put the old one back.
type enrolment struct {
	methods map[string]ueRec
	roles   map[int]bool
}

// clone returns a copy of e to change (an empty enrolment when e is nil).
func (e *enrolment) clone() *enrolment {
	c := &enrolment{methods: map[string]ueRec{}, roles: map[int]bool{}}
	if e != nil {
		for k, v := range e.methods {
			c.methods[k] = v
		}
		for k := range e.roles {
			c.roles[k] = true
		}
	}
	return c
}

// active is what Moodle's onlyactive means: an enrolment that is not
// suspended, through a method that is enabled, and within its time window
// (timestart before now, timeend 0 or after now).
func (e *enrolment) active(co *courseRec, now int64) bool {
	for m, ue := range e.methods {
		if ue.suspended || (m == MethodManual && co.manualDisabled) {
			continue
		}
		if ue.timestart < now && (ue.timeend == 0 || ue.timeend > now) {
			return true
		}
	}
	return false
}

type userRec struct {
	id                                             int
	username, idnumber, email, firstname, lastname string
}

type groupRec struct {
	id, courseid                int
	name, idnumber, description string
	descformat                  int
	enrolmentkey                *string // NULL unless given
	visibility                  int
	participation               bool
	members                     map[int]bool
}

type groupingRec struct {
	id, courseid                int
	name, idnumber, description string
	descformat                  int
	groups                      map[int]bool
}

// idCounters are the next ids to hand out. Unlike the records they are
// changed directly and not journaled: a rolled-back call does not give its
// ids back, as with InnoDB's auto-increment counters.
type idCounters struct {
	nextCourse   int
	nextUser     int
	nextGroup    int
	nextGrouping int
}

// state is the site's data, with indexes that keep lookups proportional to a
// course rather than to the site. Every change goes through the methods of
// txn.go, which keep the indexes in step and journal the change while a
// transaction is open: a web-service write call changes the live state and
// rolls back what it changed when it fails.
type state struct {
	courses   map[int]*courseRec
	users     map[int]*userRec
	enrol     map[int]map[int]*enrolment // course -> user -> enrolment; no empty maps
	groups    map[int]*groupRec
	groupings map[int]*groupingRec
	idCounters

	courseGroups    map[int]map[int]bool // course -> its groups; no empty sets
	courseGroupings map[int]map[int]bool // course -> its groupings; no empty sets
	groupGroupings  map[int]map[int]bool // group -> groupings it is assigned to; no empty sets

	inTx bool     // a transaction is open
	undo []func() // the open transaction's inverse changes, oldest first

	// userIndex finds users by idnumber, username or email: field -> the
	// value's foldKey -> user ids. Built at the first lookup, dropped when
	// a user is added or removed, so a lookup costs what it asks for, not
	// the size of the site (Moodle has indexes on these columns).
	userIndex map[string]map[string][]int

	// groupCache is Moodle's per-course group cache (cache.go): course ->
	// its entry, absent until read. It is outside the transaction.
	groupCache   map[int]*groupData
	noGroupCache bool // Options.NoGroupCache: never keep an entry
}

func newState() *state {
	return &state{
		courses:         map[int]*courseRec{},
		users:           map[int]*userRec{},
		enrol:           map[int]map[int]*enrolment{},
		groups:          map[int]*groupRec{},
		groupings:       map[int]*groupingRec{},
		idCounters:      idCounters{nextCourse: firstCourseID, nextUser: firstUserID, nextGroup: firstGroupID, nextGrouping: firstGroupID},
		courseGroups:    map[int]map[int]bool{},
		courseGroupings: map[int]map[int]bool{},
		groupGroupings:  map[int]map[int]bool{},
		groupCache:      map[int]*groupData{},
	}
}

// usersByKey returns the users whose field may equal v under sqlEq: those
// with the same foldKey.
func (st *state) usersByKey(field, v string) []int {
	if st.userIndex == nil {
		st.userIndex = map[string]map[string][]int{"idnumber": {}, "username": {}, "email": {}}
		for id, u := range st.users {
			for f, x := range map[string]string{"idnumber": u.idnumber, "username": u.username, "email": u.email} {
				k := foldKey(x)
				st.userIndex[f][k] = append(st.userIndex[f][k], id)
			}
		}
	}
	return st.userIndex[field][foldKey(v)]
}

// foldKey maps strings that sqlEq finds equal to the same key: trailing
// spaces cut, each rune replaced by the smallest of its case-folding orbit
// (the runes strings.EqualFold takes for equal).
func foldKey(s string) string {
	s = strings.TrimRight(s, " ")
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// sqlEq compares two strings as MariaDB's utf8mb4_unicode_ci does for "=":
// case-insensitively, ignoring trailing spaces.
func sqlEq(a, b string) bool {
	return strings.EqualFold(strings.TrimRight(a, " "), strings.TrimRight(b, " "))
}

var phpNumeric = regexp.MustCompile(`^[ \t\n\r\v\f]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t\n\r\v\f]*$`)

// phpLooseEq is PHP 8's == between two strings: numeric strings compare as
// numbers.
func phpLooseEq(a, b string) bool {
	if a == b {
		return true
	}
	if phpNumeric.MatchString(a) && phpNumeric.MatchString(b) {
		x, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
		y, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
		return err1 == nil && err2 == nil && x == y
	}
	return false
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// enrolled is is_enrolled() without onlyactive: enrolled by any method,
// suspended or not.
func (st *state) enrolled(courseID, userID int) bool { return st.enrol[courseID][userID] != nil }

func (st *state) groupNameTaken(courseID int, name string) bool {
	for id := range st.courseGroups[courseID] {
		if sqlEq(st.groups[id].name, name) {
			return true
		}
	}
	return false
}

func (st *state) groupingNameTaken(courseID int, name string) bool {
	for id := range st.courseGroupings[courseID] {
		if sqlEq(st.groupings[id].name, name) {
			return true
		}
	}
	return false
}

// groupIDs lists a course's groups ordered by name, as Moodle's group cache
// does (ORDER BY name under a case-insensitive collation), then by id.
func (st *state) groupIDs(courseID int) []int {
	return byName(st.courseGroups[courseID], func(id int) string { return st.groups[id].name })
}

// groupingIDs lists a course's groupings in the order of groupIDs.
func (st *state) groupingIDs(courseID int) []int {
	return byName(st.courseGroupings[courseID], func(id int) string { return st.groupings[id].name })
}

// byName sorts ids by name without case, then by id.
func byName(ids map[int]bool, name func(id int) string) []int {
	out := sortedKeys(ids)
	sort.SliceStable(out, func(i, j int) bool {
		return strings.ToLower(name(out[i])) < strings.ToLower(name(out[j]))
	})
	return out
}

// idNumberUsed reports whether a record among ids other than exceptID has
// the idnumber (PHP's ==; an empty idnumber is never used). It reads the
// database, not the group cache: it is the seeding API's check, which sets
// a site up as asked rather than as a cache would have it.
func idNumberUsed[R interface{ ident() (int, string) }](recs map[int]*R, ids map[int]bool, idnumber string, exceptID int) bool {
	if phpEmpty(idnumber) {
		return false
	}
	for id := range ids {
		if _, idn := (*recs[id]).ident(); id != exceptID && phpLooseEq(idn, idnumber) {
			return true
		}
	}
	return false
}

// checkGroupFields applies the rules Moodle's group form and database
// enforce on a new or renamed group; exceptID is the group being renamed.
func (st *state) checkGroupFields(courseID int, name, idnumber string, exceptID int) error {
	if name == "" {
		return fmt.Errorf("%w: group name is blank", ErrInvalid)
	}
	if utf8.RuneCountInString(name) > maxGroupName || utf8.RuneCountInString(idnumber) > maxGroupIDNumber {
		return fmt.Errorf("%w: group name or idnumber too long", ErrInvalid)
	}
	for id := range st.courseGroups[courseID] {
		if g := st.groups[id]; g.id != exceptID && sqlEq(g.name, name) {
			return fmt.Errorf("%w: group name %q already used in course %d", ErrConflict, name, courseID)
		}
	}
	if idNumberUsed(st.groups, st.courseGroups[courseID], idnumber, exceptID) {
		return fmt.Errorf("%w: group idnumber %q already used in course %d", ErrConflict, idnumber, courseID)
	}
	return nil
}

func (st *state) checkGroupingFields(courseID int, name, idnumber string) error {
	if name == "" {
		return fmt.Errorf("%w: grouping name is blank", ErrInvalid)
	}
	if utf8.RuneCountInString(name) > maxGroupName || utf8.RuneCountInString(idnumber) > maxGroupIDNumber {
		return fmt.Errorf("%w: grouping name or idnumber too long", ErrInvalid)
	}
	if st.groupingNameTaken(courseID, name) {
		return fmt.Errorf("%w: grouping name %q already used in course %d", ErrConflict, name, courseID)
	}
	if idNumberUsed(st.groupings, st.courseGroupings[courseID], idnumber, 0) {
		return fmt.Errorf("%w: grouping idnumber %q already used in course %d", ErrConflict, idnumber, courseID)
	}
	return nil
}

// addGroup stores a hand-made group after checking it; id 0 takes the next id.
func (st *state) addGroup(g Group) (int, error) {
	if st.courses[g.CourseID] == nil {
		return 0, fmt.Errorf("%w: course %d", ErrNotFound, g.CourseID)
	}
	name, idnumber := phpTrim(g.Name), phpTrim(g.IDNumber)
	if err := st.checkGroupFields(g.CourseID, name, idnumber, 0); err != nil {
		return 0, err
	}
	members := map[int]bool{}
	for _, uid := range g.Members {
		if st.users[uid] == nil {
			return 0, fmt.Errorf("%w: user %d", ErrNotFound, uid)
		}
		if !st.enrolled(g.CourseID, uid) {
			return 0, fmt.Errorf("%w: user %d, course %d", ErrNotEnrolled, uid, g.CourseID)
		}
		members[uid] = true
	}
	id, err := st.takeID(&st.nextGroup, g.ID, func(id int) bool { return st.groups[id] != nil })
	if err != nil {
		return 0, err
	}
	st.insertGroup(&groupRec{id: id, courseid: g.CourseID, name: name, idnumber: idnumber,
		description: g.Description, descformat: formatHTML, participation: true, members: members})
	return id, nil
}

// addGrouping stores a hand-made grouping. With sameCourse its groups must
// belong to its course (Moodle's form only offers those); seeds written from a
// site where assign_grouping linked groups across courses skip that check.
func (st *state) addGrouping(g Grouping, sameCourse bool) (int, error) {
	if st.courses[g.CourseID] == nil {
		return 0, fmt.Errorf("%w: course %d", ErrNotFound, g.CourseID)
	}
	name, idnumber := phpTrim(g.Name), phpTrim(g.IDNumber)
	if err := st.checkGroupingFields(g.CourseID, name, idnumber); err != nil {
		return 0, err
	}
	groups := map[int]bool{}
	for _, gid := range g.Groups {
		grp := st.groups[gid]
		if grp == nil {
			return 0, fmt.Errorf("%w: group %d", ErrNotFound, gid)
		}
		if sameCourse && grp.courseid != g.CourseID {
			return 0, fmt.Errorf("%w: group %d is not in course %d", ErrInvalid, gid, g.CourseID)
		}
		groups[gid] = true
	}
	id, err := st.takeID(&st.nextGrouping, g.ID, func(id int) bool { return st.groupings[id] != nil })
	if err != nil {
		return 0, err
	}
	st.insertGrouping(&groupingRec{id: id, courseid: g.CourseID, name: name, idnumber: idnumber,
		description: g.Description, descformat: formatHTML, groups: groups})
	return id, nil
}

// takeID returns want (if positive and free) or the next id, and advances the
// counter past the id returned.
func (st *state) takeID(next *int, want int, used func(int) bool) (int, error) {
	id := want
	if id <= 0 {
		id = *next
	} else if used(id) {
		return 0, fmt.Errorf("%w: id %d already used", ErrConflict, id)
	}
	if id >= *next {
		*next = id + 1
	}
	return id, nil
}

func (st *state) snapshot() State {
	out := State{Enrolments: map[int][]int{}, UserEnrolments: []UserEnrolment{}, RoleAssignments: []RoleAssignment{}}
	out.Courses = make([]Course, 0, len(st.courses))
	for _, c := range st.courses {
		out.Courses = append(out.Courses, c.public())
	}
	sort.Slice(out.Courses, func(i, j int) bool { return out.Courses[i].ID < out.Courses[j].ID })
	out.Users = make([]User, 0, len(st.users))
	for _, u := range st.users {
		out.Users = append(out.Users, User{ID: u.id, Username: u.username, IDNumber: u.idnumber, Email: u.email, FirstName: u.firstname, LastName: u.lastname})
	}
	sort.Slice(out.Users, func(i, j int) bool { return out.Users[i].ID < out.Users[j].ID })
	for _, cid := range sortedKeys(st.enrol) {
		users := sortedKeys(st.enrol[cid])
		out.Enrolments[cid] = users
		for _, uid := range users {
			e := st.enrol[cid][uid]
			for _, m := range sortedMethods(e) {
				ue := e.methods[m]
				out.UserEnrolments = append(out.UserEnrolments, UserEnrolment{CourseID: cid, UserID: uid, Method: m,
					Suspended: ue.suspended, TimeStart: ue.timestart, TimeEnd: ue.timeend})
			}
			for _, rid := range sortedKeys(e.roles) {
				out.RoleAssignments = append(out.RoleAssignments, RoleAssignment{CourseID: cid, UserID: uid, RoleID: rid})
			}
		}
	}
	out.Groups = make([]Group, 0, len(st.groups))
	for _, g := range st.groups {
		out.Groups = append(out.Groups, Group{ID: g.id, CourseID: g.courseid, Name: g.name, IDNumber: g.idnumber,
			Description: g.description, Members: sortedKeys(g.members)})
	}
	sort.Slice(out.Groups, func(i, j int) bool { return out.Groups[i].ID < out.Groups[j].ID })
	out.Groupings = make([]Grouping, 0, len(st.groupings))
	for _, g := range st.groupings {
		out.Groupings = append(out.Groupings, Grouping{ID: g.id, CourseID: g.courseid, Name: g.name, IDNumber: g.idnumber,
			Description: g.description, Groups: sortedKeys(g.groups)})
	}
	sort.Slice(out.Groupings, func(i, j int) bool { return out.Groupings[i].ID < out.Groupings[j].ID })
	return out
}

// public is the course as State shows it.
func (c *courseRec) public() Course {
	return Course{ID: c.id, ShortName: c.shortname, FullName: c.fullname, IDNumber: c.idnumber, Inaccessible: c.inaccessible,
		StartDate: c.startdate, EndDate: c.enddate, ManualDisabled: c.manualDisabled, Hidden: c.hidden}
}

// courseRecOf is the record of a new course described by c (c.ID is not
// used).
func courseRecOf(id int, c Course) *courseRec {
	return &courseRec{id: id, shortname: c.ShortName, fullname: c.FullName, idnumber: c.IDNumber, inaccessible: c.Inaccessible || c.Hidden,
		startdate: c.StartDate, enddate: c.EndDate, manualDisabled: c.ManualDisabled, hidden: c.Hidden}
}

// sortedMethods lists the enrolment methods of e, sorted.
func sortedMethods(e *enrolment) []string {
	out := make([]string, 0, len(e.methods))
	for m := range e.methods {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// AddCourse creates a course and returns its id (c.ID is ignored).
func (s *Server) AddCourse(c Course) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.st.nextCourse
	s.st.nextCourse++
	s.st.insertCourse(courseRecOf(id, c))
	return id
}

// editCourse changes a course's settings by hand.
func (s *Server) editCourse(courseID int, edit func(c *courseRec)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.st.courses[courseID]
	if c == nil {
		return fmt.Errorf("%w: course %d", ErrNotFound, courseID)
	}
	s.st.editCourse(c, edit)
	return nil
}

// SetCourseEndDate sets a course's end date (unix time; 0: none), as a
// teacher does in the course settings. core_course_get_courses_by_field
// reports it. Like Moodle's database, the simulator does not require it to
// be after the start date.
func (s *Server) SetCourseEndDate(courseID int, end int64) error {
	return s.editCourse(courseID, func(c *courseRec) { c.enddate = end })
}

// SetManualEnrolEnabled enables (ok) or disables a course's manual
// enrolment method. While it is disabled, enrol_manual_enrol_users answers
// wsnoinstance for the course, enrol_manual_unenrol_users still unenrols
// (the method exists), and its enrolments are not active (onlyactive).
func (s *Server) SetManualEnrolEnabled(courseID int, ok bool) error {
	return s.editCourse(courseID, func(c *courseRec) { c.manualDisabled = !ok })
}

// SetCourseAccessible gives (ok) or takes away the web-service user's access
// to a course, as prohibiting moodle/course:view there does. The course stays
// and keeps its groups; every course-context function answers
// errorcoursecontextnotvalid for it while it is inaccessible, and
// core_course_get_courses_by_field still lists it (see the package
// documentation).
func (s *Server) SetCourseAccessible(courseID int, ok bool) error {
	return s.editCourse(courseID, func(c *courseRec) { c.inaccessible = !ok })
}

// SetCourseHidden hides a course (hidden) from a web-service user who may
// neither view hidden courses nor update the course, or shows it again.
// Moodle's code (not the reference) leaves such a course out of
// core_course_get_courses_by_field altogether, as if it were deleted, while
// every course-context function refuses it as for an inaccessible course.
func (s *Server) SetCourseHidden(courseID int, hidden bool) error {
	return s.editCourse(courseID, func(c *courseRec) { c.hidden, c.inaccessible = hidden, hidden })
}

// AddUser creates a user and returns its id (u.ID is ignored).
func (s *Server) AddUser(u User) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.st.nextUser
	s.st.nextUser++
	s.st.insertUser(&userRec{id: id, username: u.Username, idnumber: u.IDNumber, email: u.Email, firstname: u.FirstName, lastname: u.LastName})
	return id
}

// Enrol enrols a user in a course with the manual enrolment method, as a
// student (a no-op if already enrolled by any method).
func (s *Server) Enrol(courseID, userID int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.st.checkCourseUser(courseID, userID); err != nil {
		return err
	}
	if !s.st.enrolled(courseID, userID) {
		s.st.enrolUser(courseID, userID, MethodManual, ueRec{}, RoleStudent)
	}
	return nil
}

// EnrolUser enrols a user in a course through e.Method ("" is
// MethodManual) as Moodle's enrol_plugin::enrol_user() does: a new
// enrolment, or an update of the suspension and times of the user's
// enrolment by that method; the roles are added to those the user holds in
// the course. Use it to enrol by another method than the web services use,
// to suspend an enrolment by hand, or to give a user no role at all.
func (s *Server) EnrolUser(e UserEnrolment, roles ...int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.enrolUserChecked(e, roles)
}

// enrolUserChecked is EnrolUser after its checks.
func (st *state) enrolUserChecked(e UserEnrolment, roles []int) error {
	if err := st.checkCourseUser(e.CourseID, e.UserID); err != nil {
		return err
	}
	if e.Method == "" {
		e.Method = MethodManual
	}
	for _, r := range roles {
		if roleShortNames[r] == "" {
			return fmt.Errorf("%w: role %d is not a role of a stock site", ErrInvalid, r)
		}
	}
	st.enrolUser(e.CourseID, e.UserID, e.Method, ueRec{suspended: e.Suspended, timestart: e.TimeStart, timeend: e.TimeEnd}, roles...)
	return nil
}

func (st *state) checkCourseUser(courseID, userID int) error {
	if st.courses[courseID] == nil {
		return fmt.Errorf("%w: course %d", ErrNotFound, courseID)
	}
	if st.users[userID] == nil {
		return fmt.Errorf("%w: user %d", ErrNotFound, userID)
	}
	return nil
}

// Unenrol removes every enrolment of a user in a course, whatever its
// method, with the user's roles there and, as Moodle does when the last
// enrolment goes, the user's memberships in the course's groups.
func (s *Server) Unenrol(courseID, userID int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.courses[courseID] == nil {
		return fmt.Errorf("%w: course %d", ErrNotFound, courseID)
	}
	if !s.st.enrolled(courseID, userID) {
		return fmt.Errorf("%w: user %d, course %d", ErrNotEnrolled, userID, courseID)
	}
	s.st.unenrol(courseID, userID)
	return nil
}

// AddGroup creates a group as a teacher would by hand, bypassing the web
// services (g.ID is ignored). The course must exist, the name must be
// non-blank and unused in the course, a non-empty idnumber unused, and the
// members enrolled.
func (s *Server) AddGroup(g Group) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g.ID = 0
	return s.st.addGroup(g)
}

// AddGrouping creates a grouping by hand (g.ID is ignored). Its groups must
// belong to its course.
func (s *Server) AddGrouping(g Grouping) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g.ID = 0
	return s.st.addGrouping(g, true)
}

// DeleteGroup deletes a group by hand, with its memberships and grouping
// links.
func (s *Server) DeleteGroup(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.groups[id] == nil {
		return fmt.Errorf("%w: group %d", ErrNotFound, id)
	}
	s.st.deleteGroup(id)
	return nil
}

// RenameGroup renames a group by hand. The new name must be non-blank and
// unused by another group of the course.
func (s *Server) RenameGroup(id int, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.st.groups[id]
	if g == nil {
		return fmt.Errorf("%w: group %d", ErrNotFound, id)
	}
	name = phpTrim(name)
	if err := s.st.checkGroupFields(g.courseid, name, "", id); err != nil {
		return err
	}
	s.st.editGroup(g, func(g *groupRec) { g.name = name })
	return nil
}

// DeleteGrouping deletes a grouping by hand; its groups stay.
func (s *Server) DeleteGrouping(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.groupings[id] == nil {
		return fmt.Errorf("%w: grouping %d", ErrNotFound, id)
	}
	s.st.deleteGrouping(id)
	return nil
}

// DeleteCourse deletes a course with its groups, groupings, memberships and
// enrolments.
func (s *Server) DeleteCourse(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.courses[id] == nil {
		return fmt.Errorf("%w: course %d", ErrNotFound, id)
	}
	s.st.deleteCourse(id)
	return nil
}

// AddMember adds an enrolled user to a group by hand (a no-op if already a
// member).
func (s *Server) AddMember(groupID, userID int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.st.groups[groupID]
	if g == nil {
		return fmt.Errorf("%w: group %d", ErrNotFound, groupID)
	}
	if s.st.users[userID] == nil {
		return fmt.Errorf("%w: user %d", ErrNotFound, userID)
	}
	if !s.st.enrolled(g.courseid, userID) {
		return fmt.Errorf("%w: user %d, course %d", ErrNotEnrolled, userID, g.courseid)
	}
	s.st.addMember(g, userID)
	return nil
}

// RemoveMember removes a user from a group by hand (a no-op if not a member).
func (s *Server) RemoveMember(groupID, userID int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.st.groups[groupID]
	if g == nil {
		return fmt.Errorf("%w: group %d", ErrNotFound, groupID)
	}
	s.st.removeMember(g, userID)
	return nil
}

// State returns a deep copy of the site, sorted by id.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.snapshot()
}
