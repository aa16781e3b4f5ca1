package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

func TestContractOpen(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, engine, dsn string
	}{
		{"unknown engine", "oracle", "x"},
		{"sqlite without a path", store.EngineSQLite, ""},
		{"mysql DSN not valid", store.EngineMySQL, "root:s3cret@127.0.0.1:3306/x"},
		// Nothing listens on port 1 of the loopback: refused at once.
		{"mysql unreachable", store.EngineMySQL, "root:s3cret@tcp(127.0.0.1:1)/x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := store.Open(ctx, c.engine, c.dsn)
			if err == nil {
				st.Close()
				t.Fatal("opened")
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			st := storetest.Open(t, engine)
			if st.Engine() != engine {
				t.Errorf("Engine() = %q, want %q", st.Engine(), engine)
			}
			if err := st.DB().PingContext(ctx); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Pending(ctx); err == nil {
				t.Error("a closed store answered")
			}
		})
	}
}

// TestContractMigrate: a fresh database has no schema; Migrate applies every
// migration once, in order; a schema behind this binary is refused with
// ErrSchema; a migration that fails is reported by name and not recorded.
func TestContractMigrate(t *testing.T) {
	eachDSN(t, func(t *testing.T, eng, dsn string) {
		ctx := context.Background()
		st, err := store.Open(ctx, eng, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if v, err := st.SchemaVersion(ctx); err != nil || v != 0 {
			t.Fatalf("SchemaVersion of an empty database = %d, %v", v, err)
		}
		if err := st.RequireSchema(ctx); !errors.Is(err, store.ErrSchema) {
			t.Fatalf("RequireSchema on an empty database = %v, want ErrSchema", err)
		}
		applied, err := st.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(applied) < 5 {
			t.Fatalf("Migrate applied %v", applied)
		}
		for i, m := range applied {
			if m.Version != i+1 || !strings.HasPrefix(m.Name, fmt.Sprintf("%03d_", i+1)) || !strings.HasSuffix(m.Name, ".sql") {
				t.Errorf("migration %d = %+v", i, m)
			}
		}
		last := applied[len(applied)-1]
		if v, err := st.SchemaVersion(ctx); err != nil || v != last.Version {
			t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, last.Version)
		}
		if err := st.RequireSchema(ctx); err != nil {
			t.Fatal(err)
		}
		if again, err := st.Migrate(ctx); err != nil || len(again) != 0 {
			t.Fatalf("a second Migrate applied %v, %v; want nothing", again, err)
		}

		// A database that lost the record of its last migration is
		// behind this binary.
		if _, err := st.DB().Exec(`DELETE FROM schema_migrations WHERE version = ?`, last.Version); err != nil {
			t.Fatal(err)
		}
		err = st.RequireSchema(ctx)
		if !errors.Is(err, store.ErrSchema) || !strings.Contains(err.Error(), "cmissync migrate") {
			t.Fatalf("RequireSchema one version behind = %v, want ErrSchema telling to migrate", err)
		}
		// Its tables exist already, so applying it again fails, and
		// says which file.
		applied, err = st.Migrate(ctx)
		if err == nil || !strings.Contains(err.Error(), last.Name) || len(applied) != 0 {
			t.Fatalf("Migrate over a schema it cannot apply = %v, %v; want an error naming %s", applied, err, last.Name)
		}
		if v, _ := st.SchemaVersion(ctx); v != last.Version-1 {
			t.Errorf("SchemaVersion after a failed migration = %d, want %d", v, last.Version-1)
		}
	})
}

// TestContractLock: the lock is won by one run, refused to the next with
// ErrLocked naming the holder, freed by Release; a stale or abandoned
// holder is taken over.
func TestContractLock(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if info, err := st.CurrentLock(ctx); err != nil || info != nil {
			t.Fatalf("CurrentLock with nobody holding it = %+v, %v", info, err)
		}
		l, err := st.AcquireLock(ctx, "first", time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AcquireLock(ctx, "second", time.Hour, nil); !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "first") {
			t.Fatalf("second acquire = %v, want ErrLocked naming first", err)
		}
		info, err := st.CurrentLock(ctx)
		if err != nil || info == nil || info.Holder != "first" || info.AcquiredAt.IsZero() || info.Heartbeat.Before(info.AcquiredAt) {
			t.Fatalf("CurrentLock = %+v, %v", info, err)
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
		if info, _ := st.CurrentLock(ctx); info != nil {
			t.Fatalf("CurrentLock after release = %+v", info)
		}
		l2, err := st.AcquireLock(ctx, "second", time.Hour, nil)
		if err != nil {
			t.Fatalf("acquire after release: %v", err)
		}
		if err := l2.Release(); err != nil {
			t.Fatal(err)
		}

		// A holder that died: its heartbeat is old.
		old := time.Now().UTC().Add(-2 * time.Hour)
		if _, err := st.DB().ExecContext(ctx, `INSERT INTO cmissync_lock (name, holder, acquired_at, heartbeat_at) VALUES ('run', 'dead', ?, ?)`, old, old); err != nil {
			t.Fatal(err)
		}
		l, err = st.AcquireLock(ctx, "alive", time.Hour, nil)
		if err != nil {
			t.Fatalf("stale lock not taken over: %v", err)
		}
		if info, _ := st.CurrentLock(ctx); info.Holder != "alive" {
			t.Fatalf("holder %q", info.Holder)
		}
		// A fresh lock is taken over only when its holder is known dead.
		if _, err := st.AcquireLock(ctx, "third", time.Hour, func(h string) bool { return false }); !errors.Is(err, store.ErrLocked) {
			t.Fatalf("live holder overridden: %v", err)
		}
		l3, err := st.AcquireLock(ctx, "third", time.Hour, func(h string) bool { return h == "alive" })
		if err != nil {
			t.Fatalf("dead holder's lock not taken over: %v", err)
		}
		// The old holder's Release leaves the new holder's lock.
		release(t, st, l, "third")
		release(t, st, l3, "")
	})
}

// TestContractLockHeartbeat: a held lock's heartbeat moves on while the run
// lives, and the lock is not reported lost.
func TestContractLockHeartbeat(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		// A one-second stale limit beats every 250ms.
		l, err := st.AcquireLock(ctx, "beating", time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		first, err := st.CurrentLock(ctx)
		if err != nil || first == nil {
			t.Fatalf("CurrentLock = %+v, %v", first, err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			info, err := st.CurrentLock(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.Heartbeat.After(first.Heartbeat) {
				if info.Holder != "beating" || !info.AcquiredAt.Equal(first.AcquiredAt) {
					t.Errorf("a heartbeat changed more than the heartbeat: %+v, was %+v", info, first)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the heartbeat never moved")
			}
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case <-l.Lost():
			t.Fatal("a lock nobody took reports lost")
		default:
		}
		// While it beats, a run that waits an hour for a heartbeat does
		// not take it over.
		if _, err := st.AcquireLock(ctx, "other", time.Hour, nil); !errors.Is(err, store.ErrLocked) {
			t.Errorf("acquire while it beats = %v, want ErrLocked", err)
		}
	})
}

// TestContractSteps: each step of a run is recorded with its outcome,
// counts and message; RecentSteps returns the steps of the last runs.
func TestContractSteps(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if steps, err := st.RecentSteps(ctx, 5); err != nil || len(steps) != 0 {
			t.Fatalf("RecentSteps on empty staging = %+v, %v", steps, err)
		}
		for _, run := range []string{"r1", "r2", "r3"} {
			for _, step := range []string{"extract", "stage"} {
				id, err := st.StartStep(ctx, run, step)
				if err != nil {
					t.Fatal(err)
				}
				if run == "r3" && step == "stage" {
					continue // still running
				}
				if err := st.FinishStep(ctx, id, store.OutcomeOK, map[string]int64{"rows": 3}, run+" "+step); err != nil {
					t.Fatal(err)
				}
			}
		}
		steps, err := st.RecentSteps(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range steps {
			got = append(got, s.RunID+"/"+s.Step+"/"+s.Outcome)
		}
		if want := "r3/stage/running r3/extract/ok r2/stage/ok r2/extract/ok"; strings.Join(got, " ") != want {
			t.Fatalf("RecentSteps(2) = %s, want %s", strings.Join(got, " "), want)
		}
		if s := steps[0]; s.Finished != nil || len(s.Counts) != 0 || s.Message != "" || s.Started.IsZero() {
			t.Errorf("running step %+v", s)
		}
		if s := steps[1]; s.Finished == nil || s.Finished.Before(s.Started) || s.Counts["rows"] != 3 || s.Message != "r3 extract" || s.ID == 0 {
			t.Errorf("finished step %+v", s)
		}
		if steps, _ := st.RecentSteps(ctx, 1); len(steps) != 2 || steps[0].RunID != "r3" {
			t.Errorf("RecentSteps(1) = %+v", steps)
		}

		// FinishStep works after the run's context was cancelled, takes no
		// counts, and keeps a long message cut.
		runCtx, cancel := context.WithCancel(ctx)
		id, err := st.StartStep(runCtx, "r4", "load")
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := st.FinishStep(ctx, id, store.OutcomeFailed, nil, strings.Repeat("m", 5000)); err != nil {
			t.Fatal(err)
		}
		steps, _ = st.RecentSteps(ctx, 1)
		if len(steps) != 1 || steps[0].Outcome != store.OutcomeFailed || steps[0].Counts == nil || len(steps[0].Counts) != 0 || len(steps[0].Message) != 4000 {
			t.Errorf("interrupted step %+v", steps)
		}
	})
}

// TestContractRestErrors: REST errors are kept per run with every field.
func TestContractRestErrors(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := st.RecordRestErrors(ctx, nil); err != nil {
			t.Fatal(err)
		}
		errs := []store.RestError{
			{RunID: "r1", Step: "load", CourseID: 5, Object: "cmis:M1:G1", Function: "core_group_create_groups", Params: `{"groups":[1]}`, Exception: "invalid_parameter_exception", ErrorCode: "invalidparameter", Message: "Invalid parameter value detected"},
			{RunID: "r2", Step: "load", CourseID: 6, Object: strings.Repeat("o", 300), Function: "core_group_add_group_members", Params: "{}", Message: strings.Repeat("m", 5000)},
			{RunID: "r1", Step: "load", Function: "core_webservice_get_site_info", Params: "{}", Message: "site down"},
		}
		if err := st.RecordRestErrors(ctx, errs); err != nil {
			t.Fatal(err)
		}
		r1, err := st.RestErrors(ctx, "r1")
		if err != nil || len(r1) != 2 {
			t.Fatalf("RestErrors(r1) = %+v, %v", r1, err)
		}
		got := r1[0]
		if got.Created.IsZero() {
			t.Error("no time recorded")
		}
		got.Created = time.Time{}
		if got != errs[0] {
			t.Errorf("RestErrors(r1)[0] = %+v\nwant %+v", got, errs[0])
		}
		if r1[1].Message != "site down" {
			t.Errorf("RestErrors(r1)[1] = %+v", r1[1])
		}
		all, err := st.RestErrors(ctx, "")
		if err != nil || len(all) != 3 || all[1].RunID != "r2" {
			t.Fatalf("RestErrors(all) = %+v, %v", all, err)
		}
		if len(all[1].Object) != 255 || len(all[1].Message) != 5000 {
			t.Errorf("long object and message kept %d and %d characters, want 255 (cut) and 5000 (whole)", len(all[1].Object), len(all[1].Message))
		}
		if none, err := st.RestErrors(ctx, "r9"); err != nil || len(none) != 0 {
			t.Errorf("RestErrors(r9) = %+v, %v", none, err)
		}
	})
}

// TestContractTimesAreUTC: the times staging records itself (column
// defaults such as an audit entry's) and those it is given (a step's start)
// read back as the same instants, on a MySQL server whose time zone is not
// UTC as well.
func TestContractTimesAreUTC(t *testing.T) {
	eachDSN(t, func(t *testing.T, eng, dsn string) {
		ctx := context.Background()
		if eng == store.EngineMySQL {
			// The session zone a server in another zone would give.
			cfg, err := mysql.ParseDSN(dsn)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Params = map[string]string{"time_zone": "'+05:00'"}
			dsn = cfg.FormatDSN()
		}
		st, err := store.Open(ctx, eng, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := st.StartStep(ctx, "r1", "load"); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordAudit(ctx, []store.AuditEntry{audit(1, "group", "create")}); err != nil {
			t.Fatal(err)
		}
		steps, err := st.RecentSteps(ctx, 1)
		if err != nil || len(steps) != 1 {
			t.Fatalf("RecentSteps = %+v, %v", steps, err)
		}
		entries, err := st.FindAudit(ctx, store.AuditQuery{})
		if err != nil || len(entries) != 1 {
			t.Fatalf("FindAudit = %+v, %v", entries, err)
		}
		started, created := steps[0].Started, entries[0].Created
		// Both were recorded within moments of each other; an hour apart
		// means one of them was taken in another zone.
		if d := created.Sub(started); d < -time.Minute || d > time.Hour {
			t.Errorf("the audit entry was made at %s, the step started at %s: %s apart", created.UTC(), started.UTC(), d)
		}
	})
}

// TestContractLongText: text longer than a column holds is kept cut, the
// same on every engine, rather than refused by one (MySQL's TEXT holds
// 65,535 bytes; SQLite has no limit): a refused row or a REST error must
// never fail the step that records it.
func TestContractLongText(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		long := strings.Repeat("é😀", 40000) // 80,000 characters, 240,000 bytes
		if err := st.RecordBadRows(ctx, "r1", []store.BadRow{{Source: "f.csv", Line: 1, Row: long, Reason: "garbled", Table: store.ModuleGroups}}); err != nil {
			t.Fatalf("RecordBadRows with a long row: %v", err)
		}
		if err := st.RecordRestErrors(ctx, []store.RestError{{RunID: "r1", Step: "load", Function: "f", Params: long, Message: long}}); err != nil {
			t.Fatalf("RecordRestErrors with long params and message: %v", err)
		}
		bad, err := st.BadRows(ctx, "r1")
		if err != nil || len(bad) != 1 {
			t.Fatalf("BadRows = %d, %v", len(bad), err)
		}
		errs, err := st.RestErrors(ctx, "r1")
		if err != nil || len(errs) != 1 {
			t.Fatalf("RestErrors = %d, %v", len(errs), err)
		}
		for what, v := range map[string]string{"row": bad[0].Row, "params": errs[0].Params, "message": errs[0].Message} {
			if len(v) > 65535 || !strings.HasPrefix(long, v) || len(v) < 1000 {
				t.Errorf("%s kept %d bytes, want a prefix of the text within 65,535 bytes", what, len(v))
			}
		}
	})
}

// TestContractErrorsReported: a store whose database is gone says so from
// every method that reads or writes it; none reports an empty result
// instead.
func TestContractErrorsReported(t *testing.T) {
	ctx := context.Background()
	f := store.Filter{Courses: []int64{1}}
	calls := map[string]func(st *store.Store) error{
		"AddedByAudit": func(st *store.Store) error {
			_, err := st.AddedByAudit(ctx, 1, []store.AuditMember{{IDNumber: "x", UserID: 1}})
			return err
		},
		"AdoptedByAudit": func(st *store.Store) error { _, err := st.AdoptedByAudit(ctx, 1, "group", []int64{1}); return err },
		"ApplyStage": func(st *store.Store) error {
			return st.ApplyStage(ctx, &store.StageChanges{Drop: map[string][]int64{store.TableGroups: {1}}})
		},
		"Audit":            func(st *store.Store) error { _, err := st.Audit(ctx, 1, ""); return err },
		"BadRows":          func(st *store.Store) error { _, err := st.BadRows(ctx, "r"); return err },
		"BeginExtract":     func(st *store.Store) error { _, err := st.BeginExtract(ctx, "r"); return err },
		"BindSite":         func(st *store.Store) error { return st.BindSite(ctx, store.SiteBinding{URL: "https://x"}) },
		"CourseRestErrors": func(st *store.Store) error { _, err := st.CourseRestErrors(ctx, nil, 0); return err },
		"CurrentDump":      func(st *store.Store) error { _, err := st.CurrentDump(ctx); return err },
		"CurrentLock":      func(st *store.Store) error { _, err := st.CurrentLock(ctx); return err },
		"AcquireLock":      func(st *store.Store) error { _, err := st.AcquireLock(ctx, "h", time.Hour, nil); return err },
		"DeleteMapping":    func(st *store.Store) error { _, err := st.DeleteMapping(ctx, 1, "M"); return err },
		"DesiredGroupings": func(st *store.Store) error { _, err := st.DesiredGroupings(ctx, f); return err },
		"DesiredGroups":    func(st *store.Store) error { _, err := st.DesiredGroups(ctx, f); return err },
		"DesiredMembers":   func(st *store.Store) error { _, err := st.DesiredMembers(ctx, f); return err },
		"DropGroupings":    func(st *store.Store) error { return st.DropGroupings(ctx, []int64{1}, nil) },
		"DropGroups":       func(st *store.Store) error { return st.DropGroups(ctx, []store.GroupRow{{ID: 1}}, nil) },
		"DropMembers":      func(st *store.Store) error { return st.DropMembers(ctx, []int64{1}, nil) },
		"DumpCounts":       func(st *store.Store) error { _, err := st.DumpCounts(ctx); return err },
		"DumpGroups":       func(st *store.Store) error { _, err := st.DumpGroups(ctx, "M"); return err },
		"DumpMemberships":  func(st *store.Store) error { _, err := st.DumpMemberships(ctx, "M", "s"); return err },
		"DumpModules":      func(st *store.Store) error { _, err := st.DumpModules(ctx); return err },
		"DumpRun":          func(st *store.Store) error { _, err := st.DumpRun(ctx); return err },
		"Enrolments":       func(st *store.Store) error { _, err := st.Enrolments(ctx, f); return err },
		"FindAudit":        func(st *store.Store) error { _, err := st.FindAudit(ctx, store.AuditQuery{}); return err },
		"FinishStep":       func(st *store.Store) error { return st.FinishStep(ctx, 1, store.OutcomeOK, nil, "") },
		"ForgetCourse": func(st *store.Store) error {
			_, err := st.ForgetCourse(ctx, 1, store.AuditEntry{})
			return err
		},
		"ForgetEnrolments": func(st *store.Store) error { return st.ForgetEnrolments(ctx, []store.Enrolment{{CourseID: 1}}, nil) },
		"ForgetGroup":      func(st *store.Store) error { return st.ForgetGroup(ctx, 1, nil) },
		"FrozenCourses":    func(st *store.Store) error { _, err := st.FrozenCourses(ctx); return err },
		"KnownUsers":       func(st *store.Store) error { _, err := st.KnownUsers(ctx); return err },
		"Mappings":         func(st *store.Store) error { _, err := st.Mappings(ctx, 0); return err },
		"MappingsWithDump": func(st *store.Store) error { _, err := st.MappingsWithDump(ctx, f); return err },
		"MarkWaiting":      func(st *store.Store) error { return st.MarkWaiting(ctx, []int64{1}, time.Now()) },
		"MemberCourses":    func(st *store.Store) error { _, err := st.MemberCourses(ctx, f); return err },
		"Migrate":          func(st *store.Store) error { _, err := st.Migrate(ctx); return err },
		"OwnsAnything":     func(st *store.Store) error { _, err := st.OwnsAnything(ctx, f); return err },
		"Park":             func(st *store.Store) error { return st.Park(ctx, store.TableGroups, 1, "x") },
		"Parked":           func(st *store.Store) error { _, err := st.Parked(ctx, f); return err },
		"Pending":          func(st *store.Store) error { _, err := st.Pending(ctx); return err },
		"RecentSteps":      func(st *store.Store) error { _, err := st.RecentSteps(ctx, 1); return err },
		"RecordAssigned":   func(st *store.Store) error { return st.RecordAssigned(ctx, []int64{1}, nil) },
		"RecordAudit":      func(st *store.Store) error { return st.RecordAudit(ctx, []store.AuditEntry{{}}) },
		"RecordBadRows":    func(st *store.Store) error { return st.RecordBadRows(ctx, "r", []store.BadRow{{}}) },
		"RecordCreated": func(st *store.Store) error {
			return st.RecordCreated(ctx, store.TableGroups, []store.Created{{RowID: 1}}, nil)
		},
		"RecordEnrolments":   func(st *store.Store) error { return st.RecordEnrolments(ctx, []store.Enrolment{{CourseID: 1}}, nil) },
		"RecordFailure":      func(st *store.Store) error { _, err := st.RecordFailure(ctx, store.TableGroups, 1, "x", 1); return err },
		"RecordIntent":       func(st *store.Store) error { return st.RecordIntent(ctx, []store.AddedMember{{ID: 1}}) },
		"RecordMembersAdded": func(st *store.Store) error { return st.RecordMembersAdded(ctx, []store.AddedMember{{ID: 1}}, nil) },
		"RecordRenamed": func(st *store.Store) error {
			return st.RecordRenamed(ctx, store.TableGroups, []store.Created{{RowID: 1}}, nil)
		},
		"RecordRestErrors": func(st *store.Store) error { return st.RecordRestErrors(ctx, []store.RestError{{}}) },
		"RefusedKeys":      func(st *store.Store) error { _, err := st.RefusedKeys(ctx); return err },
		"RefusedRows":      func(st *store.Store) error { _, _, err := st.RefusedRows(ctx, nil, 0); return err },
		"RequireSchema":    func(st *store.Store) error { return st.RequireSchema(ctx) },
		"RespectRemovals":  func(st *store.Store) error { return st.RespectRemovals(ctx, []int64{1}, nil) },
		"RestErrors":       func(st *store.Store) error { _, err := st.RestErrors(ctx, ""); return err },
		"RetireCourse":     func(st *store.Store) error { return st.RetireCourse(ctx, 1, nil) },
		"RetryWaiting":     func(st *store.Store) error { _, err := st.RetryWaiting(ctx, f); return err },
		"SchemaVersion":    func(st *store.Store) error { _, err := st.SchemaVersion(ctx); return err },
		"SetFrozen":        func(st *store.Store) error { return st.SetFrozen(ctx, 1, "x", nil) },
		"SetRenameFlag":    func(st *store.Store) error { return st.SetRenameFlag(ctx, store.TableGroups, 1, true, "x") },
		"SiteBinding":      func(st *store.Store) error { _, err := st.SiteBinding(ctx); return err },
		"StagedCourse":     func(st *store.Store) error { _, err := st.StagedCourse(ctx, 1); return err },
		"StagedGroupings":  func(st *store.Store) error { _, err := st.StagedGroupings(ctx, f); return err },
		"StagedGroups":     func(st *store.Store) error { _, err := st.StagedGroups(ctx, f); return err },
		"StagedMembers":    func(st *store.Store) error { _, err := st.StagedMembers(ctx, f); return err },
		"StageAllMembers":  func(st *store.Store) error { _, _, err := st.StageAllMembers(ctx, f, false); return err },
		"StartStep":        func(st *store.Store) error { _, err := st.StartStep(ctx, "r", "s"); return err },
		"Unpark":           func(st *store.Store) error { _, err := st.Unpark(ctx, f); return err },
		"UpsertMapping":    func(st *store.Store) error { return st.UpsertMapping(ctx, store.Mapping{CourseID: 1, ModuleCode: "M"}) },
	}
	names := make([]string, 0, len(calls))
	for n := range calls {
		names = append(names, n)
	}
	slices.Sort(names)
	eachEngine(t, func(t *testing.T, st *store.Store) {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := calls[n](st); err == nil {
				t.Errorf("%s on a closed store reported no error", n)
			}
		}
		// A database that cannot be read is not one whose schema is old.
		if err := st.RequireSchema(ctx); errors.Is(err, store.ErrSchema) {
			t.Errorf("RequireSchema on a closed store = %v, want the database's error, not ErrSchema", err)
		}
	})
}

// TestContractTxTime: every transaction adds its time to TxTime.
func TestContractTxTime(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		before := st.TxTime()
		if err := st.UpsertMapping(context.Background(), store.Mapping{CourseID: 1, ModuleCode: "M1"}); err != nil {
			t.Fatal(err)
		}
		if st.TxTime() <= before {
			t.Errorf("TxTime %s after a transaction, %s before", st.TxTime(), before)
		}
	})
}
