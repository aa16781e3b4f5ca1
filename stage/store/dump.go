package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// DumpTable names one of the three tables that hold the last good extract of
// the CMIS views.
type DumpTable string

// The dump tables, in the order the extract step fills them.
const (
	ModuleGroups DumpTable = "cmis_groups_dump"
	GroupMembers DumpTable = "cmis_groupmembers_dump"
	GroupTutors  DumpTable = "cmis_tutgroupmembers_dump"
)

// DumpTables lists every dump table.
var DumpTables = []DumpTable{ModuleGroups, GroupMembers, GroupTutors}

// Columns returns the table's columns in the order Insert expects them.
func (t DumpTable) Columns() []string {
	switch t {
	case ModuleGroups:
		return []string{"modulecode", "groupcode", "modulename", "groupname"}
	case GroupMembers:
		return []string{"modulecode", "groupcode", "studentid"}
	case GroupTutors:
		return []string{"modulecode", "groupcode", "staffid"}
	}
	return nil
}

func (t DumpTable) valid() bool { return t.Columns() != nil }

func (t DumpTable) shadow() string { return string(t) + "_next" }

// BadRow is a source row the extract step refused, kept in
// cmis_error_data_dump with the reason.
type BadRow struct {
	Source string // query file or CSV file the row came from
	Line   int64  // row number in the source (1-based; 0 when unknown)
	Row    string // the row as read, rendered for humans
	Reason string
	// Table, Module, Group and CMISID are the row's key as far as it could
	// be read; an empty part is unknown and matches every value (a record
	// that could not be parsed at all has only Table). What a refused row
	// might have described is never deleted because of the extract it came
	// from: see RefusedKeys.
	Table                 DumpTable
	Module, Group, CMISID string
}

// RefusedKey is what a refused row of the current dump's extract protects:
// every staged object of its view whose key matches the known parts. An
// empty part is unknown and matches everything, and so do the parts after
// it: a member row whose group code could not be read protects every
// membership of its module in that view.
type RefusedKey struct {
	Table                 DumpTable
	Module, Group, CMISID string
	Source                string
	Line                  int64
	Reason                string
}

// Covers reports whether the refused key may describe the given key of its
// table (group is "" for a grouping, cmisid "" for a group).
func (k RefusedKey) Covers(module, group, cmisid string) bool {
	switch {
	case k.Module == "":
		return true
	case k.Module != module:
		return false
	case k.Group == "" || group == "":
		return true
	case k.Group != group:
		return false
	case k.CMISID == "" || cmisid == "":
		return true
	}
	return k.CMISID == cmisid
}

// RefusedKeys returns the refused rows of the extract that produced the
// current dump, with their keys. A later complete extract replaces them.
// While a MySQL commit is in flight, or after it was cut short, the refused
// rows of the extract being switched in count as well (see Commit).
func (s *Store) RefusedKeys(ctx context.Context) ([]RefusedKey, error) {
	keys, err := all(ctx, s.db, `SELECT e.dumptable, e.modulecode, e.groupcode, e.cmisid, e.source, e.line, e.reason FROM cmis_error_data_dump e
WHERE e.dumptable <> '' AND e.run_id IN (`+dumpRunsSQL+`)
ORDER BY e.id`, dumpRunsArgs(),
		func(r *sql.Rows) (RefusedKey, error) {
			var k RefusedKey
			var t string
			err := r.Scan(&t, &k.Module, &k.Group, &k.CMISID, &k.Source, &k.Line, &k.Reason)
			k.Table = DumpTable(t)
			return k, err
		})
	if err != nil {
		return nil, fmt.Errorf("read refused rows: %w", err)
	}
	return keys, nil
}

// Generation is one extract being written into the shadow tables. Nothing
// it writes is visible to the stage step until Commit replaces all three
// dumps at once; Abort (or a crash) leaves the previous dump as it was.
type Generation struct {
	s      *Store
	runID  string
	counts map[DumpTable]int64
	done   bool
	// loadData says rows go to MySQL with LOAD DATA LOCAL INFILE rather
	// than multi-row INSERTs; method says how rows are written and, when
	// the server does not allow the fast way, why.
	loadData bool
	method   string
	// beforeSwitch, set by tests, is called where a crash would fall
	// between replacing the dumps and recording the run they come from.
	beforeSwitch func() error
}

// insertBatch is the number of rows per multi-row INSERT: large enough to
// amortise round trips, small enough for both engines' placeholder limits.
const insertBatch = 500

// How a generation writes rows, as WriteMethod reports it.
const (
	methodLoadData = "LOAD DATA LOCAL INFILE, one transaction per batch"
	methodInsert   = "multi-row INSERT, one transaction per batch"
	// localInfileHint ends the MySQL method when LOAD DATA is not possible.
	localInfileHint = "SET GLOBAL local_infile = ON on the staging server (and local_infile = 1 in its configuration) makes extracts several times faster"
)

// BeginExtract empties the shadow tables and returns a generation to fill.
// On MySQL it asks the server once whether it accepts LOAD DATA LOCAL
// INFILE (@@local_infile) and falls back to multi-row INSERTs when not;
// WriteMethod says which was chosen and why.
func (s *Store) BeginExtract(ctx context.Context, runID string) (*Generation, error) {
	if err := s.clearShadows(ctx); err != nil {
		return nil, err
	}
	g := &Generation{s: s, runID: runID, counts: map[DumpTable]int64{}, method: "prepared " + methodInsert}
	if s.d.bulk {
		g.loadData, g.method = s.localInfile(ctx)
	}
	return g, nil
}

// WriteMethod describes how the generation writes rows to staging and, when
// that is not the fastest way the engine offers, why and what would enable
// it. The extract step logs it once.
func (g *Generation) WriteMethod() string { return g.method }

// clearShadows empties the shadow tables. MySQL truncates them: after a
// swapping Commit a shadow holds the whole previous dump, which TRUNCATE
// frees at once where DELETE would log every row (the dialect's emptyTable).
func (s *Store) clearShadows(ctx context.Context) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, t := range DumpTables {
			if _, err := tx.ExecContext(ctx, s.d.emptyTable(t.shadow())); err != nil {
				return fmt.Errorf("clear %s: %w", t.shadow(), err)
			}
		}
		return nil
	})
}

// Insert adds rows (values in Columns order) to the table's shadow, in one
// transaction. Rows whose key is already present are skipped; Insert returns
// how many were added, so the caller can tell duplicates apart. Any other
// problem with a row, such as a value longer than its column, is an error
// and nothing of the batch is kept.
//
// On MySQL the rows go through LOAD DATA LOCAL INFILE when the server allows
// it (streamed from memory, no file is written), else through multi-row
// INSERTs; on SQLite through a prepared multi-row INSERT.
func (g *Generation) Insert(ctx context.Context, t DumpTable, rows [][]string) (int64, error) {
	if g.done {
		return 0, errors.New("extract generation already finished")
	}
	if !t.valid() {
		return 0, fmt.Errorf("unknown dump table %q", t)
	}
	cols := t.Columns()
	for i, r := range rows {
		if len(r) != len(cols) {
			return 0, fmt.Errorf("%s row %d: %d values, want %d", t, i, len(r), len(cols))
		}
	}
	if len(rows) == 0 {
		return 0, nil
	}
	var (
		added int64
		err   error
	)
	if g.loadData {
		added, err = g.s.loadRows(ctx, t, rows)
		if refusedLoadData(err) {
			// local_infile was switched off since BeginExtract, or a proxy
			// refuses it: go on with INSERTs for the rest of the extract.
			g.loadData = false
			g.method = methodInsert + " (the server refused LOAD DATA LOCAL INFILE: " + err.Error() + "; " + localInfileHint + ")"
		}
	}
	if !g.loadData {
		added, err = g.s.insertDumpRows(ctx, t, rows)
	}
	if err != nil {
		return 0, err
	}
	g.counts[t] += added
	return added, nil
}

// insertDumpRows writes rows with multi-row INSERTs that skip existing keys,
// in one transaction, reusing one prepared statement for the full chunks.
func (s *Store) insertDumpRows(ctx context.Context, t DumpTable, rows [][]string) (int64, error) {
	cols := t.Columns()
	var added int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var full *sql.Stmt
		defer func() {
			if full != nil {
				full.Close()
			}
		}()
		args := make([]any, 0, min(len(rows), insertBatch)*len(cols))
		for start := 0; start < len(rows); start += insertBatch {
			chunk := rows[start:min(start+insertBatch, len(rows))]
			args = args[:0]
			for _, r := range chunk {
				for _, v := range r {
					args = append(args, v)
				}
			}
			var (
				res sql.Result
				err error
			)
			if len(chunk) == insertBatch {
				if full == nil {
					if full, err = tx.PrepareContext(ctx, insertSQL(t.shadow(), cols, insertBatch, s.d.skipDuplicates(cols[0]))); err != nil {
						return fmt.Errorf("insert into %s: %w", t.shadow(), err)
					}
				}
				res, err = full.ExecContext(ctx, args...)
			} else {
				res, err = tx.ExecContext(ctx, insertSQL(t.shadow(), cols, len(chunk), s.d.skipDuplicates(cols[0])), args...)
			}
			if err != nil {
				return fmt.Errorf("insert into %s: %w", t.shadow(), err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("insert into %s: %w", t.shadow(), err)
			}
			added += n
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return added, nil
}

// Reject records refused rows in cmis_error_data_dump, tagged with the run.
func (g *Generation) Reject(ctx context.Context, bad []BadRow) error {
	return g.s.RecordBadRows(ctx, g.runID, bad)
}

// RecordBadRows appends rows to cmis_error_data_dump.
func (s *Store) RecordBadRows(ctx context.Context, runID string, bad []BadRow) error {
	if len(bad) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO cmis_error_data_dump (run_id, source, line, rowdata, reason, dumptable, modulecode, groupcode, cmisid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, b := range bad {
			if _, err := stmt.ExecContext(ctx, runID, truncate(b.Source, 255), b.Line, truncateBytes(b.Row, textMax), truncate(b.Reason, 1000),
				string(b.Table), truncate(b.Module, 100), truncate(b.Group, 100), truncate(b.CMISID, 100)); err != nil {
				return fmt.Errorf("record bad row: %w", err)
			}
		}
		return nil
	})
}

// textMax is the most bytes a TEXT column holds on MySQL. SQLite has no
// limit; long text is cut the same way on both.
const textMax = 65535

// truncateBytes cuts s to at most n bytes, at a character boundary.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// Counts returns the rows added so far per table.
func (g *Generation) Counts() map[DumpTable]int64 {
	out := make(map[DumpTable]int64, len(g.counts))
	for k, v := range g.counts {
		out[k] = v
	}
	return out
}

// Commit replaces all three dumps with the shadow tables at once, empties
// the shadows, and records the generation's run as the one the dumps come
// from, so that RefusedKeys returns the rows this extract refused.
//
// SQLite copies the shadows into the dumps and records the run in one
// transaction. MySQL swaps each dump with its shadow in one atomic RENAME
// TABLE, which costs the same for a million rows as for ten; it copies
// instead, in one transaction with the run, when a dump and its shadow no
// longer have the same columns and primary key (a migration changed one and
// not the other). RENAME TABLE commits on its own, so no transaction can
// hold it and the run together: the new run is recorded as pending before
// the swap and as current after it. While it is pending, or if a crash
// leaves it so, the refused rows of the current run and of every pending
// one protect whichever dump is in place; when the server refuses the swap,
// the pending run is removed again.
func (g *Generation) Commit(ctx context.Context) error {
	if g.done {
		return errors.New("extract generation already finished")
	}
	var err error
	if g.s.d.bulk {
		err = g.s.swapDumps(ctx, g.runID, g.beforeSwitch)
	} else {
		err = g.s.copyDumps(ctx, g.runID, g.beforeSwitch)
	}
	if err != nil {
		return err
	}
	g.done = true
	return nil
}

// The cmissync_meta entries that name the runs whose refused rows protect
// the current dump: the run whose extract it is, and on MySQL, between
// recording a new run and swapping its dump in, that run too. Each pending
// run has its own entry (pendingDumpRun), so a commit cut short after
// another one was does not forget the first.
const (
	metaDumpRun        = "dump_run_id"
	metaDumpRunPending = "dump_run_pending:"
)

// dumpRunsSQL selects the runs whose refused rows protect the current dump;
// its arguments are dumpRunsArgs.
const dumpRunsSQL = `SELECT value FROM cmissync_meta WHERE name = ? OR name LIKE ?`

func dumpRunsArgs(more ...any) []any {
	return append([]any{metaDumpRun, metaDumpRunPending + "%"}, more...)
}

// pendingDumpRun names the cmissync_meta entry of a pending run; a hash
// keeps the name within the column whatever the run id's length.
func pendingDumpRun(runID string) string {
	sum := sha256.Sum256([]byte(runID))
	return metaDumpRunPending + hex.EncodeToString(sum[:8])
}

// setMeta records a cmissync_meta entry, replacing its previous value.
func setMeta(ctx context.Context, q querier, name, value string) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM cmissync_meta WHERE name = ?`, name); err != nil {
		return wrap(err, "record %s", name)
	}
	_, err := q.ExecContext(ctx, `INSERT INTO cmissync_meta (name, value) VALUES (?, ?)`, name, value)
	return wrap(err, "record %s", name)
}

// recordDumpRun makes runID the run of the current dump, with nothing
// pending.
func recordDumpRun(ctx context.Context, q querier, runID string) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM cmissync_meta WHERE name LIKE ?`, metaDumpRunPending+"%"); err != nil {
		return wrap(err, "clear the pending dump runs")
	}
	return setMeta(ctx, q, metaDumpRun, runID)
}

// copyDumps replaces each dump's rows by its shadow's and records runID as
// the dumps' run, in one transaction; beforeSwitch (tests) runs last in it.
func (s *Store) copyDumps(ctx context.Context, runID string, beforeSwitch func() error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, t := range DumpTables {
			cols := strings.Join(t.Columns(), ", ")
			for _, q := range []string{
				"DELETE FROM " + string(t),
				"INSERT INTO " + string(t) + " (" + cols + ") SELECT " + cols + " FROM " + t.shadow(),
				"DELETE FROM " + t.shadow(),
			} {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("replace %s: %w", t, err)
				}
			}
		}
		if err := recordDumpRun(ctx, tx, runID); err != nil {
			return err
		}
		if beforeSwitch != nil {
			return beforeSwitch()
		}
		return nil
	})
}

// Abort discards the shadow tables; the previous dump stays as it was.
func (g *Generation) Abort(ctx context.Context) error {
	if g.done {
		return nil
	}
	g.done = true
	return g.s.clearShadows(ctx)
}

// DumpCounts returns the row count of each committed dump table.
func (s *Store) DumpCounts(ctx context.Context) (map[DumpTable]int64, error) {
	out := map[DumpTable]int64{}
	for _, t := range DumpTables {
		var n int64
		if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+string(t)).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// BadRows returns the rows refused by a run's extract.
func (s *Store) BadRows(ctx context.Context, runID string) ([]BadRow, error) {
	return all(ctx, s.db, `SELECT source, line, rowdata, reason FROM cmis_error_data_dump WHERE run_id = ? ORDER BY id`, []any{runID},
		func(r *sql.Rows) (BadRow, error) {
			var b BadRow
			err := r.Scan(&b.Source, &b.Line, &b.Row, &b.Reason)
			return b, err
		})
}
