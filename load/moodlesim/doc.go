// Package moodlesim is an in-memory Moodle site that speaks Moodle's REST
// web-service protocol (POST or GET /webservice/rest/server.php with wstoken,
// wsfunction and moodlewsrestformat). It is the Moodle used by the cmissync
// tests, by `cmissync demo`, and by `cmissync moodle-sim`, which runs it on its
// own. It imitates a stock Moodle 4.5 (version 2024100706) as recorded in the
// project's reference notes on Moodle's REST behaviour, and implements the
// semantics of Moodle's core_group external functions.
//
// # Protocol
//
// Every answer is HTTP 200. Success answers are JSON shaped like Moodle's (keys
// in the order of Moodle's return descriptions; functions returning nothing
// answer the literal null). Failures are
// {"exception":...,"errorcode":...,"message":...}, with a "debuginfo" key only
// when Options.Debug is set. Strings are encoded as PHP's json_encode does
// ("/" as "\/", non-ASCII as \uXXXX). Without moodlewsrestformat=json the
// answer is Moodle's XML (Content-Type application/xml).
//
// Request processing follows Moodle's webservice_rest_server: PHP input
// parsing (including max_input_vars truncation, see below), then the token
// (invalidtoken), then the function (invalidrecord on external_functions, then
// accessexception when the function is not in the token's service), then
// validate_parameters (invalidparameter), then the function itself. Every
// function runs as one transaction: its entries are applied one by one while
// an undo journal records the inverse of each change, and any error replays
// the journal backwards, so nothing of a failed call is applied (the id
// counters aside: like InnoDB's auto-increment, a rolled-back call does not
// give back the ids it took, and Moodle's group cache keeps what the call
// did to it, see below). A call costs what it touches, not the size of the
// site.
//
// Implemented functions: core_group_create_groups, core_group_update_groups,
// core_group_delete_groups, core_group_get_groups, core_group_get_course_groups,
// core_group_create_groupings, core_group_update_groupings,
// core_group_delete_groupings, core_group_get_groupings,
// core_group_get_course_groupings, core_group_assign_grouping,
// core_group_unassign_grouping, core_group_add_group_members,
// core_group_delete_group_members, core_group_get_group_members,
// core_enrol_get_enrolled_users, core_user_get_users_by_field,
// core_course_get_courses_by_field, enrol_manual_enrol_users,
// enrol_manual_unenrol_users, core_role_unassign_roles and
// core_webservice_get_site_info. A few
// functions a real site has and the simulator does not implement
// (core_course_update_courses, core_user_create_users) are never in the
// token's service and answer accessexception, as a function left out of a
// service does; other unknown names answer invalidrecord.
//
// Faithful quirks worth knowing (from the reference notes where they say
// so, otherwise from Moodle's code):
//   - Missing (deleted) courses, per the reference: create_groups,
//     get_course_groups and get_course_groupings answer
//     errorcoursecontextnotvalid ("... Invalid parameter value detected");
//     get_enrolled_users answers invalidrecord on table course;
//     get_courses_by_field with field=id answers an empty courses list.
//     create_groupings answers invalidrecord on table course: Moodle's code
//     looks the course context up with MUST_EXIST outside its try block.
//     The reference does not record this case, and records
//     errorcoursecontextnotvalid for get_course_groupings although its code
//     has the same shape, so treat the create_groupings answer as unverified.
//   - Hidden courses (Server.SetCourseHidden, the seed key "hidden"), from
//     Moodle's code, not the reference: a hidden course that the
//     web-service user may neither view nor update is left out of
//     get_courses_by_field, exactly as a deleted one, and is otherwise
//     inaccessible. Only get_enrolled_users (errorcoursecontextnotvalid,
//     not invalidrecord) tells it from a deleted course.
//   - Inaccessible courses (Server.SetCourseAccessible, the seed key
//     "inaccessible"): the web-service user may not access the course, as
//     when moodle/course:view is prohibited there. The reference states that
//     every course-context function then answers errorcoursecontextnotvalid
//     ("... Course or activity not accessible."), and records it for
//     get_course_groups, get_course_groupings and get_enrolled_users, and
//     that get_courses_by_field still lists the course. Which functions
//     validate which course, and in what order, is taken from Moodle's
//     core_group code: create/update/delete of groups and groupings, add,
//     delete and get members, get_groups and get_groupings (each object's
//     course, so one object of an inaccessible course fails the whole call),
//     assign_grouping and unassign_grouping (the grouping's course, while the
//     message names the group's course; a pair already (un)assigned is
//     skipped before the check). Checks that come first in that code still
//     answer first: a taken group name is invalidparameter, a missing group
//     invalidrecord. The enrol_manual functions validate the course context
//     outside any try block, so there the require_login_exception itself
//     comes out: {"exception":"core\exception\require_login_exception",
//     "errorcode":"requireloginerror","message":"Course or activity not
//     accessible."}. Inferred from Moodle's code, not recorded.
//   - Course dates: get_courses_by_field reports startdate (a course created
//     without one starts at the fixed time 2025-01-01) and enddate (0: none,
//     see Server.SetCourseEndDate). For a course the web-service user may
//     not access it gives, as Moodle's code does, only the public fields:
//     no startdate, enddate, idnumber, format, ... (inferred from the code;
//     the reference only records that the course is listed).
//   - Enrolment, as the reference records it: enrol_manual_enrol_users
//     answers null; enrolling someone already enrolled changes nothing;
//     suspend=1 suspends the enrolment; a suspended user is still listed by
//     get_enrolled_users (not with the option onlyactive=1) and can still be
//     added to groups; one bad entry rolls the whole call back; a role the
//     web-service user may not assign (any but 1, 3, 4, 5) answers
//     wsusercannotassign; a course that does not exist answers
//     invalidparameter; a user id that does not exist answers
//     {"exception":"TypeError","message":...} without an errorcode (Moodle
//     does not catch the error). enrol_manual_unenrol_users answers null,
//     also for someone not enrolled, and removes the user from every group
//     of the course.
//   - Enrolment, from Moodle's code (enrol/manual/externallib.php and
//     enrol_plugin in lib/enrollib.php of 4.5), where the reference is
//     silent. A user may be enrolled in a course by several methods
//     (enrolment plugins: "manual", "self", "cohort", ...), each with its own
//     suspension and times, and holds roles in the course. The enrol_manual
//     functions only touch the "manual" method. Enrolling a user already
//     enrolled manually sets that enrolment's suspension (suspend left out or
//     0: active, so enrolling again reactivates a suspended user) and times
//     (left out: 0) and adds the role, so "changes nothing" holds when they
//     are as they were. Unenrolling removes the manual enrolment whatever
//     roleid says: Moodle's code accepts roleid and does not use it (not
//     recorded on a real site; the contract suite checks it there, and it is
//     the conservative model: a client that sends roleid hoping to remove
//     only that role sees the whole enrolment go). The user's roles and
//     group memberships in the course go only with the user's last
//     enrolment there: a user also
//     enrolled by another method keeps them (the manual method's roles carry
//     no component). A user with no manual enrolment is left alone.
//     Unenrolling a user id that does not exist answers invalidparameter
//     ("User id not exist"), a course that does not exist invalidrecord on
//     table course (a MUST_EXIST lookup outside any try). A course whose
//     manual method is disabled (Server.SetManualEnrolEnabled) answers
//     enrol_manual_enrol_users with wsnoinstance, still unenrols, and its
//     manual enrolments are not active. onlyactive keeps enrolments that
//     are not suspended, by an enabled method, and within their times.
//     get_enrolled_users reports each user's roles (roleid, name "" as for
//     stock roles, shortname, sortorder) when userfields includes "roles" or
//     is not given; id is always returned. The roles are those of a stock
//     site (RoleManager ... RoleFrontpage). The seeding API's Enrol enrols
//     manually as a student, so that the web services can unenrol such a
//     user as they could a teacher's manual enrolment; EnrolUser enrols by
//     any method, with any stock roles, suspended or not.
//   - Role unassignment, from Moodle's code (core_role_external::unassign_roles
//     in enrol/externallib.php of 4.5; the reference is silent and it is not
//     recorded on a real site): core_role_unassign_roles runs as one
//     transaction and answers null. Each entry names its context by
//     contextlevel and instanceid; only "course" contexts are modelled (a
//     contextid, or another level, is answered as a context that does not
//     exist: invalidparameter "Context does not exist", as for a course that
//     does not exist). A course the web-service user may not access answers
//     requireloginerror (validate_context outside any try), a role it may not
//     assign (any but 1, 3, 4, 5) invalidparameter. The user's assignment of
//     the role in the course goes, and nothing else: the enrolment and the
//     group memberships stay, also when no role is left. A user who does not
//     hold the role, or does not exist, changes nothing. Moodle removes only
//     assignments without a component, as manual enrolment makes them; the
//     simulator's roles carry no component, so every role can be removed.
//   - create_groupings without an idnumber creates the grouping and then answers
//     invalidresponse (Moodle's return description requires idnumber but the
//     function never sets it). Always send an idnumber.
//   - assign_grouping does not check that group and grouping share a course.
//   - Group and grouping names are compared as MariaDB's utf8mb4_unicode_ci
//     does (case-insensitive, trailing spaces ignored); idnumbers as PHP's ==.
//     Names and idnumbers are trimmed when stored. Names longer than 254
//     characters or idnumbers longer than 100 answer dmlwriteexception.
//   - get_groups and get_course_groups pass group names through
//     format_string: "&" becomes "&amp;" (unless moodlewssettingraw=1).
//   - Course ids start at 2 (1 is the site course, not modelled), user ids at 3
//     (1 guest, 2 the web-service user "admin", not modelled); group and
//     grouping ids at 1. Ids are never reused.
//
// # Moodle's group cache
//
// Moodle keeps each course's groups and groupings in a cache ("groupdata")
// that is not part of the database transaction, and the simulator models it
// as the reference notes describe:
//   - get_course_groups and get_course_groupings answer from the course's
//     cache entry, which is built from the database when there is none;
//   - the idnumber checks of create_groups, create_groupings, update_groups
//     and update_groupings (groups_get_group_by_idnumber and
//     groups_get_grouping_by_idnumber) read the cache; the name checks read
//     the database;
//   - the reads by id (get_groups, get_group_members, get_groupings) read the
//     database;
//   - every change to a course's groups or groupings drops its entry as it
//     happens: create, update (a no-op update too), delete, assign and
//     unassign through the web services, and the Server's Go methods
//     (AddGroup, RenameGroup, DeleteGroup, AddGrouping, DeleteGrouping,
//     DeleteCourse, LoadSeed). Membership changes do not, since the reference
//     does not say they do; do not rely on them clearing anything.
//
// A rollback leaves the cache as the call left it. So create_groups [A, B],
// where A is inserted and B is refused idnumbertaken by a check that rebuilt
// the cache after A's insert, leaves A as a phantom: listed by
// get_course_groups with the id it took, refusing a later create of A
// (idnumbertaken), answered invalidrecord by get_groups and
// get_group_members. Deleting an id that does not exist does not clear it; a
// no-op update of any existing group or grouping of the course does (one
// entry holds both). The same goes for groupings. A call refused by a check
// that reads only the database (a taken name) rebuilt nothing mid-call and
// leaves no phantom. State, SaveSeed and /_sim/state show the database, never
// the cache; the Go methods check names and idnumbers against the database.
// Options.NoGroupCache turns the model off, for tests that show that they
// notice it.
//
// # max_input_vars
//
// PHP drops request variables beyond max_input_vars (Options.MaxInputVars,
// default 1000; negative means unlimited) before Moodle runs, silently. The
// simulator emulates PHP exactly: query-string variables and body variables
// are counted separately, each in request order. For the query string PHP
// checks before registering a variable, so it keeps the first N. For an
// url-encoded body PHP registers a variable and then checks the count
// (main/php_variables.c, add_post_vars), so it keeps the first N+1; this is
// the "observed to keep 1001" of the reference notes, and it is what makes the
// three recorded scenarios come out as recorded (parameters first in the body
// with 600 members: null and 499 members added; parameters in the URL: one
// member loses its userid, invalidparameter; parameters last: the token and
// format are cut off, XML invalidtoken). As in PHP, a POST body is read only
// when its Content-Type is application/x-www-form-urlencoded or
// multipart/form-data. Empty "&&" segments count in a body
// and are skipped in a query string, as in PHP. Multipart bodies keep N. A
// body larger than PHP's default post_max_size (8 MiB) is dropped entirely.
//
// # Seed format
//
// LoadSeed reads, and SaveSeed writes, one JSON object:
//
//	{
//	  "courses":   [{"id": 2, "shortname": "MOD001", "fullname": "Module 001", "idnumber": "MOD001",
//	                 "startdate": 1735689600, "enddate": 1751328000}],
//	  "users":     [{"id": 3, "username": "s001", "idnumber": "100001", "email": "s001@example.org",
//	                 "firstname": "Student", "lastname": "001"}],
//	  "enrolments":[{"course": "MOD001", "user": "s001"}, {"course": 2, "user": 3,
//	                 "method": "self", "suspended": true, "timestart": 0, "timeend": 0, "roles": [4]}],
//	  "groups":    [{"id": 1, "course": "MOD001", "name": "Lab A", "idnumber": "cmis:MOD001:A",
//	                 "description": "", "members": ["s001", 4]}],
//	  "groupings": [{"id": 1, "course": 2, "name": "MOD001 groups", "idnumber": "cmis:MOD001",
//	                 "description": "", "groups": [1, "cmis:MOD001:A", "Lab A"]}],
//	  "next_ids":  {"course": 3, "user": 5, "group": 2, "grouping": 2}
//	}
//
// Every key is optional. "id" may be left out (or 0) to let the simulator
// number the record; given ids must not be in use. A course may carry
// "inaccessible": true (see Server.SetCourseAccessible), "startdate" and
// "enddate" (unix times; see Course) and "manualdisabled": true (see
// Server.SetManualEnrolEnabled). An enrolment is by "method" (default
// "manual"), may be "suspended" and carry "timestart" and "timeend", and
// gives its user "roles" in the course (default [5], a student; [] for
// none); two entries of one user and course add up, as Server.EnrolUser
// does. A reference to a
// course, user or group is either a JSON number (the id) or a JSON string: a
// course's shortname, a user's username, or a group's idnumber or else name
// within the same course. Group members must be enrolled in the group's course, and a
// grouping's groups must belong to its course. "next_ids" raises the id
// counters so that ids are not reused after a reload. LoadSeed adds to the
// current site and is all-or-nothing. SaveSeed writes every record with its id
// and refers by id, so LoadSeed(SaveSeed()) into a new Server gives the same
// State.
//
// # Faults
//
// SetFaults makes chosen calls slow (Latency), answer HTTP 500 with an HTML
// page (FailRate), hang (TimeoutRate) or lose their connection (DropRate). The
// choice is drawn from a random source seeded with Faults.Seed, one draw per
// affected call in arrival order, so a sequential client sees the same faults
// on every run.
//
// # Inspection
//
// For people running the simulator on its own (`cmissync moodle-sim`), two
// read-only endpoints show what the web services did, without a token:
//
//	GET /_sim/state   the whole site as JSON: {"courses": [...], "users": [...],
//	                  "enrolments": {"2": [3, 4]}, "user_enrolments": [{"courseid": 2,
//	                  "userid": 3, "enrol": "manual", "suspended": false}], "role_assignments":
//	                  [{"courseid": 2, "userid": 3, "roleid": 5}], "groups": [{"id": 1, "courseid": 2,
//	                  "name": ..., "idnumber": ..., "description": ..., "members": [3]}],
//	                  "groupings": [{..., "groups": [1]}]}, every list sorted by id
//	GET /_sim/calls   calls per wsfunction, e.g. {"core_group_create_groups": 3}
//
// e.g. `curl -s http://127.0.0.1:8088/_sim/state | jq .groups`. They answer
// only clients on a loopback address (others get HTTP 403), at the server
// root and under WWWRoot's path, whatever the Host header, and are not
// counted in Calls. They are the same data as Server.State and Server.Calls.
package moodlesim
