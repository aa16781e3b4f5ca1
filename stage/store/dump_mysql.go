package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
)

// This file holds the MySQL/MariaDB fast path of the extract: rows stream
// into the shadow tables with LOAD DATA LOCAL INFILE, and Commit swaps the
// shadows in with one RENAME TABLE.
//
// The driver needs nothing in the DSN for this: it always announces
// CLIENT_LOCAL_FILES, and a "Reader::name" file is served by a handler
// registered with mysql.RegisterReaderHandler, never from the file system
// (allowAllFiles stays off). The server must have local_infile ON.

// MySQL error numbers of a server that refuses LOAD DATA LOCAL INFILE.
const (
	errNotAllowedCommand       = 1148 // MariaDB, MySQL 5.7: "The used command is not allowed with this ... version"
	errClientLocalFileDisabled = 3948 // MySQL 8: "Loading local data is disabled"
)

// localInfile reports whether the MySQL server accepts LOAD DATA LOCAL
// INFILE, and the write method to report.
func (s *Store) localInfile(ctx context.Context) (bool, string) {
	var on int64
	if err := s.db.QueryRowContext(ctx, "SELECT @@local_infile").Scan(&on); err != nil {
		return false, methodInsert + " (could not read @@local_infile: " + err.Error() + ")"
	}
	if on == 0 {
		return false, methodInsert + " (the staging server has local_infile OFF; " + localInfileHint + ")"
	}
	return true, methodLoadData
}

// refusedLoadData reports whether err is the server refusing LOAD DATA
// LOCAL INFILE as such (rather than failing on the data).
func refusedLoadData(err error) bool {
	n := mysqlErrno(err)
	return n == errNotAllowedCommand || n == errClientLocalFileDisabled
}

// readerSeq makes reader handler names unique: handlers are registered
// process-wide, and several extracts (tests) may load at the same time.
var readerSeq atomic.Uint64

// loadRows writes rows into the table's shadow with LOAD DATA LOCAL INFILE
// in one transaction and returns how many were added.
//
// With LOCAL the server cannot stop the client mid-stream, so it behaves as
// if IGNORE were given: a duplicate key skips the row, and a value it cannot
// store (too long, wrong character) is cut or replaced, each with a warning.
// The warnings tell the two apart: every one must be a duplicate key, one per
// skipped row; anything else is an error and the batch is rolled back, so
// the outcome matches the INSERT path's.
func (s *Store) loadRows(ctx context.Context, t DumpTable, rows [][]string) (int64, error) {
	var added int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if added, err = loadData(ctx, tx, t.shadow(), t.Columns(), rows, true); err != nil {
			return err
		}
		return checkLoadWarnings(ctx, tx, t, rows, int64(len(rows))-added)
	})
	if err != nil {
		return 0, err
	}
	return added, nil
}

// loadData streams rows (values in cols order) into table with LOAD DATA
// LOCAL INFILE on tx and returns how many the server added; ignore adds
// IGNORE, which LOCAL implies anyway (a duplicate key skips the row with a
// warning). The caller reads the warnings: only diagnostic statements may
// run before that (a SELECT would clear them).
func loadData(ctx context.Context, tx *sql.Tx, table string, cols []string, rows [][]string, ignore bool) (int64, error) {
	name := "cmissync-" + table + "-" + strconv.FormatUint(readerSeq.Add(1), 10)
	mysql.RegisterReaderHandler(name, func() io.Reader { return &tsvReader{rows: rows} })
	defer mysql.DeregisterReaderHandler(name)
	mode := " "
	if ignore {
		mode = " IGNORE "
	}
	// Hex literals keep the separators right whatever the sql_mode
	// (NO_BACKSLASH_ESCAPES changes what '\t' means in a string literal).
	q := "LOAD DATA LOCAL INFILE 'Reader::" + name + "'" + mode + "INTO TABLE " + table +
		" CHARACTER SET utf8mb4 FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A' (" +
		strings.Join(cols, ", ") + ")"
	res, err := tx.ExecContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("load data into %s: %w", table, err)
	}
	added, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("load data into %s: %w", table, err)
	}
	return added, nil
}

// checkLoadWarnings reads the warnings of the LOAD DATA just run on tx and
// fails unless they are exactly one duplicate-key warning per skipped row.
// Only diagnostic statements run before they are read (SHOW ... WARNINGS),
// which keep the list; a SELECT would clear it.
func checkLoadWarnings(ctx context.Context, tx *sql.Tx, t DumpTable, rows [][]string, skipped int64) error {
	var count int64
	if err := tx.QueryRowContext(ctx, "SHOW COUNT(*) WARNINGS").Scan(&count); err != nil {
		return fmt.Errorf("load data into %s: count warnings: %w", t.shadow(), err)
	}
	if count == 0 && skipped == 0 {
		return nil
	}
	list, err := tx.QueryContext(ctx, "SHOW WARNINGS")
	if err != nil {
		return fmt.Errorf("load data into %s: read warnings: %w", t.shadow(), err)
	}
	defer list.Close()
	var first string
	for list.Next() {
		var (
			level, msg string
			code       int
		)
		if err := list.Scan(&level, &code, &msg); err != nil {
			return fmt.Errorf("load data into %s: read warnings: %w", t.shadow(), err)
		}
		if code != errDuplicateEntry && first == "" {
			first = fmt.Sprintf("%s %d: %s", level, code, msg)
			if n, ok := warningRow(msg); ok && n >= 1 && n <= len(rows) {
				first += fmt.Sprintf(" (%s)", strings.Join(rows[n-1], " | "))
			}
		}
	}
	if err := list.Err(); err != nil {
		return fmt.Errorf("load data into %s: read warnings: %w", t.shadow(), err)
	}
	switch {
	case first != "":
		return fmt.Errorf("load data into %s: %s; nothing of this batch was kept", t.shadow(), first)
	case count != skipped:
		return fmt.Errorf("load data into %s: %d rows skipped with %d warnings, expected one duplicate-key warning per skipped row; nothing of this batch was kept",
			t.shadow(), skipped, count)
	}
	return nil
}

// warningRow finds the batch row a LOAD DATA warning names ("... at row 3"),
// to show the values in the error. It only decorates the message.
func warningRow(msg string) (int, bool) {
	i := strings.LastIndex(msg, "row ")
	if i < 0 {
		return 0, false
	}
	digits := msg[i+len("row "):]
	end := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		digits = digits[:end]
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil
}

// tsvReader streams rows in the text format LOAD DATA reads with
// FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'.
type tsvReader struct {
	rows [][]string
	next int
	buf  []byte
	off  int
}

// tsvChunk is about how much text tsvReader encodes at a time.
const tsvChunk = 64 << 10

func (r *tsvReader) Read(p []byte) (int, error) {
	for r.off >= len(r.buf) {
		if r.next >= len(r.rows) {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		for r.next < len(r.rows) && len(r.buf) < tsvChunk {
			r.buf = appendTSVRow(r.buf, r.rows[r.next])
			r.next++
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// appendTSVRow appends one row as a line of tab-separated fields. The
// characters LOAD DATA would read as structure are escaped: backslash, tab,
// line feed, carriage return, NUL and Ctrl-Z (which Windows tools read as
// end of file). Nothing else needs it: no field is enclosed, so quotes are
// plain data, and "\N" (NULL) cannot appear because backslashes are doubled.
func appendTSVRow(b []byte, row []string) []byte {
	for i, v := range row {
		if i > 0 {
			b = append(b, '\t')
		}
		start := 0
		for j := 0; j < len(v); j++ {
			var esc byte
			switch v[j] {
			case '\\':
				esc = '\\'
			case '\t':
				esc = 't'
			case '\n':
				esc = 'n'
			case '\r':
				esc = 'r'
			case 0:
				esc = '0'
			case 0x1A:
				esc = 'Z'
			default:
				continue
			}
			b = append(b, v[start:j]...)
			b = append(b, '\\', esc)
			start = j + 1
		}
		b = append(b, v[start:]...)
	}
	return append(b, '\n')
}

// swapDumps makes the shadows the dumps with one RENAME TABLE, which MySQL
// and MariaDB apply atomically: readers see either every old dump or every
// new one. The old dumps, now the shadows, are then emptied. When a dump and
// its shadow differ in shape, it copies instead.
//
// RENAME TABLE commits implicitly, so runID cannot be recorded in the same
// transaction. It is recorded as pending first: from then on the refused
// rows of both the previous run and runID protect the dump in place, which
// covers either dump, and stays so if the process dies before the end.
// Only when the server refuses the RENAME (it then renames nothing) is the
// pending run removed: the previous dump is still in place and its own
// refusals protect it. beforeSwitch (tests) runs just before the RENAME.
func (s *Store) swapDumps(ctx context.Context, runID string, beforeSwitch func() error) error {
	for _, t := range DumpTables {
		same, err := s.sameShape(ctx, string(t), t.shadow())
		if err != nil {
			return fmt.Errorf("replace %s: %w", t, err)
		}
		if !same {
			return s.copyDumps(ctx, runID, beforeSwitch)
		}
	}
	pending := pendingDumpRun(runID)
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return setMeta(ctx, tx, pending, runID) }); err != nil {
		return fmt.Errorf("replace the dumps: %w", err)
	}
	if beforeSwitch != nil {
		if err := beforeSwitch(); err != nil {
			return err
		}
	}
	var pairs []string
	for _, t := range DumpTables {
		old := string(t) + "_swap"
		pairs = append(pairs, string(t)+" TO "+old, t.shadow()+" TO "+string(t), old+" TO "+t.shadow())
	}
	if _, err := s.db.ExecContext(ctx, "RENAME TABLE "+strings.Join(pairs, ", ")); err != nil {
		// A server error means nothing was renamed. Any other error (a lost
		// connection, a cancelled context) leaves unknown whether the
		// server renamed: the pending run stays.
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			if _, derr := s.db.ExecContext(context.WithoutCancel(ctx), `DELETE FROM cmissync_meta WHERE name = ?`, pending); derr != nil {
				err = errors.Join(err, fmt.Errorf("clear the pending dump run: %w", derr))
			}
		}
		return fmt.Errorf("replace the dumps: %w", err)
	}
	// The new dump is in place and protected by its own refusals (and the
	// previous run's while the pending entry stays): a failure from here on
	// is not the extract's, and the next commit records its run anyway.
	// The context may be cancelled by now; the record must still be made.
	after := context.WithoutCancel(ctx)
	_ = s.inTx(after, func(tx *sql.Tx) error { return recordDumpRun(after, tx, runID) })
	_ = s.clearShadows(ctx)
	return nil
}

// sameShape reports whether two MySQL tables of the current database have
// the same columns (names, order, types, nullability, defaults, collations)
// and the same indexes (by columns and uniqueness; names may differ).
func (s *Store) sameShape(ctx context.Context, a, b string) (bool, error) {
	shape := func(table string) (string, error) {
		var parts []string
		rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COALESCE(COLUMN_DEFAULT, '<none>'), COALESCE(COLLATION_NAME, '')
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, table)
		if err != nil {
			return "", err
		}
		defer rows.Close()
		for rows.Next() {
			var name, typ, null, def, coll string
			if err := rows.Scan(&name, &typ, &null, &def, &coll); err != nil {
				return "", err
			}
			parts = append(parts, strings.Join([]string{name, typ, null, def, coll}, " "))
		}
		if err := rows.Err(); err != nil {
			return "", err
		}
		// Index names may differ between a dump and its shadow; what they
		// cover and whether they are unique may not.
		idx := map[string]string{}
		irows, err := s.db.QueryContext(ctx, `SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME
FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX`, table)
		if err != nil {
			return "", err
		}
		defer irows.Close()
		for irows.Next() {
			var name, col string
			var nonUnique int
			if err := irows.Scan(&name, &nonUnique, &col); err != nil {
				return "", err
			}
			if _, ok := idx[name]; !ok {
				switch {
				case name == "PRIMARY":
					idx[name] = "primary:"
				case nonUnique == 0:
					idx[name] = "unique:"
				default:
					idx[name] = "index:"
				}
			}
			idx[name] += col + ","
		}
		if err := irows.Err(); err != nil {
			return "", err
		}
		var keys []string
		for _, k := range idx {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return strings.Join(parts, "; ") + " | " + strings.Join(keys, "; "), nil
	}
	sa, err := shape(a)
	if err != nil {
		return false, fmt.Errorf("read the definition of %s: %w", a, err)
	}
	sb, err := shape(b)
	if err != nil {
		return false, fmt.Errorf("read the definition of %s: %w", b, err)
	}
	return sa != "" && sa == sb, nil
}
