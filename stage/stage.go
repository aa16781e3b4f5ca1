// Package stage is the second pipeline step. It joins the extracted CMIS
// dump with mapped_modules to get the desired groupings, groups and
// memberships, compares them with what cmissync has staged (and so made in
// Moodle), and sets toadd/todelete flags. It sends nothing to Moodle.
//
// The comparison is a merge-join of two sorted streams per table (desired
// from the dump, staged from the flags tables), so memory stays flat however
// large the institution, and a re-stage with no source change writes nothing.
// A first stage of the courses (no membership staged yet) skips the
// memberships' merge: every desired membership is new, and the store stages
// them all with INSERT ... SELECT without bringing them to Go.
package stage

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/stage/store"
)

// Templates name what cmissync creates in Moodle. Placeholders: {module},
// {modulename}, {group}, {groupname}. Names are trimmed and cut to Moodle's
// 254 characters.
type Templates struct {
	GroupingName string
	GroupName    string
}

// DefaultTemplates keep names distinct when two modules in one course share
// a group code (the old tool's known issue 7).
var DefaultTemplates = Templates{
	GroupingName: "{module} {modulename}",
	GroupName:    "{module} {group}",
}

// Options control a stage run.
type Options struct {
	Templates Templates
	Filter    store.Filter
	// DryRun computes the changes and counts them without writing.
	DryRun bool
	// ApproveDeletes lets a stage run go on when mapped_modules is empty
	// while cmissync owns objects in Moodle (an operator's explicit
	// approval); without it such a run is held.
	ApproveDeletes bool
}

// Counts are the changes of one kind of object.
type Counts struct {
	Add    int64 // newly desired: flagged toadd
	Delete int64 // no longer desired: flagged todelete (load decides whether the evidence allows it)
	Keep   int64 // desired and staged
	Revive int64 // flagged todelete earlier, desired again
	Drop   int64 // staged but never created in Moodle (or not owned), no longer desired
	Rename int64 // desired under a new name (or a new idnumber)
}

// Result is what a stage run changed.
type Result struct {
	Groupings, Groups, Members Counts
	// BadMappings are mapped_modules rows stage could not understand;
	// what they map is kept as it is (never deleted) until they are fixed.
	BadMappings []BadMapping
}

// BadMapping is a mapped_modules row that is refused, with the reason.
type BadMapping struct {
	store.Mapping
	Reason string
}

// Changed reports whether the run changed any flags.
func (r Result) Changed() bool {
	for _, c := range []Counts{r.Groupings, r.Groups, r.Members} {
		if c.Add+c.Delete+c.Revive+c.Drop+c.Rename > 0 {
			return true
		}
	}
	return false
}

// Map flattens the result for the runs table and reports.
func (r Result) Map() map[string]int64 {
	out := map[string]int64{"bad_mappings": int64(len(r.BadMappings))}
	for name, c := range map[string]Counts{"groupings": r.Groupings, "groups": r.Groups, "members": r.Members} {
		out[name+"_add"] = c.Add
		out[name+"_delete"] = c.Delete
		out[name+"_keep"] = c.Keep
		out[name+"_revive"] = c.Revive
		out[name+"_drop"] = c.Drop
		out[name+"_rename"] = c.Rename
	}
	return out
}

// HoldError is a stage run stopped by a safety rail before it changed
// anything; an operator approves with --approve-deletes.
type HoldError struct{ Reason string }

func (e *HoldError) Error() string { return e.Reason }

// flushEvery bounds the changes held in memory before they are written.
const flushEvery = 20000

// Run stages the desired state against the staged state.
//
// A staged row that is no longer desired is flagged todelete with the
// reason its mapping gives (store.ReasonCMIS, ReasonRMV, ReasonUnmapped or
// ReasonBadMapping); the load step's policy decides from it, and from the
// extract's refused rows, whether the deletion has positive evidence.
func Run(ctx context.Context, st *store.Store, opts Options, log logrus.FieldLogger) (Result, error) {
	if opts.Templates.GroupName == "" {
		opts.Templates.GroupName = DefaultTemplates.GroupName
	}
	if opts.Templates.GroupingName == "" {
		opts.Templates.GroupingName = DefaultTemplates.GroupingName
	}
	var res Result
	maps, err := readMappings(ctx, st, opts.Filter)
	if err != nil {
		return res, err
	}
	res.BadMappings = maps.bad
	for _, b := range maps.bad {
		log.WithFields(logrus.Fields{"mapping": b.ID, "course": b.CourseID, "module": b.ModuleCode}).
			Warn("mapped_modules row refused: " + b.Reason + "; what it maps is kept as it is")
	}
	if maps.rows == 0 && !opts.ApproveDeletes {
		owned, err := st.OwnsAnything(ctx, opts.Filter)
		if err != nil {
			return res, err
		}
		if owned {
			return res, &HoldError{Reason: "mapped_modules is empty while cmissync owns groups in Moodle: staging it would remove them all. " +
				"If every mapping was really removed, approve with --approve-deletes; otherwise restore mapped_modules"}
		}
	}
	dump, err := st.DumpRun(ctx)
	if err != nil {
		return res, err
	}
	// A first stage of the courses: every desired membership is new, and
	// is staged without leaving the database. Where the engine takes
	// several writers at once (MySQL), the groupings and groups are staged
	// meanwhile.
	type bulk struct {
		n     int64
		first bool
		err   error
	}
	bulkDone := make(chan bulk, 1)
	stageAll := func() {
		n, first, err := st.StageAllMembers(ctx, opts.Filter, opts.DryRun)
		bulkDone <- bulk{n, first, err}
	}
	if st.ConcurrentWriters() {
		go stageAll()
	} else {
		stageAll()
	}
	members := sync.OnceValue(func() bulk { return <-bulkDone })
	defer members()
	w := newWriter(ctx, st, opts.DryRun, dump)
	defer w.stop()

	// Groupings.
	dg, err := st.DesiredGroupings(ctx, opts.Filter)
	if err != nil {
		return res, fmt.Errorf("read desired groupings: %w", err)
	}
	sg, err := st.StagedGroupings(ctx, opts.Filter)
	if err != nil {
		dg.Close()
		return res, fmt.Errorf("read staged groupings: %w", err)
	}
	err = merge(dg, sg, cmpGrouping,
		func(d store.GroupingRow) error {
			d.IDNumber = GroupingIDNumber(d.ModuleCode)
			d.Name = render(opts.Templates.GroupingName, d.ModuleCode, d.ModuleName, "", "")
			w.ch.NewGroupings = append(w.ch.NewGroupings, d)
			res.Groupings.Add++
			return w.maybeFlush()
		},
		func(s store.GroupingRow) error {
			return w.gone(store.TableGroupings, s.ID, s.MoodleID, s.ToAdd, s.ToDelete, s.DeleteReason, s.AbsentDump, maps.reason(s.CourseID, s.ModuleCode), &res.Groupings)
		},
		func(d, s store.GroupingRow) error {
			name := render(opts.Templates.GroupingName, d.ModuleCode, d.ModuleName, "", "")
			return w.kept(store.TableGroupings, s.ID, s.ToDelete, s.Name, name, s.IDNumber, GroupingIDNumber(s.ModuleCode), &res.Groupings)
		})
	dg.Close()
	sg.Close()
	if err != nil {
		return res, fmt.Errorf("stage groupings: %w", err)
	}

	// Groups.
	dgr, err := st.DesiredGroups(ctx, opts.Filter)
	if err != nil {
		return res, fmt.Errorf("read desired groups: %w", err)
	}
	sgr, err := st.StagedGroups(ctx, opts.Filter)
	if err != nil {
		dgr.Close()
		return res, fmt.Errorf("read staged groups: %w", err)
	}
	err = merge(dgr, sgr, cmpGroup,
		func(d store.GroupRow) error {
			d.IDNumber = GroupIDNumber(d.ModuleCode, d.GroupCode)
			d.Name = render(opts.Templates.GroupName, d.ModuleCode, d.ModuleName, d.GroupCode, d.GroupName)
			w.ch.NewGroups = append(w.ch.NewGroups, d)
			res.Groups.Add++
			return w.maybeFlush()
		},
		func(s store.GroupRow) error {
			return w.gone(store.TableGroups, s.ID, s.MoodleID, s.ToAdd, s.ToDelete, s.DeleteReason, s.AbsentDump, maps.reason(s.CourseID, s.ModuleCode), &res.Groups)
		},
		func(d, s store.GroupRow) error {
			name := render(opts.Templates.GroupName, d.ModuleCode, d.ModuleName, d.GroupCode, d.GroupName)
			return w.kept(store.TableGroups, s.ID, s.ToDelete, s.Name, name, s.IDNumber, GroupIDNumber(s.ModuleCode, s.GroupCode), &res.Groups)
		})
	dgr.Close()
	sgr.Close()
	if err != nil {
		return res, fmt.Errorf("stage groups: %w", err)
	}

	// Memberships.
	if b := members(); b.err != nil {
		return res, b.err
	} else if b.first {
		res.Members.Add = b.n
		return res, finishRun(w, res, opts, log)
	}
	dm, err := st.DesiredMembers(ctx, opts.Filter)
	if err != nil {
		return res, fmt.Errorf("read desired members: %w", err)
	}
	sm, err := st.StagedMembers(ctx, opts.Filter)
	if err != nil {
		dm.Close()
		return res, fmt.Errorf("read staged members: %w", err)
	}
	err = merge(dm, sm, cmpMember,
		func(d store.MemberRow) error {
			w.ch.NewMembers = append(w.ch.NewMembers, d)
			res.Members.Add++
			return w.maybeFlush()
		},
		func(s store.MemberRow) error {
			if !s.Owned {
				// The user was in the group before cmissync came to add
				// them: not ours to remove, only to forget.
				w.ch.Drop[store.TableMembers] = append(w.ch.Drop[store.TableMembers], s.ID)
				res.Members.Drop++
				return w.maybeFlush()
			}
			return w.gone(store.TableMembers, s.ID, s.MoodleUserID, s.ToAdd, s.ToDelete, s.DeleteReason, s.AbsentDump, maps.reason(s.CourseID, s.ModuleCode), &res.Members)
		},
		func(_, s store.MemberRow) error {
			return w.kept(store.TableMembers, s.ID, s.ToDelete, "", "", "", "", &res.Members)
		})
	dm.Close()
	sm.Close()
	if err != nil {
		return res, fmt.Errorf("stage members: %w", err)
	}
	return res, finishRun(w, res, opts, log)
}

// finishRun writes the last changes and logs what the run did.
func finishRun(w *writer, res Result, opts Options, log logrus.FieldLogger) error {
	if err := w.finish(); err != nil {
		return err
	}
	log.WithFields(logrus.Fields{
		"groupings_add": res.Groupings.Add, "groupings_delete": res.Groupings.Delete,
		"groups_add": res.Groups.Add, "groups_delete": res.Groups.Delete,
		"members_add": res.Members.Add, "members_delete": res.Members.Delete,
		"bad_mappings": len(res.BadMappings), "dry_run": opts.DryRun,
	}).Info("stage finished")
	return nil
}

// mappingIndex says, per (course, module), what mapped_modules asks for.
type mappingIndex struct {
	rows   int // mapping rows in scope, good or bad
	status map[mappingKey]string
	bad    []BadMapping
}

type mappingKey struct {
	course int64
	module string
}

const (
	mapActive = "active"
	mapRemove = "remove"
	mapBad    = "bad"
)

// readMappings reads and validates mapped_modules. Values are compared
// trimmed and without case ("add", "ADD " are ADD); anything else, a course
// id that is not positive or a blank module code, refuses the row.
func readMappings(ctx context.Context, st *store.Store, f store.Filter) (*mappingIndex, error) {
	all, err := st.Mappings(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("read mapped_modules: %w", err)
	}
	in := map[int64]bool{}
	for _, c := range f.Courses {
		in[c] = true
	}
	ix := &mappingIndex{status: map[mappingKey]string{}}
	for _, m := range all {
		if len(in) > 0 && !in[m.CourseID] {
			continue
		}
		ix.rows++
		gi, ma := NormalAction(m.GroupImport), NormalAction(m.MappingAction)
		var reason string
		switch {
		case m.CourseID <= 0:
			reason = fmt.Sprintf("moodle_id %d is not a Moodle course id", m.CourseID)
		case strings.TrimSpace(m.ModuleCode) == "":
			reason = "modulecode is blank"
		case gi == "":
			reason = fmt.Sprintf("group_import %q is not ADD or RMV", m.GroupImport)
		case ma == "":
			reason = fmt.Sprintf("mapping_action %q is not ADD or RMV", m.MappingAction)
		}
		k := mappingKey{m.CourseID, m.ModuleCode}
		switch {
		case reason != "":
			ix.status[k] = mapBad
			ix.bad = append(ix.bad, BadMapping{Mapping: m, Reason: reason})
		case gi == store.ActionAdd && ma == store.ActionAdd:
			ix.status[k] = mapActive
		default:
			ix.status[k] = mapRemove
		}
	}
	return ix, nil
}

// NormalAction returns ADD or RMV for a mapped_modules action value written
// with any case and surrounding spaces, and "" for anything else.
func NormalAction(v string) string {
	switch a := strings.ToUpper(strings.TrimSpace(v)); a {
	case store.ActionAdd, store.ActionRemove:
		return a
	}
	return ""
}

// reason is the delete reason for a staged row of (course, module) that is
// no longer desired.
func (ix *mappingIndex) reason(course int64, module string) string {
	switch ix.status[mappingKey{course, module}] {
	case mapActive:
		return store.ReasonCMIS
	case mapRemove:
		return store.ReasonRMV
	case mapBad:
		return store.ReasonBadMapping
	}
	return store.ReasonUnmapped
}

// writer accumulates changes and writes them in batches. The batches are
// written in order by one goroutine while the merge goes on reading the
// sorted streams, so reading and writing overlap; at most two batches wait
// in memory besides the one being filled.
type writer struct {
	ctx context.Context
	st  *store.Store
	dry bool
	ch  *store.StageChanges
	// dump is the run of the current extract: absences are counted once
	// per extract.
	dump string

	out    chan *store.StageChanges // batches for the writing goroutine
	done   chan struct{}            // closed when the writing goroutine ends
	failed chan struct{}            // closed when a batch failed
	err    error                    // the first error, read after failed is closed
}

func newWriter(ctx context.Context, st *store.Store, dry bool, dump string) *writer {
	w := &writer{ctx: ctx, st: st, dry: dry, ch: newChanges(), dump: dump}
	if dry {
		return w
	}
	out := make(chan *store.StageChanges, 1)
	w.out, w.done, w.failed = out, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.done)
		for c := range out {
			if w.err != nil {
				continue // drain: the merge stops at its next flush
			}
			if err := st.ApplyStage(ctx, c); err != nil {
				w.err = fmt.Errorf("write staged changes: %w", err)
				close(w.failed)
			}
		}
	}()
	return w
}

func newChanges() *store.StageChanges {
	return &store.StageChanges{MarkDelete: map[string][]store.MarkDelete{}, Unmark: map[string][]int64{}, Drop: map[string][]int64{}, Rename: map[string][]store.Rename{}}
}

// gone handles a staged row that is no longer desired. Each extract it is
// absent from is counted once (load.remove_after_runs).
func (w *writer) gone(table string, id, moodleID int64, toAdd, toDelete bool, oldReason, absentDump, reason string, c *Counts) error {
	switch {
	case moodleID == 0 || toAdd:
		// Never reached Moodle: forget it.
		w.ch.Drop[table] = append(w.ch.Drop[table], id)
		c.Drop++
	case !toDelete || oldReason != reason || absentDump != w.dump:
		w.ch.MarkDelete[table] = append(w.ch.MarkDelete[table], store.MarkDelete{ID: id, Reason: reason, Dump: w.dump})
		c.Delete++
	default:
		c.Delete++ // already flagged by an earlier stage, for the same reason
		return nil
	}
	return w.maybeFlush()
}

// kept handles a row both desired and staged: it revives a row flagged
// for deletion and renames one whose wanted name changed (a new template or
// a new CMIS title) or whose idnumber is in a form older versions used.
func (w *writer) kept(table string, id int64, toDelete bool, name, wantName, idnumber, wantIDNumber string, c *Counts) error {
	changed := false
	if toDelete {
		w.ch.Unmark[table] = append(w.ch.Unmark[table], id)
		c.Revive++
		changed = true
	}
	if name != wantName || idnumber != wantIDNumber {
		w.ch.Rename[table] = append(w.ch.Rename[table], store.Rename{ID: id, Name: wantName, IDNumber: wantIDNumber})
		c.Rename++
		changed = true
	}
	if !changed {
		c.Keep++
		return nil
	}
	return w.maybeFlush()
}

func (w *writer) maybeFlush() error {
	if w.ch.Len() < flushEvery {
		return nil
	}
	return w.flush()
}

// flush hands the batch to the writing goroutine. It fails with the
// goroutine's error once a batch failed: nothing is written after it.
func (w *writer) flush() error {
	if w.dry || w.ch.Len() == 0 {
		w.ch = newChanges()
		return nil
	}
	select {
	case <-w.failed:
		return w.err
	case w.out <- w.ch:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	w.ch = newChanges()
	return nil
}

// finish writes the last batch and waits until every batch is written.
func (w *writer) finish() error {
	if err := w.flush(); err != nil {
		return err
	}
	if w.dry {
		return nil
	}
	close(w.out)
	w.out = nil
	<-w.done
	select {
	case <-w.failed:
		return w.err
	default:
		return nil
	}
}

// stop ends the writing goroutine when Run returns early; batches already
// handed over are still written (each in its own transaction, as before).
func (w *writer) stop() {
	if w.dry || w.out == nil {
		return
	}
	close(w.out)
	w.out = nil
	<-w.done
}

// cursor is the part of store.Cursor the merge needs.
type cursor[T any] interface {
	Next() bool
	Value() T
	Err() error
}

// merge walks two streams sorted by cmp and calls onlyA, onlyB or both for
// each key.
func merge[T any](a, b cursor[T], cmp func(x, y T) int, onlyA, onlyB func(T) error, both func(x, y T) error) error {
	okA, okB := a.Next(), b.Next()
	for okA || okB {
		var err error
		switch {
		case !okB || (okA && cmp(a.Value(), b.Value()) < 0):
			err = onlyA(a.Value())
			okA = a.Next()
		case !okA || cmp(a.Value(), b.Value()) > 0:
			err = onlyB(b.Value())
			okB = b.Next()
		default:
			err = both(a.Value(), b.Value())
			okA, okB = a.Next(), b.Next()
		}
		if err != nil {
			return err
		}
		// A stream cut short by an error must not make the other's
		// remaining rows look unmatched.
		if !okA {
			if err := a.Err(); err != nil {
				return err
			}
		}
		if !okB {
			if err := b.Err(); err != nil {
				return err
			}
		}
	}
	if err := a.Err(); err != nil {
		return err
	}
	return b.Err()
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpGrouping(a, b store.GroupingRow) int {
	if c := cmpInt(a.CourseID, b.CourseID); c != 0 {
		return c
	}
	return strings.Compare(a.ModuleCode, b.ModuleCode)
}

func cmpGroup(a, b store.GroupRow) int {
	if c := cmpInt(a.CourseID, b.CourseID); c != 0 {
		return c
	}
	if c := strings.Compare(a.ModuleCode, b.ModuleCode); c != 0 {
		return c
	}
	return strings.Compare(a.GroupCode, b.GroupCode)
}

func cmpMember(a, b store.MemberRow) int { return store.CompareMembers(a, b) }

// maxName is Moodle's limit on group and grouping names.
const maxName = 254

func render(tmpl, module, moduleName, group, groupName string) string {
	s := expand(tmpl, module, moduleName, group, groupName)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxName {
		s = string([]rune(s)[:maxName])
	}
	return s
}

// expand replaces the placeholders of tmpl in one pass, as a
// strings.Replacer of the four would (a value is never expanded again),
// without building one per name.
func expand(tmpl, module, moduleName, group, groupName string) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	ph := [...]struct{ key, val string }{{"{module}", module}, {"{modulename}", moduleName}, {"{group}", group}, {"{groupname}", groupName}}
	var b strings.Builder
	b.Grow(len(tmpl) + len(module) + len(moduleName) + len(group) + len(groupName))
	for i := 0; i < len(tmpl); {
		if tmpl[i] == '{' {
			matched := false
			for _, p := range ph {
				if strings.HasPrefix(tmpl[i:], p.key) {
					b.WriteString(p.val)
					i += len(p.key)
					matched = true
					break
				}
			}
			if matched {
				continue
			}
		}
		b.WriteByte(tmpl[i])
		i++
	}
	return b.String()
}
