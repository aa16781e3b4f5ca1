package load

import (
	"context"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
)

// Senders of memberships. Moodle answers success even when PHP dropped
// part of a request (max_input_vars), so both additions and removals are
// read back before staging records them: an addition not found is left to
// add, a removal still there is left to remove, and both are reported.

func (it *Item) pair() moodle.Pair { return moodle.Pair{A: it.obj.live.id, B: it.UserID} }

func pairsOf(b []*Item) []moodle.Pair {
	out := make([]moodle.Pair, len(b))
	for i, it := range b {
		out[i] = it.pair()
	}
	return out
}

// addMembers records members already in their group and adds the others.
func (l *loader) addMembers(ctx context.Context, items []*Item) error {
	var adds []*Item
	var found []store.AddedMember
	var foundAudit []store.AuditEntry
	for _, it := range items {
		if it.Action == ActAdd {
			adds = append(adds, it)
			continue
		}
		found = append(found, store.AddedMember{ID: it.member.ID, MoodleUserID: it.UserID, Owned: it.owned})
		action := "found"
		if it.owned {
			action = "add"
		}
		foundAudit = append(foundAudit, l.audit(it, action, it.Reason))
		it.Outcome = "done"
	}
	if err := l.st.RecordMembersAdded(ctx, found, foundAudit); err != nil {
		return err
	}
	l.count(&l.res.MembersFound, int64(len(found)))

	adds = l.ready(l.gate.pass(adds))
	var sent []*Item
	err := batches(ctx, l.opts.Concurrency, adds, l.mc.Capacity(moodle.VarsPerPair),
		func(ctx context.Context, b []*Item) (struct{}, error) {
			// The intent survives a crash after Moodle applied the add: the
			// next run finds the member there and knows cmissync put them.
			intent := make([]store.AddedMember, len(b))
			for i, it := range b {
				intent[i] = store.AddedMember{ID: it.member.ID, MoodleUserID: it.UserID}
			}
			if err := l.st.RecordIntent(ctx, intent); err != nil {
				return struct{}{}, err
			}
			return struct{}{}, l.mc.AddMembers(ctx, pairsOf(b))
		},
		func(b []*Item, _ struct{}) error {
			sent = append(sent, b...)
			return nil
		},
		func(it *Item, err error) error {
			return l.fail(ctx, it, failure(it, moodle.FnAddMembers, moodle.MembersForm([]moodle.Pair{it.pair()}).String()), err)
		})
	if err != nil {
		return err
	}
	in, unknown, err := l.readBack(ctx, sent)
	if err != nil {
		return err
	}
	var added []store.AddedMember
	var audit []store.AuditEntry
	for _, it := range sent {
		switch {
		case unknown[it]:
		case in[it.pair()]:
			added = append(added, store.AddedMember{ID: it.member.ID, MoodleUserID: it.UserID, Owned: true})
			audit = append(audit, l.audit(it, "add", it.Reason))
			it.Outcome = "done"
		default:
			l.notVerified(ctx, it, moodle.FnAddMembers, "Moodle answered success but the member is not in the group when read back (parameters lost to PHP max_input_vars? check moodle.max_input_vars); it is added again next run")
		}
	}
	l.count(&l.res.MembersAdded, int64(len(added)))
	return l.st.RecordMembersAdded(ctx, added, audit)
}

// notVerified reports a write Moodle accepted that reading back does not
// show. Moodle's state is then not what the run believes: no deletions
// anywhere this run.
func (l *loader) notVerified(ctx context.Context, it *Item, function, message string) {
	f := failure(it, function, moodle.MembersForm([]moodle.Pair{it.pair()}).String())
	f.ErrorCode, f.Exception, f.Message = "notverified", "cmissync", message
	it.Outcome = "failed"
	l.gate.failedOnTheWay("a write was not found when read back")
	l.mu.Lock()
	l.res.Failures = append(l.res.Failures, f)
	l.mu.Unlock()
	l.log.WithFields(map[string]any{"course": it.CourseID, "object": it.IDNumber, "user": f.User, "function": function}).Warn(message)
}

// readBack reads the members of the groups the items were sent to, as a
// set of (group, user). A group deleted meanwhile reads as empty. Items of
// groups that could not be read are reported as not verified and listed in
// unknown.
func (l *loader) readBack(ctx context.Context, sent []*Item) (in map[moodle.Pair]bool, unknown map[*Item]bool, err error) {
	unknown = map[*Item]bool{}
	if len(sent) == 0 {
		return map[moodle.Pair]bool{}, unknown, nil
	}
	owner := map[int64]int64{}
	for _, it := range sent {
		owner[it.obj.live.id] = it.CourseID
	}
	res, err := membersByID(ctx, l.mc, l.opts.Concurrency, sortedIDs(owner), nil)
	if err != nil {
		return nil, nil, err
	}
	in = map[moodle.Pair]bool{}
	for _, g := range res.found {
		for _, u := range g.users {
			in[moodle.Pair{A: g.id, B: u}] = true
		}
	}
	denied := map[int64]bool{}
	for _, id := range res.denied {
		denied[id] = true
	}
	for _, it := range sent {
		if _, bad := res.failed[it.obj.live.id]; bad || denied[it.obj.live.id] {
			unknown[it] = true
			l.notVerified(ctx, it, moodle.FnGroupMembers, "could not read the group's members back to check this change; it is checked again next run")
		}
	}
	return in, unknown, nil
}

// removeMembers removes members, then reads the groups back: a removal
// that did not happen is reported and retried next run, never forgotten.
func (l *loader) removeMembers(ctx context.Context, items []*Item) error {
	items = l.ready(l.gate.pass(items))
	var sent []*Item
	err := batches(ctx, l.opts.Concurrency, items, l.mc.Capacity(moodle.VarsPerPair),
		func(ctx context.Context, b []*Item) (struct{}, error) {
			return struct{}{}, l.mc.DeleteMembers(ctx, pairsOf(b))
		},
		func(b []*Item, _ struct{}) error {
			sent = append(sent, b...)
			return nil
		},
		func(it *Item, err error) error {
			switch moodle.ErrorCode(err) {
			case moodle.CodeInvalidRecord, moodle.CodeInvalidUser:
				// The group or the user is gone from Moodle: so is the
				// membership; reading back confirms it.
				sent = append(sent, it)
				return nil
			}
			return l.fail(ctx, it, failure(it, moodle.FnDeleteMembers, moodle.MembersForm([]moodle.Pair{it.pair()}).String()), err)
		})
	if err != nil {
		return err
	}
	in, unknown, err := l.readBack(ctx, sent)
	if err != nil {
		return err
	}
	var rows []int64
	var audit []store.AuditEntry
	var unstaged []store.AuditEntry
	for _, it := range sent {
		if unknown[it] {
			continue
		}
		if in[it.pair()] {
			l.notVerified(ctx, it, moodle.FnDeleteMembers, "Moodle answered success but the member is still in the group when read back (parameters lost to PHP max_input_vars? check moodle.max_input_vars); the removal is retried next run")
			continue
		}
		it.Outcome = "done"
		a := l.audit(it, "remove", it.Reason)
		if it.member == nil {
			unstaged = append(unstaged, a)
			continue
		}
		rows = append(rows, it.member.ID)
		audit = append(audit, a)
	}
	l.count(&l.res.MembersRemoved, int64(len(audit)+len(unstaged)))
	if err := l.st.DropMembers(ctx, rows, audit); err != nil {
		return err
	}
	if err := l.st.RecordAudit(ctx, unstaged); err != nil {
		return err
	}
	return nil
}
