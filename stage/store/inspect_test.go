package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cmissync/cmissync/stage/store"
)

// extractInto commits one extract with the given rows and refused rows, as
// the extract step does, recording its step in cmissync_runs.
func extractInto(t *testing.T, st *store.Store, runID string, rows map[store.DumpTable][][]string, bad []store.BadRow) {
	t.Helper()
	ctx := context.Background()
	id, err := st.StartStep(ctx, runID, "extract")
	if err != nil {
		t.Fatal(err)
	}
	g, err := st.BeginExtract(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	for table, rs := range rows {
		if _, err := g.Insert(ctx, table, rs); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Reject(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if err := g.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishStep(ctx, id, store.OutcomeOK, nil, ""); err != nil {
		t.Fatal(err)
	}
}

func TestInspectDumpAndRefusedRows(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if d, err := st.CurrentDump(ctx); err != nil || d != nil {
			t.Fatalf("CurrentDump before any extract = %+v, %v; want nil", d, err)
		}
		rows := map[store.DumpTable][][]string{
			store.ModuleGroups: {{"COMP1001", "SEM01", "Computing", "Seminar 1"}, {"COMP1001", "SEM02", "Computing", "Seminar 2"}, {"MATH2002", "LAB1", "Maths", "Lab"}},
			store.GroupMembers: {{"COMP1001", "SEM01", "100001"}, {"COMP1001", "SEM01", "100002"}, {"COMP1001", "SEM02", "100001"}},
			store.GroupTutors:  {{"COMP1001", "SEM01", "S000001"}},
		}
		bad := []store.BadRow{
			{Source: "group_members.csv", Line: 7, Row: "COMP1001,SEM02,", Reason: "studentid is blank", Table: store.GroupMembers, Module: "COMP1001", Group: "SEM02"},
			{Source: "group_members.csv", Line: 9, Row: "MATH2002,LAB1,1", Reason: "too short", Table: store.GroupMembers, Module: "MATH2002", Group: "LAB1", CMISID: "1"},
			{Source: "module_groups.csv", Line: 3, Row: "\"broken", Reason: "quote never closed", Table: store.ModuleGroups},
		}
		extractInto(t, st, "run-1", rows, bad)

		d, err := st.CurrentDump(ctx)
		if err != nil || d == nil {
			t.Fatalf("CurrentDump = %+v, %v", d, err)
		}
		if d.RunID != "run-1" || d.Started.IsZero() || d.Finished == nil || d.Refused != 3 {
			t.Fatalf("CurrentDump = %+v, want run-1, finished, 3 refused", d)
		}

		groups, err := st.DumpGroups(ctx, "COMP1001")
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(groups); got != "[{COMP1001 SEM01 Computing Seminar 1 2 1} {COMP1001 SEM02 Computing Seminar 2 1 0}]" {
			t.Fatalf("DumpGroups = %s", got)
		}
		if mods, err := st.DumpModules(ctx); err != nil || fmt.Sprint(mods) != "[COMP1001 MATH2002]" {
			t.Fatalf("DumpModules = %v, %v", mods, err)
		}
		if groups, err := st.DumpGroups(ctx, "NOPE"); err != nil || len(groups) != 0 {
			t.Fatalf("DumpGroups of an absent module = %v, %v", groups, err)
		}
		ms, err := st.DumpMemberships(ctx, "COMP1001", "100001")
		if err != nil || fmt.Sprint(ms) != "[{COMP1001 SEM01 student 100001} {COMP1001 SEM02 student 100001}]" {
			t.Fatalf("DumpMemberships = %v, %v", ms, err)
		}
		if ms, err := st.DumpMemberships(ctx, "COMP1001", "S000001"); err != nil || fmt.Sprint(ms) != "[{COMP1001 SEM01 tutor S000001}]" {
			t.Fatalf("DumpMemberships of a tutor = %v, %v", ms, err)
		}

		// Refused rows about COMP1001: its own, and the one whose module
		// could not be read (it may describe any module).
		refused, total, err := st.RefusedRows(ctx, []string{"COMP1001"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if total != 2 || len(refused) != 2 || refused[0].Line != 7 || refused[1].Source != "module_groups.csv" || refused[0].RunID != "run-1" || refused[0].Created.IsZero() {
			t.Fatalf("RefusedRows(COMP1001) = %+v (total %d)", refused, total)
		}
		if !refused[0].Key().Covers("COMP1001", "SEM02", "100009") || refused[0].Key().Covers("COMP1001", "SEM01", "100009") {
			t.Fatalf("the key of %+v covers the wrong memberships", refused[0])
		}
		if _, total, err := st.RefusedRows(ctx, nil, 1); err != nil || total != 3 {
			t.Fatalf("RefusedRows(all) total = %d, %v", total, err)
		}

		// A later extract replaces the dump and its refused rows.
		extractInto(t, st, "run-2", rows, nil)
		if d, _ := st.CurrentDump(ctx); d == nil || d.RunID != "run-2" || d.Refused != 0 {
			t.Fatalf("after a clean extract CurrentDump = %+v", d)
		}
		if refused, total, _ := st.RefusedRows(ctx, nil, 0); total != 0 || len(refused) != 0 {
			t.Fatalf("refused rows of an older extract still listed: %+v", refused)
		}

		// Mappings with their module's groups in the dump.
		for _, m := range []store.Mapping{{CourseID: 5, ModuleCode: "COMP1001"}, {CourseID: 5, ModuleCode: "GONE1"}, {CourseID: 6, ModuleCode: "MATH2002", GroupImport: store.ActionRemove}} {
			if err := st.UpsertMapping(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		infos, err := st.MappingsWithDump(ctx, store.Filter{Courses: []int64{5}})
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 2 || infos[0].ModuleCode != "COMP1001" || infos[0].DumpGroups != 2 || infos[1].DumpGroups != 0 {
			t.Fatalf("MappingsWithDump(5) = %+v", infos)
		}
		if infos, _ := st.MappingsWithDump(ctx, store.Filter{}); len(infos) != 3 || infos[2].GroupImport != store.ActionRemove || infos[2].DumpGroups != 1 {
			t.Fatalf("MappingsWithDump(all) = %+v", infos)
		}
		if ok, err := st.DeleteMapping(ctx, 5, "GONE1"); err != nil || !ok {
			t.Fatalf("DeleteMapping = %v, %v", ok, err)
		}
		if ok, err := st.DeleteMapping(ctx, 5, "GONE1"); err != nil || ok {
			t.Fatalf("DeleteMapping of a row already gone = %v, %v", ok, err)
		}
	})
}

func TestInspectStagedCourseAuditAndForget(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		err := st.ApplyStage(ctx, &store.StageChanges{
			NewGroupings: []store.GroupingRow{{CourseID: 5, ModuleCode: "COMP1001", IDNumber: "cmis:COMP1001", Name: "COMP1001 Computing"}},
			NewGroups: []store.GroupRow{
				{CourseID: 5, ModuleCode: "COMP1001", GroupCode: "SEM01", IDNumber: "cmis:COMP1001:SEM01", Name: "COMP1001 SEM01"},
				{CourseID: 6, ModuleCode: "COMP1001", GroupCode: "SEM01", IDNumber: "cmis:COMP1001:SEM01", Name: "COMP1001 SEM01"},
			},
			NewMembers: []store.MemberRow{
				{CourseID: 5, ModuleCode: "COMP1001", GroupCode: "SEM01", Role: store.RoleStudent, CMISID: "100001"},
				{CourseID: 5, ModuleCode: "COMP1001", GroupCode: "SEM01", Role: store.RoleTutor, CMISID: "S000001"},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		c, err := st.StagedCourse(ctx, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Groupings) != 1 || len(c.Groups) != 1 || len(c.Members) != 2 || !c.Groups[0].ToAdd || !c.Members[0].WaitingSince.IsZero() {
			t.Fatalf("StagedCourse(5) = %+v", c)
		}
		// Failures, parking and waiting show in the state.
		grp := c.Groups[0]
		if _, err := st.RecordFailure(ctx, store.TableGroups, grp.ID, "invalidparameter: Invalid parameter value detected", 2); err != nil {
			t.Fatal(err)
		}
		if parked, err := st.RecordFailure(ctx, store.TableGroups, grp.ID, "invalidparameter: Invalid parameter value detected", 2); err != nil || !parked {
			t.Fatalf("second failure parked = %v, %v", parked, err)
		}
		since := time.Date(2026, 11, 20, 2, 15, 0, 0, time.UTC)
		if _, err := st.DB().ExecContext(ctx, `UPDATE cmis_groupmembers SET waiting_since = ?, waiting_runs = 9 WHERE cmisid = '100001'`, since); err != nil {
			t.Fatal(err)
		}
		c, _ = st.StagedCourse(ctx, 5)
		g := c.Groups[0]
		if !g.Parked || g.Attempts != 2 || g.LastError == "" {
			t.Fatalf("parked group = %+v", g)
		}
		m := c.Members[0]
		if m.CMISID != "100001" || m.WaitingSince.IsZero() || !m.WaitingSince.Equal(since) || m.WaitingRuns != 9 {
			t.Fatalf("waiting member = %+v", m)
		}

		// The audit trail by course, person, Moodle id and idnumber.
		entries := []store.AuditEntry{
			{RunID: "r1", CourseID: 5, Object: "group", IDNumber: "cmis:COMP1001:SEM01", Name: "COMP1001 SEM01", Action: "create", MoodleID: 40},
			{RunID: "r1", CourseID: 5, Object: "member", IDNumber: "cmis:COMP1001:SEM01", Action: "add", MoodleID: 40, UserID: 7, CMISID: "100001"},
			{RunID: "r2", CourseID: 6, Object: "member", IDNumber: "cmis:COMP1001:SEM01", Action: "add", MoodleID: 41, UserID: 7, CMISID: "100001"},
			{RunID: "r2", CourseID: 6, Object: "group", IDNumber: "cmis:COMP1001:SEM01", Action: "create", MoodleID: 7},
		}
		if err := st.RecordAudit(ctx, entries); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			q    store.AuditQuery
			want string
		}{
			{store.AuditQuery{Courses: []int64{5, 6}}, "create add add create"},
			{store.AuditQuery{Courses: []int64{6}}, "add create"},
			{store.AuditQuery{User: "100001"}, "add add"},
			{store.AuditQuery{User: "7"}, "add add"}, // a Moodle user id; not the group with Moodle id 7
			{store.AuditQuery{MoodleID: 40}, "create add"},
			{store.AuditQuery{RunID: "r2", IDNumber: "cmis:COMP1001:SEM01"}, "add create"},
			{store.AuditQuery{Limit: 2}, "add create"},
			{store.AuditQuery{User: "nobody"}, ""},
		} {
			got, err := st.FindAudit(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			var actions string
			for i, e := range got {
				if i > 0 {
					actions += " "
				}
				actions += e.Action
				if e.Created.IsZero() {
					t.Errorf("%+v: no time", e)
				}
			}
			if actions != tc.want {
				t.Errorf("FindAudit(%+v) = %q, want %q", tc.q, actions, tc.want)
			}
		}

		// REST errors of a course, newest kept.
		var errs []store.RestError
		for i := range 3 {
			errs = append(errs, store.RestError{RunID: fmt.Sprint("r", i), Step: "load", CourseID: 5, Function: "core_group_create_groups", ErrorCode: fmt.Sprint("e", i), Message: "m"})
		}
		errs = append(errs, store.RestError{RunID: "r9", Step: "load", CourseID: 6, Function: "f", ErrorCode: "other"})
		if err := st.RecordRestErrors(ctx, errs); err != nil {
			t.Fatal(err)
		}
		got, err := st.CourseRestErrors(ctx, []int64{5}, 2)
		if err != nil || len(got) != 2 || got[0].ErrorCode != "e1" || got[1].ErrorCode != "e2" || got[1].Created.IsZero() {
			t.Fatalf("CourseRestErrors = %+v, %v", got, err)
		}

		// Forgetting course 5 removes its staged rows only, with an audit
		// entry; course 6 and the audit trail stay.
		n, err := st.ForgetCourse(ctx, 5, store.AuditEntry{RunID: "r3", Object: "course", Action: "forget", Detail: "by hand"})
		if err != nil {
			t.Fatal(err)
		}
		if n != (store.ForgetCounts{Groupings: 1, Groups: 1, Members: 2}) {
			t.Fatalf("ForgetCourse = %+v", n)
		}
		if c, _ := st.StagedCourse(ctx, 5); len(c.Groupings)+len(c.Groups)+len(c.Members) != 0 {
			t.Fatalf("course 5 still staged: %+v", c)
		}
		if c, _ := st.StagedCourse(ctx, 6); len(c.Groups) != 1 {
			t.Fatalf("course 6 lost its staged rows: %+v", c)
		}
		if got, _ := st.FindAudit(ctx, store.AuditQuery{Courses: []int64{5}}); len(got) != 3 || got[2].Action != "forget" || got[2].CourseID != 5 {
			t.Fatalf("audit after forget = %+v", got)
		}
	})
}

func TestSiteBinding(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if b, err := st.SiteBinding(ctx); err != nil || b != nil {
			t.Fatalf("SiteBinding before any load = %+v, %v", b, err)
		}
		at := time.Date(2026, 11, 29, 2, 15, 0, 0, time.UTC)
		if err := st.BindSite(ctx, store.SiteBinding{URL: "HTTPS://Moodle.Example.ac.uk/Moodle/", Name: "UCL Moodle", BoundAt: at, RunID: "r1"}); err != nil {
			t.Fatal(err)
		}
		b, err := st.SiteBinding(ctx)
		if err != nil || b == nil {
			t.Fatalf("SiteBinding = %+v, %v", b, err)
		}
		if b.URL != "https://moodle.example.ac.uk/Moodle" || b.Name != "UCL Moodle" || !b.BoundAt.Equal(at) || b.RunID != "r1" {
			t.Fatalf("SiteBinding = %+v", b)
		}
		if err := st.BindSite(ctx, store.SiteBinding{URL: "https://other.example.ac.uk", Name: "Other"}); err != nil {
			t.Fatal(err)
		}
		if b, _ := st.SiteBinding(ctx); b.URL != "https://other.example.ac.uk" || b.Name != "Other" || b.RunID != "" || b.BoundAt.IsZero() {
			t.Fatalf("rebound SiteBinding = %+v", b)
		}
	})
}

func TestSiteURLKey(t *testing.T) {
	for in, want := range map[string]string{
		"https://moodle.example.ac.uk":           "https://moodle.example.ac.uk",
		"https://moodle.example.ac.uk/":          "https://moodle.example.ac.uk",
		" HTTPS://MOODLE.example.ac.uk:8443/m/ ": "https://moodle.example.ac.uk:8443/m",
		"https://moodle.example.ac.uk/Path":      "https://moodle.example.ac.uk/Path",
	} {
		if got := store.SiteURLKey(in); got != want {
			t.Errorf("SiteURLKey(%q) = %q, want %q", in, got, want)
		}
	}
}
