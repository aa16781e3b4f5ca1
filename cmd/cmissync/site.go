package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
)

// siteState is what an invocation learnt of the Moodle site: the preflight
// is made once, and the binding recorded once.
type siteState struct {
	// rebind lets this run write to a site other than the one staging is
	// bound to, and records the new one (--rebind-site).
	rebind bool
	info   *moodle.SiteInfo
	bound  bool
}

// rebindFlag adds --rebind-site.
func rebindFlag(c *cobra.Command, dst *bool) {
	c.Flags().BoolVar(dst, "rebind-site", false, "let this run write to another Moodle site than the one staging is bound to, and bind it to that one (only for the same site under a new address)")
}

// SiteMismatchError is a run against another Moodle site than the one
// staging is bound to.
type SiteMismatchError struct {
	Bound         store.SiteBinding
	URL, Name     string // what moodle.url answers as
	ConfiguredURL string
}

func (e *SiteMismatchError) Error() string {
	return fmt.Sprintf("staging is bound to the Moodle site %q at %s (since %s), but moodle.url %s answers as %q at %s: nothing was staged or sent. "+
		"A staging database belongs to one site: what it records (Moodle ids, what cmissync owns) means nothing on another, and acting on it there deletes the wrong groups. "+
		"Point moodle.url (or staging.dsn) at the right one; only if this really is the same site under a new address, rerun with --rebind-site",
		e.Bound.Name, e.Bound.URL, localTime(e.Bound.BoundAt), e.ConfiguredURL, e.Name, e.URL)
}

// preflight checks, before anything is read from the source or written
// anywhere, that Moodle answers at moodle.url, exactly, to the token, that
// the token's service offers every function a load calls, and that staging
// is bound to this site (or to none yet, or --rebind-site). A wrong
// address, token, service or site is a configuration error (exit 2); no
// answer at all is fatal (exit 1). It is made once per invocation.
func (p *pipeline) preflight(ctx context.Context) error {
	if p.site.info != nil {
		return nil
	}
	mc, err := p.moodleClient()
	if err != nil {
		return err
	}
	si, err := mc.Probe(ctx)
	if err != nil {
		return moodleProblem(p.cfg.Moodle.URL, err)
	}
	if missing := si.Missing(neededFunctions(p.cfg)); len(missing) > 0 {
		return &ConfigError{Err: &moodle.MissingFunctionsError{Missing: missing}}
	}
	b, err := p.st.SiteBinding(ctx)
	if err != nil {
		return err
	}
	url, name := siteURLOf(si, p.cfg.Moodle.URL), si.SiteName
	if b != nil && b.URL != store.SiteURLKey(url) {
		if !p.site.rebind {
			return &ConfigError{Err: &SiteMismatchError{Bound: *b, URL: url, Name: name, ConfiguredURL: p.cfg.Moodle.URL}}
		}
		p.log.WithField("bound_to", b.URL).WithField("site", url).Warn("--rebind-site: this run writes to another Moodle site than the one staging was bound to; the load records the new one")
	}
	p.site.info = &si
	return nil
}

// preflightStep is the preflight as the first step of a run, recorded in
// cmissync_runs and reported like any step, so that a run that could not
// start shows in status and reaches support.
func (p *pipeline) preflightStep(ctx context.Context) (stepResult, error) {
	err := p.preflight(ctx)
	return stepResult{advice: siteAdvice(err)}, err
}

// siteURLOf is the site's own idea of its address (its wwwroot), or the
// configured one when the site does not say.
func siteURLOf(si moodle.SiteInfo, configured string) string {
	if si.SiteURL != "" {
		return si.SiteURL
	}
	return configured
}

// checkSite is the load step's preflight: it also records the site binding
// on the first load (and on a load with --rebind-site), so that a later run
// against another site is refused.
func (p *pipeline) checkSite(ctx context.Context) error {
	if err := p.preflight(ctx); err != nil {
		return err
	}
	if p.site.bound {
		return nil
	}
	b, err := p.st.SiteBinding(ctx)
	if err != nil {
		return err
	}
	si := *p.site.info
	url := siteURLOf(si, p.cfg.Moodle.URL)
	if b == nil || b.URL != store.SiteURLKey(url) || b.Name != si.SiteName {
		if err := p.st.BindSite(ctx, store.SiteBinding{URL: url, Name: si.SiteName, BoundAt: time.Now(), RunID: p.runID}); err != nil {
			return fmt.Errorf("record the Moodle site staging writes to: %w", err)
		}
		p.log.WithField("site", url).WithField("site_name", si.SiteName).Info("staging bound to this Moodle site: runs against another site are refused")
	}
	p.site.bound = true
	return nil
}

// moodleProblem turns a failed preflight call into an error saying what to
// fix: a wrong address, token or certificate is a configuration error.
func moodleProblem(url string, err error) error {
	switch {
	case moodle.IsAddressError(err):
		return &ConfigError{Err: fmt.Errorf("moodle.url %s does not answer as a Moodle web-service endpoint (%w): set moodle.url to the site's wwwroot exactly as in its config.php (scheme, host name and path), and check that web services and the REST protocol are enabled", url, err)}
	case moodle.ErrorCode(err) == moodle.CodeInvalidToken:
		return &ConfigError{Err: fmt.Errorf("Moodle at %s refuses the token (%w): set moodle.token (CMISSYNC_MOODLE_TOKEN or moodle.token_file) to a token of the cmissync service, from Site administration > Server > Web services > Manage tokens", url, err)}
	case moodle.ErrorCode(err) == moodle.CodeAccessException:
		return &ConfigError{Err: fmt.Errorf("Moodle at %s does not let the token call %s (%w): add it to the token's external service and authorise the service user", url, moodle.FnSiteInfo, err)}
	case moodle.IsFatal(err):
		return &ConfigError{Err: fmt.Errorf("Moodle at %s: %w", url, err)}
	}
	var me *moodle.Error
	if errors.As(err, &me) {
		return fmt.Errorf("Moodle at %s answered the preflight with an error: %w", url, err)
	}
	return fmt.Errorf("Moodle did not answer at %s (%w): check that the site is up and reachable from this host (proxy, firewall), then rerun", url, err)
}

// siteAdvice says what to do after a failed preflight, for the report.
func siteAdvice(err error) []string {
	var sm *SiteMismatchError
	switch {
	case errors.As(err, &sm):
		return []string{
			"Nothing was extracted, staged or sent: this staging database belongs to another Moodle site.",
			"Check moodle.url and staging.dsn (is this a copy of another installation's configuration?).",
			"See the binding with: cmissync status; rebind only for the same site under a new address: cmissync run --rebind-site",
		}
	case err != nil:
		return []string{
			"Nothing was extracted, staged or sent.",
			"Check every setting a run needs, with the fix for each: cmissync check",
		}
	}
	return nil
}

// describeSite renders a binding for people.
func describeSite(b *store.SiteBinding) string {
	if b == nil {
		return "not bound yet (the first load records the site it writes to)"
	}
	s := fmt.Sprintf("%q at %s, bound %s", b.Name, b.URL, localTime(b.BoundAt))
	if b.RunID != "" {
		s += " by run " + b.RunID
	}
	return strings.TrimSpace(s)
}

// neededFunctions are the web-service functions a load with this
// configuration calls: the enrolment functions only when load.enrol_missing
// or load.unenrol_action need them, core_course_get_courses_by_field when
// load.skip_ended_courses does.
func neededFunctions(cfg *Config) []string {
	return load.NeededFunctions(load.Options{EnrolMissing: cfg.Load.EnrolMissing == "on", UnenrolAction: cfg.Load.UnenrolAction,
		SkipEndedCourses: cfg.Load.SkipEndedCourses})
}
