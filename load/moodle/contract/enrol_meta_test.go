package contract

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
)

// wrongSite alters requests on their way to the simulator, so that the site
// behind the proxy breaks one fact of the reference. It returns true when
// it answered the request itself.
type wrongSite func(w http.ResponseWriter, function string, form url.Values) bool

// dropKeys makes a site that ignores every parameter of function whose name
// ends with suffix (or, for options, whose value is it).
func dropKeys(function, suffix string) wrongSite {
	return func(_ http.ResponseWriter, fn string, form url.Values) bool {
		if fn != function {
			return false
		}
		for k, v := range form {
			if strings.HasSuffix(k, suffix) || len(v) == 1 && v[0] == suffix {
				delete(form, k)
				delete(form, strings.Replace(k, "[name]", "[value]", 1))
			}
		}
		return false
	}
}

// TestEnrolmentCasesCatchWrongSites runs the enrolment cases against sites
// that each break one fact of the reference, through a proxy in front of a
// simulator. Each case must fail on the sites it is about, and pass on the
// proxy when it changes nothing, so the failures are the sites' doing.
func TestEnrolmentCasesCatchWrongSites(t *testing.T) {
	type run struct {
		name string
		body func(testing.TB, *Target)
	}
	twice := run{"enrol twice", enrolTwice}
	suspend := run{"suspend and onlyactive", enrolSuspend}
	memberships := run{"unenrol removes memberships", unenrolRemovesMemberships}
	roleID := run{"unenrol ignores roleid", unenrolRoleID}
	rollback := func(r enrolRefusal) run {
		return run{"enrol rolls back: " + string(r), func(t testing.TB, tg *Target) { enrolRollback(t, tg, r) }}
	}
	all := []run{twice, suspend, memberships, roleID, rollback(refuseRole), rollback(refuseCourse), rollback(refuseUser)}

	sites := []struct {
		name  string
		site  wrongSite
		fails []run
	}{
		{"as is", func(http.ResponseWriter, string, url.Values) bool { return false }, nil},
		{"suspend ignored", dropKeys("enrol_manual_enrol_users", "[suspend]"), []run{suspend}},
		{"onlyactive ignored", dropKeys("core_enrol_get_enrolled_users", "onlyactive"), []run{suspend}},
		{"unenrol does nothing", func(w http.ResponseWriter, fn string, _ url.Values) bool {
			if fn != "enrol_manual_unenrol_users" {
				return false
			}
			_, _ = io.WriteString(w, "null")
			return true
		}, []run{memberships, roleID, twice, suspend}}, // the last two in their clean-up, which checks the unenrolment
		{"enrol applies entries one by one", nil, []run{rollback(refuseRole), rollback(refuseCourse), rollback(refuseUser)}},
	}
	for _, s := range sites {
		for _, r := range all {
			tg, _ := NewSimulator(t, SimulatorOptions{})
			wrong := proxy(t, tg, s.site)
			rec := record(t, func(tb testing.TB) { r.body(tb, wrong) })
			mustFail := false
			for _, f := range s.fails {
				mustFail = mustFail || f.name == r.name
			}
			said := strings.Join(rec.said(), "\n  ")
			switch {
			case rec.Skipped():
				t.Errorf("%s on a site where %s: skipped:\n  %s", r.name, s.name, said)
			case rec.Failed() != mustFail:
				t.Errorf("%s on a site where %s: failed %v, want %v; the case said:\n  %s", r.name, s.name, rec.Failed(), mustFail, said)
			case mustFail:
				t.Logf("%s fails on a site where %s, as it must:\n  %s", r.name, s.name, said)
			}
		}
	}
}

// proxy returns a copy of tg whose URL is a proxy in front of it that lets
// site alter each request (site nil: enrol_manual_enrol_users is sent one
// entry per call, so that a bad entry no longer undoes the good ones).
func proxy(t *testing.T, tg *Target, site wrongSite) *Target {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(b))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fn := form.Get("wsfunction")
		switch {
		case site == nil && fn == "enrol_manual_enrol_users":
			oneByOne(w, tg, form)
		case site != nil && site(w, fn, form):
		default:
			status, body := forward(tg, form)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	wrong := *tg
	wrong.URL = srv.URL
	return &wrong
}

// forward posts form to the site behind the proxy and returns its answer.
func forward(tg *Target, form url.Values) (int, []byte) {
	resp, err := tg.http.Post(tg.URL+moodle.Endpoint, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return http.StatusBadGateway, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// oneByOne sends each entry of an enrol_manual_enrol_users call as a call
// of its own and answers the first refusal, or null: a site without
// transactions.
func oneByOne(w http.ResponseWriter, tg *Target, form url.Values) {
	entries := map[string]url.Values{}
	var order []string
	for k, v := range form {
		if !strings.HasPrefix(k, "enrolments[") {
			continue
		}
		i := k[:strings.Index(k, "]")+1]
		if entries[i] == nil {
			entries[i] = url.Values{}
			order = append(order, i)
		}
		entries[i]["enrolments[0]"+k[len(i):]] = v
	}
	sort.Strings(order)
	answer := []byte("null")
	for _, i := range order {
		one := url.Values{"wstoken": form["wstoken"], "wsfunction": form["wsfunction"], "moodlewsrestformat": form["moodlewsrestformat"]}
		for k, v := range entries[i] {
			one[k] = v
		}
		if _, body := forward(tg, one); string(answer) == "null" {
			answer = body
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(answer)
}
