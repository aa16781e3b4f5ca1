package extract_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/extract"
	"github.com/cmissync/cmissync/extract/sample"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// TestShrinkGuard runs, on both engines, a first extract, then the
// canonical outage (every view empty) and a partial one (most members
// gone): each is held with a ShrinkError and the previous dump kept, until
// approved. A first extract, even an empty one, is never held.
func TestShrinkGuard(t *testing.T) {
	full := sample.Generate(sample.Demo())
	fullDir := t.TempDir()
	if err := sample.WriteCSV(fullDir, full); err != nil {
		t.Fatal(err)
	}
	emptyDir := writeFiles(t, map[string]string{
		"module_groups.csv": "modulecode,groupcode,modulename,groupname\n",
		"group_members.csv": "modulecode,groupcode,studentid\n",
		"group_tutors.csv":  "modulecode,groupcode,staffid\n",
	})
	// Every group kept, a quarter of the members.
	partial := full
	partial.Members = full.Members[:len(full.Members)/4]
	partialDir := t.TempDir()
	if err := sample.WriteCSV(partialDir, partial); err != nil {
		t.Fatal(err)
	}

	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := storetest.Open(t, engine)
			run := func(dir string, opts extract.Options) (extract.Result, error) {
				t.Helper()
				src, err := extract.OpenCSV(dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer src.Close()
				return extract.Run(ctx, src, st, opts, quietLog())
			}
			guarded := extract.Options{ShrinkThreshold: 0.5}

			// An empty first extract into an empty dump is not a shrink.
			if _, err := run(emptyDir, guarded); err != nil {
				t.Fatalf("empty first extract: %v", err)
			}
			if _, err := run(fullDir, guarded); err != nil {
				t.Fatalf("full extract after an empty one: %v", err)
			}
			want := counts(full)

			for _, c := range []struct {
				name   string
				dir    string
				tables []store.DumpTable
				newN   map[store.DumpTable]int64
			}{
				{"empty views", emptyDir, store.DumpTables, map[store.DumpTable]int64{}},
				{"three quarters of the members gone", partialDir, []store.DumpTable{store.GroupMembers}, counts(partial)},
			} {
				_, err := run(c.dir, guarded)
				var se *extract.ShrinkError
				if !errors.As(err, &se) {
					t.Fatalf("%s: error %v, want a ShrinkError", c.name, err)
				}
				if se.Threshold != 0.5 || strings.Join(tableNames(se.Tables), ",") != strings.Join(tableNames(c.tables), ",") {
					t.Errorf("%s: threshold %v, tables %v; want 0.5, %v", c.name, se.Threshold, se.Tables, c.tables)
				}
				for _, tb := range store.DumpTables {
					if se.Previous[tb] != want[tb] || se.New[tb] != c.newN[tb] {
						t.Errorf("%s: %s previous %d new %d, want %d and %d", c.name, tb, se.Previous[tb], se.New[tb], want[tb], c.newN[tb])
					}
				}
				for _, w := range []string{"--approve-shrink", "previous dump is kept", "cmis_groupmembers_dump would go from"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: message %q lacks %q", c.name, err, w)
					}
				}
				if adv := strings.Join(extract.Advice(err), " "); !strings.Contains(adv, "--approve-shrink") {
					t.Errorf("%s: advice %q does not say how to approve", c.name, adv)
				}
				if got := dumpCounts(t, st); !equalCounts(got, want) {
					t.Errorf("%s: dump %v after a held extract, want the previous %v", c.name, got, want)
				}
			}

			// A looser threshold lets the partial extract through, and an
			// approval lets the outage through.
			if _, err := run(partialDir, extract.Options{ShrinkThreshold: 0.8}); err != nil {
				t.Fatalf("partial extract with threshold 0.8: %v", err)
			}
			if got := dumpCounts(t, st); !equalCounts(got, counts(partial)) {
				t.Errorf("dump %v, want the partial extract's %v", got, counts(partial))
			}
			if _, err := run(emptyDir, extract.Options{ShrinkThreshold: 0.5, ApproveShrink: true}); err != nil {
				t.Fatalf("approved empty extract: %v", err)
			}
			if got := dumpCounts(t, st); !equalCounts(got, map[store.DumpTable]int64{}) {
				t.Errorf("dump %v after an approved empty extract, want it empty", got)
			}
			// With the guard off, nothing is held.
			if _, err := run(fullDir, extract.Options{}); err != nil {
				t.Fatal(err)
			}
			if _, err := run(emptyDir, extract.Options{}); err != nil {
				t.Fatalf("empty extract with the guard off: %v", err)
			}
		})
	}
}

func TestShrinkThresholdRange(t *testing.T) {
	st := storetest.Open(t, store.EngineSQLite)
	src, err := extract.OpenCSV(writeFiles(t, map[string]string{
		"module_groups.csv": "modulecode,groupcode\n",
		"group_members.csv": "modulecode,groupcode,studentid\n",
		"group_tutors.csv":  "modulecode,groupcode,staffid\n",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, th := range []float64{-0.1, 1.5} {
		if _, err := extract.Run(context.Background(), src, st, extract.Options{ShrinkThreshold: th}, nil); err == nil || !strings.Contains(err.Error(), "shrink threshold") {
			t.Errorf("threshold %v: %v", th, err)
		}
	}
	if _, err := extract.Run(context.Background(), src, st, extract.Options{ShrinkThreshold: 1}, nil); err != nil {
		t.Errorf("threshold 1: %v", err)
	}
}

func tableNames(ts []store.DumpTable) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}
