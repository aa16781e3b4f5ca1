package load

import (
	"fmt"
	"sync"
)

// gate is the one place every write to Moodle passes, as rclone's
// SkipDestructive is for its deletions. Nothing is sent on a dry run. A
// deletion (a member removed, a group or grouping deleted, an adopted one
// given back) passes only when nothing failed earlier in its course, and
// nothing failed on the way (a network error, a 5xx) anywhere in the run,
// since then Moodle's real state may not be what the plan saw; and the
// gate counts deletions as they pass, so that however they are sent, no
// more is deleted than the plan allowed after the mass-change guard. An
// item the gate refuses is held back in the plan, with the reason, and the
// reports list it.
type gate struct {
	dry bool
	// progress is told writes sent of all planned (Options.Progress).
	progress    func(stage string, done, total int)
	total, done int

	mu sync.Mutex
	// courses finds an item's course plan, to hold it there.
	courses map[int64]*CoursePlan
	// failed: courses where a write or read failed this run.
	failed map[int64]string
	// transient: why a call failed on the way, if one did.
	transient string
	// budget: what the plan allowed to delete (guarded items only);
	// used: what passed so far.
	budgetGroups, budgetMembers int64
	usedGroups, usedMembers     int64
	// sent lists every item that passed, in order.
	sent []*Item
}

func newGate(p *Plan, dry bool, progress func(string, int, int)) *gate {
	g := &gate{dry: dry, courses: map[int64]*CoursePlan{}, failed: map[int64]string{}, progress: progress}
	for _, cp := range p.Courses {
		g.courses[cp.CourseID] = cp
	}
	return g
}

// allow sets what the deletions may weigh: what the plan holds once its
// policies have run. Until then no guarded deletion passes.
func (g *gate) allow(p *Plan) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.budgetGroups, g.budgetMembers = 0, 0
	for _, cp := range p.Courses {
		for _, it := range cp.Items {
			if guarded(it) {
				g.budgetGroups += it.weightGroups
				g.budgetMembers += it.weightMembers
			}
		}
	}
}

// expect adds writes to the total the progress hook is told: the plan's
// writes, counted as its courses are resolved.
func (g *gate) expect(items []*Item) {
	var c PlanCounts
	for _, it := range items {
		c.count(it)
	}
	g.mu.Lock()
	g.total += c.Writes()
	g.mu.Unlock()
}

// pass returns the items that may be written now, in order, and holds the
// others back.
func (g *gate) pass(items []*Item) []*Item {
	if g.dry {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := items[:0:0]
	for _, it := range items {
		if it.Held != "" {
			continue
		}
		if why := g.refuse(it); why != "" {
			g.courses[it.CourseID].hold(it, why)
			it.Outcome = "held"
			continue
		}
		if guarded(it) {
			g.usedGroups += it.weightGroups
			g.usedMembers += it.weightMembers
		}
		it.Outcome = "sent"
		g.sent = append(g.sent, it)
		out = append(out, it)
	}
	if g.progress != nil && len(out) > 0 {
		g.done += len(out)
		g.progress("write", g.done, g.total)
	}
	return out
}

// refuse says why an item may not be written now, or "".
func (g *gate) refuse(it *Item) string {
	if !it.deletes() {
		return ""
	}
	for _, dep := range it.after {
		if dep.Outcome != "done" {
			if it.Object == "enrolment" {
				return dep.dependency(it) + " did not happen"
			}
			return fmt.Sprintf("its group %s was not deleted", dep.IDNumber)
		}
	}
	switch {
	case g.transient != "":
		return "a call failed on the way earlier in this run (" + g.transient + "): deletions wait for a run where Moodle answers every call"
	case g.failed[it.CourseID] != "":
		return "something failed earlier in this course in this run (" + g.failed[it.CourseID] + "): its deletions wait for a clean run"
	case guarded(it) && (g.usedGroups+it.weightGroups > g.budgetGroups || g.usedMembers+it.weightMembers > g.budgetMembers):
		return "mass-change guard: more deletions than the plan allowed"
	}
	return ""
}

// failedIn records a failure in a course: no deletions there this run.
func (g *gate) failedIn(course int64, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failed[course] == "" {
		g.failed[course] = why
	}
}

// failedOnTheWay records a call that got no answer from Moodle: no
// deletions anywhere this run.
func (g *gate) failedOnTheWay(why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.transient == "" {
		g.transient = why
	}
}

// touch allows a write that changes nothing in Moodle's data: the no-op
// update that clears a course's group cache. Never on a dry run.
func (g *gate) touch() bool { return !g.dry }
