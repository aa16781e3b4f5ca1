package load

import (
	"context"
	"fmt"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
)

// Senders of groupings and groups: create, adopt and rename, assign, give
// back, delete. Each takes its items through the gate first, and is written
// once for both kinds.

// description is put on every group and grouping cmissync creates, so that
// teachers can tell them from their own.
const description = "Created and kept in step with CMIS by cmissync. Changes made here to its members may be undone."

// function returns the web-service function of an action on a kind.
func function(k kind, action string) string {
	switch action {
	case ActCreate:
		if k == kindGroup {
			return moodle.FnCreateGroups
		}
		return moodle.FnCreateGroupings
	case ActDelete:
		if k == kindGroup {
			return moodle.FnDeleteGroups
		}
		return moodle.FnDeleteGroupings
	}
	if k == kindGroup {
		return moodle.FnUpdateGroups
	}
	return moodle.FnUpdateGroupings
}

func coursesOf(items []*Item) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, it := range items {
		if !seen[it.CourseID] {
			seen[it.CourseID] = true
			out = append(out, it.CourseID)
		}
	}
	return out
}

func (l *loader) coursePlan(id int64) *CoursePlan { return l.gate.courses[id] }

// markDirty notes that the courses' group caches may hold phantoms (a
// create call touching them was refused).
func (l *loader) markDirty(courses []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range courses {
		l.coursePlan(c).dirty = true
	}
}

// clearDirty clears the group cache of each dirty course with the
// reference's verified no-op: an update of an existing object of the course
// with its current name. A course with no object known to exist cannot be
// cleared yet and stays dirty.
func (l *loader) clearDirty(ctx context.Context, courses []int64) error {
	for _, c := range courses {
		l.mu.Lock()
		cp, a := l.coursePlan(c), l.anchors[c]
		dirty := cp.dirty
		l.mu.Unlock()
		if !dirty || a == nil || !l.gate.touch() {
			continue
		}
		u := moodle.Update{ID: a.obj.id, Name: moodleName(a.obj.name)}
		var err error
		if a.kind == kindGroup {
			err = l.mc.UpdateGroups(ctx, []moodle.Update{u})
		} else {
			u.Description = moodle.Ptr(a.obj.description)
			err = l.mc.UpdateGroupings(ctx, []moodle.Update{u})
		}
		if err != nil {
			if moodle.IsFatal(err) || ctx.Err() != nil {
				return err
			}
			l.log.WithError(err).WithField("course", c).Warn("could not clear the course's group cache")
			continue
		}
		l.mu.Lock()
		cp.dirty = false
		l.mu.Unlock()
	}
	return nil
}

// create sends the create items of a kind in batches. Before a batch, the
// group cache of each of its courses that may hold phantoms is cleared;
// after a refused call, every course of the batch may, so they are cleared
// before the halves are retried.
func (l *loader) create(ctx context.Context, k kind, items []*Item) error {
	items = l.gate.pass(items)
	vars := moodle.VarsPerNewGroup
	if k == kindGrouping {
		vars = moodle.VarsPerNewGrouping
	}
	// created and the failures are safe to run side by side (each batch
	// its own items; shared state under l.mu).
	return sendBatches(ctx, l.opts.Concurrency, items, l.mc.Capacity(vars), !l.st.ConcurrentWriters(),
		func(ctx context.Context, b []*Item) ([]int64, error) {
			courses := coursesOf(b)
			if err := l.clearDirty(ctx, courses); err != nil {
				return nil, err
			}
			ids, err := l.sendCreate(ctx, k, b)
			if err != nil && !moodle.IsFatal(err) && !moodle.IsTransient(err) && ctx.Err() == nil {
				l.markDirty(courses)
				if cerr := l.clearDirty(ctx, courses); cerr != nil {
					return nil, cerr
				}
			}
			return ids, err
		},
		func(b []*Item, ids []int64) error { return l.created(ctx, k, b, ids) },
		func(it *Item, err error) error {
			l.mu.Lock()
			stuck := moodle.ErrorCode(err) == moodle.CodeIDNumberTaken && l.coursePlan(it.CourseID).dirty && l.anchors[it.CourseID] == nil
			l.mu.Unlock()
			if stuck {
				// Most likely a phantom of this run's own refused call, in
				// a course with nothing to clear its cache with yet.
				it.Outcome = "retry"
				return nil
			}
			return l.fail(ctx, it, failure(it, function(k, ActCreate), createForm(k, []*Item{it}).String()), err)
		})
}

func createForm(k kind, b []*Item) *moodle.Form {
	gs := make([]moodle.Group, len(b))
	for i, it := range b {
		gs[i] = moodle.Group{CourseID: it.CourseID, Name: it.Name, IDNumber: it.IDNumber, Description: description}
	}
	if k == kindGroup {
		return moodle.GroupsForm(gs)
	}
	ggs := make([]moodle.Grouping, len(gs))
	for i, g := range gs {
		ggs[i] = moodle.Grouping{CourseID: g.CourseID, Name: g.Name, IDNumber: g.IDNumber, Description: g.Description}
	}
	return moodle.GroupingsForm(ggs)
}

func (l *loader) sendCreate(ctx context.Context, k kind, b []*Item) ([]int64, error) {
	gs := make([]moodle.Group, len(b))
	for i, it := range b {
		gs[i] = moodle.Group{CourseID: it.CourseID, Name: it.Name, IDNumber: it.IDNumber, Description: description}
	}
	if k == kindGroup {
		out, err := l.mc.CreateGroups(ctx, gs)
		ids := make([]int64, len(out))
		for i, g := range out {
			ids[i] = g.ID
		}
		return ids, err
	}
	in := make([]moodle.Grouping, len(gs))
	for i, g := range gs {
		in[i] = moodle.Grouping{CourseID: g.CourseID, Name: g.Name, IDNumber: g.IDNumber, Description: g.Description}
	}
	out, err := l.mc.CreateGroupings(ctx, in)
	ids := make([]int64, len(out))
	for i, g := range out {
		ids[i] = g.ID
	}
	return ids, err
}

// created records objects Moodle created. A recreated group's members are
// requeued first, so that staging never says they are in a group they
// are not in.
func (l *loader) created(ctx context.Context, k kind, b []*Item, ids []int64) error {
	done := make([]store.Created, len(b))
	audit := make([]store.AuditEntry, len(b))
	for i, it := range b {
		o := it.obj
		recreated := o.moodleID != 0
		if recreated && k == kindGroup {
			if err := l.st.ForgetGroup(ctx, o.row, nil); err != nil {
				return err
			}
		}
		o.live = &moodleObject{id: ids[i], course: it.CourseID, name: it.Name, idnumber: it.IDNumber, description: description, confirmed: true}
		o.moodleID, it.MoodleID = ids[i], ids[i]
		l.anchor(k, o.live)
		done[i] = store.Created{RowID: o.row, MoodleID: ids[i], Name: it.Name}
		action := "create"
		if recreated {
			action = "recreate"
			l.count(&l.res.Recreated, 1)
			l.notice(Notice{CourseID: it.CourseID, Object: it.IDNumber, Message: fmt.Sprintf("%s %q was deleted in Moodle by hand: recreated as id %d", k, it.Name, ids[i])})
		} else if it.Name != o.name {
			l.notice(Notice{CourseID: it.CourseID, Object: it.IDNumber, Message: fmt.Sprintf("a %s of the course is already called %q: cmissync's was created as %q and the other left alone", k, o.name, it.Name)})
		}
		audit[i] = l.audit(it, action, it.Reason)
		it.Outcome = "done"
	}
	if k == kindGroup {
		l.count(&l.res.GroupsCreated, int64(len(b)))
	} else {
		l.count(&l.res.GroupingsCreated, int64(len(b)))
	}
	return l.st.RecordCreated(ctx, k.table(), done, audit)
}

// retryPhantoms retries, once each, the creates a phantom of this run's
// own refused call blocked in a course that had no object to clear its
// cache with: objects created since give it one. What still cannot be
// cleared is reported, and the next run tries again.
func (l *loader) retryPhantoms(ctx context.Context) error {
	var stuck [2][]*Item
	for _, cp := range l.plan.Courses {
		for _, it := range cp.Items {
			if it.Outcome == "retry" {
				stuck[it.obj.kind] = append(stuck[it.obj.kind], it)
			}
		}
	}
	for k, items := range stuck {
		for _, it := range items {
			if err := l.clearDirty(ctx, []int64{it.CourseID}); err != nil {
				return err
			}
			l.mu.Lock()
			clear := !l.coursePlan(it.CourseID).dirty
			l.mu.Unlock()
			if !clear {
				f := failure(it, function(kind(k), ActCreate), createForm(kind(k), []*Item{it}).String())
				f.ErrorCode, f.Exception = "phantom", "cmissync"
				f.Message = "Moodle's group cache of the course holds a phantom of this " + kind(k).String() + " left by a refused call, and the course has no group or grouping to clear it with; it clears when any group of the course changes. cmissync tries again next run"
				if err := l.fail(ctx, it, f, nil); err != nil {
					return err
				}
				continue
			}
			ids, err := l.sendCreate(ctx, kind(k), []*Item{it})
			if err != nil {
				if moodle.IsFatal(err) || ctx.Err() != nil {
					return err
				}
				if err := l.fail(ctx, it, failure(it, function(kind(k), ActCreate), createForm(kind(k), []*Item{it}).String()), err); err != nil {
					return err
				}
				continue
			}
			if err := l.created(ctx, kind(k), []*Item{it}, ids); err != nil {
				return err
			}
		}
	}
	return nil
}

// update adopts hand-made objects and renames owned ones, both kinds.
func (l *loader) update(ctx context.Context, items []*Item) error {
	items = l.gate.pass(items)
	for _, k := range []kind{kindGrouping, kindGroup} {
		var mine []*Item
		for _, it := range items {
			if it.obj.kind == k {
				mine = append(mine, it)
			}
		}
		err := batches(ctx, l.opts.Concurrency, mine, l.mc.Capacity(moodle.VarsPerUpdate),
			func(ctx context.Context, b []*Item) (struct{}, error) {
				if k == kindGroup {
					return struct{}{}, l.mc.UpdateGroups(ctx, updates(b))
				}
				return struct{}{}, l.mc.UpdateGroupings(ctx, updates(b))
			},
			func(b []*Item, _ struct{}) error { return l.updated(ctx, k, b) },
			func(it *Item, err error) error {
				return l.fail(ctx, it, failure(it, function(k, ActRename), updateForm(k, []*Item{it}).String()), err)
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// updates renders adopt and rename items: the new name and cmissync's
// idnumber; a grouping keeps the description it has (Moodle requires one).
func updates(b []*Item) []moodle.Update {
	out := make([]moodle.Update, len(b))
	for i, it := range b {
		o := it.obj
		out[i] = moodle.Update{ID: o.live.id, Name: it.Name, IDNumber: moodle.Ptr(o.idnumber)}
		if o.kind == kindGrouping {
			out[i].Description = moodle.Ptr(o.live.description)
		}
	}
	return out
}

func updateForm(k kind, b []*Item) *moodle.Form {
	return moodle.UpdateForm(k.String()+"s", updates(b))
}

func (l *loader) updated(ctx context.Context, k kind, b []*Item) error {
	for _, it := range b {
		o := it.obj
		o.live.name, o.live.idnumber, o.live.confirmed = it.Name, o.idnumber, true
		l.anchor(k, o.live)
		done := []store.Created{{RowID: o.row, MoodleID: o.live.id, Name: it.Name, Adopted: it.Action == ActAdopt}}
		var err error
		if it.Action == ActAdopt {
			err = l.st.RecordCreated(ctx, k.table(), done, []store.AuditEntry{l.audit(it, "adopt", it.Reason)})
			o.moodleID = o.live.id
			l.count(&l.res.Adopted, 1)
			l.notice(Notice{CourseID: it.CourseID, Object: it.IDNumber, Message: fmt.Sprintf("%s %q (id %d): %s", k, it.Name, o.live.id, it.Reason)})
		} else {
			err = l.st.RecordRenamed(ctx, k.table(), done, []store.AuditEntry{l.audit(it, "rename", fmt.Sprintf("from %q: %s", it.From, it.Reason))})
			l.count(&l.res.Renamed, 1)
		}
		if err != nil {
			return err
		}
		it.Outcome = "done"
	}
	return nil
}

// assign puts groups into their groupings.
func (l *loader) assign(ctx context.Context, items []*Item) error {
	items = l.ready(l.gate.pass(items))
	pairs := func(b []*Item) []moodle.Pair {
		out := make([]moodle.Pair, len(b))
		for i, it := range b {
			out[i] = moodle.Pair{A: it.parent.live.id, B: it.obj.live.id}
		}
		return out
	}
	return sendBatches(ctx, l.opts.Concurrency, items, l.mc.Capacity(moodle.VarsPerPair), !l.st.ConcurrentWriters(),
		func(ctx context.Context, b []*Item) (struct{}, error) {
			return struct{}{}, l.mc.AssignGrouping(ctx, pairs(b))
		},
		func(b []*Item, _ struct{}) error {
			rows := make([]int64, len(b))
			audit := make([]store.AuditEntry, len(b))
			for i, it := range b {
				rows[i] = it.obj.row
				it.MoodleID = it.obj.live.id
				audit[i] = l.audit(it, "assign", fmt.Sprintf("to grouping %d: %s", it.parent.live.id, it.Reason))
				it.Outcome = "done"
			}
			l.count(&l.res.Assigned, int64(len(b)))
			return l.st.RecordAssigned(ctx, rows, audit)
		},
		func(it *Item, err error) error {
			return l.fail(ctx, it, failure(it, moodle.FnAssignGrouping, moodle.AssignForm(pairs([]*Item{it})).String()), err)
		})
}

// ready drops items whose group (or grouping) does not exist after all:
// its creation failed, and that failure is reported.
func (l *loader) ready(items []*Item) []*Item {
	out := items[:0:0]
	for _, it := range items {
		if it.obj != nil && it.obj.live == nil || it.parent != nil && it.parent.live == nil {
			it.Outcome = "skipped"
			continue
		}
		out = append(out, it)
	}
	return out
}

// giveBack hands adopted objects back and archives groups: cmissync's
// idnumber is cleared and a group is taken out of cmissync's grouping. A
// group given back keeps its name, description and the members cmissync
// did not add (those it added were removed before); an archived group is
// renamed and keeps all its members. Staging forgets both.
func (l *loader) giveBack(ctx context.Context, items []*Item) error {
	for _, it := range l.gate.pass(items) {
		o := it.obj
		var err error
		if o.kind == kindGroup {
			if g := l.coursePlan(it.CourseID).staging.grouping(o.module); g != nil && g.live != nil {
				err = l.mc.UnassignGrouping(ctx, []moodle.Pair{{A: g.live.id, B: o.live.id}})
			}
			if err == nil {
				err = l.mc.UpdateGroups(ctx, []moodle.Update{{ID: o.live.id, Name: it.Name, IDNumber: moodle.Ptr("")}})
			}
		} else {
			err = l.mc.UpdateGroupings(ctx, []moodle.Update{{ID: o.live.id, Name: it.Name, IDNumber: moodle.Ptr(""), Description: moodle.Ptr(o.live.description)}})
		}
		if err != nil {
			if moodle.IsFatal(err) || ctx.Err() != nil {
				return err
			}
			if err := l.fail(ctx, it, failure(it, function(o.kind, it.Action), ""), err); err != nil {
				return err
			}
			continue
		}
		audit := []store.AuditEntry{l.audit(it, it.Action, it.Reason)}
		if o.kind == kindGroup {
			err = l.st.DropGroups(ctx, []store.GroupRow{{ID: o.row, CourseID: o.course, ModuleCode: o.module, GroupCode: o.group}}, audit)
		} else {
			err = l.st.DropGroupings(ctx, []int64{o.row}, audit)
		}
		if err != nil {
			return err
		}
		it.Outcome = "done"
		what := "was adopted and is no longer in CMIS: given back (cmissync's idnumber cleared, out of cmissync's grouping, the members cmissync added removed; its name, description and other members stay)"
		if it.Action == ActArchive {
			what = fmt.Sprintf("is no longer in CMIS: archived as %q with its id and all its members, out of cmissync's grouping; cmissync no longer manages it", it.Name)
		}
		name := it.Name
		if it.From != "" {
			name = it.From
		}
		if it.Action == ActArchive {
			l.count(&l.res.Archived, 1)
		} else {
			l.count(&l.res.GivenBack, 1)
		}
		l.notice(Notice{CourseID: it.CourseID, Object: it.IDNumber, Message: fmt.Sprintf("%s %q (id %d) %s", o.kind, name, o.live.id, what)})
	}
	return nil
}

// delete deletes groups or groupings cmissync owns.
func (l *loader) delete(ctx context.Context, k kind, items []*Item) error {
	items = l.gate.pass(items)
	ids := func(b []*Item) []int64 {
		out := make([]int64, len(b))
		for i, it := range b {
			out[i] = it.obj.live.id
		}
		return out
	}
	key := "groupids"
	if k == kindGrouping {
		key = "groupingids"
	}
	return batches(ctx, l.opts.Concurrency, items, l.mc.Capacity(moodle.VarsPerID),
		func(ctx context.Context, b []*Item) (struct{}, error) {
			if k == kindGroup {
				return struct{}{}, l.mc.DeleteGroups(ctx, ids(b))
			}
			return struct{}{}, l.mc.DeleteGroupings(ctx, ids(b))
		},
		func(b []*Item, _ struct{}) error {
			audit := make([]store.AuditEntry, len(b))
			for i, it := range b {
				audit[i] = l.audit(it, "delete", it.Reason)
				it.Outcome = "done"
			}
			if k == kindGroup {
				rows := make([]store.GroupRow, len(b))
				for i, it := range b {
					rows[i] = store.GroupRow{ID: it.obj.row, CourseID: it.CourseID, ModuleCode: it.obj.module, GroupCode: it.obj.group}
				}
				l.count(&l.res.GroupsDeleted, int64(len(b)))
				return l.st.DropGroups(ctx, rows, audit)
			}
			rows := make([]int64, len(b))
			for i, it := range b {
				rows[i] = it.obj.row
			}
			l.count(&l.res.GroupingsDeleted, int64(len(b)))
			return l.st.DropGroupings(ctx, rows, audit)
		},
		func(it *Item, err error) error {
			return l.fail(ctx, it, failure(it, function(k, ActDelete), moodle.IDsForm(key, ids([]*Item{it})).String()), err)
		})
}
