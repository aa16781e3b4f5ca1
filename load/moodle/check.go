package moodle

import (
	"context"
	"errors"
	"net/http"
)

// Probe calls core_webservice_get_site_info to learn whether the site
// answers at this address, to this token, and which functions the token's
// service offers. It is the preflight of a run and of "cmissync check".
//
// Unlike other calls, an answer that shows the address is wrong is reported
// at once rather than retried: an HTTP 4xx (a wrong path in the wwwroot, a
// page that is not the web-service endpoint) or an HTTP 200 page that is not
// a web-service answer. Retrying cannot cure those, and the retries would
// only delay a message that must reach the operator. Network errors,
// timeouts and HTTP 5xx are retried as usual.
func (c *Client) Probe(ctx context.Context) (SiteInfo, error) {
	once := *c
	once.retries = 0
	si, err := once.SiteInfo(ctx)
	if err == nil || !IsTransient(err) || IsAddressError(err) || ctx.Err() != nil || c.retries == 0 {
		return si, err
	}
	return c.SiteInfo(ctx)
}

// IsAddressError reports an answer that shows moodle.url is not the site's
// web-service endpoint: a redirect to another wwwroot, an HTTP 4xx, or an
// HTTP 200 page that is not a web-service answer (another application at
// that address).
func IsAddressError(err error) bool {
	if ErrorCode(err) == CodeWrongWWWRoot {
		return true
	}
	var te *TransportError
	return errors.As(err, &te) && te.Status >= http.StatusOK && te.Status < http.StatusInternalServerError
}

// Missing lists the functions of required that the token's service does
// not offer, in the order given.
func (si SiteInfo) Missing(required []string) []string {
	var out []string
	for _, f := range required {
		if !si.Has(f) {
			out = append(out, f)
		}
	}
	return out
}
