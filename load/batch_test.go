package load

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"

	"github.com/cmissync/cmissync/load/moodle"
)

func TestBatchesIsolateBadItemsByBisection(t *testing.T) {
	refused := &moodle.Error{ErrorCode: moodle.CodeInvalidParameter, Exception: "invalid_parameter_exception", Message: "Invalid parameter value detected"}
	for _, workers := range []int{1, 4} {
		for _, bad := range [][]int{{}, {13}, {13, 77}, {0, 1, 2, 99}} {
			isBad := map[int]bool{}
			for _, b := range bad {
				isBad[b] = true
			}
			items := make([]int, 100)
			for i := range items {
				items[i] = i
			}
			var (
				mu         sync.Mutex
				calls      int
				okd, faild []int
			)
			err := batches(context.Background(), workers, items, 40,
				func(_ context.Context, b []int) (int, error) {
					mu.Lock()
					calls++
					mu.Unlock()
					for _, it := range b {
						if isBad[it] {
							return 0, refused // one transaction: all or nothing
						}
					}
					return len(b), nil
				},
				func(b []int, n int) error {
					if n != len(b) {
						t.Errorf("answer %d for a batch of %d", n, len(b))
					}
					okd = append(okd, b...)
					return nil
				},
				func(it int, err error) error {
					if !errors.Is(err, refused) {
						t.Errorf("item %d failed with %v", it, err)
					}
					faild = append(faild, it)
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			sort.Ints(okd)
			sort.Ints(faild)
			if len(okd)+len(faild) != 100 || len(faild) != len(bad) {
				t.Fatalf("workers %d bad %v: %d ok, failed %v", workers, bad, len(okd), faild)
			}
			for i, f := range faild {
				if f != sortedCopy(bad)[i] {
					t.Fatalf("failed %v, want %v", faild, bad)
				}
			}
			// 3 batches, plus at most 2*log2(40) extra calls per bad item.
			if limit := 3 + len(bad)*12; calls > limit {
				t.Fatalf("workers %d bad %v: %d calls, want at most %d", workers, bad, calls, limit)
			}
		}
	}
}

func sortedCopy(s []int) []int {
	c := append([]int(nil), s...)
	sort.Ints(c)
	return c
}

func TestBatchesStopOnFatalAndTransientFailsWholeBatch(t *testing.T) {
	items := []int{1, 2, 3, 4, 5, 6}
	fatal := &moodle.Error{ErrorCode: moodle.CodeInvalidToken, Exception: "moodle_exception"}
	err := batches(context.Background(), 1, items, 2,
		func(context.Context, []int) (struct{}, error) { return struct{}{}, fatal },
		func([]int, struct{}) error { t.Fatal("ok after a fatal error"); return nil },
		func(int, error) error { t.Fatal("item failure for a fatal error"); return nil })
	if !errors.Is(err, fatal) {
		t.Fatalf("err = %v, want the fatal error", err)
	}
	transient := &moodle.TransportError{Status: 502}
	var failed, sends int
	err = batches(context.Background(), 1, items, 3,
		func(context.Context, []int) (struct{}, error) { sends++; return struct{}{}, transient },
		func([]int, struct{}) error { return nil },
		func(int, error) error { failed++; return nil })
	if err != nil || failed != 6 || sends != 2 {
		t.Fatalf("transient: err %v, %d failed, %d sends (no bisection wanted)", err, failed, sends)
	}
}
