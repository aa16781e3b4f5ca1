package store_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// extractWith writes one generation of a single module group and one
// refused member row keyed by the run id, and returns it uncommitted.
func extractWith(t *testing.T, st *store.Store, runID string) *store.Generation {
	t.Helper()
	ctx := context.Background()
	g, err := st.BeginExtract(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Insert(ctx, store.ModuleGroups, [][]string{{runID, "G1", "", ""}}); err != nil {
		t.Fatal(err)
	}
	if err := g.Reject(ctx, []store.BadRow{{Source: "group_members.csv", Line: 2, Reason: "test",
		Table: store.GroupMembers, Module: runID, Group: "G1", CMISID: "S1"}}); err != nil {
		t.Fatal(err)
	}
	return g
}

// dumpState is the committed dump's module codes and the modules of the
// refused keys that protect it, e.g. "dump=A refused=A".
func dumpState(t *testing.T, st *store.Store) string {
	t.Helper()
	var dump []string
	for _, r := range storetest.DumpRows(t, st, store.ModuleGroups) {
		dump = append(dump, strings.Split(r, "|")[0])
	}
	keys, err := st.RefusedKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	for _, k := range keys {
		refused = append(refused, k.Module)
	}
	sort.Strings(refused)
	return fmt.Sprintf("dump=%s refused=%s", strings.Join(dump, ","), strings.Join(refused, ","))
}

// TestCommitKeepsDumpAndRefusalsTogether checks that the refused rows that
// protect the committed dump are those of the extract that produced it,
// whatever fails during Commit: a dump must never be left protected by
// another extract's refusals only.
func TestCommitKeepsDumpAndRefusalsTogether(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := extractWith(t, st, "A").Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := dumpState(t, st); got != "dump=A refused=A" {
			t.Fatalf("after the first commit: %s", got)
		}

		// Recording the run fails: the dump must stay A, protected by A.
		g := extractWith(t, st, "B")
		if _, err := st.DB().Exec("ALTER TABLE cmissync_meta RENAME TO cmissync_meta_away"); err != nil {
			t.Fatal(err)
		}
		err := g.Commit(ctx)
		if _, rerr := st.DB().Exec("ALTER TABLE cmissync_meta_away RENAME TO cmissync_meta"); rerr != nil {
			t.Fatal(rerr)
		}
		if err == nil {
			t.Fatal("commit succeeded without a place to record its run")
		}
		if err := g.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if got := dumpState(t, st); got != "dump=A refused=A" {
			t.Errorf("after a commit that could not record its run: %s, want dump=A refused=A", got)
		}

		// Two commits in a row crash where the dump and its run are
		// switched.
		crash := errors.New("simulated crash")
		for _, c := range []struct{ run, mysql string }{
			// The run id is recorded before RENAME TABLE, which commits on
			// its own: until a commit completes, every cut-short commit's
			// refusals count too.
			{"C", "dump=A refused=A,C"},
			{"E", "dump=A refused=A,C,E"},
		} {
			g = extractWith(t, st, c.run)
			store.SetBeforeSwitch(g, func() error { return crash })
			if err := g.Commit(ctx); !errors.Is(err, crash) {
				t.Fatalf("commit with a crash = %v", err)
			}
			want := "dump=A refused=A"
			if st.Engine() == store.EngineMySQL {
				want = c.mysql
			}
			if got := dumpState(t, st); got != want {
				t.Errorf("after a crash while committing %s: %s, want %s", c.run, got, want)
			}
			if err := g.Abort(ctx); err != nil {
				t.Fatal(err)
			}
		}

		if err := extractWith(t, st, "D").Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := dumpState(t, st); got != "dump=D refused=D" {
			t.Errorf("after a complete commit: %s, want dump=D refused=D", got)
		}
	})
}

// TestCommitRefusedRenamePutsRunBack makes MariaDB refuse the RENAME TABLE
// of a commit: nothing is renamed, so the previous dump keeps its own
// refusals only.
func TestCommitRefusedRenamePutsRunBack(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, store.EngineMySQL)
	if err := extractWith(t, st, "A").Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// RENAME TABLE moves each dump to NAME_swap first; an existing table of
	// that name makes the server refuse the whole statement.
	if _, err := st.DB().Exec("CREATE TABLE cmis_groupmembers_dump_swap (x INT)"); err != nil {
		t.Fatal(err)
	}
	g := extractWith(t, st, "B")
	if err := g.Commit(ctx); err == nil {
		t.Fatal("commit succeeded although the server refused the swap")
	} else {
		t.Logf("refused swap: %v", err)
	}
	if err := g.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dumpState(t, st); got != "dump=A refused=A" {
		t.Errorf("after a refused swap: %s, want dump=A refused=A", got)
	}
	if _, err := st.DB().Exec("DROP TABLE cmis_groupmembers_dump_swap"); err != nil {
		t.Fatal(err)
	}
	if err := extractWith(t, st, "C").Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dumpState(t, st); got != "dump=C refused=C" {
		t.Errorf("after the next commit: %s, want dump=C refused=C", got)
	}
}
