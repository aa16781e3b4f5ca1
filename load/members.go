package load

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
)

// member is a membership ready to send.
type member struct {
	work   store.MemberWork
	userID int64
}

func (m member) pair() moodle.Pair { return moodle.Pair{A: m.work.MoodleGroupID, B: m.userID} }

func (m member) user() string {
	return fmt.Sprintf("%s %s (Moodle user %d)", m.work.Role, m.work.CMISID, m.userID)
}

func pairsOf(b []member) []moodle.Pair {
	out := make([]moodle.Pair, len(b))
	for i, m := range b {
		out[i] = m.pair()
	}
	return out
}

func (l *loader) memberAudit(m member, action string) store.AuditEntry {
	a := l.audit(m.work.CourseID, "member", m.work.GroupIDNumber, m.work.GroupName, action, m.work.MoodleGroupID)
	a.UserID, a.CMISID = m.userID, m.work.CMISID
	return a
}

func (l *loader) addMembers(ctx context.Context) error {
	work, err := l.st.MembersToAdd(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	work = keep(l, work, func(w store.MemberWork) int64 { return w.CourseID })
	if len(work) == 0 {
		return nil
	}
	// Enrolment first: only users enrolled in the course can join its groups
	// (one unenrolled user fails the whole call), so enrolments are read once
	// per course and the users not enrolled are reported, not sent; they are
	// added by a later run once enrolled.
	var courses []int64
	seen := map[int64]bool{}
	for _, w := range work {
		if !seen[w.CourseID] {
			seen[w.CourseID] = true
			courses = append(courses, w.CourseID)
		}
	}
	enrolled := map[int64]map[string]int64{}
	var emu sync.Mutex
	err = forEach(ctx, l.opts.Concurrency, courses, func(ctx context.Context, course int64) error {
		users, err := l.enrolled(ctx, course)
		if err != nil {
			if moodle.IsFatal(err) {
				return err
			}
			return l.fail(ctx, item{}, Failure{CourseID: course, Function: moodle.FnEnrolledUsers, Params: fmt.Sprintf("courseid=%d", course),
				Message: "could not read the course's enrolments; its members are added next run"}, err)
		}
		emu.Lock()
		enrolled[course] = users
		emu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	var ready []member
	for _, w := range work {
		users, ok := enrolled[w.CourseID]
		if !ok {
			continue // reported above
		}
		uid, ok := users[w.CMISID]
		if !ok {
			l.res.NotEnrolled++
			l.res.Failures = append(l.res.Failures, Failure{CourseID: w.CourseID, Object: w.GroupIDNumber, ObjectName: w.GroupName,
				User: w.Role + " " + w.CMISID, Function: moodle.FnAddMembers, ErrorCode: "notenrolled", Exception: "cmissync",
				Message: fmt.Sprintf("no user with %s %q is enrolled in the course; not sent, retried every run", l.opts.UserField, w.CMISID)})
			continue
		}
		ready = append(ready, member{work: w, userID: uid})
	}
	// Members already in groups that existed before this run were put there
	// by someone else: recorded as found (not owned, never removed), not
	// sent.
	ready, err = l.recordFound(ctx, ready)
	if err != nil {
		return err
	}
	var sent []member
	err = batches(ctx, l.opts.Concurrency, ready, l.mc.Capacity(moodle.VarsPerPair),
		func(ctx context.Context, b []member) (struct{}, error) {
			intent := make([]store.AddedMember, len(b))
			for i, m := range b {
				intent[i] = store.AddedMember{ID: m.work.ID, MoodleUserID: m.userID}
			}
			if err := l.st.RecordIntent(ctx, intent); err != nil {
				return struct{}{}, err
			}
			return struct{}{}, l.mc.AddMembers(ctx, pairsOf(b))
		},
		func(b []member, _ struct{}) error {
			added := make([]store.AddedMember, len(b))
			audit := make([]store.AuditEntry, len(b))
			for i, m := range b {
				added[i] = store.AddedMember{ID: m.work.ID, MoodleUserID: m.userID, Owned: true}
				audit[i] = l.memberAudit(m, "add")
			}
			sent = append(sent, b...)
			l.res.MembersAdded += int64(len(b))
			return l.st.RecordMembersAdded(ctx, added, audit)
		},
		func(m member, err error) error {
			if moodle.ErrorCode(err) == moodle.CodeInvalidRecord {
				// The group vanished since reconcile read the course.
				l.notice(Notice{CourseID: m.work.CourseID, Object: m.work.GroupIDNumber,
					Message: fmt.Sprintf("group %q (id %d) was deleted in Moodle during the run; it is recreated on the next run", m.work.GroupName, m.work.MoodleGroupID)})
				return l.forgetGroupOf(ctx, m.work)
			}
			return l.fail(ctx, item{store.TableMembers, m.work.ID}, Failure{CourseID: m.work.CourseID, Object: m.work.GroupIDNumber, ObjectName: m.work.GroupName,
				User: m.user(), Function: moodle.FnAddMembers, Params: moodle.MembersForm([]moodle.Pair{m.pair()}).String()}, err)
		})
	if err != nil {
		return err
	}
	return l.verify(ctx, sent)
}

// forgetGroupOf flags the group of a membership for recreation.
func (l *loader) forgetGroupOf(ctx context.Context, w store.MemberWork) error {
	groups, err := l.st.CourseGroups(ctx, w.CourseID)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if g.ModuleCode == w.ModuleCode && g.GroupCode == w.GroupCode && g.MoodleID == w.MoodleGroupID {
			return l.st.ForgetGroup(ctx, g.ID, []store.AuditEntry{l.audit(g.CourseID, "group", g.IDNumber, g.Name, "recreate", g.MoodleID)})
		}
	}
	return nil
}

// recordFound reads the members of pre-existing target groups and records
// memberships already there as found; it returns the rest.
func (l *loader) recordFound(ctx context.Context, ready []member) ([]member, error) {
	var groups []int64
	seen := map[int64]bool{}
	l.mu.Lock()
	for _, m := range ready {
		g := m.work.MoodleGroupID
		if l.existing[g] && !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
	}
	l.mu.Unlock()
	if len(groups) == 0 {
		return ready, nil
	}
	current, err := l.groupMembers(ctx, groups)
	if err != nil {
		if moodle.IsFatal(err) {
			return nil, err
		}
		// Without the read, adding is still safe (Moodle ignores a member
		// already there); only ownership is less precise.
		l.log.WithError(err).Warn("could not read current members before adding; members already present will count as added")
		return ready, nil
	}
	var rest []member
	var found []store.AddedMember
	var audit []store.AuditEntry
	for _, m := range ready {
		if current[m.pair()] {
			// An intent recorded by an earlier run that died before
			// recording the add means cmissync put the member there.
			ours := m.work.MoodleUserID == m.userID
			found = append(found, store.AddedMember{ID: m.work.ID, MoodleUserID: m.userID, Owned: ours})
			a := l.memberAudit(m, "found")
			a.Detail = "already a member (added by someone else): recorded, not owned"
			if ours {
				a.Action, a.Detail = "add", "added by an earlier run that stopped before recording it"
			}
			audit = append(audit, a)
			continue
		}
		rest = append(rest, m)
	}
	l.res.MembersFound += int64(len(found))
	return rest, l.st.RecordMembersAdded(ctx, found, audit)
}

// groupMembers reads the members of groups as a set of (group, user).
func (l *loader) groupMembers(ctx context.Context, groups []int64) (map[moodle.Pair]bool, error) {
	sort.Slice(groups, func(i, j int) bool { return groups[i] < groups[j] })
	n := l.mc.Capacity(moodle.VarsPerID)
	var chunks [][]int64
	for start := 0; start < len(groups); start += n {
		chunks = append(chunks, groups[start:min(start+n, len(groups))])
	}
	in := map[moodle.Pair]bool{}
	var lock sync.Mutex
	err := forEach(ctx, l.opts.Concurrency, chunks, func(ctx context.Context, chunk []int64) error {
		got, err := l.mc.GroupMembers(ctx, chunk)
		if err != nil {
			return err
		}
		lock.Lock()
		defer lock.Unlock()
		for g, users := range got {
			for _, u := range users {
				in[moodle.Pair{A: g, B: u}] = true
			}
		}
		return nil
	})
	return in, err
}

// verify reads back the members of the groups written to. Moodle answers
// success even when PHP dropped part of the request (max_input_vars), so a
// membership not found is requeued and reported, not counted as done.
func (l *loader) verify(ctx context.Context, sent []member) error {
	if len(sent) == 0 {
		return nil
	}
	seen := map[int64]bool{}
	var groups []int64
	for _, m := range sent {
		if !seen[m.work.MoodleGroupID] {
			seen[m.work.MoodleGroupID] = true
			groups = append(groups, m.work.MoodleGroupID)
		}
	}
	in, err := l.groupMembers(ctx, groups)
	if err != nil {
		if moodle.IsFatal(err) {
			return err
		}
		return l.fail(ctx, item{}, Failure{Function: moodle.FnGroupMembers, Params: fmt.Sprintf("%d groups", len(groups)),
			Message: "could not read back the members just added"}, err)
	}
	var requeue []int64
	for _, m := range sent {
		if in[m.pair()] {
			continue
		}
		requeue = append(requeue, m.work.ID)
		l.res.MembersAdded--
		l.transient = true
		l.res.Failures = append(l.res.Failures, Failure{CourseID: m.work.CourseID, Object: m.work.GroupIDNumber, ObjectName: m.work.GroupName,
			User: m.user(), Function: moodle.FnAddMembers, Params: moodle.MembersForm([]moodle.Pair{m.pair()}).String(),
			ErrorCode: "notverified", Exception: "cmissync",
			Message: "Moodle answered success but the member is not in the group when read back (parameters lost to PHP max_input_vars? check moodle.max_input_vars); requeued"})
	}
	if len(requeue) == 0 {
		return nil
	}
	return l.st.RequeueMembers(ctx, requeue)
}

// enrolled maps the match field of each user enrolled in the course to the
// Moodle user id.
func (l *loader) enrolled(ctx context.Context, courseID int64) (map[string]int64, error) {
	users, err := l.mc.EnrolledUsers(ctx, courseID, "username", "email", "idnumber")
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(users))
	for _, u := range users {
		if v := u.Field(l.opts.UserField); v != "" {
			out[v] = u.ID
		}
	}
	return out, nil
}

func (l *loader) removeMembers(ctx context.Context) error {
	work, err := l.st.MembersToRemove(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	work = keep(l, work, func(w store.MemberWork) int64 { return w.CourseID })
	var owned []member
	var notOwned []int64
	for _, w := range work {
		if !w.Owned {
			notOwned = append(notOwned, w.ID)
			continue
		}
		owned = append(owned, member{work: w, userID: w.MoodleUserID})
	}
	// Memberships cmissync found rather than added are only forgotten.
	if err := l.st.DropMembers(ctx, notOwned, nil); err != nil {
		return err
	}
	drop := func(b []member, action string) error {
		ids := make([]int64, len(b))
		audit := make([]store.AuditEntry, len(b))
		for i, m := range b {
			ids[i] = m.work.ID
			audit[i] = l.memberAudit(m, action)
		}
		return l.st.DropMembers(ctx, ids, audit)
	}
	return batches(ctx, l.opts.Concurrency, owned, l.mc.Capacity(moodle.VarsPerPair),
		func(ctx context.Context, b []member) (struct{}, error) {
			return struct{}{}, l.mc.DeleteMembers(ctx, pairsOf(b))
		},
		func(b []member, _ struct{}) error {
			l.res.MembersRemoved += int64(len(b))
			return drop(b, "remove")
		},
		func(m member, err error) error {
			switch moodle.ErrorCode(err) {
			case moodle.CodeInvalidRecord, moodle.CodeInvalidUser:
				// The group or the user is gone from Moodle: so is the
				// membership.
				return drop([]member{m}, "gone")
			}
			return l.fail(ctx, item{store.TableMembers, m.work.ID}, Failure{CourseID: m.work.CourseID, Object: m.work.GroupIDNumber, ObjectName: m.work.GroupName,
				User: m.user(), Function: moodle.FnDeleteMembers, Params: moodle.MembersForm([]moodle.Pair{m.pair()}).String()}, err)
		})
}

// removeUnseen removes, when load.remove_members_not_in_cmis is on, every
// member of an owned group that has no staged membership: people added by
// hand to groups cmissync owns.
func (l *loader) removeUnseen(ctx context.Context) error {
	if !l.opts.RemoveUnseenMembers {
		return nil
	}
	rows, err := l.st.OwnedMembersOfGroups(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	known := map[moodle.Pair]bool{}
	for _, r := range rows {
		known[moodle.Pair{A: r.MoodleGroupID, B: r.MoodleUserID}] = true
	}
	groups, err := l.st.OwnedGroups(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	groups = keep(l, groups, func(g store.GroupRow) int64 { return g.CourseID })
	info := map[int64]store.GroupRow{}
	var ids []int64
	for _, g := range groups {
		info[g.MoodleID] = g
		ids = append(ids, g.MoodleID)
	}
	if len(ids) == 0 {
		return nil
	}
	current, err := l.groupMembers(ctx, ids)
	if err != nil {
		if moodle.IsFatal(err) {
			return err
		}
		return l.fail(ctx, item{}, Failure{Function: moodle.FnGroupMembers, Message: "could not read members of owned groups; members not in CMIS are removed next run"}, err)
	}
	var extra []moodle.Pair
	for p := range current {
		if !known[p] {
			extra = append(extra, p)
		}
	}
	sort.Slice(extra, func(i, j int) bool {
		if extra[i].A != extra[j].A {
			return extra[i].A < extra[j].A
		}
		return extra[i].B < extra[j].B
	})
	return batches(ctx, l.opts.Concurrency, extra, l.mc.Capacity(moodle.VarsPerPair),
		func(ctx context.Context, b []moodle.Pair) (struct{}, error) {
			return struct{}{}, l.mc.DeleteMembers(ctx, b)
		},
		func(b []moodle.Pair, _ struct{}) error {
			audit := make([]store.AuditEntry, len(b))
			for i, p := range b {
				g := info[p.A]
				audit[i] = l.audit(g.CourseID, "member", g.IDNumber, g.Name, "remove", p.A)
				audit[i].UserID, audit[i].Detail = p.B, "not in CMIS (load.remove_members_not_in_cmis)"
			}
			l.res.MembersRemoved += int64(len(b))
			return l.st.RecordAudit(ctx, audit)
		},
		func(p moodle.Pair, err error) error {
			g := info[p.A]
			return l.fail(ctx, item{}, Failure{CourseID: g.CourseID, Object: g.IDNumber, ObjectName: g.Name, User: fmt.Sprintf("Moodle user %d", p.B),
				Function: moodle.FnDeleteMembers, Params: moodle.MembersForm([]moodle.Pair{p}).String()}, err)
		})
}
