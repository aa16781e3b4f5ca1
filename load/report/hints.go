package report

import "strings"

// Error codes that are not Moodle's own but name failures cmissync finds itself.
const (
	// CodeNotEnrolled marks a member that could not be added to a group because the user is
	// not enrolled in the course (Moodle refuses such members, and used to fail the whole call).
	CodeNotEnrolled = "notenrolled"
	// CodeTransient marks a call that failed on the way: network error, timeout or HTTP 5xx.
	CodeTransient = "transient"
)

// hints holds the likely fix for each Moodle errorcode, written for the Moodle administrator or
// support analyst who reads the report. Paths are as in Moodle 4.x.
var hints = map[string]string{
	"tlsverify": "The Moodle site's TLS certificate did not verify, so nothing was sent. If the " +
		"site uses an internal certificate authority, set moodle.ca_file to the PEM file of the CA " +
		"that signed it; if the host name does not match the certificate, fix moodle.url to the " +
		"site's wwwroot.",
	"parked": "This item failed on several runs in a row and is now skipped until someone looks " +
		"at it. Fix the cause named in its last error (in Moodle, or in CMIS), then run " +
		"\"cmissync retry\" so the next run tries it again.",
	"notverified": "Moodle answered success but the member was not in the group when read back: " +
		"PHP's max_input_vars on the Moodle server is lower than moodle.max_input_vars, so part " +
		"of the request was dropped. Set moodle.max_input_vars to the server's value (ask the " +
		"Moodle administrator; php.ini). The member is retried on the next run.",
	"badrow": "A row from CMIS was refused (the reason is shown) and left out of this run; the " +
		"rest went on. Fix the row in CMIS (or the CSV file). The refused rows are kept in " +
		"cmis_error_data_dump.",
	"invalidrecord": "Something cmissync refers to no longer exists in Moodle: Moodle's message " +
		"names the table (groups, groupings, course or user), usually because it was deleted by " +
		"hand. cmissync notices its own deleted groups and groupings and recreates or forgets " +
		"them on the next run, and retires the mappings of a deleted course. If the same failure " +
		"comes back, look up the id from the parameters in Moodle, then run \"cmissync status\" " +
		"and \"cmissync load\".",
	"invalidparameter": "Moodle rejected a value in the parameters shown (wrong type, too long, " +
		"or an id that does not exist). \"Group with the same name already exists in the " +
		"course\" means a group of that name was made by hand: rename one of them, or let " +
		"cmissync adopt it. Group names are limited to 254 characters and idnumbers to 100. " +
		"Compare with the function's description under Site administration > Server > Web " +
		"services > API Documentation, fix the CMIS data or the staged row, then run " +
		"\"cmissync load\".",
	"idnumbertaken": "Another group or grouping in this course already has this ID number, " +
		"often one copied in by a course import or restore, or made by hand. cmissync adopts " +
		"its own groups by ID number on the next run; if the holder is a hand-made group, " +
		"clear its ID number (course > Participants > Groups > Edit group settings > Group ID " +
		"number) and run \"cmissync load\".",
	"invaliduser": "Moodle does not know this user, or the account is deleted or suspended. " +
		"Check the user under Site administration > Users > Browse list of users (search by " +
		"ID number or username). A new student's account often appears with the next user " +
		"sync; if the account exists under another ID number, correct it in Moodle or CMIS.",
	"invalidtoken": "Moodle refused the web-service token: it is wrong, expired, restricted to " +
		"other IP addresses, or its user is suspended. Check Site administration > Server > " +
		"Web services > Manage tokens, put the right token in the cmissync configuration (from " +
		"the environment or a token file, never the command line), then run \"cmissync load\".",
	"accessexception": "The web-service user may not call this function. Add the function to " +
		"the cmissync external service: Site administration > Server > Web services > External " +
		"services > Functions. Check also that the web-service user is an authorised user of the " +
		"service and that its role allows the capability the function needs (for groups, " +
		"moodle/course:managegroups) at system level.",
	"errorcoursecontextnotvalid": "Moodle would not let the web-service user into this " +
		"course: the course is hidden or deleted, or the web-service role is not assigned at " +
		"system level. Check the course exists and the role assignment under Site " +
		"administration > Users > Permissions > Assign system roles, then run \"cmissync load\".",
	CodeNotEnrolled: "The user is not enrolled in this Moodle course, and Moodle only lets " +
		"enrolled users into its groups. Everyone else was added. Once the user is enrolled " +
		"(by the usual enrolment sync, or course > Participants > Enrol users) the next run " +
		"adds them; if they should not be in the course, correct their record in CMIS.",
	CodeTransient: "Moodle could not be reached or answered with a server error (network " +
		"failure, timeout or HTTP 5xx); the data is probably fine. Nothing needs fixing if the " +
		"next run succeeds. If it repeats, check that Moodle is up and reachable from this " +
		"host, then run \"cmissync load\".",
}

const defaultHint = "Read Moodle's message: the parameters show exactly what was sent. For " +
	"more detail, turn on debugging in Moodle (Site administration > Development > Debugging) " +
	"and look at the web-service log; fix the cause, then run \"cmissync status\" and the " +
	"failed step again (e.g. \"cmissync load\")."

// HintFor returns the likely fix for a Moodle errorcode (or one of cmissync's own codes,
// CodeNotEnrolled and CodeTransient), or general advice when the code is not known.
func HintFor(errorCode string) string {
	if h, ok := hints[strings.ToLower(strings.TrimSpace(errorCode))]; ok {
		return h
	}
	return defaultHint
}
