package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"
)

// dialect is everything that differs between the two staging engines. Open
// chooses one and the rest of the store asks it, so that no SQL string and
// no error test carries an engine switch of its own. Everything else is the
// SQL both engines accept alike.
type dialect struct {
	// name is the engine name (EngineSQLite or EngineMySQL), which also
	// names the directory of its migrations under sql/.
	name string
	// connect opens the database named by the DSN.
	connect func(dsn string) (*sql.DB, error)
	// emptyTable empties a table.
	emptyTable func(table string) string
	// skipDuplicates ends a multi-row INSERT so that a row whose key exists
	// is skipped while every other problem (a value too long) stays an
	// error; firstCol is the statement's first column.
	skipDuplicates func(firstCol string) string
	// concat joins string expressions.
	concat func(parts ...string) string
	// updateJoin builds an UPDATE of table joined by id to nrows rows of
	// values, given as placeholders in the order id, cols..., row after
	// row, and seen as a table v with columns v_id and cols: set assigns
	// from them ("moodleuserid = v.v_uid") and where adds conditions on
	// table's row (" AND toadd = 1").
	updateJoin func(table string, cols []string, nrows int, set, where string) string
	// tempJoin says updateJoin fills a temporary table and runs one
	// UPDATE joined to it when the rows are many (MySQL), rather than a
	// statement per rowsPerJoin rows.
	tempJoin bool
	// concurrentWriters says several transactions may write at once
	// (MySQL); SQLite takes one writer at a time, and the others wait.
	concurrentWriters bool
	// copyRows are the options of a transaction that copies rows from
	// table to table with INSERT ... SELECT (nil: the defaults). MySQL's
	// default, REPEATABLE READ, locks every row read; READ COMMITTED
	// reads a consistent snapshot without locking, and the run lock keeps
	// other writers out.
	copyRows *sql.TxOptions
	// bulk says the engine can load rows with LOAD DATA LOCAL INFILE and
	// swap tables with one atomic RENAME TABLE (MySQL and MariaDB).
	bulk bool
	// isDuplicate reports a duplicate-key error; isDeadlock a statement
	// rolled back to break a deadlock; isContention an error that only says
	// another transaction held what the statement needed.
	isDuplicate, isDeadlock, isContention func(error) bool
	// firstID is the id given to the first row of a multi-row INSERT of n
	// rows, from its result: MySQL reports the first, SQLite the last.
	firstID func(res sql.Result, n int) (int64, error)
	// consecutiveIDs reports whether a multi-row INSERT ... VALUES gives
	// its rows ids one apart, so that firstID names them all. SQLite
	// does (one writer at a time); MySQL and MariaDB do unless
	// innodb_autoinc_lock_mode is 2 (interleaved: MySQL 8's default) or
	// auto_increment_increment is not 1 (Galera clusters).
	consecutiveIDs func(ctx context.Context, db *sql.DB) bool
}

// dialectOf returns the dialect of an engine.
func dialectOf(engine string) (*dialect, error) {
	switch engine {
	case EngineSQLite:
		return &sqliteDialect, nil
	case EngineMySQL:
		return &mysqlDialect, nil
	}
	return nil, fmt.Errorf("staging: unknown engine %q (want %q or %q)", engine, EngineSQLite, EngineMySQL)
}

var sqliteDialect = dialect{
	name: EngineSQLite,
	connect: func(dsn string) (*sql.DB, error) {
		if dsn == "" {
			return nil, errors.New("sqlite needs a file path")
		}
		// WAL lets the stage step read sorted streams while it writes its
		// changes; busy_timeout makes a second writer wait instead of
		// failing. A page cache of 16 MB per connection (SQLite's
		// default is 2 MB) holds the B-tree pages a load's recording
		// touches: writing a wave of 62,000 audit rows into a trail of
		// 700,000 took 0.36 s instead of 0.53 s, with fewer spills of
		// dirty pages to the WAL mid-transaction.
		db, err := sql.Open("sqlite", "file:"+dsn+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-16384)&_txlock=immediate")
		if err == nil {
			// A stage reads three sorted streams while its writer writes:
			// two more connections leave room for the run lock's heartbeat
			// and a reader such as status.
			db.SetMaxOpenConns(6)
		}
		return db, err
	},
	emptyTable:     func(table string) string { return "DELETE FROM " + table },
	skipDuplicates: func(string) string { return " ON CONFLICT DO NOTHING" },
	concat:         func(parts ...string) string { return strings.Join(parts, " || ") },
	// A VALUES list named by a WITH clause, and UPDATE ... FROM.
	updateJoin: func(table string, cols []string, nrows int, set, where string) string {
		var b strings.Builder
		b.WriteString("WITH v(v_id, " + strings.Join(cols, ", ") + ") AS (VALUES ")
		one := "(" + placeholders(len(cols)+1) + ")"
		for k := 0; k < nrows; k++ {
			if k > 0 {
				b.WriteString(", ")
			}
			b.WriteString(one)
		}
		b.WriteString(") UPDATE " + table + " SET " + set + " FROM v WHERE " + table + ".id = v.v_id" + where)
		return b.String()
	},
	isDuplicate: func(err error) bool {
		// SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE
		var se *sqlite.Error
		return errors.As(err, &se) && (se.Code() == 1555 || se.Code() == 2067)
	},
	isDeadlock: func(error) bool { return false }, // one writer at a time: SQLite waits, never deadlocks
	firstID: func(res sql.Result, n int) (int64, error) {
		last, err := res.LastInsertId()
		return last - int64(n) + 1, err
	},
	consecutiveIDs: func(context.Context, *sql.DB) bool { return true },
	isContention: func(err error) bool {
		// SQLITE_BUSY and SQLITE_LOCKED, with their extended codes.
		var se *sqlite.Error
		if !errors.As(err, &se) {
			return false
		}
		primary := se.Code() & 0xff
		return primary == 5 || primary == 6
	},
}

// MySQL error numbers the store tells apart.
const (
	errDuplicateEntry = 1062 // ER_DUP_ENTRY
	errLockWait       = 1205 // ER_LOCK_WAIT_TIMEOUT
	errDeadlock       = 1213 // ER_LOCK_DEADLOCK
)

func mysqlErrno(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

var mysqlDialect = dialect{
	name:              EngineMySQL,
	concurrentWriters: true,
	tempJoin:          true,
	copyRows:          &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	connect: func(dsn string) (*sql.DB, error) {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			// ParseDSN errors can quote the DSN, password included.
			return nil, errors.New("the mysql DSN is not valid (expected user:password@tcp(host:port)/database)")
		}
		cfg.ParseTime = true
		cfg.Loc = time.UTC
		// Times are kept in UTC: Go writes them so (Loc), and the column
		// defaults (CURRENT_TIMESTAMP) must be taken in UTC too, whatever
		// the server's zone, or they read back hours off.
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["time_zone"] = "'+00:00'"
		// The collation implies the utf8mb4 connection character set.
		cfg.Collation = "utf8mb4_unicode_ci"
		cfg.AllowNativePasswords = true
		// A statement with arguments is sent with them in its text, in one
		// round trip, rather than prepared, executed and closed: most
		// statements run once, and a round trip is what they cost most on
		// a busy host (the first Large load's staging time on 2 shared
		// cores: 31-37% of its wall before, 29% after). Safe with utf8mb4;
		// the driver falls back to preparing what it cannot interpolate.
		cfg.InterpolateParams = true
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, err
		}
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(8)
		db.SetConnMaxLifetime(5 * time.Minute)
		return db, nil
	},
	// TRUNCATE frees a table at once where DELETE would log every row.
	emptyTable: func(table string) string { return "TRUNCATE TABLE " + table },
	// A no-op update (rather than INSERT IGNORE) keeps real errors, such as
	// over-long values, as errors.
	skipDuplicates: func(firstCol string) string { return " ON DUPLICATE KEY UPDATE " + firstCol + " = " + firstCol },
	concat:         func(parts ...string) string { return "CONCAT(" + strings.Join(parts, ", ") + ")" },
	// A derived table of SELECTs joined to the table (UPDATE ... JOIN).
	updateJoin: func(table string, cols []string, nrows int, set, where string) string {
		var b strings.Builder
		b.WriteString("UPDATE " + table + " JOIN (SELECT ? AS v_id")
		for _, c := range cols {
			b.WriteString(", ? AS " + c)
		}
		more := " UNION ALL SELECT " + placeholders(len(cols)+1)
		for k := 1; k < nrows; k++ {
			b.WriteString(more)
		}
		b.WriteString(") v ON " + table + ".id = v.v_id SET " + set + " WHERE 1=1" + where)
		return b.String()
	},
	bulk:        true,
	isDuplicate: func(err error) bool { return mysqlErrno(err) == errDuplicateEntry },
	isDeadlock:  func(err error) bool { return mysqlErrno(err) == errDeadlock },
	firstID:     func(res sql.Result, _ int) (int64, error) { return res.LastInsertId() },
	consecutiveIDs: func(ctx context.Context, db *sql.DB) bool {
		var mode, step int64
		err := db.QueryRowContext(ctx, `SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment`).Scan(&mode, &step)
		return err == nil && mode != 2 && step == 1
	},
	isContention: func(err error) bool {
		n := mysqlErrno(err)
		return n == errDeadlock || n == errLockWait
	},
}

// insertSQL is the one multi-row INSERT builder of the store: nrows rows of
// len(cols) placeholders, followed by suffix (such as the dialect's
// skipDuplicates, or "").
func insertSQL(table string, cols []string, nrows int, suffix string) string {
	row := "(" + placeholders(len(cols)) + ")"
	var b strings.Builder
	b.Grow(len(table) + 32 + nrows*(len(row)+2) + len(suffix))
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	for i := 0; i < nrows; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(suffix)
	return b.String()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
