package extract

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/cmissync/cmissync/stage/store"
)

// ShrinkError is an extract held back by the shrink guard (see
// Options.ShrinkThreshold): it is much smaller than the dump committed
// before, so it was not committed, and the previous dump is kept. A CMIS
// outage that returns empty views looks like this. It is a safety stop
// waiting for an operator, who approves a real shrink with --approve-shrink.
type ShrinkError struct {
	// Threshold is the share of a table's rows an extract may lose.
	Threshold float64
	// Previous counts the rows of each committed dump table.
	Previous map[store.DumpTable]int64
	// New counts the rows of each table in the held extract.
	New map[store.DumpTable]int64
	// Tables lists the tables that shrank past the threshold or would be
	// emptied, in store.DumpTables order.
	Tables []store.DumpTable
}

// Error says which tables shrank by how much, that the previous dump is
// kept, and how to approve, e.g. "extract held by the shrink guard:
// cmis_groupmembers_dump would go from 1000 to 0 rows (-100%), more than
// the 50% a table may lose; ...".
func (e *ShrinkError) Error() string {
	var parts []string
	for _, t := range e.Tables {
		p, n := e.Previous[t], e.New[t]
		parts = append(parts, fmt.Sprintf("%s would go from %d to %d rows (-%.0f%%)", t, p, n, 100*float64(p-n)/float64(p)))
	}
	limit := fmt.Sprintf("more than the %s a table may lose", percent(e.Threshold))
	if e.Threshold >= 1 {
		limit = "emptying it"
	}
	return "extract held by the shrink guard: " + strings.Join(parts, "; ") + ", " + limit +
		". The previous dump is kept and Moodle is not changed from this extract. " +
		"Check that the CMIS views are complete; if CMIS really holds that much less, rerun with --approve-shrink"
}

// percent renders a share as a percentage without needless decimals.
func percent(share float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", 100*share), "0"), ".") + "%"
}

// shrinkFor compares the new counts with the committed ones and returns the
// error to hold the extract with, or nil. A table that was empty cannot
// shrink; one that would be emptied always counts.
func shrinkFor(previous, next map[store.DumpTable]int64, threshold float64) *ShrinkError {
	var over []store.DumpTable
	for _, t := range store.DumpTables {
		p, n := previous[t], next[t]
		if p == 0 || n >= p {
			continue
		}
		if n == 0 || float64(p-n)/float64(p) > threshold {
			over = append(over, t)
		}
	}
	if len(over) == 0 {
		return nil
	}
	return &ShrinkError{Threshold: threshold, Previous: maps.Clone(previous), New: maps.Clone(next), Tables: over}
}

// dumpCounts is the row count of each committed dump table, or why it is
// not known.
type dumpCounts struct {
	counts map[store.DumpTable]int64
	err    error
}

// countDump starts counting the committed dump on its own goroutine and
// returns a function that waits for the counts; it may be called any number
// of times.
func countDump(ctx context.Context, st *store.Store) func() dumpCounts {
	out := make(chan dumpCounts, 1)
	go func() {
		c, err := st.DumpCounts(ctx)
		out <- dumpCounts{counts: c, err: err}
	}()
	return sync.OnceValue(func() dumpCounts { return <-out })
}

// shrinkGuard holds the extract in res back when it is much smaller than the
// committed dump, unless the operator approved.
func shrinkGuard(previous dumpCounts, res Result, opts Options, log logrus.FieldLogger) error {
	if previous.err != nil {
		return fmt.Errorf("extract: shrink guard: %w", &stagingError{previous.err})
	}
	next := map[store.DumpTable]int64{}
	for _, t := range store.DumpTables {
		next[t] = res.Loaded[t]
	}
	se := shrinkFor(previous.counts, next, opts.ShrinkThreshold)
	if se == nil {
		return nil
	}
	fields := logrus.Fields{"threshold": opts.ShrinkThreshold}
	for _, t := range se.Tables {
		fields[string(t)] = fmt.Sprintf("%d -> %d", se.Previous[t], se.New[t])
	}
	if opts.ApproveShrink {
		log.WithFields(fields).Warn("extract much smaller than the last one; committing it as approved")
		return nil
	}
	log.WithFields(fields).Error("extract much smaller than the last one; held back, the previous dump is kept")
	return fmt.Errorf("extract: not committed: %w", se)
}
