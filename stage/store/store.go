// Package store is the staging database shared by every pipeline step:
// extract writes the _dump tables, stage writes the staged groupings, groups
// and memberships with their toadd/todelete flags, and load reads the flags,
// records Moodle ids and logs REST errors. It runs on two engines, SQLite (the
// embedded default, a file) and MySQL/MariaDB (production), with the same
// schema created by numbered migrations in the sql/ directory. Everything
// engine-specific lives in the dialect; all values reach SQL through
// placeholders.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	sqlfiles "github.com/cmissync/cmissync/sql"
)

// Engine names accepted by Open.
const (
	EngineSQLite = "sqlite"
	EngineMySQL  = "mysql"
)

// Store is an open staging database.
type Store struct {
	db *sql.DB
	d  *dialect // chosen by Open; every engine difference is asked of it
	// busy measures the time during which a transaction is open (TxTime).
	busy busyClock
	// compactAudit says insertAudit writes a run of alike member entries
	// as one cmissync_audit row and its cmissync_audit_members
	// (dialect.consecutiveIDs); otherwise a row per entry.
	compactAudit bool
}

// TxTime is how long staging has been busy since the store was opened:
// the time during which at least one of its transactions was open, from
// begin to commit or rollback (transactions open at once count once).
// Every write of several rows is one, so this is the time staging spent
// writing (the load benchmarks report it as a share of a load's wall
// time).
func (s *Store) TxTime() time.Duration { return s.busy.total() }

// busyClock sums the time during which at least one task is open.
type busyClock struct {
	now   func() time.Time // nil: time.Now
	mu    sync.Mutex
	open  int
	since time.Time
	sum   time.Duration
}

func (c *busyClock) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *busyClock) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == 0 {
		c.since = c.clock()
	}
	c.open++
}

func (c *busyClock) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open--; c.open == 0 {
		c.sum += c.clock().Sub(c.since)
	}
}

func (c *busyClock) total() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open > 0 {
		return c.sum + c.clock().Sub(c.since)
	}
	return c.sum
}

// querier is what both *sql.DB and *sql.Tx offer, so the same code runs
// inside and outside a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Open connects to a staging database. For SQLite, dsn is a file path (it is
// created if missing); for MySQL it is a go-sql-driver DSN
// (user:pass@tcp(host:3306)/db). Open does not create or upgrade the schema:
// call Migrate.
func Open(ctx context.Context, engine, dsn string) (*Store, error) {
	d, err := dialectOf(engine)
	if err != nil {
		return nil, err
	}
	db, err := d.connect(dsn)
	if err != nil {
		return nil, fmt.Errorf("staging: open %s: %w", engine, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("staging: connect to %s: %w", engine, scrub(err))
	}
	return &Store{db: db, d: d, compactAudit: d.consecutiveIDs(pctx, db)}, nil
}

// scrub removes nothing today: the mysql driver never puts the password in
// connection errors. It exists so every error from Open passes one place that
// a future driver change can be handled in.
func scrub(err error) error { return err }

// Engine reports the engine name.
func (s *Store) Engine() string { return s.d.name }

// DB exposes the underlying handle for tests and for tools that inspect
// staging (status). Pipeline code uses the typed methods.
func (s *Store) DB() *sql.DB { return s.db }

// ConcurrentWriters reports whether transactions of the engine write at
// once (MySQL) rather than one after the other (SQLite): work on different
// tables gains from running side by side only where they do.
func (s *Store) ConcurrentWriters() bool { return s.d.concurrentWriters }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// inTx runs fn in a transaction, committing on success and rolling back on
// error or panic.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.inTxWith(ctx, nil, fn)
}

// inTxWith is inTx with options for the transaction (nil: the defaults).
func (s *Store) inTxWith(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) (err error) {
	s.busy.start()
	defer s.busy.stop()
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
				err = errors.Join(err, rerr)
			}
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Migration is one numbered schema file.
type Migration struct {
	Version int
	Name    string
}

// Migrate applies, in order, every migration of the engine not yet recorded
// in schema_migrations, each in its own transaction where the engine allows
// (MySQL commits DDL implicitly). It returns the migrations it applied.
func (s *Store) Migrate(ctx context.Context) ([]Migration, error) {
	files, err := sqlfiles.Migrations(s.d.name)
	if err != nil {
		return nil, err
	}
	return s.migrateFS(ctx, files)
}

func (s *Store) migrateFS(ctx context.Context, files fs.FS) ([]Migration, error) {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
  version BIGINT NOT NULL PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  applied_at VARCHAR(40) NOT NULL)`); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	all, err := listMigrations(files)
	if err != nil {
		return nil, err
	}
	done := map[int]bool{}
	rows, err := s.db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, err
		}
		done[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var applied []Migration
	for _, m := range all {
		if done[m.Version] {
			continue
		}
		body, err := fs.ReadFile(files, m.Name)
		if err != nil {
			return applied, err
		}
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			for i, stmt := range splitStatements(string(body)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("statement %d: %w", i+1, err)
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, time.Now().UTC().Format(time.RFC3339))
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migrate %s/%s: %w", s.d.name, m.Name, err)
		}
		applied = append(applied, m)
	}
	return applied, nil
}

// SchemaVersion returns the highest applied migration, or 0 on an empty
// database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		// No schema_migrations table yet, if the database answers
		// otherwise; a database that does not answer is not empty.
		var one int
		if perr := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); perr != nil {
			return 0, fmt.Errorf("read the staging schema version: %w", perr)
		}
		return 0, nil
	}
	return int(v.Int64), nil
}

// RequireSchema fails with a clear message when the staging schema is older
// than this binary's migrations.
func (s *Store) RequireSchema(ctx context.Context) error {
	files, err := sqlfiles.Migrations(s.d.name)
	if err != nil {
		return err
	}
	all, err := listMigrations(files)
	if err != nil {
		return err
	}
	have, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if want := all[len(all)-1].Version; have < want {
		return fmt.Errorf("%w: staging schema is at version %d, this cmissync needs %d: run `cmissync migrate`", ErrSchema, have, want)
	}
	return nil
}

// ErrSchema marks a staging database whose schema is missing or too old.
var ErrSchema = errors.New("staging schema out of date")

func listMigrations(files fs.FS) ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %q: name must start with a number and an underscore", n)
		}
		out = append(out, Migration{Version: v, Name: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations %q and %q share version %d", out[i-1].Name, out[i].Name, out[i].Version)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no migration files")
	}
	return out, nil
}

// splitStatements splits a SQL file on semicolons that end a statement,
// ignoring those inside quotes and comments.
func splitStatements(src string) []string {
	var (
		out   []string
		cur   strings.Builder
		quote rune
	)
	rs := []rune(src)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote != 0:
			cur.WriteRune(c)
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
			cur.WriteRune(c)
		case c == '-' && i+1 < len(rs) && rs[i+1] == '-':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
			cur.WriteRune('\n')
		case c == ';':
			if s := strings.TrimSpace(cur.String()); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		default:
			cur.WriteRune(c)
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}
