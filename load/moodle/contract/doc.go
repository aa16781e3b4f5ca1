// Package contract is the one test suite of Moodle behaviour that cmissync
// relies on. It runs against the Moodle simulator (load/moodlesim) in every
// `go test ./...`, and against a real Moodle when MOODLE_URL and
// MOODLE_TOKEN are set, so that the simulator, the REST client
// (load/moodle) and the project's reference notes on Moodle's REST
// behaviour are held to the same expectations.
//
// Each case goes through the cmissync client (moodle.Client) where a typed
// method exists, and through a raw POST (Target.Post) for protocol cases the
// client refuses to produce: a bad token, an unknown function, a missing
// parameter, parameters in the URL, requests that PHP's max_input_vars
// truncates.
//
// # Running against a real Moodle
//
//	MOODLE_URL                   the site's wwwroot, exactly as in its config.php
//	MOODLE_TOKEN                 a token of a service with cmissync's functions
//	MOODLE_TEST_COURSE           id of a scratch course
//	MOODLE_TEST_USERS            comma-separated ids of at least 3 users enrolled in it
//	MOODLE_TEST_UNENROLLED_USER  id of a user not enrolled in it
//	MOODLE_MAX_INPUT_VARS        the site's PHP max_input_vars; when set, the
//	                             truncation cases run with that limit (default 1000,
//	                             and they are skipped)
//	MOODLE_TEST_OTHER_COURSE     optional: a second scratch course (uniqueness is per course,
//	                             reads by id span courses)
//	MOODLE_TEST_INACCESSIBLE_COURSE optional: a course the token's user may not access
//	                             (e.g. moodle/course:view prohibited there); only read
//	MOODLE_TEST_OUTSIDE_FUNCTION optional: a function that exists but is not in the
//	                             token's service (accessexception)
//	MOODLE_CA_FILE               optional: PEM file of the CA that signed the site's certificate
//	MOODLE_TEST_ROLE             optional: id of a role the token's user may assign in the scratch
//	                             course (default 5, a stock site's student)
//	MOODLE_TEST_OTHER_ROLE       optional: id of a second such role (default 4, a stock site's
//	                             non-editing teacher)
//
// then `go test ./load/moodle/contract -run TestRealMoodle -v`. Every group
// and grouping the suite creates has a name and idnumber starting with a
// prefix unique to the run and the case ("cmissync-contract-…"). In
// t.Cleanup each case lists the scratch courses and deletes the groups and
// groupings carrying its prefix (so a create whose answer was lost is caught
// too). A phantom that a refused create leaves in Moodle's group cache (see
// the reference notes) is cleared by a no-op update of one of the case's own
// objects, or by creating and deleting one.
//
// The enrolment cases (Enrol*, Unenrol*) enrol MOODLE_TEST_UNENROLLED_USER
// in the scratch course with the manual enrolment method, in
// MOODLE_TEST_ROLE (one case adds MOODLE_TEST_OTHER_ROLE), and unenrol them
// with enrol_manual_unenrol_users when each case ends, then check that they
// are no longer enrolled there; a case that fails that check says so, and
// the user must then be unenrolled by hand. They need
// enrol_manual_enrol_users and enrol_manual_unenrol_users in the service,
// and moodle/course:enrolreview for the option onlyactive. They enrol
// nobody else and unenrol nobody else: the MOODLE_TEST_USERS keep their
// enrolments. A role id that does not exist (999) stands for a role the
// token's user may not assign. The dates case only reads.
//
// Nothing else in the courses is touched. Cases that need a function
// the service lacks are skipped with its name. Two cases put the token in a
// URL query string (Moodle accepts it there), which web-server access logs
// record: use a token made for testing.
package contract
