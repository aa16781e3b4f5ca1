package moodle

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// The manual enrolment plugin's web services, and the enrolment read with
// its options. Facts from the reference notes ("Enrolment functions"):
// enrol_manual_enrol_users answers null, also for someone already enrolled
// (nothing changes); suspend=1 suspends; suspended users are still listed by
// core_enrol_get_enrolled_users unless onlyactive=1, and can still be added
// to groups; one bad entry rolls the whole call back; a role the service
// user may not assign answers wsusercannotassign, a course that does not
// exist invalidparameter, and a user id that does not exist an exception
// without errorcode (a PHP TypeError). enrol_manual_unenrol_users answers
// null, also for someone not enrolled, and removes the user from every group
// of the course: Moodle's own advice is to suspend rather than unenrol,
// since unenrolment purges the user's participation in the course.
//
// From Moodle's code, not recorded on a real site (the contract suite checks
// them there): enrolling again sets the enrolment's suspension as sent,
// which is why EnrolForm always sends suspend; unenrol_users accepts roleid
// and does not use it: the whole manual enrolment goes; it only touches
// manual enrolments, and a user also enrolled another way keeps their
// groups and roles.

// FnManualUnenrolUsers removes users' manual enrolments.
const FnManualUnenrolUsers = "enrol_manual_unenrol_users"

// EnrolFunctions are the manual enrolment plugin's functions. They are not
// in RequiredFunctions: a sync needs them only when it enrols or unenrols
// (see EnrolFunctionsFor).
var EnrolFunctions = []string{FnManualEnrolUsers, FnManualUnenrolUsers}

// EnrolFunctionsFor returns the enrolment functions a sync needs when it
// enrols people (enrol), suspends enrolments it made (suspend: that is
// enrol_manual_enrol_users with suspend=1, and again with suspend=0 to undo
// it) or unenrols them (unenrol), in the order of EnrolFunctions.
func EnrolFunctionsFor(enrol, suspend, unenrol bool) []string {
	var out []string
	if enrol || suspend {
		out = append(out, FnManualEnrolUsers)
	}
	if unenrol {
		out = append(out, FnManualUnenrolUsers)
	}
	return out
}

// Error codes of the enrolment functions.
const (
	// CodeCannotAssign: the service user may not assign the role in the
	// course (a role id that does not exist answers it too).
	CodeCannotAssign = "wsusercannotassign"
	// CodeNoManualInstance: the course has no enabled manual enrolment
	// method (Moodle's code; not in the reference notes).
	CodeNoManualInstance = "wsnoinstance"
	// CodeRequireLogin: the service user may not access the course. The
	// enrol_manual functions let this exception through where the group
	// functions answer errorcoursecontextnotvalid (Moodle's code; not in the
	// reference notes).
	CodeRequireLogin = "requireloginerror"
)

// IsUncaught reports an error answer without errorcode: a PHP error Moodle
// did not catch, such as the TypeError of enrol_manual_enrol_users for a
// user id that does not exist. Like an answer with an errorcode it is
// permanent and about the call's entries: a batch that gets it is split like
// any refused batch.
func IsUncaught(err error) bool {
	var me *Error
	return errors.As(err, &me) && me.ErrorCode == "" && me.Exception != "" && me.Exception != "cmissync"
}

// Enrolment is one entry of enrol_manual_enrol_users: enrol the user in the
// course with the manual enrolment method and give them the role; Suspend
// makes (or leaves) the enrolment suspended, false makes it active.
type Enrolment struct {
	RoleID, UserID, CourseID int64
	Suspend                  bool
}

// VarsPerEnrolment is the form variables of one Enrolment, for Capacity.
const VarsPerEnrolment = 4 // roleid, userid, courseid, suspend

// EnrolForm renders enrol_manual_enrol_users parameters. suspend is always
// sent, 0 or 1, so that an entry says what the enrolment becomes whatever
// Moodle does with a missing one.
func EnrolForm(enrolments []Enrolment) *Form {
	return enrolmentsForm(enrolments, func(f *Form, p string, e Enrolment) {
		f.AddInt(p+"[roleid]", e.RoleID)
		f.AddInt(p+"[userid]", e.UserID)
		f.AddInt(p+"[courseid]", e.CourseID)
		suspend := int64(0)
		if e.Suspend {
			suspend = 1
		}
		f.AddInt(p+"[suspend]", suspend)
	})
}

// enrolmentsForm renders items as the enrolments[i] list both enrol_manual
// functions take; add writes one item's keys under the prefix p.
func enrolmentsForm[T any](items []T, add func(f *Form, p string, item T)) *Form {
	f := &Form{}
	for i, item := range items {
		add(f, "enrolments["+strconv.Itoa(i)+"]", item)
	}
	return f
}

// EnrolUsers calls enrol_manual_enrol_users once (one transaction: all or
// none). Size the batch with Capacity(VarsPerEnrolment).
func (c *Client) EnrolUsers(ctx context.Context, enrolments []Enrolment) error {
	return c.Call(ctx, FnManualEnrolUsers, EnrolForm(enrolments), nil)
}

// Unenrolment is one entry of enrol_manual_unenrol_users. RoleID 0 leaves
// roleid out. Moodle's code does not use roleid: the user's whole manual
// enrolment goes either way.
type Unenrolment struct {
	UserID, CourseID, RoleID int64
}

// VarsPerUnenrolment is the most form variables of one Unenrolment.
const VarsPerUnenrolment = 3 // userid, courseid, roleid

// UnenrolForm renders enrol_manual_unenrol_users parameters.
func UnenrolForm(unenrolments []Unenrolment) *Form {
	return enrolmentsForm(unenrolments, func(f *Form, p string, u Unenrolment) {
		f.AddInt(p+"[userid]", u.UserID)
		f.AddInt(p+"[courseid]", u.CourseID)
		if u.RoleID != 0 {
			f.AddInt(p+"[roleid]", u.RoleID)
		}
	})
}

// UnenrolUsers calls enrol_manual_unenrol_users once (one transaction). It
// removes each user's manual enrolment and, when that was the user's last
// enrolment in the course, every group membership and role there, and
// Moodle purges the user's participation in the course. Size the batch
// with Capacity(VarsPerUnenrolment).
func (c *Client) UnenrolUsers(ctx context.Context, unenrolments []Unenrolment) error {
	return c.Call(ctx, FnManualUnenrolUsers, UnenrolForm(unenrolments), nil)
}

// EnrolledOptions select what core_enrol_get_enrolled_users answers.
type EnrolledOptions struct {
	// OnlyActive leaves out users whose enrolments are all suspended,
	// disabled or outside their dates (option onlyactive=1). Moodle
	// requires moodle/course:enrolreview in the course for it.
	OnlyActive bool
	// Fields are the user fields wanted besides id, which always comes:
	// e.g. "idnumber", "username", "email", "roles".
	Fields []string
}

// Role is a role a user holds in a course, as core_enrol_get_enrolled_users
// reports it with the user field "roles". Name is empty for the stock
// roles, whose names Moodle translates.
type Role struct {
	ID        int64  `json:"roleid"`
	Name      string `json:"name"`
	ShortName string `json:"shortname"`
	SortOrder int    `json:"sortorder"`
}

// EnrolledUser is a user of core_enrol_get_enrolled_users, with the roles
// they hold in the course when the field "roles" was asked for.
type EnrolledUser struct {
	User
	Roles []Role `json:"roles"`
}

// HasRole reports whether the user holds the role (by id) in the course.
func (u EnrolledUser) HasRole(id int64) bool {
	for _, r := range u.Roles {
		if r.ID == id {
			return true
		}
	}
	return false
}

// EnrolledUsersWith lists the users enrolled in a course, suspended ones
// included unless o.OnlyActive, with the fields o asks for.
func (c *Client) EnrolledUsersWith(ctx context.Context, courseID int64, o EnrolledOptions) ([]EnrolledUser, error) {
	f := &Form{}
	f.AddInt("courseid", courseID)
	f.Add("options[0][name]", "userfields")
	f.Add("options[0][value]", strings.Join(append([]string{"id"}, o.Fields...), ","))
	if o.OnlyActive {
		f.Add("options[1][name]", "onlyactive")
		f.Add("options[1][value]", "1")
	}
	var out []EnrolledUser
	err := c.Call(ctx, FnEnrolledUsers, f, &out)
	return out, err
}
