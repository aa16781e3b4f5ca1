package moodle_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
)

func TestProbeReportsAddressErrorsAtOnceAndRetriesOutages(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  func(w http.ResponseWriter, call int32)
		calls   int32
		address bool
		ok      bool
	}{
		{"404", func(w http.ResponseWriter, _ int32) { http.NotFound(w, nil) }, 1, true, false},
		{"html page", func(w http.ResponseWriter, _ int32) { fmt.Fprint(w, "<html>another site</html>") }, 1, true, false},
		{"redirect", func(w http.ResponseWriter, _ int32) {
			w.Header().Set("Location", "https://moodle.example.ac.uk/webservice/rest/server.php")
			w.WriteHeader(http.StatusSeeOther)
		}, 1, true, false},
		{"bad token", func(w http.ResponseWriter, _ int32) {
			fmt.Fprint(w, `{"exception":"moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}`)
		}, 1, false, false},
		{"outage then answer", func(w http.ResponseWriter, call int32) {
			if call < 3 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			fmt.Fprint(w, `{"sitename":"S","siteurl":"http://x","functions":[{"name":"core_group_get_groups"}]}`)
		}, 3, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			c := newClient(t, func(w http.ResponseWriter, r *http.Request) { tc.answer(w, calls.Add(1)) })
			si, err := c.Probe(context.Background())
			if got := calls.Load(); got != tc.calls {
				t.Errorf("%d calls, want %d", got, tc.calls)
			}
			if tc.ok {
				if err != nil || si.SiteName != "S" {
					t.Fatalf("Probe = %+v, %v", si, err)
				}
				if m := si.Missing([]string{moodle.FnGetGroups, moodle.FnAddMembers}); len(m) != 1 || m[0] != moodle.FnAddMembers {
					t.Fatalf("Missing = %v", m)
				}
				return
			}
			if err == nil || moodle.IsAddressError(err) != tc.address {
				t.Fatalf("Probe error %v: address error %v, want %v", err, moodle.IsAddressError(err), tc.address)
			}
		})
	}
}
