package load

import (
	"context"
	"fmt"
	"strings"

	"github.com/cmissync/cmissync/stage/store"
)

// Guard is the mass-change safety rail: a load that would delete more of
// what cmissync owns than these limits is held (nothing is sent) until an
// operator approves it. Deletions asked for by a mapping switched to RMV are
// not counted: the guard is against data that vanished from CMIS (an outage
// returning empty views must never empty Moodle). A zero limit is off.
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

// HoldError is a load held by the guard.
type HoldError struct {
	Reasons []string
}

func (e *HoldError) Error() string {
	return "mass-change guard: " + strings.Join(e.Reasons, "; ") +
		". Nothing was sent. If this is intended, approve with: cmissync run --approve-deletes (or cmissync load --approve-deletes)"
}

// Check returns a *HoldError when the staged deletions exceed the limits.
func (g Guard) Check(ctx context.Context, st *store.Store, f store.Filter) error {
	stats, err := st.DeletionStats(ctx, f)
	if err != nil {
		return fmt.Errorf("mass-change guard: %w", err)
	}
	var total store.CourseDeletions
	var reasons []string
	for _, c := range stats {
		total.OwnedGroups += c.OwnedGroups
		total.DeleteGroups += c.DeleteGroups - c.ExplainedGroups
		total.OwnedMembers += c.OwnedMembers
		total.DeleteMembers += c.DeleteMembers - c.ExplainedMembers
		del := c.DeleteMembers - c.ExplainedMembers
		if g.CourseMaxDeleteShare > 0 && c.OwnedMembers >= g.CourseMinItems && c.OwnedMembers > 0 &&
			float64(del) > g.CourseMaxDeleteShare*float64(c.OwnedMembers) {
			reasons = append(reasons, fmt.Sprintf("course %d would lose %d of its %d memberships (limit %.0f%%)", c.CourseID, del, c.OwnedMembers, 100*g.CourseMaxDeleteShare))
		}
	}
	if g.MaxDeleteShare > 0 {
		if total.OwnedGroups > 0 && float64(total.DeleteGroups) > g.MaxDeleteShare*float64(total.OwnedGroups) {
			reasons = append([]string{fmt.Sprintf("%d of %d owned groups would be deleted (limit %.0f%%)", total.DeleteGroups, total.OwnedGroups, 100*g.MaxDeleteShare)}, reasons...)
		}
		if total.OwnedMembers > 0 && float64(total.DeleteMembers) > g.MaxDeleteShare*float64(total.OwnedMembers) {
			reasons = append([]string{fmt.Sprintf("%d of %d owned memberships would be removed (limit %.0f%%)", total.DeleteMembers, total.OwnedMembers, 100*g.MaxDeleteShare)}, reasons...)
		}
	}
	if n := total.DeleteGroups + total.DeleteMembers; g.MaxDeleteCount > 0 && n > g.MaxDeleteCount {
		reasons = append([]string{fmt.Sprintf("%d groups and memberships would be deleted (limit %d)", n, g.MaxDeleteCount)}, reasons...)
	}
	if len(reasons) > 0 {
		const shown = 10
		if len(reasons) > shown {
			reasons = append(reasons[:shown], fmt.Sprintf("and %d more courses", len(reasons)-shown))
		}
		return &HoldError{Reasons: reasons}
	}
	return nil
}
