package moodle

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Error is an error answer from Moodle, or a failure cmissync found itself
// that retrying cannot cure (Exception "cmissync": a request it refused to
// send, a redirect to another wwwroot, a TLS configuration problem). It is
// permanent: the same request gets the same answer. ErrorCode is empty for a
// PHP error Moodle did not catch (Exception "TypeError", ...).
type Error struct {
	Function  string `json:"-"`
	Exception string `json:"exception"`
	ErrorCode string `json:"errorcode"`
	Message   string `json:"message"`
	DebugInfo string `json:"debuginfo,omitempty"`
	// Err is the underlying cause of a failure cmissync found itself (e.g.
	// the x509 verification error); nil for Moodle's answers.
	Err error `json:"-"`
}

func (e *Error) Error() string {
	code := e.ErrorCode
	if code == "" {
		code = e.Exception
	}
	s := fmt.Sprintf("%s: %s (%s)", e.Function, e.Message, code)
	if e.DebugInfo != "" {
		s += ": " + e.DebugInfo
	}
	return s
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Error codes cmissync acts on. Decisions are made on these, never on the
// message text, which changes between Moodle versions.
const (
	CodeInvalidParameter = "invalidparameter"
	CodeInvalidRecord    = "invalidrecord"
	CodeIDNumberTaken    = "idnumbertaken"
	CodeInvalidUser      = "invaliduser"
	CodeInvalidToken     = "invalidtoken"
	CodeAccessException  = "accessexception"
	CodeCourseContext    = "errorcoursecontextnotvalid"
)

// Error codes of failures cmissync finds itself (Exception "cmissync").
const (
	// CodeTooManyParams: the request would exceed max_input_vars; not sent.
	CodeTooManyParams = "toomanyparams"
	// CodeWrongWWWRoot: the site redirected, moodle.url is not its wwwroot.
	CodeWrongWWWRoot = "wrongwwwroot"
	// CodeTLS: the site's certificate does not verify; set moodle.ca_file.
	CodeTLS = "tlsverify"
	// CodeShortAnswer: Moodle answered fewer objects than were created.
	CodeShortAnswer = "shortanswer"
)

// TransportError is a failure to get a Moodle answer: network errors,
// timeouts, HTTP errors and bodies that are not Moodle JSON (an HTML error
// page from a proxy). It is transient: the same request may succeed later.
type TransportError struct {
	Function string
	Status   int    // HTTP status, 0 when no answer
	Body     string // start of the body, for diagnosis
	Err      error
}

func (e *TransportError) Error() string {
	switch {
	case e.Err != nil && e.Status != 0:
		return fmt.Sprintf("%s: HTTP %d: %v: %q", e.Function, e.Status, e.Err, e.Body)
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", e.Function, e.Err)
	default:
		return fmt.Sprintf("%s: HTTP %d: %q", e.Function, e.Status, e.Body)
	}
}

func (e *TransportError) Unwrap() error { return e.Err }

// IsTransient reports whether err may go away on retry: network errors,
// timeouts, HTTP errors. Moodle's answers, refused requests and TLS
// configuration problems are not.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var me *Error
	if errors.As(err, &me) {
		return false
	}
	var te *TransportError
	if errors.As(err, &te) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// ErrorCode returns the Moodle errorcode of err, or "" when err is not a
// Moodle answer or the answer had none (an uncaught PHP error: use
// errors.As with *Error to tell).
func ErrorCode(err error) string {
	var me *Error
	if errors.As(err, &me) {
		return me.ErrorCode
	}
	return ""
}

// IsFatal reports errors that affect every call, not one item: a bad token,
// a function missing from the service, a wrong site URL, a certificate that
// does not verify. The load step stops on these instead of bisecting, and
// they are never retried.
func IsFatal(err error) bool {
	switch ErrorCode(err) {
	case CodeInvalidToken, CodeAccessException, CodeWrongWWWRoot, CodeTLS:
		return true
	}
	return false
}
