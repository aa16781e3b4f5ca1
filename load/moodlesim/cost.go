package moodlesim

import (
	"strings"
	"sync"
	"time"
)

// What a call costs Moodle. A real site spends time in each web-service
// call in proportion to what it touches: a fixed part per call and a part
// per item (a group read, a member added, a user listed). The simulator
// answers at once; with a cost model it charges each call what the
// reference's latency table says a real Moodle 4.5 spends on it, counts it
// per function (Server.Work), and, scaled, waits that long before answering
// so that wall times resemble a real site's. Benchmarks compare the
// charged time of kinds of work (e.g. enrolment checks against the rest),
// which does not depend on the machine they run on.

// Cost is what one call of a function costs Moodle: Base per call and
// PerItem for each item it reads or writes.
type Cost struct {
	Base, PerItem time.Duration
}

// CostModel charges calls. The zero value charges nothing.
type CostModel struct {
	// Costs by function; a function not listed costs Default.
	Costs   map[string]Cost
	Default Cost
	// PerUserField is the extra cost per user listed by
	// core_enrol_get_enrolled_users for each expensive user field asked
	// for (by field name).
	PerUserField map[string]time.Duration
	// Scale is how much of a call's charge the simulator waits before
	// answering: 0 charges and counts only, 1 waits as long as the site
	// the costs were measured on.
	Scale float64
	// Workers bounds the calls handled at once, as a site's PHP workers
	// do (0: no bound). Calls beyond it queue, as they would.
	Workers int
	// Latency is waited before answering every call, on top of the
	// scaled charge: a fixed per-call latency, the same for every
	// function, against which a client's concurrency can be judged.
	Latency time.Duration
}

// ReferenceCosts is the cost model of the reference's latency table (a
// Moodle 4.5 on loopback, PHP built-in server, 4 workers), Scale 0:
//
//   - core_webservice_get_site_info 20 ms;
//   - core_group_get_course_groups 16 ms for 5 groups, 55 ms for 990;
//     core_group_get_course_groupings 17 ms;
//   - core_group_get_groups 46 ms for 100 ids, 346 ms for 990;
//   - core_group_get_group_members 90 ms for 100 groups of 20, 577 ms for 990;
//   - core_group_get_groupings with returngroups 38 ms for one grouping of
//     990 groups;
//   - core_group_add_group_members 450 ms for 100 new members; writes cost
//     about 4 ms per member;
//   - core_enrol_get_enrolled_users 88 ms for 200 users and 91 ms for ~250
//     with userfields id,idnumber; 240 ms with username,email,idnumber
//     (email alone 256 ms, username 102 ms).
//
// Not in the table, and assumed here (change them when measured): the
// other writes (create, update, delete, assign, enrol and unenrol) cost as
// member writes do, 16 ms per call and 4 ms per item;
// core_user_get_users_by_field and core_course_get_courses_by_field cost
// as a read by id does (12 ms per call, 0.34 ms per value).
func ReferenceCosts() CostModel {
	write := Cost{Base: 16 * time.Millisecond, PerItem: 4 * time.Millisecond}
	byID := Cost{Base: 12 * time.Millisecond, PerItem: 340 * time.Microsecond}
	return CostModel{
		Default: write,
		Costs: map[string]Cost{
			"core_webservice_get_site_info":    {Base: 20 * time.Millisecond},
			"core_group_get_course_groups":     {Base: 16 * time.Millisecond, PerItem: 40 * time.Microsecond},
			"core_group_get_course_groupings":  {Base: 17 * time.Millisecond, PerItem: 40 * time.Microsecond},
			"core_group_get_groups":            byID,
			"core_group_get_group_members":     {Base: 35 * time.Millisecond, PerItem: 550 * time.Microsecond},
			"core_group_get_groupings":         {Base: 17 * time.Millisecond, PerItem: 21 * time.Microsecond},
			"core_group_add_group_members":     {Base: 16 * time.Millisecond, PerItem: 4340 * time.Microsecond},
			"core_enrol_get_enrolled_users":    {Base: 76 * time.Millisecond, PerItem: 60 * time.Microsecond},
			"core_user_get_users_by_field":     byID,
			"core_course_get_courses_by_field": byID,
		},
		// 250 users: username 102 - 91 ms, email 256 - 91 ms.
		PerUserField: map[string]time.Duration{"username": 44 * time.Microsecond, "email": 660 * time.Microsecond},
	}
}

// Work is what the calls of one function cost Moodle.
type Work struct {
	Calls int
	// Items read or written (see itemsOf; for a member call Moodle refused
	// part-way, the members it handled before the one it refused, as its
	// code checks each member just before adding it); Time is the charged
	// time of every call, Refused the share of it spent on calls that
	// answered an error.
	Items         int
	Time, Refused time.Duration
	// RefusedCalls counts the calls that answered an error.
	RefusedCalls int
}

// charge is what a call costs under the model.
func (m *CostModel) charge(function string, items int, fields []string) time.Duration {
	c, ok := m.Costs[function]
	if !ok {
		c = m.Default
	}
	d := c.Base + time.Duration(items)*c.PerItem
	for _, f := range fields {
		d += time.Duration(items) * m.PerUserField[f]
	}
	return d
}

// work accounts the calls of a server.
type work struct {
	mu      sync.Mutex
	byFn    map[string]Work
	workers chan struct{} // nil: no bound
}

func (w *work) add(function string, items int, d time.Duration, refused bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	x := w.byFn[function]
	x.Calls++
	x.Items += items
	x.Time += d
	if refused {
		x.Refused += d
		x.RefusedCalls++
	}
	w.byFn[function] = x
}

// Work returns, per function, what the calls since the last ResetCalls
// cost Moodle under Options.Costs (items are counted without a model too).
func (s *Server) Work() map[string]Work {
	s.work.mu.Lock()
	defer s.work.mu.Unlock()
	out := make(map[string]Work, len(s.work.byFn))
	for k, v := range s.work.byFn {
		out[k] = v
	}
	return out
}

// itemsOf counts what a call touches: the entries of its list parameter
// (members, groups, group ids, enrolments, values, ...) for writes and reads
// by id, and the objects answered for listings (course groups, enrolled
// users, the groups of groupings read with their groups).
func itemsOf(function string, params map[string]any, result any) int {
	switch function {
	case "core_group_get_course_groups", "core_group_get_course_groupings", "core_enrol_get_enrolled_users":
		return len(list(result))
	case "core_course_get_courses_by_field":
		return len(list(rec(result)["courses"]))
	case "core_group_get_groupings":
		if n, _ := params["returngroups"].(int); n != 0 {
			items := 0
			for _, g := range list(result) {
				items += len(list(rec(g)["groups"]))
			}
			return items
		}
	}
	for _, v := range params {
		if l, ok := v.([]any); ok {
			return len(l)
		}
	}
	return 0
}

// userFields are the expensive user fields an enrolled-users call asks for:
// without the userfields option Moodle answers every field.
func userFields(function string, params map[string]any) []string {
	if function != "core_enrol_get_enrolled_users" {
		return nil
	}
	out := []string{"username", "email"}
	for _, o := range list(params["options"]) {
		if r := rec(o); r["name"] == "userfields" {
			out = nil
			v, _ := r["value"].(string)
			for _, f := range strings.Split(v, ",") {
				if f = strings.TrimSpace(f); f == "username" || f == "email" {
					out = append(out, f)
				}
			}
		}
	}
	return out
}
