package load

import (
	"fmt"
	"math"
	"strings"

	"github.com/cmissync/cmissync/stage/store"
)

// Policies move planned deletions into the held-back list, with the
// reason, before anything is sent. The rule they enforce, here and nowhere
// else: a deletion in Moodle only ever follows positive evidence, a valid
// CMIS row absent from a complete, well-formed extract (store.ReasonCMIS),
// or an operator's explicit request (an RMV mapping, --approve-deletes).
// Whatever cmissync could not read or validate protects everything it might
// have described:
//
//   - a mapping row stage could not understand protects what it maps;
//   - a refused extract row protects the groupings, groups and memberships
//     its key (as far as it could be read) may describe; a record whose key
//     could not be read at all protects every deletion of its view.
//
// Then the mass-change guard counts what is left, except what an RMV
// mapping asked for, and holds it all when it is more than allowed.

// heldNothingRun checks, after the policies, that they held back nothing a
// run has already carried out: a run starts the constructive items of each
// course while the plan is still being built (resolveMembers), which is
// the same plan only because policies hold deletions alone. A policy that
// broke that would be a bug: the run stops before any deletion.
func (p *Plan) heldNothingRun() error {
	for _, cp := range p.Courses {
		for _, it := range cp.Held {
			if it.Outcome != "" {
				return fmt.Errorf("internal error: a policy held back %s %s %s in course %d after the run carried it out (%s): no deletion is made this run",
					it.Action, it.Object, it.IDNumber, cp.CourseID, it.Outcome)
			}
		}
	}
	return nil
}

// applyEvidence holds every deletion that lacks positive evidence.
func (p *Plan) applyEvidence() {
	ix := newRefusalIndex(p.refused)
	for _, cp := range p.Courses {
		for _, it := range append([]*Item(nil), cp.Items...) {
			if !it.deletes() {
				continue
			}
			why := ""
			if it.evidence == evidenceReleased {
				why = ix.protectsPerson(cp.staging.modules(), it.CMISID)
			} else {
				why = ix.protects(it)
			}
			if why != "" {
				cp.hold(it, why)
			}
		}
		p.holdDependents(cp)
	}
}

// holdDependents holds a deletion that waits for one held back: a
// grouping's for its groups', a release of an enrolment for the person's
// removals.
func (p *Plan) holdDependents(cp *CoursePlan) {
	for _, it := range append([]*Item(nil), cp.Items...) {
		for _, dep := range it.after {
			if dep.Held != "" {
				cp.hold(it, dep.dependency(it)+" is held back: "+dep.Held)
				break
			}
		}
	}
}

// dependency names dep, an item the item of waits for.
func (dep *Item) dependency(of *Item) string {
	switch {
	case dep.Object == "member":
		return fmt.Sprintf("their removal from group %s", dep.IDNumber)
	case of.Object == "enrolment":
		what := map[string]string{ActDelete: "deletion", ActArchive: "archiving", ActGiveBack: "giving back"}[dep.Action]
		return fmt.Sprintf("the %s of their group %s", what, dep.IDNumber)
	}
	return fmt.Sprintf("its group %s", dep.IDNumber)
}

// refusalIndex finds the refused rows that may describe a key.
type refusalIndex struct {
	// wild: refused rows of each view whose module could not be read;
	// byModule: the others, by table and module.
	wild     map[store.DumpTable]store.RefusedKey
	byModule map[store.DumpTable]map[string][]store.RefusedKey
}

func newRefusalIndex(keys []store.RefusedKey) *refusalIndex {
	ix := &refusalIndex{wild: map[store.DumpTable]store.RefusedKey{}, byModule: map[store.DumpTable]map[string][]store.RefusedKey{}}
	for _, k := range keys {
		if k.Module == "" {
			if _, ok := ix.wild[k.Table]; !ok {
				ix.wild[k.Table] = k
			}
			continue
		}
		m := ix.byModule[k.Table]
		if m == nil {
			m = map[string][]store.RefusedKey{}
			ix.byModule[k.Table] = m
		}
		m[k.Module] = append(m[k.Module], k)
	}
	return ix
}

// first returns the first refused row of the table covering the key.
func (ix *refusalIndex) first(t store.DumpTable, module, group, cmisid string) (store.RefusedKey, bool) {
	if k, ok := ix.wild[t]; ok {
		return k, true
	}
	for _, k := range ix.byModule[t][module] {
		if k.Covers(module, group, cmisid) {
			return k, true
		}
	}
	return store.RefusedKey{}, false
}

// protects returns why a deletion lacks evidence, or "".
func (ix *refusalIndex) protects(it *Item) string {
	switch it.evidence {
	case store.ReasonRMV, store.ReasonUnmapped:
		return ""
	case store.ReasonBadMapping:
		return "its mapped_modules row is not understood (see the stage report); what it maps is kept until the row is fixed"
	case store.ReasonCMIS, evidenceNotInCMIS:
	default:
		return fmt.Sprintf("no evidence for this deletion (reason %q)", it.evidence)
	}
	o := it.obj
	why := refusedWhy
	// The module-groups view describes groupings, groups and, through its
	// groups, every membership.
	if k, ok := ix.first(store.ModuleGroups, o.module, o.group, ""); ok {
		return why(k)
	}
	if it.Object != "member" {
		return ""
	}
	if it.evidence == evidenceNotInCMIS {
		// Who it is in CMIS is unknown: any refused member row of the
		// group may be them.
		for _, t := range []store.DumpTable{store.GroupMembers, store.GroupTutors} {
			if k, ok := ix.first(t, o.module, o.group, ""); ok {
				return why(k)
			}
		}
		return ""
	}
	view := store.GroupMembers
	if it.Role == store.RoleTutor {
		view = store.GroupTutors
	}
	if k, ok := ix.first(view, o.module, o.group, it.CMISID); ok {
		return why(k)
	}
	return ""
}

// refusedWhy says why a refused extract row protects a deletion.
func refusedWhy(k store.RefusedKey) string {
	where := k.Source
	if k.Line > 0 {
		where += fmt.Sprintf(" line %d", k.Line)
	}
	scope := "a refused row"
	if k.Module == "" {
		scope = "an unreadable record (every deletion from its view is held this run)"
	}
	return fmt.Sprintf("the last extract refused %s that may describe it: %s: %s", scope, where, k.Reason)
}

// applyRemoveAfter holds the deletions of what has not yet been absent
// from n consecutive complete extracts (load.remove_after_runs), so that one
// night's glitch in CMIS removes nobody. Only absence from CMIS waits: an
// RMV mapping, a mapping removed and load.remove_members_not_in_cmis do not.
func (p *Plan) applyRemoveAfter(n int) {
	if n <= 1 {
		return
	}
	for _, cp := range p.Courses {
		for _, it := range append([]*Item(nil), cp.Items...) {
			if !it.deletes() || it.evidence != store.ReasonCMIS {
				continue
			}
			absent := 0
			switch {
			case it.member != nil && it.Action == ActRemove && it.Reason != reasonGivenBack:
				absent = it.member.AbsentRuns
			case it.obj != nil:
				absent = it.obj.absentRuns
			}
			if absent < n {
				cp.hold(it, fmt.Sprintf("absent from %d of the %d complete extracts it must be absent from (load.remove_after_runs = %d)", absent, n, n))
			}
		}
		p.holdDependents(cp)
	}
}

// Guard is the mass-change safety rail: a load that would delete more of
// what cmissync owns than these limits holds all those deletions back
// (exit 4, reported) until an operator approves them. Deletions an RMV
// mapping asked for are not counted: the guard is against data that
// vanished (an outage returning empty views must never empty Moodle, nor
// an emptied mapping table). A zero limit is off.
type Guard struct {
	// MaxDeleteShare: largest share of owned groups, or of owned
	// memberships, one run may delete (0.2 = 20%).
	MaxDeleteShare float64
	// MaxDeleteCount: largest number of owned groups plus memberships one
	// run may delete.
	MaxDeleteCount int64
	// CourseMaxDeleteShare: largest share of a course's owned memberships
	// one run may delete, for courses with at least CourseMinItems of them.
	CourseMaxDeleteShare float64
	CourseMinItems       int64
}

// Validate checks the limits.
func (g Guard) Validate() error {
	for name, v := range map[string]float64{"max_delete_share": g.MaxDeleteShare, "course_max_delete_share": g.CourseMaxDeleteShare} {
		if math.IsNaN(v) || v < 0 || v > 1 {
			return fmt.Errorf("guard.%s = %v: want a share from 0 to 1", name, v)
		}
	}
	if g.MaxDeleteCount < 0 || g.CourseMinItems < 0 {
		return fmt.Errorf("guard counts must not be negative")
	}
	return nil
}

// HoldError is a load whose deletions the mass-change guard held: what
// could be done was done, the deletions wait for an operator.
type HoldError struct {
	Reasons []string
}

func (e *HoldError) Error() string {
	return "mass-change guard: " + strings.Join(e.Reasons, "; ") +
		". The deletions were held back, nothing was deleted. If they are intended, approve with: cmissync run --approve-deletes (or cmissync load --approve-deletes)"
}

// guarded reports whether the guard counts an item.
func guarded(it *Item) bool {
	return it.deletes() && it.Held == "" && it.evidence != store.ReasonRMV
}

// applyGuard holds the guarded deletions when they exceed the limits: all
// of them for a site-wide limit, a course's for its own limit.
func (p *Plan) applyGuard(g Guard) {
	var groups, members int64
	var reasons []string
	over := map[*CoursePlan]string{}
	for _, cp := range p.Courses {
		var cm int64
		for _, it := range cp.Items {
			if guarded(it) {
				groups += it.weightGroups
				cm += it.weightMembers
			}
		}
		members += cm
		owned := cp.staging.ownedMembers
		if g.CourseMaxDeleteShare > 0 && owned >= g.CourseMinItems && owned > 0 && float64(cm) > g.CourseMaxDeleteShare*float64(owned) {
			over[cp] = fmt.Sprintf("course %d would lose %d of its %d memberships (limit %s)", cp.CourseID, cm, owned, percent(g.CourseMaxDeleteShare))
		}
	}
	if g.MaxDeleteShare > 0 {
		if p.ownedGroups > 0 && float64(groups) > g.MaxDeleteShare*float64(p.ownedGroups) {
			reasons = append(reasons, fmt.Sprintf("%d of %d owned groups would be deleted (limit %s)", groups, p.ownedGroups, percent(g.MaxDeleteShare)))
		}
		if p.ownedMembers > 0 && float64(members) > g.MaxDeleteShare*float64(p.ownedMembers) {
			reasons = append(reasons, fmt.Sprintf("%d of %d owned memberships would be removed (limit %s)", members, p.ownedMembers, percent(g.MaxDeleteShare)))
		}
	}
	if n := groups + members; g.MaxDeleteCount > 0 && n > g.MaxDeleteCount {
		reasons = append(reasons, fmt.Sprintf("%d groups and memberships would be deleted (limit %d)", n, g.MaxDeleteCount))
	}
	site := len(reasons) > 0
	for _, cp := range p.Courses {
		why, course := over[cp]
		if !site && !course {
			continue
		}
		if site {
			why = "mass-change guard: " + strings.Join(reasons, "; ")
		} else {
			why = "mass-change guard: " + why
			reasons = append(reasons, over[cp])
		}
		for _, it := range append([]*Item(nil), cp.Items...) {
			if guarded(it) {
				cp.hold(it, why)
			}
		}
		p.holdDependents(cp)
	}
	const shown = 10
	if len(reasons) > shown {
		reasons = append(reasons[:shown], fmt.Sprintf("and %d more courses", len(reasons)-shown))
	}
	p.Guard = reasons
}

// holdAllDeletions holds every deletion with one reason.
func (p *Plan) holdAllDeletions(why string) {
	for _, cp := range p.Courses {
		for _, it := range append([]*Item(nil), cp.Items...) {
			if it.deletes() {
				cp.hold(it, why)
			}
		}
	}
}

// percent renders a share as a percentage without needless decimals.
func percent(share float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", 100*share), "0"), ".") + "%"
}
