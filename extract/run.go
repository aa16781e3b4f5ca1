package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/stage/store"
)

// DefaultBatchSize is the number of rows Run gathers before writing them to
// staging, when Options.BatchSize is not set.
const DefaultBatchSize = 5000

// maxLoggedBadRows is how many bad rows per table Run logs one by one; the
// rest are counted (all are in cmis_error_data_dump).
const maxLoggedBadRows = 10

// Options tune Run.
type Options struct {
	// RunID tags the rows Run records in cmis_error_data_dump; empty means
	// one made from the current time.
	RunID string
	// BatchSize is the number of rows written to staging at a time (default
	// 5000). Run's memory does not grow with the number of rows, apart from
	// the set of keys it keeps to find duplicates.
	BatchSize int
	// Charset says how to read bytes from the source that are not valid
	// UTF-8: "AL32UTF8" (the default) rejects the row, "WE8ISO8859P1"
	// decodes them as ISO-8859-1.
	Charset string
	// BeforeCommit, when set, is called with the counts once all three views
	// are read and before the new dump replaces the previous one. An error
	// aborts the extract and keeps the previous dump: this is where a
	// mass-change guard checks that the extract is not far smaller than the
	// last one.
	BeforeCommit func(ctx context.Context, r Result) error
}

// Result counts the rows of an extract per dump table.
type Result struct {
	Source   string                    // the source's Describe()
	Read     map[store.DumpTable]int64 // records read from the source
	Loaded   map[store.DumpTable]int64 // rows written to the dump
	Rejected map[store.DumpTable]int64 // bad rows, recorded in cmis_error_data_dump
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
		return res, fmt.Errorf("extract: start: %w", err)
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		// The context may be cancelled already; the abort must still run.
		if aerr := gen.Abort(context.WithoutCancel(ctx)); aerr != nil {
			err = errors.Join(err, fmt.Errorf("extract: abort: %w", aerr))
		}
		log.WithError(err).Warn("extract abandoned; the previous dump is unchanged")
	}()

	chk := newChecker(charset)
	for _, t := range store.DumpTables {
		if err := runTable(ctx, src, gen, t, chk, opts.BatchSize, &res, log); err != nil {
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
		return res, fmt.Errorf("extract: commit: %w", err)
	}
	committed = true
	log.WithFields(logrus.Fields{
		"module_groups": res.Loaded[store.ModuleGroups],
		"members":       res.Loaded[store.GroupMembers],
		"tutors":        res.Loaded[store.GroupTutors],
		"rejected":      res.Rejected[store.ModuleGroups] + res.Rejected[store.GroupMembers] + res.Rejected[store.GroupTutors],
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

	good := make([][]string, 0, min(batchSize, 1<<16))
	var bad []store.BadRow
	flush := func() error {
		if len(good) > 0 {
			n, err := gen.Insert(ctx, t, good)
			if err != nil {
				return err
			}
			if n != int64(len(good)) {
				tlog.WithFields(logrus.Fields{"rows": len(good), "added": n}).
					Warn("staging skipped rows as duplicate keys that the extract saw as distinct")
			}
			res.Loaded[t] += n
			clear(good)
			good = good[:0]
		}
		if len(bad) > 0 {
			if err := gen.Reject(ctx, bad); err != nil {
				return err
			}
			bad = bad[:0]
		}
		return nil
	}
	// fail wraps an error with the table, the origin and the position:
	// "at" the row being handled, or "after" the last row read.
	fail := func(where string, line int64, err error) error {
		if line > 0 {
			return fmt.Errorf("extract %s from %s, %s %s %d: %w", t, origin, where, posWord(origin), line, err)
		}
		return fmt.Errorf("extract %s from %s: %w", t, origin, err)
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
			bad = append(bad, store.BadRow{Source: origin, Line: line, Row: rendered, Reason: reason})
		} else {
			good = append(good, vals)
		}
		if len(good) >= batchSize || len(bad) >= batchSize {
			if err := flush(); err != nil {
				return fail("at", line, err)
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
	if err := flush(); err != nil {
		return fail("after", rows.Line(), err)
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
