package load

import (
	"context"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
)

func (l *loader) deleteGroups(ctx context.Context) error {
	rows, err := l.st.GroupsToDelete(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	rows = keep(l, rows, func(g store.GroupRow) int64 { return g.CourseID })
	ids := func(b []store.GroupRow) []int64 {
		out := make([]int64, len(b))
		for i, g := range b {
			out[i] = g.MoodleID
		}
		return out
	}
	return batches(ctx, l.opts.Concurrency, rows, l.mc.Capacity(moodle.VarsPerID),
		func(ctx context.Context, b []store.GroupRow) (struct{}, error) {
			return struct{}{}, l.mc.DeleteGroups(ctx, ids(b))
		},
		func(b []store.GroupRow, _ struct{}) error {
			audit := make([]store.AuditEntry, len(b))
			for i, g := range b {
				audit[i] = l.audit(g.CourseID, "group", g.IDNumber, g.Name, "delete", g.MoodleID)
			}
			l.res.GroupsDeleted += int64(len(b))
			return l.st.DropGroups(ctx, b, audit)
		},
		func(g store.GroupRow, err error) error {
			return l.fail(ctx, item{store.TableGroups, g.ID}, Failure{CourseID: g.CourseID, Object: g.IDNumber, ObjectName: g.Name, Function: moodle.FnDeleteGroups,
				Params: moodle.IDsForm("groupids", ids([]store.GroupRow{g})).String()}, err)
		})
}

func (l *loader) deleteGroupings(ctx context.Context) error {
	rows, err := l.st.GroupingsToDelete(ctx, l.opts.Filter)
	if err != nil {
		return err
	}
	rows = keep(l, rows, func(g store.GroupingRow) int64 { return g.CourseID })
	ids := func(b []store.GroupingRow) []int64 {
		out := make([]int64, len(b))
		for i, g := range b {
			out[i] = g.MoodleID
		}
		return out
	}
	return batches(ctx, l.opts.Concurrency, rows, l.mc.Capacity(moodle.VarsPerID),
		func(ctx context.Context, b []store.GroupingRow) (struct{}, error) {
			return struct{}{}, l.mc.DeleteGroupings(ctx, ids(b))
		},
		func(b []store.GroupingRow, _ struct{}) error {
			rowIDs := make([]int64, len(b))
			audit := make([]store.AuditEntry, len(b))
			for i, g := range b {
				rowIDs[i] = g.ID
				audit[i] = l.audit(g.CourseID, "grouping", g.IDNumber, g.Name, "delete", g.MoodleID)
			}
			l.res.GroupingsDeleted += int64(len(b))
			return l.st.DropGroupings(ctx, rowIDs, audit)
		},
		func(g store.GroupingRow, err error) error {
			return l.fail(ctx, item{store.TableGroupings, g.ID}, Failure{CourseID: g.CourseID, Object: g.IDNumber, ObjectName: g.Name, Function: moodle.FnDeleteGroupings,
				Params: moodle.IDsForm("groupingids", ids([]store.GroupingRow{g})).String()}, err)
		})
}
