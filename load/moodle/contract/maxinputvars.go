package contract

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
)

// truncationPairs is the size of the recorded scenarios: 600 members, 1203
// variables with the web-service parameters.
const truncationPairs = 600

// layout places wstoken, wsfunction and moodlewsrestformat in a request.
type layout string

const (
	paramsFirst layout = "first in the body"
	paramsInURL layout = "in the URL"
	paramsLast  layout = "last in the body"
)

// outcome is what a truncated add_group_members call does.
type outcome struct {
	answer string // "null", errorcode of a JSON error, or "xml:" + errorcode
	added  int    // members added: always the first ones sent
}

// predict is PHP's max_input_vars as the reference notes record it: a body
// keeps its first limit+1 variables (query-string variables are counted
// apart), and the rest is dropped silently. ok is false where the
// prediction depends on more than that (the token kept, the function lost).
func predict(limit, pairs int, l layout) (o outcome, ok bool) {
	memberVars, ws := 2*pairs, 3
	kept := limit + 1
	switch l {
	case paramsFirst:
		if kept >= ws+memberVars {
			return outcome{"null", pairs}, true
		}
		if k := kept - ws; k%2 == 0 {
			return outcome{"null", k / 2}, true
		}
		return outcome{moodle.CodeInvalidParameter, 0}, true // a member lost its userid
	case paramsInURL:
		if kept >= memberVars {
			return outcome{"null", pairs}, true
		}
		if kept%2 == 0 {
			return outcome{"null", kept / 2}, true
		}
		return outcome{moodle.CodeInvalidParameter, 0}, true
	case paramsLast:
		if kept >= ws+memberVars {
			return outcome{"null", pairs}, true
		}
		if kept <= memberVars {
			// The token and the format are cut off: an XML invalidtoken.
			return outcome{"xml:" + moodle.CodeInvalidToken, 0}, true
		}
	}
	return outcome{}, false
}

// memberForm renders members[i][groupid], members[i][userid] in order.
func memberForm(pairs []moodle.Pair) string {
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		n := strconv.Itoa(i)
		b.WriteString(Form("members["+n+"][groupid]", itoa(p.A), "members["+n+"][userid]", itoa(p.B)))
	}
	return b.String()
}

// maxInputVars checks the three recorded scenarios of PHP's silent
// truncation (with a known limit), and that a batch of the client's
// Capacity lands whole.
func maxInputVars(t *testing.T, tg *Target) {
	f := newFixture(t, tg)
	// 600 distinct memberships over the enrolled users: enough groups.
	nGroups := (truncationPairs + len(tg.Users) - 1) / len(tg.Users)
	names := make([]string, nGroups)
	for i := range names {
		names[i] = fmt.Sprintf("T%03d", i)
	}
	groups := f.createGroups(names...)
	groupIDs := make([]int64, len(groups))
	var pairs []moodle.Pair
	for i, g := range groups {
		groupIDs[i] = g.ID
		for _, u := range tg.Users {
			pairs = append(pairs, moodle.Pair{A: g.ID, B: u})
		}
	}
	pairs = pairs[:truncationPairs]
	sent := func(t *testing.T, want int) {
		t.Helper()
		m := f.members(groupIDs...)
		in := map[moodle.Pair]bool{}
		for g, us := range m {
			for _, u := range us {
				in[moodle.Pair{A: g, B: u}] = true
			}
		}
		if len(in) != want {
			t.Errorf("%d members added, want %d", len(in), want)
		}
		for i, p := range pairs[:want] {
			if !in[p] {
				t.Errorf("member %d (group %d, user %d) not added; PHP keeps the first variables", i, p.A, p.B)
				break
			}
		}
	}
	reset := func(t *testing.T) {
		t.Helper()
		n := f.c.Capacity(moodle.VarsPerPair)
		for start := 0; start < len(pairs); start += n {
			if err := f.c.DeleteMembers(f.ctx, pairs[start:min(start+n, len(pairs))]); err != nil {
				t.Fatalf("reset members: %v", err)
			}
		}
	}

	for _, l := range []layout{paramsFirst, paramsInURL, paramsLast} {
		t.Run(fmt.Sprintf("%d members, parameters %s", truncationPairs, l), func(t *testing.T) {
			if !tg.MaxInputVarsKnown {
				t.Skipf("needs the site's max_input_vars: set %s", EnvMaxInputVars)
			}
			want, ok := predict(tg.MaxInputVars, truncationPairs, l)
			if !ok {
				t.Skipf("max_input_vars %d: the outcome is not predictable for this layout", tg.MaxInputVars)
			}
			t.Cleanup(func() { reset(t) })
			ws, body := tg.WSParams(moodle.FnAddMembers), memberForm(pairs)
			var a Answer
			switch l {
			case paramsFirst:
				a = tg.Post(t, "", ws+"&"+body)
			case paramsInURL:
				a = tg.Post(t, ws, body)
			case paramsLast:
				a = tg.Post(t, "", body+"&"+ws)
			}
			switch {
			case want.answer == "null":
				wantOK(t, a)
				if strings.TrimSpace(a.Body) != "null" {
					t.Errorf("answer %.300s, want null", a.Body)
				}
			case strings.HasPrefix(want.answer, "xml:"):
				wantXMLErr(t, a, strings.TrimPrefix(want.answer, "xml:"))
			default:
				tg.wantErrBody(t, a, errInvalidParameter)
			}
			sent(t, want.added)
		})
	}

	t.Run("a batch of the client's capacity lands whole", func(t *testing.T) {
		t.Cleanup(func() { reset(t) })
		n := min(f.c.Capacity(moodle.VarsPerPair), len(pairs))
		if err := f.c.AddMembers(f.ctx, pairs[:n]); err != nil {
			t.Fatalf("add %d members: %v", n, err)
		}
		sent(t, n)
	})
}
