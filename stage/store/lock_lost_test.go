package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/cmissync/cmissync/stage/store"
)

// TestLockTakenOverIsLost: a run whose lock another run took over (taking
// it for dead) learns so at its next heartbeat, so that it stops writing.
func TestLockTakenOverIsLost(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a, err := st.AcquireLock(ctx, "run a", 400*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Release()
		select {
		case <-a.Lost():
			t.Fatal("a lock nobody took reports lost")
		case <-time.After(time.Second):
		}
		b, err := st.AcquireLock(ctx, "run b", 400*time.Millisecond, func(holder string) bool { return holder == "run a" })
		if err != nil {
			t.Fatal(err)
		}
		defer b.Release()
		select {
		case <-a.Lost():
		case <-time.After(time.Minute):
			t.Fatal("the run whose lock was taken over never learnt it")
		}
		if err := a.Release(); err != nil {
			t.Fatal(err)
		}
		if cur, err := st.CurrentLock(ctx); err != nil || cur == nil || cur.Holder != "run b" {
			t.Fatalf("the old holder's release freed the new holder's lock: %+v, %v", cur, err)
		}
	})
}
