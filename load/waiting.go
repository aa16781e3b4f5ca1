package load

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/report"
)

// Members CMIS lists who are not enrolled in the course (or have no Moodle
// account yet) wait: Moodle would refuse them, and one such member would
// fail a whole call. Waiting is not failing: a member is reported when they
// start waiting and counted in one summary line afterwards, and becomes a
// failure again only after Options.WaitingAlertAfter, so it still reaches a
// person without a new alarm every night.

// retryEvery paces the tries of a member waiting for enrolment: every run
// for their first retryEvery runs (a person is usually enrolled within
// days), then every retryEvery-th run, so that someone who is never
// enrolled costs one call a week, not one a night.
const retryEvery = 7

// retryDue reports whether a member who waited runs loads is tried again.
func retryDue(runs int) bool { return runs < retryEvery || runs%retryEvery == 0 }

// DefaultWaitingAlertAfter is how long a member may wait before the wait is
// reported as a failure, when Options.WaitingAlertAfter is not set.
const DefaultWaitingAlertAfter = 7 * 24 * time.Hour

// WaitingMember is a membership that waits for its person's enrolment.
type WaitingMember struct {
	CourseID  int64
	IDNumber  string // the group's
	GroupName string
	Role      string
	CMISID    string
	Reason    string
	// Since is when the member was first found waiting; Runs how many
	// loads have found them so; New says this load was the first.
	Since time.Time
	Runs  int
	New   bool
}

// Line renders the member on one line for reports.
func (w WaitingMember) Line() string {
	s := fmt.Sprintf("course %d, group %s: %s %s: %s", w.CourseID, w.IDNumber, w.Role, w.CMISID, w.Reason)
	if !w.New {
		s += fmt.Sprintf(" (waiting since %s, %d runs)", w.Since.UTC().Format("2006-01-02"), w.Runs)
	}
	return s
}

// WaitingSummary is the one line reports give the waiting list: how many,
// how many new, and the oldest.
func WaitingSummary(ws []WaitingMember) string {
	if len(ws) == 0 {
		return ""
	}
	oldest := ws[0]
	fresh := 0
	for _, w := range ws {
		if w.Since.Before(oldest.Since) {
			oldest = w
		}
		if w.New {
			fresh++
		}
	}
	return fmt.Sprintf("%d memberships wait for enrolment (%d new); the oldest since %s: %s %s in course %d",
		len(ws), fresh, oldest.Since.UTC().Format("2006-01-02"), oldest.Role, oldest.CMISID, oldest.CourseID)
}

// wait records an item whose member must wait: in staging (since when, how
// many runs), in the result's waiting list, and as a failure once it has
// waited longer than allowed.
func (l *loader) wait(it *Item, reason string) {
	if reason == "" {
		reason = it.Reason
	}
	// An add that turned out to wait keeps its planned reason: the plan
	// printed is the plan carried out; the outcome says what happened.
	it.Outcome, it.Note = "waiting", reason
	now := l.now()
	w := WaitingMember{CourseID: it.CourseID, IDNumber: it.IDNumber, GroupName: it.Name, Role: it.Role, CMISID: it.CMISID, Reason: reason, Since: now, Runs: 1, New: true}
	if m := it.member; m != nil && !m.WaitingSince.IsZero() {
		w.Since, w.Runs, w.New = m.WaitingSince, m.WaitingRuns+1, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.NotEnrolled++
	l.res.Waiting = append(l.res.Waiting, w)
	if it.member != nil {
		l.waitingRows = append(l.waitingRows, it.member.ID)
	}
	if !w.New && now.Sub(w.Since) > l.opts.WaitingAlertAfter {
		f := failure(it, moodle.FnAddMembers, "")
		f.ErrorCode, f.Exception = report.CodeNotEnrolled, "cmissync"
		f.Message = fmt.Sprintf("%s; waiting since %s (%d runs), longer than the %s allowed", reason, w.Since.UTC().Format("2006-01-02"), w.Runs, l.opts.WaitingAlertAfter)
		l.res.Failures = append(l.res.Failures, f)
	}
}

// recordWaiting writes the waiting list's staging side once the members are
// known.
func (l *loader) recordWaiting(ctx context.Context) error {
	l.mu.Lock()
	rows := l.waitingRows
	l.waitingRows = nil
	sort.Slice(l.res.Waiting, func(i, j int) bool {
		a, b := l.res.Waiting[i], l.res.Waiting[j]
		if a.CourseID != b.CourseID {
			return a.CourseID < b.CourseID
		}
		if a.IDNumber != b.IDNumber {
			return a.IDNumber < b.IDNumber
		}
		return a.CMISID < b.CMISID
	})
	l.mu.Unlock()
	return l.st.MarkWaiting(ctx, rows, l.now())
}

// enrolledIn reads, once per run, the Moodle users enrolled in a course.
func (l *loader) enrolledIn(ctx context.Context, course int64) (map[int64]bool, error) {
	l.mu.Lock()
	if set, ok := l.enrolled[course]; ok {
		l.mu.Unlock()
		return set, nil
	}
	l.mu.Unlock()
	users, err := l.mc.EnrolledUsers(ctx, course)
	if err != nil {
		return nil, err
	}
	set := make(map[int64]bool, len(users))
	for _, u := range users {
		set[u.ID] = true
	}
	l.mu.Lock()
	l.enrolled[course] = set
	l.mu.Unlock()
	return set, nil
}
