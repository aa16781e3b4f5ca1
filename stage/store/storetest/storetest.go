// Package storetest opens fresh, migrated staging databases for tests, on
// both engines. Each call gets its own database (a SQLite file in the test's
// temporary directory, or a new MariaDB/MySQL database) which is dropped when
// the test ends, so tests can run in parallel and leave nothing behind.
//
// MySQL tests use the server at $CMISSYNC_TEST_MYSQL_DSN (default
// root@tcp(127.0.0.1:3306)/). When it cannot be reached the test is skipped
// with a loud message, unless CI=true, where it fails.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cmissync/cmissync/stage/store"
)

// Engines lists the engines every store-backed test runs on.
var Engines = []string{store.EngineSQLite, store.EngineMySQL}

// DefaultMySQLDSN is the server used when CMISSYNC_TEST_MYSQL_DSN is unset.
const DefaultMySQLDSN = "root@tcp(127.0.0.1:3306)/"

// Open returns a migrated store on a fresh database of the engine.
func Open(t testing.TB, engine string) *store.Store {
	t.Helper()
	engine, dsn := DSN(t, engine)
	ctx := t.Context()
	st, err := store.Open(ctx, engine, dsn)
	if err != nil {
		t.Fatalf("open %s staging: %v", engine, err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s staging: %v", engine, err)
	}
	return st
}

// DSN creates a fresh, empty database of the engine and returns the engine
// and the DSN to reach it (not migrated).
func DSN(t testing.TB, engine string) (string, string) {
	t.Helper()
	switch engine {
	case store.EngineSQLite:
		return engine, filepath.Join(t.TempDir(), "staging.db")
	case store.EngineMySQL:
		return engine, NewMySQLDatabase(t)
	}
	t.Fatalf("unknown engine %q", engine)
	return "", ""
}

// NewMySQLDatabase creates an empty utf8mb4 database on the test server,
// drops it when the test ends, and returns its DSN.
func NewMySQLDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv("CMISSYNC_TEST_MYSQL_DSN")
	if base == "" {
		base = DefaultMySQLDSN
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("CMISSYNC_TEST_MYSQL_DSN is not a valid DSN")
	}
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		RequireServer(t, "MariaDB/MySQL at "+cfg.Addr, err)
	}
	name := "cmissync_test_" + randomSuffix()
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		admin.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
		admin.Close()
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// RequireServer skips the test loudly because a server it needs is absent,
// or fails it when CI=true: CI must never pass by skipping.
func RequireServer(t testing.TB, what string, err error) {
	t.Helper()
	msg := "\n" + strings.Repeat("!", 72) + "\n!! SKIPPING: " + what + " is not reachable: " + err.Error() +
		"\n!! Start it (see README, Tests) or set CMISSYNC_TEST_MYSQL_DSN.\n" + strings.Repeat("!", 72)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "\n(CI=true: integration tests may not skip)")
	}
	t.Skip(msg)
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// DumpRows returns the rows of a committed dump table, each as its values
// joined by "|" in column order, sorted.
func DumpRows(t testing.TB, st *store.Store, table store.DumpTable) []string {
	t.Helper()
	cols := table.Columns()
	var out []string
	for _, r := range QueryStrings(t, st.DB(), "SELECT "+strings.Join(cols, ", ")+" FROM "+string(table)) {
		out = append(out, strings.Join(r, "|"))
	}
	sort.Strings(out)
	return out
}

// QueryStrings runs a query and returns every row with each column scanned
// as a string.
func QueryStrings(t testing.TB, db *sql.DB, query string, args ...any) [][]string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]string, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
