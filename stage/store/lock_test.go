package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cmissync/cmissync/stage/store"
)

// race has n would-be holders call AcquireLock at the same moment and
// returns the locks won and the errors of the others.
func race(t *testing.T, st *store.Store, n int, stale time.Duration, abandoned func(string) bool) ([]*store.Lock, []error) {
	t.Helper()
	var (
		mu    sync.Mutex
		won   []*store.Lock
		lost  []error
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			l, err := st.AcquireLock(context.Background(), fmt.Sprintf("racer %d", i), stale, abandoned)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				lost = append(lost, err)
			} else {
				won = append(won, l)
			}
		}()
	}
	close(start)
	wg.Wait()
	return won, lost
}

// checkOneWinner fails unless exactly one racer won and every other one was
// told the lock is held, and returns the winner.
func checkOneWinner(t *testing.T, won []*store.Lock, lost []error) *store.Lock {
	t.Helper()
	for _, err := range lost {
		if !errors.Is(err, store.ErrLocked) {
			t.Errorf("a racer failed with %v, want ErrLocked", err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d racers won the lock, want exactly 1 (%d lost)", len(won), len(lost))
	}
	return won[0]
}

func setLockRow(t *testing.T, st *store.Store, holder string, heartbeat time.Time) {
	t.Helper()
	if _, err := st.DB().Exec(`DELETE FROM cmissync_lock`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(`INSERT INTO cmissync_lock (name, holder, acquired_at, heartbeat_at) VALUES ('run', ?, ?, ?)`,
		holder, heartbeat, heartbeat); err != nil {
		t.Fatal(err)
	}
}

// release releases l and checks who holds the lock afterwards ("" for
// nobody).
func release(t *testing.T, st *store.Store, l *store.Lock, want string) {
	t.Helper()
	if err := l.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if h := holderOf(t, st); h != want {
		t.Fatalf("after Release the holder is %q, want %q", h, want)
	}
}

func holderOf(t *testing.T, st *store.Store) string {
	t.Helper()
	info, err := st.CurrentLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info == nil {
		return ""
	}
	return info.Holder
}

func TestLockRaceHasOneWinner(t *testing.T) {
	const racers, rounds = 16, 40
	dead := func(h string) bool { return h == "dead run" }
	starts := []struct {
		name      string
		setup     func(t *testing.T, st *store.Store)
		abandoned func(string) bool
	}{
		{"free", func(*testing.T, *store.Store) {}, nil},
		{"stale", func(t *testing.T, st *store.Store) {
			setLockRow(t, st, "stale run", time.Now().UTC().Add(-2*time.Hour))
		}, nil},
		{"abandoned", func(t *testing.T, st *store.Store) { setLockRow(t, st, "dead run", time.Now().UTC()) }, dead},
	}
	eachEngine(t, func(t *testing.T, st *store.Store) {
		for _, s := range starts {
			t.Run(s.name, func(t *testing.T) {
				for range rounds {
					s.setup(t, st)
					won, lost := race(t, st, racers, time.Hour, s.abandoned)
					release(t, st, checkOneWinner(t, won, lost), "")
				}
			})
		}
	})
}

func TestLockTakeoverAndRelease(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()

		// A live holder keeps it, and the loser is told who holds it.
		first, err := st.AcquireLock(ctx, "first", time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.AcquireLock(ctx, "second", time.Hour, func(string) bool { return false })
		if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "held by first") {
			t.Fatalf("second acquire = %v, want ErrLocked naming the holder", err)
		}

		// A holder reported abandoned is replaced, and its late Release does
		// not free the lock of the run that took over.
		second, err := st.AcquireLock(ctx, "second", time.Hour, func(h string) bool { return h == "first" })
		if err != nil {
			t.Fatalf("abandoned holder not taken over: %v", err)
		}
		release(t, st, first, "second")

		// A stale heartbeat is taken over without asking abandoned; a fresh
		// one is not.
		setLockRow(t, st, "second", time.Now().UTC().Add(-11*time.Minute))
		if _, err := st.AcquireLock(ctx, "third", time.Hour, nil); !errors.Is(err, store.ErrLocked) {
			t.Fatalf("a lock 11 minutes old with a 1h limit was taken over: %v", err)
		}
		third, err := st.AcquireLock(ctx, "third", 10*time.Minute, nil)
		if err != nil {
			t.Fatalf("stale lock not taken over: %v", err)
		}
		release(t, st, second, "third")
		release(t, st, third, "")

		// Release works once the run's context is cancelled, and twice.
		runCtx, cancel := context.WithCancel(ctx)
		fourth, err := st.AcquireLock(runCtx, "fourth", time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		release(t, st, fourth, "")
		release(t, st, fourth, "")
		fifth, err := st.AcquireLock(ctx, "fifth", time.Hour, nil)
		if err != nil {
			t.Fatalf("acquire after release: %v", err)
		}
		defer fifth.Release()
	})
}

// TestLockContentionIsErrLocked holds the lock row in an open transaction,
// so that the database itself refuses AcquireLock (MariaDB: lock wait
// timeout 1205; SQLite: busy). That is another run at work, not a failure.
func TestLockContentionIsErrLocked(t *testing.T) {
	eachDSN(t, func(t *testing.T, eng, dsn string) {
		var blocker *sql.DB
		var err error
		switch eng {
		case store.EngineMySQL:
			// A one-second lock wait, set on the server's connections,
			// makes the wait end in error 1205.
			blocker, err = sql.Open("mysql", dsn)
			cfg, perr := mysql.ParseDSN(dsn)
			if perr != nil {
				t.Fatal(perr)
			}
			cfg.Params = map[string]string{"innodb_lock_wait_timeout": "1"}
			dsn = cfg.FormatDSN()
		case store.EngineSQLite:
			blocker, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=journal_mode(WAL)&_txlock=immediate")
		}
		if err != nil {
			t.Fatal(err)
		}
		defer blocker.Close()
		st, err := store.Open(context.Background(), eng, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		tx, err := blocker.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		now := time.Now().UTC()
		if _, err := tx.Exec(`INSERT INTO cmissync_lock (name, holder, acquired_at, heartbeat_at) VALUES ('run', 'uncommitted', ?, ?)`, now, now); err != nil {
			t.Fatal(err)
		}
		_, err = st.AcquireLock(context.Background(), "waiting", time.Hour, nil)
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("AcquireLock while another transaction holds the lock row = %v, want ErrLocked", err)
		}
	})
}
