package load

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

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
		if why := enrolmentWait(it); why != "" {
			l.wait(it, why)
			continue
		}
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
	// The additions go in waves of as many groups as readsPerWave
	// read-back calls take. A wave is read back and recorded while the
	// next is sent, so that staging's work on one overlaps Moodle's on the
	// other (the client's Concurrency slots bound both together). The last
	// wave is read back while the plan resolves the next courses' members
	// (settle waits for it).
	//
	// The intent survives a crash after Moodle applied an add: the next
	// run finds the member there and knows cmissync put them. Each wave's
	// intent is committed, in one transaction, before its first call; the
	// next wave's is written while this one is sent, so that only the
	// first wave waits for its intent.
	ws := waves(adds, readsPerWave*l.mc.Capacity(moodle.VarsPerReadByID))
	var intent <-chan error
	if len(ws) > 0 {
		intent = l.recordIntent(ctx, ws[0])
	}
	for i, wave := range ws {
		if err := <-intent; err != nil {
			return err
		}
		intent = nil
		if i+1 < len(ws) {
			intent = l.recordIntent(ctx, ws[i+1])
		}
		start := time.Now()
		sent, err := l.sendAdds(ctx, wave)
		l.log.WithFields(logrus.Fields{"members": len(wave), "seconds": time.Since(start).Seconds()}).Debug("a wave of additions sent")
		if err = errors.Join(err, l.settle()); err != nil {
			if intent != nil {
				err = errors.Join(err, <-intent) // nothing writes after the load returns
			}
			return err
		}
		done := make(chan error, 1)
		go func() { done <- l.verifyAdds(ctx, sent) }()
		l.verifying = done
	}
	return nil
}

// recordIntent records, on its own goroutine, the Moodle user each of a
// wave's members is about to be added as (store.RecordIntent), and
// returns the channel its outcome comes on.
func (l *loader) recordIntent(ctx context.Context, wave []*Item) <-chan error {
	intent := make([]store.AddedMember, len(wave))
	for i, it := range wave {
		intent[i] = store.AddedMember{ID: it.member.ID, MoodleUserID: it.UserID}
	}
	done := make(chan error, 1)
	go func() {
		start := time.Now()
		err := l.st.RecordIntent(ctx, intent)
		l.log.WithFields(logrus.Fields{"members": len(intent), "seconds": time.Since(start).Seconds()}).Debug("intent of a wave of additions recorded")
		done <- err
	}()
	return done
}

// readsPerWave is how many read-back calls a wave of additions takes:
// each wave ends with a part-filled add call and read-back call, so waves
// are several calls long; the last wave's recording is not overlapped, so
// they are not many calls long.
const readsPerWave = 4

// waves cuts additions into runs of at most size groups, each group's
// additions in one wave (they come group after group).
func waves(adds []*Item, size int) [][]*Item {
	var out [][]*Item
	start, groups := 0, 0
	for i, it := range adds {
		if i > 0 && it.obj != adds[i-1].obj {
			if groups++; groups == size {
				out = append(out, adds[start:i])
				start, groups = i, 0
			}
		}
	}
	if start < len(adds) {
		out = append(out, adds[start:])
	}
	return out
}

// verifyAdds reads back the groups of members Moodle accepted and records
// those found there; the others are reported as not verified.
func (l *loader) verifyAdds(ctx context.Context, sent []*Item) error {
	start := time.Now()
	in, unknown, err := l.readBack(ctx, sent)
	if err != nil {
		return err
	}
	read := time.Since(start)
	defer func() {
		l.log.WithFields(logrus.Fields{"members": len(sent), "read_seconds": read.Seconds(), "seconds": time.Since(start).Seconds()}).Debug("a wave of additions read back and recorded")
	}()
	var added []int64
	var audit []store.AuditEntry
	for _, it := range sent {
		switch {
		case unknown[it]:
		case in[it.pair()]:
			added = append(added, it.member.ID)
			audit = append(audit, l.audit(it, "add", it.Reason))
			it.Outcome = "done"
		default:
			l.notVerified(ctx, it, moodle.FnAddMembers, "Moodle answered success but the member is not in the group when read back (parameters lost to PHP max_input_vars? check moodle.max_input_vars); it is added again next run")
		}
	}
	l.count(&l.res.MembersAdded, int64(len(added)))
	// sendAdds recorded each one's intent, with its Moodle user.
	return l.st.RecordIntentDone(ctx, added, audit)
}

// sendAdds adds members, whose intent is recorded (addMembers), and returns
// those Moodle accepted. Whether a member is enrolled is not read
// beforehand (except in courses with many newcomers, at plan time): the
// add finds out. Moodle refuses a whole call for one member who is not
// enrolled, so:
//   - additions of people known to be enrolled in the course go in full
//     batches; those of newcomers to the course in batches of
//     newcomerBatch, so that one refusal wastes little;
//   - members already waiting are tried alone, one call each;
//   - a refused call is sent again course by course; in a course whose
//     members Moodle still refuses, a few members are tried alone, and for
//     more the course's enrolment is read (once a run): those not enrolled
//     wait, the others are sent again, split until any bad one is alone.
//
// So a member who is not enrolled costs a few calls, never a read of every
// course with members to add.
func (l *loader) sendAdds(ctx context.Context, adds []*Item) ([]*Item, error) {
	var mu sync.Mutex
	var sent, refused []*Item
	send := func(ctx context.Context, b []*Item) error {
		return l.mc.AddMembers(ctx, pairsOf(b))
	}
	accepted := func(b []*Item) {
		mu.Lock()
		sent = append(sent, b...)
		mu.Unlock()
	}
	failed := func(it *Item, err error) error {
		return l.fail(ctx, it, failure(it, moodle.FnAddMembers, moodle.MembersForm([]moodle.Pair{it.pair()}).String()), err)
	}
	// alone: a member Moodle refuses on their own is not enrolled
	// (invalidparameter, "Only enrolled users may be members of groups")
	// and waits; any other answer is a failure.
	alone := func(it *Item, err error) error {
		if moodle.ErrorCode(err) == moodle.CodeInvalidParameter {
			l.wait(it, fmt.Sprintf("Moodle refuses to add %s %q (Moodle user %d) to the group: not enrolled in the course (%s); added once enrolled",
				l.opts.UserField, it.CMISID, it.UserID, moodle.CodeInvalidParameter))
			return nil
		}
		return failed(it, err)
	}
	var known, newcomers, retries []*Item
	for _, it := range adds {
		switch {
		case it.retry:
			retries = append(retries, it)
		case it.newcomer:
			newcomers = append(newcomers, it)
		default:
			known = append(known, it)
		}
	}
	full := l.mc.Capacity(moodle.VarsPerPair)
	first := append(chunks(known, full), chunks(newcomers, min(full, newcomerBatch))...)
	for _, it := range retries {
		first = append(first, []*Item{it})
	}
	// First pass: the batches as made, not split.
	err := forEach(ctx, l.opts.Concurrency, first, func(ctx context.Context, b []*Item) error {
		err := send(ctx, b)
		switch {
		case err == nil:
			accepted(b)
		case moodle.IsFatal(err), ctx.Err() != nil, !isMoodleError(err):
			return err
		case moodle.IsTransient(err):
			return failEach(b, err, failed)
		case len(b) == 1:
			return alone(b[0], err)
		default:
			mu.Lock()
			refused = append(refused, b...)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Second pass: what Moodle refused, course by course.
	byCourse := map[int64][]*Item{}
	var courses []int64
	for _, it := range refused {
		if byCourse[it.CourseID] == nil {
			courses = append(courses, it.CourseID)
		}
		byCourse[it.CourseID] = append(byCourse[it.CourseID], it)
	}
	sortInt64(courses)
	err = forEach(ctx, l.opts.Concurrency, courses, func(ctx context.Context, course int64) error {
		items := byCourse[course]
		if len(courses) > 1 {
			err := send(ctx, items)
			switch {
			case err == nil:
				accepted(items)
				return nil
			case moodle.IsFatal(err), ctx.Err() != nil, !isMoodleError(err):
				return err
			case moodle.IsTransient(err):
				return failEach(items, err, failed)
			}
		}
		if len(items) <= tryAloneUpTo {
			// A few members: split until the one refused is alone;
			// cheaper than reading the course's enrolments.
			return batches(ctx, 1, items, full,
				func(ctx context.Context, b []*Item) (struct{}, error) { return struct{}{}, send(ctx, b) },
				func(b []*Item, _ struct{}) error { accepted(b); return nil },
				alone)
		}
		enrolled, err := l.enrolledIn(ctx, course)
		if err != nil {
			if moodle.IsFatal(err) || ctx.Err() != nil {
				return err
			}
			return failEach(items, err, failed)
		}
		var rest []*Item
		for _, it := range items {
			if !enrolled[it.UserID] {
				l.wait(it, fmt.Sprintf("%s %q (Moodle user %d) is not enrolled in the course; added once enrolled", l.opts.UserField, it.CMISID, it.UserID))
				continue
			}
			rest = append(rest, it)
		}
		return batches(ctx, 1, rest, full,
			func(ctx context.Context, b []*Item) (struct{}, error) { return struct{}{}, send(ctx, b) },
			func(b []*Item, _ struct{}) error { accepted(b); return nil },
			failed)
	})
	return sent, err
}

// newcomerBatch bounds a first-pass call of additions of people new to
// their course: one of them not enrolled makes Moodle refuse the call, and
// everything in it is sent again.
const newcomerBatch = 50

// tryAloneUpTo is how many refused members of a course are split down to
// single adds rather than having the course's enrolments read.
const tryAloneUpTo = 3

// isMoodleError reports an answer from Moodle (or a failure of the
// transport), as opposed to a failure of cmissync itself (staging).
func isMoodleError(err error) bool {
	var me *moodle.Error
	var te *moodle.TransportError
	return errors.As(err, &me) || errors.As(err, &te)
}

// chunks cuts items into slices of at most size.
func chunks[T any](items []T, size int) [][]T {
	var out [][]T
	for start := 0; start < len(items); start += size {
		out = append(out, items[start:min(start+size, len(items))])
	}
	return out
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
