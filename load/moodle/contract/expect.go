package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
)

// moodleErr is an error answer as the reference notes record it (debugging
// off). Cases compare exception and errorcode; the message only on a
// Strict target, since Moodle's wording changes between versions.
type moodleErr struct {
	Exception, ErrorCode, Message string
}

// The error answers of the reference's error table.
var (
	errInvalidParameter = moodleErr{`core\exception\invalid_parameter_exception`, moodle.CodeInvalidParameter, "Invalid parameter value detected"}
	errIDNumberTaken    = moodleErr{`core\exception\moodle_exception`, moodle.CodeIDNumberTaken, "This ID number is already in use"}
	errInvalidUser      = moodleErr{"dml_missing_record_exception", moodle.CodeInvalidUser, "Invalid user"}
	errNoGroup          = moodleErr{"dml_missing_record_exception", moodle.CodeInvalidRecord, "Can't find data record in database table groups."}
	errNoGrouping       = moodleErr{"dml_missing_record_exception", moodle.CodeInvalidRecord, "Can't find data record in database table groupings."}
	errNoCourse         = moodleErr{"dml_missing_record_exception", moodle.CodeInvalidRecord, "Can't find data record in database table course."}
	errInvalidToken     = moodleErr{`core\exception\moodle_exception`, moodle.CodeInvalidToken, "Invalid token - token not found"}
	errNoFunction       = moodleErr{"dml_missing_record_exception", moodle.CodeInvalidRecord, "Can't find data record in database table external_functions."}
	errAccess           = moodleErr{"webservice_access_exception", moodle.CodeAccessException, "Access control exception"}
)

// errCourseContext is the answer of a course-context function for a course
// that does not exist.
func errCourseContext(course int64) moodleErr {
	return courseContextErr(course, "Invalid parameter value detected")
}

// errCourseNotAccessible is the answer of a course-context function for a
// course the service user may not access: the errorcode of a missing course,
// another message.
func errCourseNotAccessible(course int64) moodleErr {
	return courseContextErr(course, "Course or activity not accessible.")
}

func courseContextErr(course int64, reason string) moodleErr {
	return moodleErr{`core\exception\moodle_exception`, moodle.CodeCourseContext, fmt.Sprintf(
		"You cannot execute functions in the course context (course id:%d). The context error message was: %s", course, reason)}
}

// wantErr checks an error returned by the client.
func (tg *Target) wantErr(t testing.TB, err error, want moodleErr) {
	t.Helper()
	var me *moodle.Error
	if !errors.As(err, &me) {
		t.Errorf("got %v, want Moodle error %s (%s)", err, want.ErrorCode, want.Exception)
		return
	}
	if me.ErrorCode != want.ErrorCode || me.Exception != want.Exception {
		t.Errorf("got %s (%s): %s; want %s (%s)", me.ErrorCode, me.Exception, me.Message, want.ErrorCode, want.Exception)
	}
	tg.checkMessage(t, me.Message, want.Message)
}

func (tg *Target) checkMessage(t testing.TB, got, want string) {
	t.Helper()
	switch {
	case got == want:
	case tg.Strict:
		t.Errorf("message %q, want %q", got, want)
	default:
		t.Logf("note: message %q differs from the reference's %q (not checked on this target)", got, want)
	}
}

// wantOK checks that a raw answer is HTTP 200, as every web-service answer
// is, success or failure.
func wantOK(t testing.TB, a Answer) {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("HTTP %d, want 200: %.300s", a.Status, a.Body)
	}
}

// wantErrBody checks a raw answer: HTTP 200 and a JSON object with exactly
// exception, errorcode and message (and debuginfo only off Strict targets).
func (tg *Target) wantErrBody(t testing.TB, a Answer, want moodleErr) {
	t.Helper()
	wantOK(t, a)
	var m map[string]any
	if err := json.Unmarshal([]byte(a.Body), &m); err != nil {
		t.Fatalf("answer is not a JSON object (%v): %.300s", err, a.Body)
	}
	allowed := map[string]bool{"exception": true, "errorcode": true, "message": true, "debuginfo": !tg.Strict}
	for k := range m {
		if !allowed[k] {
			t.Errorf("error answer has key %q: %s", k, a.Body)
		}
	}
	if m["exception"] != want.Exception || m["errorcode"] != want.ErrorCode {
		t.Errorf("answer %s, want errorcode %s (%s)", a.Body, want.ErrorCode, want.Exception)
	}
	msg, _ := m["message"].(string)
	tg.checkMessage(t, msg, want.Message)
}

// wantXMLErr checks an XML error answer (the format parameter was lost).
func wantXMLErr(t testing.TB, a Answer, code string) {
	t.Helper()
	wantOK(t, a)
	if !strings.HasPrefix(strings.TrimSpace(a.Body), "<?xml") || !strings.Contains(a.Body, "<ERRORCODE>"+code+"</ERRORCODE>") {
		t.Errorf("answer %.300s, want an XML %s error", a.Body, code)
	}
}

// wantKeys checks that a JSON object has every key of want; with exact, no
// others either.
func wantKeys(t testing.TB, what string, obj map[string]any, exact bool, want ...string) {
	t.Helper()
	for _, k := range want {
		if _, ok := obj[k]; !ok {
			t.Errorf("%s lacks %q: %v", what, k, obj)
		}
	}
	if exact && len(obj) != len(want) {
		var extra []string
		for k := range obj {
			if !slices.Contains(want, k) {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		t.Errorf("%s has keys %v beyond %v", what, extra, want)
	}
}

// num reads a JSON number as an int64.
func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// sameSet reports whether a and b hold the same ids, in any order.
func sameSet(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
