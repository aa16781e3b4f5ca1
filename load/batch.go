package load

import (
	"context"
	"errors"
	"sync"

	"github.com/cmissync/cmissync/load/moodle"
)

// batches sends items in batches of at most capacity, up to workers batches
// at a time. A batch Moodle refuses is split in halves until the bad items
// are alone (Moodle applies a call all-or-nothing): ok gets every accepted
// batch with the answer, failed every refused item. ok and failed are never
// called concurrently. Fatal errors (bad token, missing function, wrong
// site URL) and cancellation stop everything and are returned.
func batches[T, R any](ctx context.Context, workers int, items []T, capacity int,
	send func(context.Context, []T) (R, error), ok func([]T, R) error, failed func(T, error) error) error {
	return sendBatches(ctx, workers, items, capacity, true, send, ok, failed)
}

// sendBatches is batches, with ok and failed called at once from several
// workers unless serial: for callbacks safe to run side by side whose
// staging writes can too (store.ConcurrentWriters), so that recording one
// call's answer does not hold up the others'.
func sendBatches[T, R any](ctx context.Context, workers int, items []T, capacity int, serial bool,
	send func(context.Context, []T) (R, error), ok func([]T, R) error, failed func(T, error) error) error {
	if len(items) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu   sync.Mutex // serialises ok and failed
		wg   sync.WaitGroup
		sem  = make(chan struct{}, max(workers, 1))
		errs error
		emu  sync.Mutex
	)
	onOK := func(b []T, r R) error { mu.Lock(); defer mu.Unlock(); return ok(b, r) }
	onFail := func(it T, err error) error { mu.Lock(); defer mu.Unlock(); return failed(it, err) }
	if !serial {
		onOK, onFail = ok, failed
	}
	for start := 0; start < len(items); start += capacity {
		chunk := items[start:min(start+capacity, len(items))]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := bisect(ctx, chunk, send, onOK, onFail); err != nil {
				emu.Lock()
				if errs == nil {
					errs = err
				}
				emu.Unlock()
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if errs != nil {
		return errs
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return ctx.Err()
}

func bisect[T, R any](ctx context.Context, items []T, send func(context.Context, []T) (R, error), ok func([]T, R) error, failed func(T, error) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := send(ctx, items)
	switch {
	case err == nil:
		return ok(items, r)
	case moodle.IsFatal(err), ctx.Err() != nil:
		return err
	case len(items) == 1 || moodle.IsTransient(err):
		// A transient error says nothing about which item is bad: report
		// the whole batch; it is retried next run.
		return failEach(items, err, failed)
	}
	mid := len(items) / 2
	if err := bisect(ctx, items[:mid], send, ok, failed); err != nil {
		return err
	}
	return bisect(ctx, items[mid:], send, ok, failed)
}

// failEach reports every item as failed with err, stopping at the first
// error failed returns.
func failEach[T any](items []T, err error, failed func(T, error) error) error {
	for _, it := range items {
		if ferr := failed(it, err); ferr != nil {
			return ferr
		}
	}
	return nil
}

// forEach runs fn for each item, up to workers at a time, and returns the
// first error (after which the remaining items are not started).
func forEach[T any](ctx context.Context, workers int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, max(workers, 1))
		once  sync.Once
		first error
	)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, it); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
