package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/stage/store"
)

// DefaultBatchSize is the number of rows Run gathers before writing them to
// staging, when Options.BatchSize is not set. Each batch is one staging
// transaction: larger batches mean fewer commits (each a disk sync on
// MariaDB), which matters more than their memory, a few megabytes.
const DefaultBatchSize = 20000

// maxLoggedBadRows is how many bad rows per table Run logs one by one; the
// rest are counted (all are in cmis_error_data_dump).
const maxLoggedBadRows = 10

// Options tune Run.
type Options struct {
	// RunID tags the rows Run records in cmis_error_data_dump; empty means
	// one made from the current time.
	RunID string
	// BatchSize is the number of rows written to staging at a time (default
	// DefaultBatchSize); two batches are in memory at once, one being read
	// while the other is written. Run's memory does not grow with the
	// number of rows, apart from the set of keys it keeps to find
	// duplicates.
	BatchSize int
	// Charset is the source.charset setting: how to read bytes from the
	// source that are not valid UTF-8. "AL32UTF8" (the default) rejects the
	// row; "WE8ISO8859P1" decodes them as ISO-8859-1 (Windows-1252 in
	// 0x80–0x9F). For an Oracle source the same setting also chooses the
	// client character set when the source is opened (see WithCharset): with
	// AL32UTF8 Oracle converts to UTF-8 itself, so no such bytes arrive.
	Charset string
	// ShrinkThreshold is the shrink guard: when a dump table would lose more
	// than this share of the rows it has now (0.5: more than half), or would
	// be emptied, Run stops before Commit, keeps the previous dump and
	// returns a *ShrinkError. It protects Moodle from a CMIS outage that
	// returns empty or partial views. 0 turns the guard off; other values
	// must lie in (0, 1], where 1 holds only extracts that would empty a
	// table. A first extract, into an empty dump, is never held.
	ShrinkThreshold float64
	// ApproveShrink lets an extract the shrink guard would hold through (an
	// operator's --approve-shrink); Run logs a warning and commits it.
	ApproveShrink bool
	// BeforeCommit, when set, is called with the counts once all three views
	// are read, after the shrink guard, and before the new dump replaces
	// the previous one. An error aborts the extract and keeps the previous
	// dump.
	BeforeCommit func(ctx context.Context, r Result) error
}

// Result counts the rows of an extract per dump table.
type Result struct {
	Source   string                    // the source's Describe()
	Read     map[store.DumpTable]int64 // records read from the source
	Loaded   map[store.DumpTable]int64 // rows written to the dump
	Rejected map[store.DumpTable]int64 // bad rows, recorded in cmis_error_data_dump
	// WriteMethod says how rows were written to staging (e.g. LOAD DATA
	// LOCAL INFILE) and, when not the fastest way, why.
	WriteMethod string
}

// Run extracts the three views from src into the staging dump tables of st:
// module groups first (member and tutor rows must name one of them), then
// group members, then group tutors. Rows are validated and written in
// batches; bad rows are recorded with a reason and skipped. The new dump
// replaces the previous one only when all three views have been read; on any
// error or cancellation of ctx the previous dump is kept and the error names
// the table, the query file or CSV file and, where it applies, the row or
// line. The Result holds the counts so far, also on error.
func Run(ctx context.Context, src Source, st *store.Store, opts Options, log logrus.FieldLogger) (res Result, err error) {
	if log == nil {
		l := logrus.New()
		l.Out = io.Discard
		log = l
	}
	charset, err := normalCharset(opts.Charset)
	if err != nil {
		return res, fmt.Errorf("extract: %w", err)
	}
	if opts.ShrinkThreshold < 0 || opts.ShrinkThreshold > 1 || math.IsNaN(opts.ShrinkThreshold) {
		return res, fmt.Errorf("extract: shrink threshold %v out of range: want 0 (off) or a share of rows in (0, 1]", opts.ShrinkThreshold)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.RunID == "" {
		opts.RunID = "extract-" + time.Now().UTC().Format("20060102T150405Z")
	}
	res = Result{
		Source:   src.Describe(),
		Read:     map[store.DumpTable]int64{},
		Loaded:   map[store.DumpTable]int64{},
		Rejected: map[store.DumpTable]int64{},
	}
	log = log.WithFields(logrus.Fields{"step": "extract", "source": res.Source, "run_id": opts.RunID})
	log.Info("extract started")

	gen, err := st.BeginExtract(ctx, opts.RunID)
	if err != nil {
		return res, fmt.Errorf("extract: start: %w", &stagingError{err})
	}
	res.WriteMethod = gen.WriteMethod()
	log.WithField("method", res.WriteMethod).Info("writing to staging")
	// The shrink guard compares with the committed dump, which nothing
	// changes until Commit: count it meanwhile.
	var previous func() dumpCounts
	if opts.ShrinkThreshold > 0 {
		previous = countDump(ctx, st)
	}
	committed := false
	defer func() {
		if previous != nil {
			previous() // Run leaves no goroutine behind
		}
		if committed {
			return
		}
		// The context may be cancelled already; the abort must still run.
		if aerr := gen.Abort(context.WithoutCancel(ctx)); aerr != nil {
			err = errors.Join(err, fmt.Errorf("extract: abort: %w", &stagingError{aerr}))
		}
		log.WithError(err).Warn("extract abandoned; the previous dump is unchanged")
	}()

	chk := newChecker(charset)
	for _, t := range store.DumpTables {
		if err := runTable(ctx, src, gen, t, chk, opts.BatchSize, &res, log); err != nil {
			return res, err
		}
	}
	res.WriteMethod = gen.WriteMethod()
	if previous != nil {
		if err := shrinkGuard(previous(), res, opts, log); err != nil {
			return res, err
		}
	}
	if opts.BeforeCommit != nil {
		if err := opts.BeforeCommit(ctx, res); err != nil {
			return res, fmt.Errorf("extract: not committed: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("extract: %w", err)
	}
	if err := gen.Commit(ctx); err != nil {
		return res, fmt.Errorf("extract: commit: %w", &stagingError{err})
	}
	committed = true
	log.WithFields(logrus.Fields{
		"module_groups": res.Loaded[store.ModuleGroups],
		"members":       res.Loaded[store.GroupMembers],
		"tutors":        res.Loaded[store.GroupTutors],
		"rejected":      res.Rejected[store.ModuleGroups] + res.Rejected[store.GroupMembers] + res.Rejected[store.GroupTutors],
		"method":        res.WriteMethod,
	}).Info("extract committed")
	return res, nil
}

// runTable streams one view into the generation.
func runTable(ctx context.Context, src Source, gen *store.Generation, t store.DumpTable, chk *checker,
	batchSize int, res *Result, log logrus.FieldLogger) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("extract %s: %w", t, err)
	}
	rows, err := src.Open(ctx, t)
	if err != nil {
		return fmt.Errorf("extract %s from %s: %w", t, src.Describe(), err)
	}
	origin := rows.Origin()
	defer func() {
		if cerr := rows.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("extract %s from %s: close: %w", t, origin, cerr)
		}
	}()
	tlog := log.WithFields(logrus.Fields{"table": string(t), "origin": origin})
	malformed, _ := rows.(Malformed)

	// fail wraps an error with the table, the origin and the position:
	// "at" the row being handled, or "after" the last row read.
	fail := func(where string, line int64, err error) error {
		if line > 0 {
			return fmt.Errorf("extract %s from %s, %s %s %d: %w", t, origin, where, posWord(origin), line, err)
		}
		return fmt.Errorf("extract %s from %s: %w", t, origin, err)
	}

	// Batches go to staging on the writer's goroutine while the next one
	// is read and checked: the source, the checks and the staging server
	// work at the same time.
	w := startWriter(ctx, gen, t)
	defer w.stop()
	capacity := min(batchSize, 1<<16)
	good := make([][]string, 0, capacity)
	var bad []store.BadRow
	var spare batch // buffers back from the writer, for reuse
	// collect takes in the result of a written batch.
	collect := func(r batchResult) error {
		if r.err != nil {
			return fail("in the batch ending at", r.last, r.err)
		}
		if r.added != int64(len(r.good)) {
			tlog.WithFields(logrus.Fields{"rows": len(r.good), "added": r.added}).
				Warn("staging skipped rows as duplicate keys that the extract saw as distinct")
		}
		res.Loaded[t] += r.added
		clear(r.good)
		spare = batch{good: r.good[:0], bad: r.bad[:0]}
		return nil
	}
	// flush hands the rows gathered so far to the writer.
	flush := func(last int64) error {
		if len(good) == 0 && len(bad) == 0 {
			return nil
		}
		if r, ok := w.put(batch{good: good, bad: bad, last: last}); ok {
			if err := collect(r); err != nil {
				return err
			}
		}
		good, bad, spare = spare.good, spare.bad, batch{}
		if good == nil {
			good = make([][]string, 0, capacity)
		}
		return nil
	}

	for rows.Next() {
		if err := ctx.Err(); err != nil {
			return fail("at", rows.Line(), err)
		}
		res.Read[t]++
		line := rows.Line()
		raw := rows.Row()
		var reason, rendered string
		var vals []string
		if raw == nil {
			reason, rendered = "malformed record", ""
			if malformed != nil {
				if r, rr := malformed.Malformed(); r != "" {
					reason, rendered = r, rr
				}
			}
		} else {
			vals, reason = chk.check(t, origin, line, raw)
			if reason != "" {
				rendered = renderRow(t, raw)
			}
		}
		if reason != "" {
			res.Rejected[t]++
			if res.Rejected[t] <= maxLoggedBadRows {
				tlog.WithFields(logrus.Fields{"line": line, "row": rendered, "reason": reason}).Warn("bad row")
			}
			b := store.BadRow{Source: origin, Line: line, Row: rendered, Table: t}
			// A record that could not be parsed has no key: its fields
			// cannot be told apart.
			known := 0
			if raw != nil {
				var key [3]string
				key, known = chk.key(t, raw)
				b.Module, b.Group, b.CMISID = key[0], key[1], key[2]
			}
			b.Reason = reason + protects(t, b, raw != nil, known)
			bad = append(bad, b)
		} else {
			good = append(good, vals)
		}
		if len(good) >= batchSize || len(bad) >= batchSize {
			if err := flush(line); err != nil {
				return err
			}
			tlog.WithField("read", res.Read[t]).Debug("extract progress")
		}
	}
	if err := rows.Err(); err != nil {
		return fail("after", rows.Line(), err)
	}
	if err := ctx.Err(); err != nil {
		return fail("after", rows.Line(), err)
	}
	if err := flush(rows.Line()); err != nil {
		return err
	}
	if r, ok := w.wait(); ok {
		if err := collect(r); err != nil {
			return err
		}
	}
	chk.done(t)
	fields := logrus.Fields{"read": res.Read[t], "loaded": res.Loaded[t], "rejected": res.Rejected[t]}
	if res.Rejected[t] > maxLoggedBadRows {
		tlog.WithFields(fields).Warnf("%d more bad rows not logged; all are in cmis_error_data_dump", res.Rejected[t]-maxLoggedBadRows)
	}
	if res.Loaded[t] == 0 {
		tlog.WithFields(fields).Warn("view extracted with no rows")
	} else {
		tlog.WithFields(fields).Info("view extracted")
	}
	return nil
}

// posWord names a position in an origin: rows of a query, lines of a file.
func posWord(origin string) string {
	if strings.HasSuffix(strings.ToLower(origin), ".sql") {
		return "row"
	}
	return "line"
}

// batch is a set of rows on its way to staging: good rows for the dump,
// bad ones for cmis_error_data_dump, and the source position of the last.
type batch struct {
	good [][]string
	bad  []store.BadRow
	last int64
}

// batchResult is what writing a batch gave. The batch's slices come back
// with it, for reuse.
type batchResult struct {
	batch
	added int64
	err   error
}

// writer writes batches to the generation on its own goroutine, one batch
// at a time, so the next batch can be read and checked meanwhile. Until the
// writer is stopped, only its goroutine uses the generation.
type writer struct {
	in   chan batch
	out  chan batchResult
	busy bool // a batch is in flight
}

func startWriter(ctx context.Context, gen *store.Generation, t store.DumpTable) *writer {
	w := &writer{in: make(chan batch), out: make(chan batchResult, 1)}
	go func() {
		for b := range w.in {
			r := batchResult{batch: b}
			if len(b.good) > 0 {
				if r.added, r.err = gen.Insert(ctx, t, b.good); r.err != nil {
					r.err = &stagingError{r.err}
				}
			}
			if r.err == nil && len(b.bad) > 0 {
				if err := gen.Reject(ctx, b.bad); err != nil {
					r.err = &stagingError{err}
				}
			}
			w.out <- r
		}
	}()
	return w
}

// put waits for the batch in flight, if any, and returns its result; unless
// that failed, it then hands b to the goroutine.
func (w *writer) put(b batch) (batchResult, bool) {
	r, ok := w.wait()
	if ok && r.err != nil {
		return r, true
	}
	w.in <- b
	w.busy = true
	return r, ok
}

// wait returns the result of the batch in flight, once written; ok is false
// when no batch was in flight.
func (w *writer) wait() (r batchResult, ok bool) {
	if !w.busy {
		return r, false
	}
	w.busy = false
	return <-w.out, true
}

// stop waits for the batch in flight and ends the goroutine.
func (w *writer) stop() {
	w.wait()
	close(w.in)
}

// protects adds to the reason of a refused row what the row keeps from
// deletion when its key could not be read whole: everything of its view
// that the parts it has match (see store.RefusedKey). parsed says the
// record was read as a row; known is how many parts of its key could be
// read. A row with its whole key keeps only what that key names, which
// goes without saying.
func protects(t store.DumpTable, b store.BadRow, parsed bool, known int) string {
	if known >= keyLen(t) {
		return ""
	}
	what := "key"
	if parsed {
		what = t.Columns()[known]
	}
	var scope string
	if t == store.ModuleGroups {
		// Memberships go with their groups.
		scope = "no grouping, group or membership is deleted"
		if known == 1 {
			scope = "nothing of module " + b.Module + " (its grouping, groups and memberships) is deleted"
		}
	} else {
		who := "student"
		if t == store.GroupTutors {
			who = "tutor"
		}
		switch known {
		case 0:
			scope = "no " + who + " is removed from a group"
		case 1:
			scope = "no " + who + " is removed from a group of module " + b.Module
		default:
			scope = "no " + who + " is removed from group " + b.Module + " " + b.Group
		}
	}
	return "; as its " + what + " cannot be read, " + scope + " by this run"
}
