package load

import "testing"

// TestRetryDue: a member waiting for enrolment is tried every run for a
// week of runs, then every seventh.
func TestRetryDue(t *testing.T) {
	var tried []int
	for runs := 1; runs <= 30; runs++ {
		if retryDue(runs) {
			tried = append(tried, runs)
		}
	}
	want := []int{1, 2, 3, 4, 5, 6, 7, 14, 21, 28}
	if len(tried) != len(want) {
		t.Fatalf("tried on runs %v, want %v", tried, want)
	}
	for i := range want {
		if tried[i] != want[i] {
			t.Fatalf("tried on runs %v, want %v", tried, want)
		}
	}
}
