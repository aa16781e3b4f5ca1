package moodlesim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// The seed file format is described in the package documentation.

type seedFile struct {
	Courses    []seedCourse    `json:"courses"`
	Users      []seedUser      `json:"users"`
	Enrolments []seedEnrolment `json:"enrolments"`
	Groups     []seedGroup     `json:"groups"`
	Groupings  []seedGrouping  `json:"groupings"`
	NextIDs    *seedNextIDs    `json:"next_ids,omitempty"`
}

type seedCourse struct {
	ID             int    `json:"id,omitempty"`
	ShortName      string `json:"shortname"`
	FullName       string `json:"fullname"`
	IDNumber       string `json:"idnumber,omitempty"`
	Inaccessible   bool   `json:"inaccessible,omitempty"`
	StartDate      int64  `json:"startdate,omitempty"`
	EndDate        int64  `json:"enddate,omitempty"`
	ManualDisabled bool   `json:"manualdisabled,omitempty"`
	Hidden         bool   `json:"hidden,omitempty"`
}

type seedUser struct {
	ID        int    `json:"id,omitempty"`
	Username  string `json:"username"`
	IDNumber  string `json:"idnumber,omitempty"`
	Email     string `json:"email,omitempty"`
	FirstName string `json:"firstname,omitempty"`
	LastName  string `json:"lastname,omitempty"`
}

// seedEnrolment is one enrolment by one method. Roles nil (the key left
// out) means a student; [] means no role.
type seedEnrolment struct {
	Course    seedRef `json:"course"`
	User      seedRef `json:"user"`
	Method    string  `json:"method,omitempty"`
	Suspended bool    `json:"suspended,omitempty"`
	TimeStart int64   `json:"timestart,omitempty"`
	TimeEnd   int64   `json:"timeend,omitempty"`
	Roles     *[]int  `json:"roles,omitempty"`
}

type seedGroup struct {
	ID          int       `json:"id,omitempty"`
	Course      seedRef   `json:"course"`
	Name        string    `json:"name"`
	IDNumber    string    `json:"idnumber,omitempty"`
	Description string    `json:"description,omitempty"`
	Members     []seedRef `json:"members,omitempty"`
}

type seedGrouping struct {
	ID          int       `json:"id,omitempty"`
	Course      seedRef   `json:"course"`
	Name        string    `json:"name"`
	IDNumber    string    `json:"idnumber,omitempty"`
	Description string    `json:"description,omitempty"`
	Groups      []seedRef `json:"groups,omitempty"`
}

type seedNextIDs struct {
	Course   int `json:"course,omitempty"`
	User     int `json:"user,omitempty"`
	Group    int `json:"group,omitempty"`
	Grouping int `json:"grouping,omitempty"`
}

// seedRef is a JSON number (an id) or a JSON string (a name).
type seedRef struct {
	id    int
	name  string
	isID  bool
	valid bool
}

func (r *seedRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = seedRef{name: s, valid: true}
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("reference must be an id (number) or a name (string): %s", b)
	}
	*r = seedRef{id: n, isID: true, valid: true}
	return nil
}

func (r seedRef) MarshalJSON() ([]byte, error) {
	if r.isID {
		return []byte(strconv.Itoa(r.id)), nil
	}
	return json.Marshal(r.name)
}

func (r seedRef) String() string {
	if r.isID {
		return strconv.Itoa(r.id)
	}
	return strconv.Quote(r.name)
}

func idRef(id int) seedRef { return seedRef{id: id, isID: true, valid: true} }

// LoadSeed adds the courses, users, enrolments, groups and groupings of a
// JSON seed (see the package documentation) to the site. It is
// all-or-nothing: on error the site is unchanged.
func (s *Server) LoadSeed(r io.Reader) error {
	var f seedFile
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("moodlesim: reading seed: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A bad seed leaves the site unchanged, id counters included.
	ids := s.st.idCounters
	s.st.begin()
	defer s.st.rollback() // does nothing after the commit
	if err := s.st.applySeed(&f); err != nil {
		s.st.rollback()
		s.st.idCounters = ids
		return fmt.Errorf("moodlesim: seed: %w", err)
	}
	s.st.commit()
	return nil
}

func (st *state) applySeed(f *seedFile) error {
	for i, c := range f.Courses {
		id, err := st.takeID(&st.nextCourse, c.ID, func(id int) bool { return st.courses[id] != nil })
		if err != nil {
			return fmt.Errorf("courses[%d]: %w", i, err)
		}
		st.insertCourse(courseRecOf(id, Course{ShortName: c.ShortName, FullName: c.FullName, IDNumber: c.IDNumber,
			Inaccessible: c.Inaccessible, StartDate: c.StartDate, EndDate: c.EndDate, ManualDisabled: c.ManualDisabled, Hidden: c.Hidden}))
	}
	for i, u := range f.Users {
		id, err := st.takeID(&st.nextUser, u.ID, func(id int) bool { return st.users[id] != nil })
		if err != nil {
			return fmt.Errorf("users[%d]: %w", i, err)
		}
		st.insertUser(&userRec{id: id, username: u.Username, idnumber: u.IDNumber, email: u.Email, firstname: u.FirstName, lastname: u.LastName})
	}
	for i, e := range f.Enrolments {
		cid, err := st.resolveCourse(e.Course)
		if err != nil {
			return fmt.Errorf("enrolments[%d]: %w", i, err)
		}
		uid, err := st.resolveUser(e.User)
		if err != nil {
			return fmt.Errorf("enrolments[%d]: %w", i, err)
		}
		roles := []int{RoleStudent}
		if e.Roles != nil {
			roles = *e.Roles
		}
		ue := UserEnrolment{CourseID: cid, UserID: uid, Method: e.Method, Suspended: e.Suspended, TimeStart: e.TimeStart, TimeEnd: e.TimeEnd}
		if err := st.enrolUserChecked(ue, roles); err != nil {
			return fmt.Errorf("enrolments[%d]: %w", i, err)
		}
	}
	for i, g := range f.Groups {
		cid, err := st.resolveCourse(g.Course)
		if err != nil {
			return fmt.Errorf("groups[%d]: %w", i, err)
		}
		members := make([]int, 0, len(g.Members))
		for _, m := range g.Members {
			uid, err := st.resolveUser(m)
			if err != nil {
				return fmt.Errorf("groups[%d]: %w", i, err)
			}
			members = append(members, uid)
		}
		if _, err := st.addGroup(Group{ID: g.ID, CourseID: cid, Name: g.Name, IDNumber: g.IDNumber, Description: g.Description, Members: members}); err != nil {
			return fmt.Errorf("groups[%d]: %w", i, err)
		}
	}
	for i, g := range f.Groupings {
		cid, err := st.resolveCourse(g.Course)
		if err != nil {
			return fmt.Errorf("groupings[%d]: %w", i, err)
		}
		groups := make([]int, 0, len(g.Groups))
		sameCourse := true
		for _, ref := range g.Groups {
			if ref.isID {
				sameCourse = false
			}
			gid, err := st.resolveGroup(cid, ref)
			if err != nil {
				return fmt.Errorf("groupings[%d]: %w", i, err)
			}
			groups = append(groups, gid)
		}
		if _, err := st.addGrouping(Grouping{ID: g.ID, CourseID: cid, Name: g.Name, IDNumber: g.IDNumber, Description: g.Description, Groups: groups}, sameCourse); err != nil {
			return fmt.Errorf("groupings[%d]: %w", i, err)
		}
	}
	if n := f.NextIDs; n != nil {
		raise := func(p *int, v int) {
			if v > *p {
				*p = v
			}
		}
		raise(&st.nextCourse, n.Course)
		raise(&st.nextUser, n.User)
		raise(&st.nextGroup, n.Group)
		raise(&st.nextGrouping, n.Grouping)
	}
	return nil
}

func (st *state) resolveCourse(r seedRef) (int, error) {
	if !r.valid {
		return 0, fmt.Errorf("%w: missing course reference", ErrInvalid)
	}
	if r.isID {
		if st.courses[r.id] == nil {
			return 0, fmt.Errorf("%w: course %s", ErrNotFound, r)
		}
		return r.id, nil
	}
	found := 0
	for id, c := range st.courses {
		if c.shortname == r.name {
			if found != 0 {
				return 0, fmt.Errorf("%w: course shortname %s is ambiguous", ErrConflict, r)
			}
			found = id
		}
	}
	if found == 0 {
		return 0, fmt.Errorf("%w: course %s", ErrNotFound, r)
	}
	return found, nil
}

func (st *state) resolveUser(r seedRef) (int, error) {
	if !r.valid {
		return 0, fmt.Errorf("%w: missing user reference", ErrInvalid)
	}
	if r.isID {
		if st.users[r.id] == nil {
			return 0, fmt.Errorf("%w: user %s", ErrNotFound, r)
		}
		return r.id, nil
	}
	found := 0
	for id, u := range st.users {
		if u.username == r.name {
			if found != 0 {
				return 0, fmt.Errorf("%w: username %s is ambiguous", ErrConflict, r)
			}
			found = id
		}
	}
	if found == 0 {
		return 0, fmt.Errorf("%w: user %s", ErrNotFound, r)
	}
	return found, nil
}

func (st *state) resolveGroup(courseID int, r seedRef) (int, error) {
	if r.isID {
		if st.groups[r.id] == nil {
			return 0, fmt.Errorf("%w: group %s", ErrNotFound, r)
		}
		return r.id, nil
	}
	for _, match := range []func(*groupRec) bool{
		func(g *groupRec) bool { return r.name != "" && g.idnumber == r.name },
		func(g *groupRec) bool { return g.name == r.name },
	} {
		for _, id := range st.groupIDs(courseID) {
			if match(st.groups[id]) {
				return id, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: group %s in course %d", ErrNotFound, r, courseID)
}

// SaveSeed writes the whole site as a JSON seed that LoadSeed reads back into
// the same State (records keep their ids; references are ids).
func (s *Server) SaveSeed(w io.Writer) error {
	s.mu.Lock()
	snap := s.st.snapshot()
	next := seedNextIDs{Course: s.st.nextCourse, User: s.st.nextUser, Group: s.st.nextGroup, Grouping: s.st.nextGrouping}
	s.mu.Unlock()

	f := seedFile{
		Courses:    make([]seedCourse, 0, len(snap.Courses)),
		Users:      make([]seedUser, 0, len(snap.Users)),
		Enrolments: []seedEnrolment{},
		Groups:     make([]seedGroup, 0, len(snap.Groups)),
		Groupings:  make([]seedGrouping, 0, len(snap.Groupings)),
		NextIDs:    &next,
	}
	for _, c := range snap.Courses {
		f.Courses = append(f.Courses, seedCourse{ID: c.ID, ShortName: c.ShortName, FullName: c.FullName, IDNumber: c.IDNumber,
			Inaccessible: c.Inaccessible, StartDate: c.StartDate, EndDate: c.EndDate, ManualDisabled: c.ManualDisabled, Hidden: c.Hidden})
	}
	// Each enrolment carries all of its user's roles in the course: loading
	// adds them up, so repeating them changes nothing.
	roles := map[[2]int][]int{}
	for _, ra := range snap.RoleAssignments {
		k := [2]int{ra.CourseID, ra.UserID}
		roles[k] = append(roles[k], ra.RoleID)
	}
	for _, ue := range snap.UserEnrolments {
		r := append([]int{}, roles[[2]int{ue.CourseID, ue.UserID}]...)
		f.Enrolments = append(f.Enrolments, seedEnrolment{Course: idRef(ue.CourseID), User: idRef(ue.UserID), Method: ue.Method,
			Suspended: ue.Suspended, TimeStart: ue.TimeStart, TimeEnd: ue.TimeEnd, Roles: &r})
	}
	for _, u := range snap.Users {
		f.Users = append(f.Users, seedUser{ID: u.ID, Username: u.Username, IDNumber: u.IDNumber, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName})
	}
	for _, g := range snap.Groups {
		sg := seedGroup{ID: g.ID, Course: idRef(g.CourseID), Name: g.Name, IDNumber: g.IDNumber, Description: g.Description}
		for _, uid := range g.Members {
			sg.Members = append(sg.Members, idRef(uid))
		}
		f.Groups = append(f.Groups, sg)
	}
	for _, g := range snap.Groupings {
		sg := seedGrouping{ID: g.ID, Course: idRef(g.CourseID), Name: g.Name, IDNumber: g.IDNumber, Description: g.Description}
		for _, gid := range g.Groups {
			sg.Groups = append(sg.Groups, idRef(gid))
		}
		f.Groupings = append(f.Groupings, sg)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(&f)
}
