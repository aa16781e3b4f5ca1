package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/report"
)

// stepAdvice says what to do about an error that stopped a step as a whole, in the words of
// that error: a refused token, a site that does not answer, a wrong host. It returns nil when
// it has nothing more specific to say than the step's own advice.
func stepAdvice(step string, err error, cfg *Config) []string {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	rerun := "Then rerun: cmissync " + step
	if step == "extract" || step == "stage" {
		rerun = "Then rerun: cmissync run"
	}
	site := cfg.Moodle.URL
	host := site
	if u, perr := url.Parse(site); perr == nil && u.Host != "" {
		host = u.Host
	}
	var (
		ce *ConfigError
		mf *moodle.MissingFunctionsError
		me *moodle.Error
		te *moodle.TransportError
	)
	// Moodle's answer (or its absence) decides the advice, also when the
	// preflight reports it as a configuration error.
	switch {
	case errors.As(err, &mf):
		return []string{
			"The cmissync external service lacks " + strings.Join(mf.Missing, ", ") + ": add them in Site administration > Server > Web services > External services > (the cmissync service) > Functions.",
			"Nothing was changed in Moodle: the load checks the service before it writes. " + rerun,
		}
	case errors.As(err, &me):
		return moodleErrorAdvice(me, site, rerun)
	case errors.As(err, &te):
		return transportAdvice(te, site, host, cfg, rerun)
	case errors.As(err, &ce):
		return []string{"Correct the setting named above in the configuration file or its environment variable (\"cmissync config\" lists every key and what it allows).", rerun}
	}
	return networkAdvice(err, "a server this step needs (the staging database, or the source)", rerun)
}

// moodleErrorAdvice covers Moodle's answers (and cmissync's own findings) that stop a step.
func moodleErrorAdvice(me *moodle.Error, site, rerun string) []string {
	switch me.ErrorCode {
	case moodle.CodeInvalidToken:
		return []string{
			"Moodle refused the web-service token (invalidtoken): it is wrong, expired, restricted to other IP addresses, or its user is suspended.",
			"Check it under Site administration > Server > Web services > Manage tokens (the token of the cmissync service user), and put the right one in CMISSYNC_MOODLE_TOKEN or the file named by moodle.token_file, never on the command line.",
			"Nothing was changed in Moodle. " + rerun,
		}
	case moodle.CodeAccessException:
		return []string{
			"The web-service user may not call " + orUnknown(me.Function) + " (accessexception): add the function to the cmissync external service (Site administration > Server > Web services > External services > Functions), make the user an authorised user of the service, and give its role moodle/course:managegroups and webservice/rest:use at system level.",
			rerun,
		}
	case moodle.CodeWrongWWWRoot:
		return []string{
			"Moodle answered " + site + " with a redirect: moodle.url is not the site's wwwroot. Set moodle.url to exactly $CFG->wwwroot of the site's config.php (the same scheme, host name and path; the redirect names it above).",
			"Nothing was changed in Moodle. " + rerun,
		}
	case moodle.CodeTLS:
		return []string{report.HintFor(moodle.CodeTLS), rerun}
	case moodle.CodeTooManyParams:
		return []string{"A request would exceed moodle.max_input_vars and was not sent: raise moodle.max_input_vars only if the site's PHP max_input_vars is higher (ask the Moodle administrator).", rerun}
	}
	return nil
}

// transportAdvice covers calls that got no answer from Moodle.
func transportAdvice(te *moodle.TransportError, site, host string, cfg *Config, rerun string) []string {
	switch {
	case te.Status >= 500:
		return []string{
			fmt.Sprintf("Moodle's web server answered HTTP %d, an error page instead of an answer: the site is down, in maintenance mode or overloaded. The failed calls changed nothing.", te.Status),
			"Check that " + site + " opens in a browser; if it does not, the Moodle administrators' web server error log names the cause. The next run retries on its own.",
		}
	case te.Status == 404:
		return []string{
			"Nothing answers at " + strings.TrimRight(site, "/") + moodle.Endpoint + " (HTTP 404): moodle.url must be the site's wwwroot (not a page below it), and the REST protocol must be enabled (Site administration > Server > Web services > Manage protocols).",
			rerun,
		}
	case te.Status == 401 || te.Status == 403:
		return []string{
			fmt.Sprintf("Moodle's web server refused the request (HTTP %d): web services may be off (Site administration > Advanced features > Enable web services), or a firewall or proxy in front of the site blocks this host.", te.Status),
			rerun,
		}
	case te.Status != 0:
		return []string{fmt.Sprintf("Moodle's web server answered HTTP %d instead of a web-service answer: check that moodle.url (%s) is the site's wwwroot and that nothing between this host and the site rewrites requests.", te.Status, site), rerun}
	}
	if a := networkAdvice(te, "Moodle at "+host, rerun); a != nil {
		if isTimeout(te) {
			a[0] += fmt.Sprintf(" Each call may take moodle.timeout (%s), with moodle.retries (%d) more tries.", time.Duration(cfg.Moodle.Timeout), cfg.Moodle.Retries)
		}
		return a
	}
	return nil
}

// networkAdvice covers errors of the network itself: nothing listening, a name that does not
// resolve, a timeout. what names the server, e.g. "Moodle at moodle.example.ac.uk".
func networkAdvice(err error, what, rerun string) []string {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		addr := ""
		if errors.As(err, &op) && op.Addr != nil {
			addr = " (" + op.Addr.String() + ")"
		}
		return []string{
			"Nothing accepted the connection to " + what + addr + ": connection refused. The server is not running, or the configuration names the wrong host or port.",
			"Check that the server is up and answers from this host, then: " + strings.TrimPrefix(rerun, "Then "),
		}
	case errors.As(err, &dns):
		return []string{
			"The host name " + dns.Name + " does not resolve (DNS): check its spelling in the configuration and this host's DNS settings.",
			rerun,
		}
	case isTimeout(err):
		return []string{
			"No answer from " + what + " in time: the server is overloaded, or a firewall drops the connection.",
			"Check that it answers from this host; the next run retries on its own. " + rerun,
		}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return []string{
			"The network between this host and " + what + " failed (" + rootCause(err) + "): check routes and firewalls.",
			rerun,
		}
	}
	return nil
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "a function"
	}
	return s
}
