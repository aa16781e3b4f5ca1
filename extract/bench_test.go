package extract_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cmissync/cmissync/extract"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// Shape of the benchmark's data: 2,000 modules of 5 groups with 100
// students and 1 tutor each, so 1,000,000 membership rows.
const (
	benchModules  = 2000
	benchGroups   = 5
	benchStudents = 100
)

// benchRows generates the benchmark's rows, the same on every call, in the
// order a CMIS view would return them: by module and group, students in no
// particular order.
func benchRows() map[store.DumpTable][][]string {
	rng := rand.New(rand.NewPCG(2024, 10))
	out := map[store.DumpTable][][]string{}
	for m := range benchModules {
		module := fmt.Sprintf("MOD%05d", m)
		for g := range benchGroups {
			group := fmt.Sprintf("SEM%02d", g+1)
			out[store.ModuleGroups] = append(out[store.ModuleGroups],
				[]string{module, group, fmt.Sprintf("Module %d: Études avancées", m), fmt.Sprintf("Seminar group %d", g+1)})
			seen := map[string]bool{}
			for len(seen) < benchStudents {
				id := fmt.Sprintf("%08d", rng.IntN(100_000_000))
				if seen[id] {
					continue
				}
				seen[id] = true
				out[store.GroupMembers] = append(out[store.GroupMembers], []string{module, group, id})
			}
			out[store.GroupTutors] = append(out[store.GroupTutors], []string{module, group, fmt.Sprintf("S%06d", rng.IntN(1_000_000))})
		}
	}
	return out
}

// writeBenchFiles writes each table's rows as the CSV file the extract
// reads and as the TSV file LOAD DATA reads, and returns the TSV paths.
func writeBenchFiles(b *testing.B, dir string, data map[store.DumpTable][][]string) map[store.DumpTable]string {
	b.Helper()
	tsv := map[store.DumpTable]string{}
	for _, t := range store.DumpTables {
		write := func(path string, fn func(w *bufio.Writer) error) {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriterSize(f, 1<<20)
			if err := fn(w); err != nil {
				b.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		}
		write(filepath.Join(dir, extract.DefaultCSVFile(t)), func(w *bufio.Writer) error {
			cw := csv.NewWriter(w)
			if err := cw.Write(t.Columns()); err != nil {
				return err
			}
			if err := cw.WriteAll(data[t]); err != nil {
				return err
			}
			return cw.Error()
		})
		// The generated values hold no tab, newline or backslash: the TSV
		// needs no escaping.
		tsv[t] = filepath.Join(dir, extract.DefaultCSVFile(t)+".tsv")
		write(tsv[t], func(w *bufio.Writer) error {
			for _, r := range data[t] {
				if _, err := w.WriteString(strings.Join(r, "\t") + "\n"); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return tsv
}

// BenchmarkExtractMembersMariaDB extracts 1,000,000 membership rows (plus
// their 10,000 groups and tutors) from CSV files into MariaDB staging through
// Run, the whole path from the source to the committed dump, with the shrink
// guard on. In the same iteration it times MariaDB's own LOAD DATA LOCAL
// INFILE of the same rows, from TSV files into fresh tables shaped like the
// dumps, and reports both rates and their ratio:
//
//	go test -run '^$' -bench ExtractMembersMariaDB -benchtime 3x ./extract/
//
// Skipped with -short, and when MariaDB is absent (failed when CI=true).
func BenchmarkExtractMembersMariaDB(b *testing.B) {
	if testing.Short() {
		b.Skip("-short: skipping the 1,000,000-row benchmark")
	}
	st := storetest.Open(b, store.EngineMySQL)
	ctx := context.Background()
	dir := b.TempDir()
	data := benchRows()
	var total int64
	want := map[store.DumpTable]int64{}
	for _, t := range store.DumpTables {
		want[t] = int64(len(data[t]))
		total += want[t]
	}
	tsv := writeBenchFiles(b, dir, data)
	data = nil // Run must not need the rows in memory
	for _, path := range tsv {
		mysql.RegisterLocalFile(path)
		defer mysql.DeregisterLocalFile(path)
	}
	db := st.DB()

	var runTime, loadTime time.Duration
	var method string
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for _, t := range store.DumpTables {
			raw := "bench_" + string(t)
			if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+raw); err != nil {
				b.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "CREATE TABLE "+raw+" LIKE "+string(t)); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		for _, t := range store.DumpTables {
			q := "LOAD DATA LOCAL INFILE '" + tsv[t] + "' INTO TABLE bench_" + string(t) +
				" CHARACTER SET utf8mb4 FIELDS TERMINATED BY X'09' LINES TERMINATED BY X'0A' (" + strings.Join(t.Columns(), ", ") + ")"
			res, err := db.ExecContext(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != want[t] {
				b.Fatalf("LOAD DATA into bench_%s: %d rows", t, n)
			}
		}
		loadTime += time.Since(start)
		b.StartTimer()

		start = time.Now()
		src, err := extract.OpenCSV(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		res, err := extract.Run(ctx, src, st, extract.Options{RunID: fmt.Sprint("bench-", i), ShrinkThreshold: 0.5}, nil)
		if err != nil {
			b.Fatal(err)
		}
		runTime += time.Since(start)
		if got := res.Loaded[store.ModuleGroups] + res.Loaded[store.GroupMembers] + res.Loaded[store.GroupTutors]; got != total {
			b.Fatalf("extract loaded %d rows, want %d (rejected %v)", got, total, res.Rejected)
		}
		method = res.WriteMethod
	}
	b.StopTimer()
	rows := float64(total) * float64(b.N)
	runRate, loadRate := rows/runTime.Seconds(), rows/loadTime.Seconds()
	b.ReportMetric(runRate, "rows/s")
	b.ReportMetric(loadRate, "load_data_rows/s")
	b.ReportMetric(runRate/loadRate, "ratio_vs_load_data")
	b.Logf("%d rows per extract, written with %s", total, method)
}
