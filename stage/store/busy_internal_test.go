package store

import (
	"testing"
	"time"
)

// TestBusyClockCountsOverlapOnce: two transactions open at once count
// once; time with none open does not count.
func TestBusyClockCountsOverlapOnce(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	c := &busyClock{now: func() time.Time { return now }}
	at := func(ms int) {
		now = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
	}
	c.start() // A: 0-40
	at(20)
	c.start() // B: 20-60
	at(40)
	c.stop()
	if got := c.total(); got != 40*time.Millisecond {
		t.Errorf("while B is open: %s, want 40ms", got)
	}
	at(60)
	c.stop()
	at(100) // nothing open
	c.start()
	at(110)
	c.stop()
	if got := c.total(); got != 70*time.Millisecond {
		t.Errorf("busy %s, want 70ms (60 with A or B open, 10 with C)", got)
	}
}
