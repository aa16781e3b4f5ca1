package store

import (
	"cmp"
	"errors"
	"slices"
	"testing"
)

// sliceCursor streams vs, then fails with err (nil: ends cleanly).
func sliceCursor(vs []int, err error) *Cursor[int] {
	i := 0
	var failed error
	return &Cursor[int]{
		next: func() (int, bool) {
			if i < len(vs) {
				i++
				return vs[i-1], true
			}
			failed = err
			return 0, false
		},
		errFn:   func() error { return failed },
		closeFn: func() error { return nil },
	}
}

func drain(c *Cursor[int]) []int {
	var out []int
	for c.Next() {
		out = append(out, c.Value())
	}
	return out
}

func TestSortBlocksSortsEachBlockOnly(t *testing.T) {
	// Blocks are runs with the same tens digit.
	in := []int{12, 11, 10, 25, 21, 3, 1, 2, 44}
	got := drain(sortBlocks(sliceCursor(in, nil), func(a, b int) bool { return a/10 == b/10 }, cmp.Compare[int]))
	if want := []int{10, 11, 12, 21, 25, 1, 2, 3, 44}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestMergeCursors(t *testing.T) {
	got := drain(mergeCursors(sliceCursor([]int{1, 4, 4, 9}, nil), sliceCursor([]int{2, 4, 10}, nil), cmp.Compare[int]))
	if want := []int{1, 2, 4, 4, 4, 9, 10}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A stream cut short by an error ends the merge: the other stream's rows
// must not look like the whole.
func TestMergeCursorsStopsOnError(t *testing.T) {
	boom := errors.New("boom")
	m := mergeCursors(sliceCursor([]int{1}, boom), sliceCursor([]int{2, 3, 4}, nil), cmp.Compare[int])
	got := drain(m)
	if len(got) > 1 || !errors.Is(m.Err(), boom) {
		t.Fatalf("got %v and %v, want at most [1] and the error", got, m.Err())
	}
}
