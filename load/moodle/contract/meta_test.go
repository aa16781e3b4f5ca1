package contract

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestPhantomCasesNeedTheCache runs every phantom variant against a
// simulator whose model of Moodle's group cache is off. Each must fail there:
// a case that passed on a site without phantoms would not show that the
// simulator, or a real site, has them. Under the same recorder and with the
// model on, each passes, so the failures are the cases' own.
func TestPhantomCasesNeedTheCache(t *testing.T) {
	for _, noCache := range []bool{false, true} {
		tg, _ := NewSimulator(t, SimulatorOptions{NoGroupCache: noCache})
		for _, v := range phantomVariants {
			r := record(t, func(tb testing.TB) { phantom(tb, tg, v) })
			said := strings.Join(r.said(), "\n  ")
			switch {
			case r.Skipped():
				t.Errorf("%s (cache model off: %v) skipped:\n  %s", v.name, noCache, said)
			case r.Failed() != noCache:
				t.Errorf("%s (cache model off: %v): failed %v, want %v; the case said:\n  %s", v.name, noCache, r.Failed(), noCache, said)
			case noCache:
				t.Logf("%s fails without the cache model, as it must:\n  %s", v.name, said)
			}
		}
	}
}

// recorder is a testing.TB that keeps what a case reports instead of
// failing the test, so that a meta-test can require a case to fail. As in
// package testing, FailNow and SkipNow end the goroutine the case runs in,
// and cleanups run after the case, newest first. What it does not override
// (Context, TempDir, Name, ...) is the real test's.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	failed   bool
	skipped  bool
	lines    []string
	cleanups []func()
}

// record runs body under a recorder, then the cleanups it registered.
func record(t testing.TB, body func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	r.inGoroutine(func() { body(r) })
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			r.mu.Unlock()
			return r
		}
		f := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		r.inGoroutine(f)
	}
}

// inGoroutine runs f in a goroutine of its own, so that FailNow can end it.
func (r *recorder) inGoroutine(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

func (r *recorder) said() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

func (r *recorder) Helper() {}

func (r *recorder) Log(args ...any) { r.Logf("%s", strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }

func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) Fail() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
}

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *recorder) FailNow() {
	r.Fail()
	runtime.Goexit()
}

func (r *recorder) Error(args ...any)                 { r.Log(args...); r.Fail() }
func (r *recorder) Errorf(format string, args ...any) { r.Logf(format, args...); r.Fail() }
func (r *recorder) Fatal(args ...any)                 { r.Log(args...); r.FailNow() }
func (r *recorder) Fatalf(format string, args ...any) { r.Logf(format, args...); r.FailNow() }

func (r *recorder) SkipNow() {
	r.mu.Lock()
	r.skipped = true
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Skipped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped
}

func (r *recorder) Skip(args ...any)                 { r.Log(args...); r.SkipNow() }
func (r *recorder) Skipf(format string, args ...any) { r.Logf(format, args...); r.SkipNow() }

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
