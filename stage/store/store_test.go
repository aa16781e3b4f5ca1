package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

func TestMigrateIsIdempotent(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		applied, err := st.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(applied) != 0 {
			t.Fatalf("second migrate applied %v, want nothing", applied)
		}
		if err := st.RequireSchema(ctx); err != nil {
			t.Fatal(err)
		}
		v, err := st.SchemaVersion(ctx)
		if err != nil || v < 1 {
			t.Fatalf("schema version %d, %v", v, err)
		}
	})
}

func TestRequireSchemaOnEmptyDatabase(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			eng, dsn := storetest.DSN(t, engine)
			st, err := store.Open(context.Background(), eng, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.RequireSchema(context.Background()); !errors.Is(err, store.ErrSchema) {
				t.Fatalf("RequireSchema on an empty database = %v, want ErrSchema", err)
			}
		})
	}
}

func TestLock(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		l, err := st.AcquireLock(ctx, "first", time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AcquireLock(ctx, "second", time.Hour, nil); !errors.Is(err, store.ErrLocked) {
			t.Fatalf("second acquire = %v, want ErrLocked", err)
		}
		info, err := st.CurrentLock(ctx)
		if err != nil || info == nil || info.Holder != "first" {
			t.Fatalf("CurrentLock = %+v, %v", info, err)
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
		l2, err := st.AcquireLock(ctx, "second", time.Hour, nil)
		if err != nil {
			t.Fatalf("acquire after release: %v", err)
		}
		defer l2.Release()
	})
}

func TestStaleLockIsTakenOver(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		// A holder that died: its heartbeat is old.
		_, err := st.DB().ExecContext(ctx, `INSERT INTO cmissync_lock (name, holder, acquired_at, heartbeat_at) VALUES ('run', 'dead', ?, ?)`,
			time.Now().UTC().Add(-2*time.Hour), time.Now().UTC().Add(-2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		l, err := st.AcquireLock(ctx, "alive", time.Hour, nil)
		if err != nil {
			t.Fatalf("stale lock not taken over: %v", err)
		}
		info, _ := st.CurrentLock(ctx)
		if info.Holder != "alive" {
			t.Fatalf("holder %q", info.Holder)
		}
		// A fresh lock whose holder is known dead is taken over at once.
		if _, err := st.AcquireLock(ctx, "third", time.Hour, func(h string) bool { return false }); !errors.Is(err, store.ErrLocked) {
			t.Fatalf("live holder overridden: %v", err)
		}
		l2, err := st.AcquireLock(ctx, "third", time.Hour, func(h string) bool { return h == "alive" })
		if err != nil {
			t.Fatalf("dead holder's lock not taken over: %v", err)
		}
		l2.Release()
		l.Release()
	})
}

func TestRunsAreRecorded(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for _, run := range []string{"r1", "r2"} {
			id, err := st.StartStep(ctx, run, "extract")
			if err != nil {
				t.Fatal(err)
			}
			if err := st.FinishStep(id, store.OutcomeOK, map[string]int64{"rows": 3}, ""); err != nil {
				t.Fatal(err)
			}
		}
		steps, err := st.RecentSteps(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) != 1 || steps[0].RunID != "r2" || steps[0].Outcome != store.OutcomeOK || steps[0].Counts["rows"] != 3 || steps[0].Finished == nil {
			t.Fatalf("recent steps = %+v", steps)
		}
	})
}

func dumpRows(n int) [][]string {
	var rows [][]string
	for i := 0; i < n; i++ {
		rows = append(rows, []string{"MOD", "G1", string(rune('a'+i%26)) + string(rune('a'+i/26))})
	}
	return rows
}

func TestExtractGenerationCommitAndAbort(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		gen, err := st.BeginExtract(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gen.Insert(ctx, store.ModuleGroups, [][]string{{"MOD", "G1", "Module", "Group 1"}}); err != nil {
			t.Fatal(err)
		}
		added, err := gen.Insert(ctx, store.GroupMembers, append(dumpRows(600), []string{"MOD", "G1", "aa"}))
		if err != nil {
			t.Fatal(err)
		}
		if added != 600 {
			t.Fatalf("added %d, want 600 (one duplicate skipped)", added)
		}
		counts, _ := st.DumpCounts(ctx)
		if counts[store.GroupMembers] != 0 {
			t.Fatalf("rows visible before commit: %v", counts)
		}
		if err := gen.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		counts, _ = st.DumpCounts(ctx)
		if counts[store.GroupMembers] != 600 || counts[store.ModuleGroups] != 1 {
			t.Fatalf("after commit: %v", counts)
		}
		// A second extract that is abandoned leaves the first in place.
		gen2, err := st.BeginExtract(ctx, "r2")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gen2.Insert(ctx, store.GroupMembers, dumpRows(5)); err != nil {
			t.Fatal(err)
		}
		if err := gen2.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		counts, _ = st.DumpCounts(ctx)
		if counts[store.GroupMembers] != 600 {
			t.Fatalf("after abort: %v", counts)
		}
	})
}

func TestMappingUpsert(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := st.UpsertMapping(ctx, store.Mapping{CourseID: 2, ModuleCode: "M1"}); err != nil {
			t.Fatal(err)
		}
		if err := st.UpsertMapping(ctx, store.Mapping{CourseID: 2, ModuleCode: "M1", GroupImport: store.ActionRemove}); err != nil {
			t.Fatal(err)
		}
		if err := st.UpsertMapping(ctx, store.Mapping{CourseID: 2, ModuleCode: "M1", GroupImport: "DEL"}); err == nil {
			t.Fatal("an action other than ADD/RMV was accepted")
		}
		ms, err := st.Mappings(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || ms[0].GroupImport != store.ActionRemove || ms[0].MappingAction != store.ActionAdd {
			t.Fatalf("mappings = %+v", ms)
		}
	})
}
