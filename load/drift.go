package load

import (
	"context"
	"fmt"
	"strings"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
)

// reconcile compares what staging recorded for a course with what Moodle
// holds, before anything is written to it (two reads per changed course),
// and repairs the difference:
//   - the course is gone: its mappings and staged rows are retired;
//   - an owned group or grouping was deleted by hand: recreated, or parked,
//     by policy (load.on_deleted);
//   - it was renamed by hand: recognised by idnumber; Moodle's name is kept
//     or cmissync's restored, by policy (load.on_renamed);
//   - one cmissync is about to create already exists with its idnumber (an
//     earlier run stopped before recording it): adopted, never duplicated;
//   - a hand-made one has the wanted name: cmissync's is created under a
//     disambiguated name, or the hand-made one is adopted, by policy
//     (load.on_name_clash).
func (l *loader) reconcile(ctx context.Context, course int64) error {
	groups, err := l.mc.CourseGroups(ctx, course)
	if err == nil {
		var gs []moodle.Grouping
		gs, err = l.mc.CourseGroupings(ctx, course)
		if err == nil {
			return l.reconcileWith(ctx, course, groups, gs)
		}
	}
	switch {
	case moodle.IsFatal(err):
		return err
	case courseGone(err):
		return l.retire(ctx, course, err)
	}
	l.mu.Lock()
	l.skip[course] = true
	l.mu.Unlock()
	return l.fail(ctx, item{}, Failure{CourseID: course, Function: functionOf(err), Params: fmt.Sprintf("courseid=%d", course),
		Message: "could not read the course's groups; nothing was changed in it this run"}, err)
}

// courseGone reports the answers Moodle gives for a course that does not
// exist: errorcoursecontextnotvalid for groups, invalidrecord (table course)
// for groupings and enrolments.
func courseGone(err error) bool {
	switch moodle.ErrorCode(err) {
	case moodle.CodeCourseContext, moodle.CodeInvalidRecord:
		return true
	}
	return false
}

func (l *loader) retire(ctx context.Context, course int64, cause error) error {
	if err := l.st.RetireCourse(ctx, course, []store.AuditEntry{l.audit(course, "course", "", "", "retire", course)}); err != nil {
		return err
	}
	l.mu.Lock()
	l.skip[course] = true
	l.res.CoursesRetired++
	l.mu.Unlock()
	l.notice(Notice{CourseID: course, Message: fmt.Sprintf("course %d no longer exists in Moodle (%s): its mappings were set to RMV and its staged groups forgotten", course, moodle.ErrorCode(cause))})
	return nil
}

// nameKey compares names as Moodle's database does: without case and
// trailing spaces.
func nameKey(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// moodleObject is a group or grouping as Moodle holds it.
type moodleObject struct {
	id             int64
	name, idnumber string
}

type objectIndex struct {
	byID       map[int64]moodleObject
	byIDNumber map[string]moodleObject
	byName     map[string]moodleObject
}

func index(objs []moodleObject) objectIndex {
	ix := objectIndex{byID: map[int64]moodleObject{}, byIDNumber: map[string]moodleObject{}, byName: map[string]moodleObject{}}
	for _, o := range objs {
		ix.byID[o.id] = o
		if o.idnumber != "" {
			ix.byIDNumber[o.idnumber] = o
		}
		ix.byName[nameKey(o.name)] = o
	}
	return ix
}

// staged is what reconcile needs of a staged group or grouping.
type staged struct {
	table                          string
	rowID, courseID, moodleID      int64
	idnumber, name, moodleName     string
	toAdd, toDelete, toRename, prk bool
}

func (l *loader) reconcileWith(ctx context.Context, course int64, groups []moodle.Group, groupings []moodle.Grouping) error {
	var gobjs, ggobjs []moodleObject
	for _, g := range groups {
		gobjs = append(gobjs, moodleObject{g.ID, g.Name, g.IDNumber})
	}
	for _, g := range groupings {
		ggobjs = append(ggobjs, moodleObject{g.ID, g.Name, g.IDNumber})
	}
	sgs, err := l.st.CourseGroupings(ctx, course)
	if err != nil {
		return err
	}
	var rows []staged
	for _, g := range sgs {
		rows = append(rows, staged{store.TableGroupings, g.ID, g.CourseID, g.MoodleID, g.IDNumber, g.Name, g.MoodleName, g.ToAdd, g.ToDelete, g.ToRename, g.Parked})
	}
	if err := l.reconcileRows(ctx, "grouping", rows, index(ggobjs)); err != nil {
		return err
	}
	sg, err := l.st.CourseGroups(ctx, course)
	if err != nil {
		return err
	}
	rows = rows[:0]
	for _, g := range sg {
		rows = append(rows, staged{store.TableGroups, g.ID, g.CourseID, g.MoodleID, g.IDNumber, g.Name, g.MoodleName, g.ToAdd, g.ToDelete, g.ToRename, g.Parked})
	}
	return l.reconcileRows(ctx, "group", rows, index(gobjs))
}

func (l *loader) reconcileRows(ctx context.Context, object string, rows []staged, ix objectIndex) error {
	for _, r := range rows {
		if r.prk {
			continue
		}
		if r.moodleID != 0 {
			if err := l.checkExisting(ctx, object, r, ix); err != nil {
				return err
			}
			continue
		}
		if !r.toAdd {
			continue
		}
		if m, ok := ix.byIDNumber[r.idnumber]; ok {
			// Created by a run that stopped before recording it.
			audit := []store.AuditEntry{l.audit(r.courseID, object, r.idnumber, m.name, "adopt", m.id)}
			audit[0].Detail = "found in Moodle with cmissync's idnumber; an earlier run stopped before recording it"
			if err := l.st.RecordCreated(ctx, r.table, []store.Created{{RowID: r.rowID, MoodleID: m.id, Name: m.name}}, audit); err != nil {
				return err
			}
			l.count(&l.res.Adopted, 1)
			l.notice(Notice{CourseID: r.courseID, Object: r.idnumber, Message: fmt.Sprintf("%s %q (id %d) was already in Moodle with cmissync's idnumber (an earlier run stopped before recording it): adopted", object, m.name, m.id)})
			continue
		}
		m, clash := ix.byName[nameKey(r.name)]
		if !clash {
			continue
		}
		if l.opts.OnNameClash == ClashAdopt && m.idnumber == "" {
			l.mu.Lock()
			l.adopt[r.table] = append(l.adopt[r.table], adoption{rowID: r.rowID, courseID: r.courseID, moodleID: m.id, idnumber: r.idnumber, name: m.name})
			l.adopting[rowKey{r.table, r.rowID}] = true
			if r.group() {
				l.existing[m.id] = true // its members are read before adding any
			}
			l.mu.Unlock()
			l.notice(Notice{CourseID: r.courseID, Object: r.idnumber, Message: fmt.Sprintf("a hand-made %s is already called %q: adopting it (load.on_name_clash = adopt); its members stay", object, m.name)})
			continue
		}
		name := r.name + " (CMIS)"
		for i := 2; ; i++ {
			if _, taken := ix.byName[nameKey(name)]; !taken {
				break
			}
			name = fmt.Sprintf("%s (CMIS %d)", r.name, i)
		}
		l.mu.Lock()
		l.createName[rowKey{r.table, r.rowID}] = name
		l.mu.Unlock()
		l.notice(Notice{CourseID: r.courseID, Object: r.idnumber, Message: fmt.Sprintf("a hand-made %s is already called %q: cmissync's is created as %q and the hand-made one is left alone", object, m.name, name)})
	}
	return nil
}

// checkExisting handles a staged object cmissync created earlier.
func (l *loader) checkExisting(ctx context.Context, object string, r staged, ix objectIndex) error {
	m, ok := ix.byID[r.moodleID]
	if ok && m.idnumber != r.idnumber {
		ok = false // the id now belongs to something else
	}
	if !ok {
		if other, found := ix.byIDNumber[r.idnumber]; found {
			return l.st.SetMoodleID(ctx, r.table, r.rowID, other.id)
		}
		return l.deletedInMoodle(ctx, object, r)
	}
	if r.group() {
		l.mu.Lock()
		l.existing[r.moodleID] = true
		l.mu.Unlock()
	}
	if r.moodleName == "" || m.name == r.moodleName || r.toRename {
		return nil
	}
	// Renamed by hand in Moodle.
	if l.opts.OnRenamed == RenamedRestore {
		l.notice(Notice{CourseID: r.courseID, Object: r.idnumber, Message: fmt.Sprintf("%s renamed in Moodle to %q: restoring %q (load.on_renamed = restore)", object, m.name, r.name)})
		return l.st.SetRenameFlag(ctx, r.table, r.rowID, true, m.name)
	}
	l.notice(Notice{CourseID: r.courseID, Object: r.idnumber, Message: fmt.Sprintf("%s renamed in Moodle from %q to %q: kept (load.on_renamed = keep)", object, r.moodleName, m.name)})
	return l.st.SetRenameFlag(ctx, r.table, r.rowID, false, m.name)
}

func (r staged) group() bool { return r.table == store.TableGroups }

// deletedInMoodle handles an owned object someone deleted in Moodle.
func (l *loader) deletedInMoodle(ctx context.Context, object string, r staged) error {
	audit := []store.AuditEntry{l.audit(r.courseID, object, r.idnumber, r.name, "recreate", r.moodleID)}
	if r.toDelete {
		audit[0].Action, audit[0].Detail = "delete", "already deleted in Moodle"
	} else if l.opts.OnDeleted == DeletedForget {
		l.notice(Notice{CourseID: r.courseID, Object: r.idnumber, Message: fmt.Sprintf("%s %q (id %d) was deleted in Moodle: parked, not recreated (load.on_deleted = forget); `cmissync retry` recreates it", object, r.name, r.moodleID)})
		return l.st.Park(ctx, r.table, r.rowID, "deleted in Moodle by hand; parked by load.on_deleted = forget")
	} else {
		l.count(&l.res.Recreated, 1)
		l.notice(Notice{CourseID: r.courseID, Object: r.idnumber, Message: fmt.Sprintf("%s %q (id %d) was deleted in Moodle: recreating it with its members", object, r.name, r.moodleID)})
	}
	if r.group() {
		return l.st.ForgetGroup(ctx, r.rowID, audit)
	}
	return l.st.ForgetGrouping(ctx, r.rowID, audit)
}
