package moodlesim

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors returned by the Go seeding API, to be tested with errors.Is.
var (
	// ErrNotFound: a course, user, group or grouping does not exist.
	ErrNotFound = errors.New("moodlesim: not found")
	// ErrConflict: a name or idnumber is already used, or an id is taken.
	ErrConflict = errors.New("moodlesim: conflict")
	// ErrInvalid: a value Moodle would not accept (e.g. a blank name).
	ErrInvalid = errors.New("moodlesim: invalid")
	// ErrNotEnrolled: the user is not enrolled in the course.
	ErrNotEnrolled = errors.New("moodlesim: user not enrolled in course")
)

// wsError is a Moodle exception as the REST server reports it.
type wsError struct {
	Exception string
	ErrorCode string
	Message   string
	DebugInfo string
	HasDebug  bool // PHP isset($ex->debuginfo)
}

func (e *wsError) Error() string { return e.ErrorCode + ": " + e.Message }

// json renders the error as the REST server's generate_error() does; an
// exception without an errorcode (a PHP error Moodle did not catch) has no
// "errorcode" key.
func (e *wsError) json(debug bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"exception":`)
	writePHPString(&b, e.Exception)
	if e.ErrorCode != "" {
		b.WriteString(`,"errorcode":`)
		writePHPString(&b, e.ErrorCode)
	}
	b.WriteString(`,"message":`)
	writePHPString(&b, e.Message)
	if debug && e.HasDebug {
		b.WriteString(`,"debuginfo":`)
		writePHPString(&b, e.DebugInfo)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// xml renders the error in Moodle's XML format.
func (e *wsError) xml(debug bool) []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n")
	b.WriteString(`<EXCEPTION class="` + htmlSpecialChars(e.Exception) + "\">\n")
	b.WriteString("<ERRORCODE>" + htmlSpecialChars(e.ErrorCode) + "</ERRORCODE>\n")
	b.WriteString("<MESSAGE>" + htmlSpecialChars(e.Message) + "</MESSAGE>\n")
	if debug && e.HasDebug {
		b.WriteString("<DEBUGINFO>" + htmlSpecialChars(e.DebugInfo) + "</DEBUGINFO>\n")
	}
	b.WriteString("</EXCEPTION>\n")
	return b.Bytes()
}

const (
	excMoodle         = `core\exception\moodle_exception`
	excInvalidParam   = `core\exception\invalid_parameter_exception`
	excInvalidResp    = `core\exception\invalid_response_exception`
	excCoding         = `core\exception\coding_exception`
	excMissingRecord  = "dml_missing_record_exception"
	excWrite          = "dml_write_exception"
	excAccess         = "webservice_access_exception"
	excRequireLogin   = `core\exception\require_login_exception`
	msgInvalidParam   = "Invalid parameter value detected"
	msgNotAccessible  = "Course or activity not accessible."
	msgInvalidResp    = "Invalid response value detected"
	msgInvalidToken   = "Invalid token - token not found"
	msgAccess         = "Access control exception"
	msgIDNumberTaken  = "This ID number is already in use"
	msgFormatNotSupp  = "Format not supported"
	msgCodingPrefix   = "Coding error detected, it must be fixed by a programmer: "
	msgWriteException = "Error writing to database"
)

func invalidParam(debug string) *wsError {
	return &wsError{Exception: excInvalidParam, ErrorCode: "invalidparameter", Message: msgInvalidParam, DebugInfo: debug, HasDebug: true}
}

func invalidResponse(debug string) *wsError {
	return &wsError{Exception: excInvalidResp, ErrorCode: "invalidresponse", Message: msgInvalidResp, DebugInfo: debug, HasDebug: true}
}

func moodleErr(code, msg string) *wsError {
	return &wsError{Exception: excMoodle, ErrorCode: code, Message: msg}
}

// phpError is a PHP error (TypeError, ...) that Moodle did not catch: it has
// no errorcode.
func phpError(class, msg string) *wsError { return &wsError{Exception: class, Message: msg} }

// requireLogin is the require_login_exception that validate_context()
// throws for a course the web-service user may not access, where no try
// block turns it into errorcoursecontextnotvalid (the enrol_manual
// functions).
func requireLogin() *wsError {
	return &wsError{Exception: excRequireLogin, ErrorCode: "requireloginerror", Message: msgNotAccessible,
		DebugInfo: "Not enrolled", HasDebug: true}
}

// noManualInstance is enrol_manual's wsnoinstance: the course has no
// enabled manual enrolment method.
func noManualInstance(courseID int) *wsError {
	return moodleErr("wsnoinstance", fmt.Sprintf(
		"Manual enrolment plugin instance doesn't exist or is disabled for the course (id = %d)", courseID))
}

func invalidToken() *wsError { return moodleErr("invalidtoken", msgInvalidToken) }

func idNumberTaken() *wsError { return moodleErr("idnumbertaken", msgIDNumberTaken) }

func formatNotSupported() *wsError { return moodleErr("formatnotsupported", msgFormatNotSupp) }

// courseContextErr is the errorcoursecontextnotvalid exception thrown when
// validate_context() fails; reason is the message of the exception it
// caught.
func courseContextErr(courseID int, reason string) *wsError {
	return moodleErr("errorcoursecontextnotvalid", fmt.Sprintf(
		"You cannot execute functions in the course context (course id:%d). The context error message was: %s",
		courseID, reason))
}

func accessErr(function string) *wsError {
	return &wsError{Exception: excAccess, ErrorCode: "accessexception", Message: msgAccess, HasDebug: true,
		DebugInfo: "Access to the function " + function + "() is not allowed.\n" +
			"There could be multiple reasons for this:\n" +
			"1. The service linked to the user token does not contain the function.\n" +
			"2. The service is user-restricted and the user is not listed.\n" +
			"3. The service is IP-restricted and the user IP is not listed.\n" +
			"4. The service is time-restricted and the time has expired.\n" +
			"5. The token is time-restricted and the time has expired.\n" +
			"6. The user does not have one or more of the capabilities required by the function.\n" +
			"7. The function is called with username/password (no user token is sent)\n" +
			"and none of the services has the function to allow the user.\n" +
			"These settings can be found in Administration > Site administration\n" +
			"> Server > Web services > External services and Manage tokens."}
}

func codingErr(hint, debug string) *wsError {
	return &wsError{Exception: excCoding, ErrorCode: "codingerror", Message: msgCodingPrefix + hint, DebugInfo: debug, HasDebug: debug != ""}
}

func writeErr(debug string) *wsError {
	return &wsError{Exception: excWrite, ErrorCode: "dmlwriteexception", Message: msgWriteException, DebugInfo: debug, HasDebug: true}
}

// missingRecord is dml_missing_record_exception for a MUST_EXIST lookup with
// the given SQL and parameters.
func missingRecord(table, sql string, params ...any) *wsError {
	code := "invalidrecord"
	msg := "Can't find data record in database table " + table + "."
	switch table {
	case "user":
		code, msg = "invaliduser", "Invalid user"
	case "course":
		if sql == "" {
			code, msg = "invalidcourseid", "Invalid course ID"
		}
	}
	e := &wsError{Exception: excMissingRecord, ErrorCode: code, Message: msg}
	if sql != "" {
		e.DebugInfo = sql + "\n[" + varExport(params) + "]"
		e.HasDebug = true
	}
	return e
}

// varExport is PHP's var_export() of a list.
func varExport(params []any) string {
	var b strings.Builder
	b.WriteString("array (\n")
	for i, p := range params {
		b.WriteString("  " + strconv.Itoa(i) + " => ")
		switch v := p.(type) {
		case int:
			b.WriteString(strconv.Itoa(v))
		case string:
			b.WriteString("'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'")
		default:
			fmt.Fprint(&b, v)
		}
		b.WriteString(",\n")
	}
	b.WriteString(")")
	return b.String()
}
