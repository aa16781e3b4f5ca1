package load

import (
	"context"
	"fmt"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
)

// keep drops work for courses whose state could not be read this run.
func keep[T any](l *loader, items []T, course func(T) int64) []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.skip) == 0 {
		return items
	}
	out := items[:0:0]
	for _, it := range items {
		if !l.skip[course(it)] {
			out = append(out, it)
		}
	}
	return out
}

// target is a group or grouping to create.
type target struct {
	table    string
	object   string
	rowID    int64
	courseID int64
	idnumber string
	name     string // the name it is created under
}

func (l *loader) createGroupings(ctx context.Context) error {
	rows, err := l.st.GroupingsToCreate(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	ts := targetsOf(l, store.TableGroupings, "grouping", rows, func(r store.GroupingRow) target {
		return target{rowID: r.ID, courseID: r.CourseID, idnumber: r.IDNumber, name: r.Name}
	})
	return l.create(ctx, ts, moodle.FnCreateGroupings, moodle.VarsPerNewGrouping, func(ctx context.Context, gs []moodle.Group) ([]int64, error) {
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
	}, &l.res.GroupingsCreated)
}

func (l *loader) createGroups(ctx context.Context) error {
	rows, err := l.st.GroupsToCreate(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	ts := targetsOf(l, store.TableGroups, "group", rows, func(r store.GroupRow) target {
		return target{rowID: r.ID, courseID: r.CourseID, idnumber: r.IDNumber, name: r.Name}
	})
	return l.create(ctx, ts, moodle.FnCreateGroups, moodle.VarsPerNewGroup, func(ctx context.Context, gs []moodle.Group) ([]int64, error) {
		out, err := l.mc.CreateGroups(ctx, gs)
		ids := make([]int64, len(out))
		for i, g := range out {
			ids[i] = g.ID
		}
		return ids, err
	}, &l.res.GroupsCreated)
}

// targetsOf turns staged rows flagged toadd into targets to create: rows of
// courses skipped this run, and rows being adopted instead, are left out,
// and a name chosen by reconcile (after a clash) replaces the wanted one.
func targetsOf[T any](l *loader, table, object string, rows []T, of func(T) target) []target {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ts []target
	for _, r := range rows {
		t := of(r)
		if l.skip[t.courseID] || l.adopting[rowKey{table, t.rowID}] {
			continue
		}
		t.table, t.object = table, object
		if n, ok := l.createName[rowKey{table, t.rowID}]; ok {
			t.name = n
		}
		ts = append(ts, t)
	}
	return ts
}

func (t target) form() *moodle.Form {
	if t.table == store.TableGroups {
		return moodle.GroupsForm([]moodle.Group{{CourseID: t.courseID, Name: t.name, IDNumber: t.idnumber, Description: description}})
	}
	return moodle.GroupingsForm([]moodle.Grouping{{CourseID: t.courseID, Name: t.name, IDNumber: t.idnumber, Description: description}})
}

// create sends targets in batches and records each created one.
func (l *loader) create(ctx context.Context, ts []target, function string, vars int, send func(context.Context, []moodle.Group) ([]int64, error), counter *int64) error {
	table := ""
	if len(ts) > 0 {
		table = ts[0].table
	}
	return batches(ctx, l.opts.Concurrency, ts, l.mc.Capacity(vars),
		func(ctx context.Context, b []target) ([]int64, error) {
			gs := make([]moodle.Group, len(b))
			for i, t := range b {
				gs[i] = moodle.Group{CourseID: t.courseID, Name: t.name, IDNumber: t.idnumber, Description: description}
			}
			return send(ctx, gs)
		},
		func(b []target, ids []int64) error {
			done := make([]store.Created, len(b))
			audit := make([]store.AuditEntry, len(b))
			for i, t := range b {
				done[i] = store.Created{RowID: t.rowID, MoodleID: ids[i], Name: t.name}
				audit[i] = l.audit(t.courseID, t.object, t.idnumber, t.name, "create", ids[i])
			}
			if err := l.st.RecordCreated(ctx, table, done, audit); err != nil {
				return err
			}
			*counter += int64(len(b))
			return nil
		},
		func(t target, err error) error {
			return l.fail(ctx, item{t.table, t.rowID}, Failure{CourseID: t.courseID, Object: t.idnumber, ObjectName: t.name,
				Function: function, Params: t.form().String()}, err)
		})
}

// adoptAndRename takes over hand-made objects (load.on_name_clash = adopt)
// and renames owned ones whose wanted name changed or whose hand-made name
// is to be restored.
func (l *loader) adoptAndRename(ctx context.Context) error {
	for _, kind := range []struct {
		table, object string
		function      string
		update        func(context.Context, []moodle.Update, string) error
	}{
		{store.TableGroupings, "grouping", moodle.FnUpdateGroupings, l.mc.UpdateGroupings},
		{store.TableGroups, "group", moodle.FnUpdateGroups, l.mc.UpdateGroups},
	} {
		type upd struct {
			rowID, courseID int64
			u               moodle.Update
			action          string
		}
		var ups []upd
		for _, a := range keep(l, l.adopt[kind.table], func(a adoption) int64 { return a.courseID }) {
			ups = append(ups, upd{a.rowID, a.courseID, moodle.Update{ID: a.moodleID, Name: a.name, IDNumber: a.idnumber}, "adopt"})
		}
		var renames []upd
		if kind.table == store.TableGroups {
			rows, err := l.st.GroupsToRename(ctx, l.opts.Filter)
			if err != nil {
				return err
			}
			for _, r := range keep(l, rows, func(r store.GroupRow) int64 { return r.CourseID }) {
				renames = append(renames, upd{r.ID, r.CourseID, moodle.Update{ID: r.MoodleID, Name: r.Name, IDNumber: r.IDNumber}, "rename"})
			}
		} else {
			rows, err := l.st.GroupingsToRename(ctx, l.opts.Filter)
			if err != nil {
				return err
			}
			for _, r := range keep(l, rows, func(r store.GroupingRow) int64 { return r.CourseID }) {
				renames = append(renames, upd{r.ID, r.CourseID, moodle.Update{ID: r.MoodleID, Name: r.Name, IDNumber: r.IDNumber}, "rename"})
			}
		}
		ups = append(ups, renames...)
		err := batches(ctx, l.opts.Concurrency, ups, l.mc.Capacity(moodle.VarsPerUpdate),
			func(ctx context.Context, b []upd) (struct{}, error) {
				us := make([]moodle.Update, len(b))
				for i, x := range b {
					us[i] = x.u
				}
				return struct{}{}, kind.update(ctx, us, description)
			},
			func(b []upd, _ struct{}) error {
				for _, x := range b {
					audit := []store.AuditEntry{l.audit(x.courseID, kind.object, x.u.IDNumber, x.u.Name, x.action, x.u.ID)}
					done := []store.Created{{RowID: x.rowID, MoodleID: x.u.ID, Name: x.u.Name}}
					var err error
					if x.action == "adopt" {
						audit[0].Detail = "hand-made " + kind.object + " with the wanted name taken over (load.on_name_clash = adopt)"
						err = l.st.RecordCreated(ctx, kind.table, done, audit)
						l.res.Adopted++
					} else {
						err = l.st.RecordRenamed(ctx, kind.table, done, audit)
						l.res.Renamed++
					}
					if err != nil {
						return err
					}
				}
				return nil
			},
			func(x upd, err error) error {
				return l.fail(ctx, item{kind.table, x.rowID}, Failure{CourseID: x.courseID, Object: x.u.IDNumber, ObjectName: x.u.Name,
					Function: kind.function, Params: moodle.UpdateForm(kind.object+"s", []moodle.Update{x.u}, description).String()}, err)
			})
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *loader) assign(ctx context.Context) error {
	rows, err := l.st.GroupsToAssign(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	rows = keep(l, rows, func(a store.Assignment) int64 { return a.CourseID })
	pairs := func(b []store.Assignment) []moodle.Pair {
		out := make([]moodle.Pair, len(b))
		for i, a := range b {
			out[i] = moodle.Pair{A: a.MoodleGroupingID, B: a.MoodleGroupID}
		}
		return out
	}
	return batches(ctx, l.opts.Concurrency, rows, l.mc.Capacity(moodle.VarsPerPair),
		func(ctx context.Context, b []store.Assignment) (struct{}, error) {
			return struct{}{}, l.mc.AssignGrouping(ctx, pairs(b))
		},
		func(b []store.Assignment, _ struct{}) error {
			ids := make([]int64, len(b))
			audit := make([]store.AuditEntry, len(b))
			for i, a := range b {
				ids[i] = a.GroupRowID
				audit[i] = l.audit(a.CourseID, "group", a.IDNumber, a.Name, "assign", a.MoodleGroupID)
				audit[i].Detail = fmt.Sprintf("to grouping %d", a.MoodleGroupingID)
			}
			l.res.Assigned += int64(len(b))
			return l.st.RecordAssigned(ctx, ids, audit)
		},
		func(a store.Assignment, err error) error {
			return l.fail(ctx, item{store.TableGroups, a.GroupRowID}, Failure{CourseID: a.CourseID, Object: a.IDNumber, ObjectName: a.Name,
				Function: moodle.FnAssignGrouping, Params: moodle.AssignForm(pairs([]store.Assignment{a})).String()}, err)
		})
}
