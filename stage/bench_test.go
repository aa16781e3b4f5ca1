package stage_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cmissync/cmissync/extract/sample"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// loadInstitution puts a synthetic institution's dump and mappings into a
// fresh staging database (course ids are 1..N in dataset order) and
// returns the memberships a first stage adds.
func loadInstitution(b *testing.B, engine string, spec sample.Spec) (*store.Store, int64) {
	b.Helper()
	ctx := context.Background()
	st := storetest.Open(b, engine)
	d := sample.Generate(spec)
	gen, err := st.BeginExtract(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	for t, rows := range map[store.DumpTable][][]string{store.ModuleGroups: d.ModuleGroups, store.GroupMembers: d.Members, store.GroupTutors: d.Tutors} {
		for start := 0; start < len(rows); start += 20000 {
			if _, err := gen.Insert(ctx, t, rows[start:min(start+20000, len(rows))]); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := gen.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	ids := map[string]int64{}
	for i, c := range d.Courses {
		ids[c.ShortName] = int64(i + 1)
	}
	for _, m := range d.Mappings {
		if err := st.UpsertMapping(ctx, store.Mapping{CourseID: ids[m.CourseShortName], ModuleCode: m.ModuleCode}); err != nil {
			b.Fatal(err)
		}
	}
	// Each course taking a module gets its memberships.
	perModule := map[string]int64{}
	for _, r := range append(append([][]string{}, d.Members...), d.Tutors...) {
		perModule[r[0]]++
	}
	var want int64
	for _, m := range d.Mappings {
		want += perModule[m.ModuleCode]
	}
	return st, want
}

// peakHeap samples the Go heap while fn runs and returns the largest value.
func peakHeap(fn func()) uint64 {
	var (
		peak uint64
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	runtime.GC()
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak {
				peak = m.HeapInuse
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return peak
}

// BenchmarkStageLarge stages the large synthetic institution (5,000
// courses: 20,000 groupings, 50,000 groups, 825,000 memberships staged)
// from scratch, then again with no change, reporting rows/s and peak heap
// for both. The second stage must write nothing.
func BenchmarkStageLarge(b *testing.B) { benchStage(b, sample.Large()) }

// BenchmarkStageXL is BenchmarkStageLarge on the XL institution (14,000
// courses: 56,000 groupings, 140,000 groups, 2,030,000 memberships staged).
// Its peak heap should be the large one's: stage streams.
func BenchmarkStageXL(b *testing.B) { benchStage(b, sample.XL()) }

func benchStage(b *testing.B, spec sample.Spec) {
	for _, engine := range storetest.Engines {
		b.Run(engine, func(b *testing.B) {
			if testing.Short() {
				b.Skip("large")
			}
			st, memberships := loadInstitution(b, engine, spec)
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				if i > 0 {
					b.StopTimer()
					for _, t := range []string{store.TableMembers, store.TableGroups, store.TableGroupings} {
						if _, err := st.DB().ExecContext(ctx, "DELETE FROM "+t); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
				var res stage.Result
				var err error
				start := time.Now()
				peak := peakHeap(func() { res, err = stage.Run(ctx, st, stage.Options{}, quietLog()) })
				first := time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				rows := res.Groupings.Add + res.Groups.Add + res.Members.Add
				if res.Members.Add != memberships {
					b.Fatalf("staged %d memberships, want %d", res.Members.Add, memberships)
				}
				b.ReportMetric(float64(rows)/first.Seconds(), "rows/s_first")
				b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MB_first")

				start = time.Now()
				peak = peakHeap(func() { res, err = stage.Run(ctx, st, stage.Options{}, quietLog()) })
				again := time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if res.Changed() {
					b.Fatalf("re-stage with no source change wrote: %+v", res)
				}
				rows = res.Groupings.Keep + res.Groups.Keep + res.Members.Keep
				b.ReportMetric(float64(rows)/again.Seconds(), "rows/s_nochange")
				b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MB_nochange")
			}
		})
	}
}
