package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/load/report/reporttest"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// applySite is a Moodle simulator with two courses and a handful of people,
// a migrated staging database of one engine, and a config file: what
// `cmissync apply` needs, driven through the real command line.
type applySite struct {
	t       *testing.T
	dir     string
	config  string
	env     map[string]string
	sim     *moodlesim.Server
	mc      *moodle.Client
	st      *store.Store
	c1, c2  int            // COURSE1, COURSE2
	users   map[string]int // username -> id
	groups  map[string]int // "COURSE1/name" -> id
	extraCf string
}

// The people: CMIS ids are their idnumbers.
var applyPeople = []moodlesim.User{
	{Username: "john.doe", IDNumber: "100001", Email: "john.doe@example.ac.uk", FirstName: "John", LastName: "Doe"},
	{Username: "bill.smith", IDNumber: "100002", Email: "bill.smith@example.ac.uk", FirstName: "Bill", LastName: "Smith"},
	{Username: "tom.bridges", IDNumber: "100003", Email: "tom.bridges@example.ac.uk", FirstName: "Tom", LastName: "Bridges"},
	{Username: "tom.sludges", IDNumber: "200001", Email: "tom.sludges@example.ac.uk", FirstName: "Tom", LastName: "Sludges"},
	{Username: "tim.sloane", IDNumber: "200002", Email: "tim.sloane@example.ac.uk", FirstName: "Tim", LastName: "Sloane"},
	{Username: "ann.other", IDNumber: "100004", Email: "ann.other@example.ac.uk", FirstName: "Ann", LastName: "Other"},
}

func newApplySite(t *testing.T, engine string, extraConfig string, simOpts ...func(*moodlesim.Options)) *applySite {
	t.Helper()
	s := &applySite{t: t, dir: t.TempDir(), users: map[string]int{}, groups: map[string]int{}}
	o := moodlesim.Options{Token: testToken, ShowIdnumber: true}
	for _, f := range simOpts {
		f(&o)
	}
	s.sim = moodlesim.New(o)
	url, err := s.sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.sim.Close() })
	s.c1 = s.sim.AddCourse(moodlesim.Course{ShortName: "COURSE1", FullName: "Course One", IDNumber: "C1-2026"})
	s.c2 = s.sim.AddCourse(moodlesim.Course{ShortName: "COURSE2", FullName: "Course Two", IDNumber: "C2-2026"})
	for _, u := range applyPeople {
		s.users[u.Username] = s.sim.AddUser(u)
	}
	// tim.sloane is a student of COURSE1, bill.smith one of both courses.
	s.must(s.sim.Enrol(s.c1, s.users["tim.sloane"]))
	s.must(s.sim.Enrol(s.c1, s.users["bill.smith"]))
	s.must(s.sim.Enrol(s.c2, s.users["bill.smith"]))
	for _, name := range []string{"All Students", "G1", "G2"} {
		s.group(s.c1, name, "")
	}
	if s.mc, err = moodle.New(moodle.Options{URL: url, Token: testToken}); err != nil {
		t.Fatal(err)
	}
	_, dsn := storetest.DSN(t, engine)
	s.config = filepath.Join(s.dir, "cmissync.toml")
	cfg := fmt.Sprintf("[staging]\nengine = %q\ndsn = %q\n\n[moodle]\nurl = %q\nretry_wait = \"5ms\"\nretries = 1\n\n[email]\nreport_dir = %q\n\n[log]\nlevel = \"warn\"\n%s",
		engine, dsn, url, filepath.Join(s.dir, "reports"), extraConfig)
	s.must(os.WriteFile(s.config, []byte(cfg), 0o600))
	s.env = map[string]string{"CMISSYNC_MOODLE_TOKEN": testToken}
	s.run(0, "migrate")
	if s.st, err = store.Open(context.Background(), engine, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.st.Close() })
	return s
}

func (s *applySite) must(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

// group makes a group by hand in Moodle.
func (s *applySite) group(course int, name, idnumber string, members ...int) int {
	s.t.Helper()
	id, err := s.sim.AddGroup(moodlesim.Group{CourseID: course, Name: name, IDNumber: idnumber, Members: members})
	s.must(err)
	s.groups[s.courseName(course)+"/"+name] = id
	return id
}

func (s *applySite) courseName(id int) string {
	for _, c := range s.sim.State().Courses {
		if c.ID == id {
			return c.ShortName
		}
	}
	return fmt.Sprint(id)
}

// file writes a command file in the site's directory.
func (s *applySite) file(name, body string) string {
	s.t.Helper()
	p := filepath.Join(s.dir, name)
	s.must(os.WriteFile(p, []byte(body), 0o644))
	return p
}

// cmd runs a command line with the site's configuration and environment.
func (s *applySite) cmd(args ...string) (int, string, string) {
	return run(s.t, s.env, append(args, "--config", s.config)...)
}

// run runs a command line that must exit with want, and returns its output.
func (s *applySite) run(want int, args ...string) string {
	s.t.Helper()
	code, out, errs := s.cmd(args...)
	if code != want {
		s.t.Fatalf("cmissync %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errs)
	}
	return out
}

// view renders what Moodle holds of a course: each enrolled user with
// their roles and groups, sorted, one line each.
func (s *applySite) view(course int) []string {
	st := s.sim.State()
	names := map[int]string{}
	for _, u := range st.Users {
		names[u.ID] = u.Username
	}
	roleNames := map[int]string{1: "manager", 2: "coursecreator", 3: "editingteacher", 4: "teacher", 5: "student"}
	roles := map[int][]string{}
	for _, ra := range st.RoleAssignments {
		if ra.CourseID == course {
			roles[ra.UserID] = append(roles[ra.UserID], roleNames[ra.RoleID])
		}
	}
	groups := map[int][]string{}
	for _, g := range st.Groups {
		if g.CourseID != course {
			continue
		}
		for _, m := range g.Members {
			groups[m] = append(groups[m], g.Name)
		}
	}
	var out []string
	for _, u := range st.Enrolments[course] {
		sort.Strings(roles[u])
		sort.Strings(groups[u])
		out = append(out, fmt.Sprintf("%s roles=%v groups=%v", names[u], roles[u], groups[u]))
	}
	sort.Strings(out)
	return out
}

func (s *applySite) wantView(step string, course int, want ...string) {
	s.t.Helper()
	if got := s.view(course); strings.Join(got, "\n") != strings.Join(want, "\n") {
		s.t.Fatalf("%s: course %d holds\n  %s\nwant\n  %s", step, course, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// wantOut checks that the output holds each of the texts.
func wantOut(t *testing.T, out string, texts ...string) {
	t.Helper()
	for _, w := range texts {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// seedSample is the Enrol Sync documentation's sample (seed 003) as printed.
func seedSample(t *testing.T) string {
	return readFile(t, "../../load/enrolsync/testdata/seed_sample.csv")
}

// TestApplySeedSample runs the documentation's sample. As printed, its
// header names the columns in another order than its lines use them: the
// header is taken at its word, so every line names a course "student" or
// the like and fails with a reason saying so, and nothing is sent. With
// the header in the lines' order it enrols and groups everyone.
func TestApplySeedSample(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			s := newApplySite(t, engine, "")
			before := s.view(s.c1)
			path := s.file("sample.csv", seedSample(t))
			out := s.run(exitPartial, "apply", path, "--user-field", "username")
			wantOut(t, out, `line 2: add COURSE1 john.doe in student`, `FAILED: no course has shortname "student"`,
				`("student" is a role: do the header's column names match the order of the line's fields?)`,
				"sample.csv: 5 lines: 0 done, 0 with nothing to do, 5 failed")
			s.wantView("after the sample as printed", s.c1, before...)
			tryback := filepath.Join(s.dir, "sample.tryback.csv")
			tb := readFile(t, tryback)
			for _, line := range strings.Split(strings.TrimSpace(seedSample(t)), "\n") {
				if !strings.Contains(tb, line+"\n") {
					t.Errorf("the tryback file lacks %q:\n%s", line, tb)
				}
			}

			fixed := s.file("fixed.csv", strings.Replace(seedSample(t), "cmd;uid;cid;rolename", "cmd;uid;rolename;cid", 1))
			out = s.run(0, "apply", fixed, "--user-field", "username")
			wantOut(t, out, `line 2: add student john.doe in COURSE1, gadd "All Students", "G1": done: enrol as student (role 5); add to group "All Students"`,
				`line 3: add student bill.smith in COURSE1, gadd "All Students", "G2": done: add to group "All Students"`, "already enrolled as student (role 5)",
				`line 6: shift teacher tim.sloane in COURSE1: done: enrol as teacher (role 4); remove role student (role 5)`,
				"fixed.csv: 5 lines: 5 done, 0 with nothing to do, 0 failed")
			s.wantView("after the sample in order", s.c1,
				"bill.smith roles=[student] groups=[All Students G2]",
				"john.doe roles=[student] groups=[All Students G1]",
				"tim.sloane roles=[teacher] groups=[]",
				"tom.bridges roles=[student] groups=[All Students G1]",
				"tom.sludges roles=[editingteacher] groups=[G1 G2]")
			if _, err := os.Stat(filepath.Join(s.dir, "fixed.tryback.csv")); !os.IsNotExist(err) {
				t.Errorf("a tryback file was written with no line failed: %v", err)
			}
			// Applied again, nothing changes.
			s.sim.ResetCalls()
			out = s.run(0, "apply", fixed, "--user-field", "username")
			wantOut(t, out, "fixed.csv: 5 lines: 0 done, 5 with nothing to do, 0 failed")
			if n := writeCalls(s.sim.Calls()); n != 0 {
				t.Errorf("applying the file again made %d writes: %v", n, s.sim.Calls())
			}
		})
	}
}

// runIDOf finds the run id apply printed.
func runIDOf(t *testing.T, out string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "cmissync audit --run ")
	if !ok {
		t.Fatalf("no run id in:\n%s", out)
	}
	return strings.Fields(rest)[0]
}

// TestApplyEveryVerb carries out each verb and group verb, two lines about
// the same person (run in the file's order), a line with nothing to do and
// hidden = 1, and checks Moodle, the output and the audit.
func TestApplyEveryVerb(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			s := newApplySite(t, engine, "")
			bill, ann := s.users["bill.smith"], s.users["ann.other"]
			s.must(s.sim.AddMember(s.groups["COURSE1/All Students"], bill))
			s.must(s.sim.AddMember(s.groups["COURSE1/G1"], bill))
			s.must(s.sim.EnrolUser(moodlesim.UserEnrolment{CourseID: s.c2, UserID: ann}, moodlesim.RoleStudent, moodlesim.RoleTeacher))
			s.group(s.c2, "Old seminar", "", ann)
			path := s.file("verbs.csv", "\uFEFFcmd;rolename;cid;uid;hidden;gcmd;g1;g2\r\n"+
				"add;student;COURSE1;100001;0;gadd;G1;\r\n"+
				"add;teacher;COURSE1;100002;1;greplace;G2;\r\n"+
				"shift;editingteacher;COURSE1;200002;0;;;\r\n"+
				"add;student;COURSE1;100003;0;gaddcreate;Lab A;G2\r\n"+
				"add;student;COURSE2;200001;0;greplacecreate;Seminar 1;\r\n"+
				"del;student;COURSE2;100002;;;;\r\n"+
				"del;;COURSE2;100004;;;;\r\n"+
				"del;student;COURSE1;100002;;;;\r\n"+
				"add;student;COURSE1;100001;;gadd;G1;\r\n")
			out := s.run(0, "apply", path)
			wantOut(t, out,
				`line 2: add student 100001 in COURSE1, gadd "G1": done: enrol as student (role 5); add to group "G1"`,
				`line 3: add teacher 100002 in COURSE1, greplace "G2": done: enrol as teacher (role 4); add to group "G2" (id 3); remove from group "All Students" (id 1); remove from group "G1" (id 2)`,
				`line 4: shift editingteacher 200002 in COURSE1: done: enrol as editingteacher (role 3); remove role student (role 5)`,
				`line 5: add student 100003 in COURSE1, gaddcreate "Lab A", "G2": done: create group "Lab A" (id 5); enrol as student (role 5); add to group "Lab A" (id 5); add to group "G2" (id 3)`,
				`line 6: add student 200001 in COURSE2, greplacecreate "Seminar 1": done: create group "Seminar 1" (id 6); enrol as student (role 5); add to group "Seminar 1" (id 6)`,
				`line 7: del student 100002 in COURSE2: done: remove role student (role 5); unenrol (manual enrolment)`,
				`line 8: del 100004 in COURSE2: done: remove role teacher (role 4); remove role student (role 5); unenrol (manual enrolment)`,
				`line 9: del student 100002 in COURSE1: done: remove role student (role 5)`,
				`line 10: add student 100001 in COURSE1, gadd "G1": nothing to do (already enrolled as student (role 5); already in group "G1"`,
				`hidden = 1 on line 3 is ignored`,
				"verbs.csv: 9 lines: 8 done, 1 with nothing to do, 0 failed")
			if strings.Count(out, "hidden = 1") != 1 {
				t.Errorf("the hidden column is warned about more than once:\n%s", out)
			}
			s.wantView("course 1", s.c1,
				"bill.smith roles=[teacher] groups=[G2]",
				"john.doe roles=[student] groups=[G1]",
				"tim.sloane roles=[editingteacher] groups=[]",
				"tom.bridges roles=[student] groups=[G2 Lab A]")
			s.wantView("course 2", s.c2, "tom.sludges roles=[student] groups=[Seminar 1]")

			audit := s.run(0, "audit", "--run", runIDOf(t, out))
			wantOut(t, audit, "apply-enrol", "apply-add", "apply-remove", "apply-unassign", "apply-unenrol", "apply-create",
				"verbs.csv:3: remove from group \"G1\" (id 2)", "verbs.csv:8: unenrol (manual enrolment)", "verbs.csv:5: create group \"Lab A\" (id 5)",
				"100002 ("+fmt.Sprint(bill)+")", "21 changes")
		})
	}
}

// TestApplyNamesCoursesAndUsersEveryWay names courses by id, shortname and
// idnumber and users by id, username, email and idnumber, chosen by flag,
// by config key, by environment variable and by default.
func TestApplyNamesCoursesAndUsersEveryWay(t *testing.T) {
	s := newApplySite(t, store.EngineSQLite, "")
	u := s.users
	cases := []struct {
		name         string
		course, user string
		args         []string
		env          map[string]string
		config       string
		want         string
	}{
		{"ids by flag", fmt.Sprint(s.c2), fmt.Sprint(u["john.doe"]), []string{"--course-field", "id", "--user-field", "id"}, nil, "", "john.doe"},
		{"shortname and username by config", "course2", "Ann.Other", nil, nil, "[apply]\ncourse_field = \"shortname\"\nuser_field = \"username\"\n", "ann.other"},
		{"idnumber and email by environment", "C2-2026", "TOM.BRIDGES@example.ac.uk", nil,
			map[string]string{"CMISSYNC_APPLY_COURSE_FIELD": "idnumber", "CMISSYNC_APPLY_USER_FIELD": "email"}, "", "tom.bridges"},
		{"shortname and idnumber by default", "COURSE2", "200001", nil, nil, "", "tom.sludges"},
	}
	base := readFile(t, s.config)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.must(os.WriteFile(s.config, []byte(base+tc.config), 0o600))
			for k, v := range tc.env {
				s.env[k] = v
			}
			defer func() {
				for k := range tc.env {
					delete(s.env, k)
				}
			}()
			path := s.file("names.csv", "cmd;rolename;cid;uid\nadd;student;"+tc.course+";"+tc.user+"\n")
			out := s.run(0, append([]string{"apply", path}, tc.args...)...)
			wantOut(t, out, "done: enrol as student (role 5)")
			if !strings.Contains(strings.Join(s.view(s.c2), "\n"), tc.want+" roles=[student]") {
				t.Errorf("%s is not a student of course 2: %v", tc.want, s.view(s.c2))
			}
		})
	}
	code, _, errs := s.cmd("apply", s.file("x.csv", "cmd;cid;uid\n"), "--course-field", "fullname")
	if code != exitUsage || !strings.Contains(errs, "--course-field") {
		t.Errorf("a bad --course-field: exit %d, %s", code, errs)
	}
}

// TestApplyBadLinesGoToTheTrybackFileAndRerun: lines naming an unknown
// verb, course, user, role or group fail with the reason, and so does a
// role Moodle refuses (found alone by splitting the refused call); the good
// lines are done; the tryback file holds the failed lines unchanged after
// their reasons, and a report is emailed. Once the causes are fixed, the
// tryback file reruns just them, shrinking until nothing is left.
func TestApplyBadLinesGoToTheTrybackFileAndRerun(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			const user, password = "cmissync", "smtp-secret-7c1e"
			srv := reporttest.StartSMTP(t, user, password)
			s := newApplySite(t, engine, "")
			for k, v := range map[string]string{
				"CMISSYNC_EMAIL_SMTP_HOST": "127.0.0.1", "CMISSYNC_EMAIL_SMTP_PORT": fmt.Sprint(srv.Port),
				"CMISSYNC_EMAIL_TLS": "none", "CMISSYNC_EMAIL_USERNAME": user, "CMISSYNC_EMAIL_PASSWORD": password,
				"CMISSYNC_EMAIL_FROM": "cmissync@example.ac.uk", "CMISSYNC_EMAIL_TO": "moodle-support@example.ac.uk",
			} {
				s.env[k] = v
			}
			lines := []string{
				"cmd;rolename;cid;uid;gcmd;g1",
				"add;student;COURSE1;100001;gadd;G1",
				"enrol;student;COURSE1;100002;;",
				"add;student;NOPE;100003;;",
				"add;student;COURSE1;999999;;",
				"add;tutor;COURSE1;100004;;",
				"add;student;COURSE1;200001;gadd;Lab Z",
				"add;999;COURSE1;200002;;",
				"add;student;COURSE2;100003;;",
			}
			path := s.file("fix.csv", strings.Join(lines, "\n")+"\n")
			out := s.run(exitPartial, "apply", path)
			wantOut(t, out,
				`line 2: add student 100001 in COURSE1, gadd "G1": done: enrol as student (role 5); add to group "G1" (id 2)`,
				`line 3: FAILED: unknown verb "enrol" in the cmd column (want add, del or shift)`,
				`line 4: add student 100003 in NOPE: FAILED: no course has shortname "NOPE"`,
				`line 5: add student 999999 in COURSE1: FAILED: no Moodle user has idnumber "999999"`,
				`line 6: add tutor 100004 in COURSE1: FAILED: unknown role "tutor": use a role shortname`,
				`line 7: add student 200001 in COURSE1, gadd "Lab Z": FAILED: the course has no group named "Lab Z" (gaddcreate creates missing groups)`,
				`line 8: add 999 200002 in COURSE1: FAILED: could not enrol as role 999: Moodle answered wsusercannotassign`,
				`line 9: add student 100003 in COURSE2: done: enrol as student (role 5)`,
				"fix.csv: 8 lines: 2 done, 0 with nothing to do, 6 failed")
			tryback := filepath.Join(s.dir, "fix.tryback.csv")
			tb := readFile(t, tryback)
			for i, l := range lines {
				failed := i == 0 || i >= 2 && i <= 7 // the header, and the bad lines
				if got := strings.Contains(tb, "\n"+l+"\n"); got != failed {
					t.Errorf("tryback holds %q: %v, want %v\n%s", l, got, failed, tb)
				}
			}
			wantOut(t, tb, "# failed at "+path+":3: unknown verb", "# failed at "+path+":8: could not enrol as role 999: Moodle answered wsusercannotassign",
				"cmissync apply "+tryback)
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d reports arrived, want 1", len(msgs))
			}
			body, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(msgs[0].Data)))
			if err != nil {
				t.Fatal(err)
			}
			wantOut(t, string(body), "apply", "unknownverb", "unknownrole", "wsusercannotassign", "fix.csv:4: add;student;NOPE;100003;;", "cmissync apply "+tryback)
			for _, secret := range []string{testToken, password} {
				if strings.Contains(string(body), secret) || strings.Contains(out, secret) || strings.Contains(tb, secret) {
					t.Fatal("a secret leaked into the report, the output or the tryback file")
				}
			}
			steps, err := s.st.RecentSteps(context.Background(), 1)
			if err != nil || len(steps) != 1 || steps[0].Step != "apply" || steps[0].Outcome != store.OutcomePartial || steps[0].Counts["lines_failed"] != 6 {
				t.Errorf("runs table: %+v, %v", steps, err)
			}
			if errs, err := s.st.RestErrors(context.Background(), steps[0].RunID); err != nil || len(errs) != 6 || errs[0].Step != "apply" {
				t.Errorf("rest_error_logs: %+v, %v", errs, err)
			}
			wantOut(t, s.run(0, "status"), steps[0].RunID+"  apply", "partial", "lines_failed=6", "REST errors in run "+steps[0].RunID+": 6")

			// Fix the causes that live in Moodle and in the configuration.
			s.sim.AddCourse(moodlesim.Course{ShortName: "NOPE", FullName: "Now there", IDNumber: "N-1"})
			s.sim.AddUser(moodlesim.User{Username: "new.person", IDNumber: "999999", FirstName: "New", LastName: "Person"})
			s.group(s.c1, "Lab Z", "")
			s.must(os.WriteFile(s.config, []byte(readFile(t, s.config)+"\n[apply]\nroles = { tutor = 4 }\n"), 0o600))
			out = s.run(exitPartial, "apply", tryback)
			wantOut(t, out, "line 5 (from "+path+":3): FAILED: unknown verb", "line 7 (from "+path+":4): add student 100003 in NOPE: done",
				"line 13 (from "+path+":7)", "(from "+path+":8): add 999 200002 in COURSE1: FAILED", "fix.tryback.csv: 6 lines: 4 done, 0 with nothing to do, 2 failed")
			tb = readFile(t, tryback)
			if strings.Count(tb, "# failed at") != 2 || !strings.Contains(tb, "(from "+path+":3)") || !strings.Contains(tb, "\nenrol;student;COURSE1;100002;;\n") {
				t.Fatalf("the tryback file after the rerun:\n%s", tb)
			}
			audit := s.run(0, "audit", "--run", runIDOf(t, out))
			wantOut(t, audit, "fix.tryback.csv:9 (from "+path+":5): enrol as student (role 5)", "fix.tryback.csv:11 (from "+path+":6): enrol as tutor (role 4)")

			// Fix the lines themselves, and rerun: nothing is left.
			tb = strings.Replace(strings.Replace(tb, "enrol;student;", "add;student;", 1), "add;999;", "add;teacher;", 1)
			s.must(os.WriteFile(tryback, []byte(tb), 0o644))
			out = s.run(0, "apply", tryback)
			wantOut(t, out, "fix.tryback.csv: 2 lines: 1 done, 1 with nothing to do, 0 failed", "now holds nothing to rerun")
			if tb = readFile(t, tryback); strings.Contains(tb, "\nadd;") || !strings.Contains(tb, "every line of") {
				t.Errorf("the tryback file after the last rerun:\n%s", tb)
			}
			s.wantView("after the reruns", s.c1,
				"ann.other roles=[teacher] groups=[]",
				"bill.smith roles=[student] groups=[]",
				"john.doe roles=[student] groups=[G1]",
				"new.person roles=[student] groups=[]",
				"tim.sloane roles=[student teacher] groups=[]",
				"tom.sludges roles=[student] groups=[Lab Z]")
		})
	}
}

// readOnly are the functions apply may call on a dry run.
var readOnly = map[string]bool{
	moodle.FnSiteInfo: true, moodle.FnCoursesByField: true, moodle.FnUsersByField: true, moodle.FnEnrolledUsers: true,
	moodle.FnCourseGroups: true, moodle.FnGroupMembers: true,
}

// TestApplyDryRunWritesNothing: a dry run prints what each line would do,
// fails the lines that would fail (exit 3), and writes nothing: no call
// that changes Moodle, no tryback file, no audit rows, no run recorded.
func TestApplyDryRunWritesNothing(t *testing.T) {
	s := newApplySite(t, store.EngineSQLite, "")
	s.must(s.sim.AddMember(s.groups["COURSE1/G1"], s.users["bill.smith"]))
	before1, before2 := s.view(s.c1), s.view(s.c2)
	path := s.file("dry.csv", "cmd;rolename;cid;uid;gcmd;g1\n"+
		"add;student;COURSE1;100001;gaddcreate;New group\n"+
		"add;student;COURSE1;100001;gadd;New group\n"+
		"shift;teacher;COURSE1;100002;greplace;G2\n"+
		"del;;COURSE2;100002;;\n"+
		"add;student;COURSE9;100003;;\n")
	s.sim.ResetCalls()
	out := s.run(exitPartial, "apply", "--dry-run", path)
	wantOut(t, out, "Dry run: nothing was sent to Moodle.",
		`line 2: add student 100001 in COURSE1, gaddcreate "New group": would create group "New group"; enrol as student (role 5); add to group "New group"`,
		`line 3: add student 100001 in COURSE1, gadd "New group": nothing to do (already enrolled as student (role 5); already in group "New group")`,
		`line 4: shift teacher 100002 in COURSE1, greplace "G2": would enrol as teacher (role 4); add to group "G2" (id 3); remove from group "G1" (id 2); remove role student (role 5)`,
		`line 5: del 100002 in COURSE2: would remove role student (role 5); unenrol (manual enrolment)`,
		`line 6: add student 100003 in COURSE9: FAILED: no course has shortname "COURSE9"`,
		"dry.csv: 5 lines: 3 would change something, 1 with nothing to do, 1 failed")
	for fn := range s.sim.Calls() {
		if !readOnly[fn] {
			t.Errorf("a dry run called %s", fn)
		}
	}
	s.wantView("course 1", s.c1, before1...)
	s.wantView("course 2", s.c2, before2...)
	if _, err := os.Stat(filepath.Join(s.dir, "dry.tryback.csv")); !os.IsNotExist(err) {
		t.Errorf("a dry run wrote a tryback file: %v", err)
	}
	if a, err := s.st.Audit(context.Background(), 0, ""); err != nil || len(a) != 0 {
		t.Errorf("a dry run wrote the audit: %v %v", a, err)
	}
	if steps, err := s.st.RecentSteps(context.Background(), 5); err != nil || len(steps) != 0 {
		t.Errorf("a dry run recorded a run: %v %v", steps, err)
	}
}

// TestApplyLeavesGroupsCmissyncOwns: greplace removals and unenrolments
// that would take someone out of a group the CMIS sync owns (recorded in
// staging, or carrying cmissync's idnumber) fail without --force; adding to
// one is done with a warning, and refused when the load removes members
// CMIS does not list. With --force the lines go through, and the report
// says so.
func TestApplyLeavesGroupsCmissyncOwns(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			s := newApplySite(t, engine, "")
			bill, tim := s.users["bill.smith"], s.users["tim.sloane"]
			byIDNumber := s.group(s.c1, "COMP1001 SEM1", "cmis:COMP1001:SEM1", bill)
			recorded := s.group(s.c1, "COMP1001 Lab", "", tim)
			if _, err := s.st.DB().ExecContext(context.Background(),
				`INSERT INTO cmis_groups_course (courseid, modulecode, groupcode, idnumber, name, moodlegroupid) VALUES (?, ?, ?, ?, ?, ?)`,
				s.c1, "COMP1001", "LAB", "cmis:COMP1001:LAB", "COMP1001 Lab", recorded); err != nil {
				t.Fatal(err)
			}
			before := s.view(s.c1)
			path := s.file("owned.csv", "cmd;rolename;cid;uid;gcmd;g1\n"+
				"add;student;COURSE1;100002;greplace;G1\n"+
				"del;;COURSE1;200002;;\n"+
				"add;student;COURSE1;100001;gadd;COMP1001 SEM1\n")
			out := s.run(exitPartial, "apply", path)
			wantOut(t, out,
				fmt.Sprintf(`line 2: add student 100002 in COURSE1, greplace "G1": FAILED: greplace would remove the user from group "COMP1001 SEM1" (id %d), which is owned by the CMIS sync; change CMIS instead`, byIDNumber),
				fmt.Sprintf(`line 3: del 200002 in COURSE1: FAILED: unenrolling removes the user from group "COMP1001 Lab" (id %d), which is owned by the CMIS sync; change CMIS instead`, recorded),
				`line 4: add student 100001 in COURSE1, gadd "COMP1001 SEM1": done: enrol as student (role 5); add to group "COMP1001 SEM1"`,
				"warning: group \"COMP1001 SEM1\"", "is owned by the CMIS sync")
			want := append([]string{fmt.Sprintf("john.doe roles=[student] groups=[COMP1001 SEM1]")}, before...)
			sort.Strings(want)
			s.wantView("without --force", s.c1, want...)

			out = s.run(0, "apply", "--force", filepath.Join(s.dir, "owned.tryback.csv"))
			wantOut(t, out, `done: add to group "G1" (id 2); remove from group "COMP1001 SEM1"`, "--force: removed from group",
				"done: remove role student (role 5); unenrol (manual enrolment)", "--force: unenrolling removes the user from group")
			s.wantView("with --force", s.c1,
				"bill.smith roles=[student] groups=[G1]",
				"john.doe roles=[student] groups=[COMP1001 SEM1]")
			kept, _ := filepath.Glob(filepath.Join(s.dir, "reports", "*.eml"))
			if len(kept) != 2 {
				t.Fatalf("reports kept: %v, want 2 (failed lines, then --force)", kept)
			}

			// With load.remove_members_not_in_cmis, the next load would
			// take a member added by hand out again: refused.
			s.must(os.WriteFile(s.config, []byte(readFile(t, s.config)+"\n[load]\nremove_members_not_in_cmis = true\n"), 0o600))
			out = s.run(exitPartial, "apply", s.file("add.csv", "cmd;rolename;cid;uid;gcmd;g1\nadd;student;COURSE1;100003;gadd;COMP1001 Lab\n"))
			wantOut(t, out, "FAILED: group \"COMP1001 Lab\"", "which removes members CMIS does not list (load.remove_members_not_in_cmis); change CMIS instead")
		})
	}
}

// TestApplyHoldsRemovalsAfterACallFailedOnTheWay: when a call gets no
// answer, the removals after it are held back by the load's gate (their
// lines go to the tryback file with the reason); rerun once Moodle answers,
// they go through.
func TestApplyHoldsRemovalsAfterACallFailedOnTheWay(t *testing.T) {
	s := newApplySite(t, store.EngineSQLite, "")
	s.must(s.sim.AddMember(s.groups["COURSE1/G1"], s.users["tim.sloane"]))
	s.sim.SetFaults(moodlesim.Faults{FailRate: 1, Functions: []string{moodle.FnAddMembers}})
	path := s.file("net.csv", "cmd;rolename;cid;uid;gcmd;g1\n"+
		"add;student;COURSE1;100001;gadd;G1\n"+
		"del;student;COURSE2;100002;;\n"+
		"add;student;COURSE1;200002;greplace;G2\n")
	out := s.run(exitPartial, "apply", path)
	wantOut(t, out, `line 2: add student 100001 in COURSE1, gadd "G1": FAILED after enrol as student (role 5): could not add to group "G1" (id 2): no answer from Moodle (core_group_add_group_members: HTTP 500)`,
		"line 3: del student 100002 in COURSE2: FAILED: held back: a call failed on the way earlier in this run (no answer from Moodle (core_group_add_group_members: HTTP 500)): deletions wait for a run where Moodle answers every call",
		`line 4: add student 200002 in COURSE1, greplace "G2": FAILED: could not add to group "G2" (id 3)`)
	s.wantView("course 2", s.c2, "bill.smith roles=[student] groups=[]")
	s.sim.SetFaults(moodlesim.Faults{})
	out = s.run(0, "apply", filepath.Join(s.dir, "net.tryback.csv"))
	wantOut(t, out, "3 lines: 3 done")
	s.wantView("course 1", s.c1,
		"bill.smith roles=[student] groups=[]",
		"john.doe roles=[student] groups=[G1]",
		"tim.sloane roles=[student] groups=[G2]")
	s.wantView("course 2", s.c2)
}

// TestApplyMoodleSaysNoAfterAll: what only reading back shows. A user also
// enrolled by another method stays enrolled after the manual enrolment goes
// (the line fails and says why); a line that unenrols cannot also put the
// user in groups.
func TestApplyMoodleSaysNoAfterAll(t *testing.T) {
	s := newApplySite(t, store.EngineSQLite, "")
	ann := s.users["ann.other"]
	s.must(s.sim.EnrolUser(moodlesim.UserEnrolment{CourseID: s.c2, UserID: ann}, moodlesim.RoleStudent))
	s.must(s.sim.EnrolUser(moodlesim.UserEnrolment{CourseID: s.c2, UserID: ann, Method: "self"}))
	out := s.run(exitPartial, "apply", s.file("no.csv", "cmd;rolename;cid;uid;gcmd;g1\n"+
		"del;;COURSE2;100004;;\n"+
		"del;;COURSE1;100002;gadd;G1\n"))
	wantOut(t, out,
		"line 2: del 100004 in COURSE2: FAILED after remove role student (role 5): could not unenrol (manual enrolment): the user is still enrolled when read back: they are enrolled by another method too",
		"line 3: del 100002 in COURSE1, gadd \"G1\": FAILED: the user is not enrolled in the course (after this line's del)")
	s.wantView("course 2", s.c2, "ann.other roles=[] groups=[]", "bill.smith roles=[student] groups=[]")
}

// TestApplyClearsAPhantomBeforeCreating: a refused create left a phantom
// in Moodle's group cache; apply sees that the listed group does not exist
// (read by id), clears the cache with a no-op update before it creates the
// group of that name, and leaves no phantom behind.
func TestApplyClearsAPhantomBeforeCreating(t *testing.T) {
	s := newApplySite(t, store.EngineSQLite, "")
	ctx := context.Background()
	_, err := s.mc.CreateGroups(ctx, []moodle.Group{{CourseID: int64(s.c1), Name: "Lab B", IDNumber: "cmis:X:B"}, {CourseID: int64(s.c1), Name: "Other", IDNumber: "cmis:X:B"}})
	if moodle.ErrorCode(err) != moodle.CodeIDNumberTaken {
		t.Fatalf("making a phantom: %v", err)
	}
	listed := func() []string {
		gs, err := s.mc.CourseGroups(ctx, int64(s.c1))
		s.must(err)
		var names []string
		for _, g := range gs {
			names = append(names, fmt.Sprintf("%s/%s", g.Name, g.IDNumber))
		}
		sort.Strings(names)
		return names
	}
	if l := listed(); !strings.Contains(strings.Join(l, ","), "Lab B/cmis:X:B") {
		t.Fatalf("no phantom listed: %v", l)
	}
	s.sim.ResetCalls()
	out := s.run(0, "apply", s.file("ph.csv", "cmd;rolename;cid;uid;gcmd;g1\nadd;student;COURSE1;100001;gaddcreate;Lab B\n"))
	wantOut(t, out, `done: create group "Lab B" (id`)
	if s.sim.Calls()[moodle.FnUpdateGroups] == 0 {
		t.Errorf("the group cache was not cleared: %v", s.sim.Calls())
	}
	if l := strings.Join(listed(), ","); l != "All Students/,G1/,G2/,Lab B/" {
		t.Errorf("listed after apply: %s", l)
	}
	s.wantView("course 1", s.c1, "bill.smith roles=[student] groups=[]", "john.doe roles=[student] groups=[Lab B]", "tim.sloane roles=[student] groups=[]")
}

// TestApplyWaitsForNoOneHoldingTheLock: apply takes the run lock, so it
// exits 5 and changes nothing while another run holds it.
func TestApplyWaitsForNoOneHoldingTheLock(t *testing.T) {
	s := newApplySite(t, store.EngineSQLite, "")
	l, err := s.st.AcquireLock(context.Background(), "another run", 10*time.Minute, nil)
	s.must(err)
	defer l.Release()
	path := s.file("lock.csv", "cmd;rolename;cid;uid\nadd;student;COURSE1;100001\n")
	code, out, errs := s.cmd("apply", path)
	if code != exitLocked {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitLocked, out, errs)
	}
	s.wantView("course 1", s.c1, "bill.smith roles=[student] groups=[]", "tim.sloane roles=[student] groups=[]")
}

// TestApplyBadFilesExit2: a file that is not a command file, or none, is bad
// usage, and nothing is read from Moodle.
func TestApplyBadFilesExit2(t *testing.T) {
	s := newApplySite(t, store.EngineSQLite, "")
	s.sim.ResetCalls()
	for name, args := range map[string][]string{
		"no file":        {"apply"},
		"two files":      {"apply", "a.csv", "b.csv"},
		"missing file":   {"apply", filepath.Join(s.dir, "none.csv")},
		"unknown column": {"apply", s.file("bad.csv", "cmd;role;cid;uid\nadd;student;COURSE1;100001\n")},
		"UTF-16":         {"apply", s.file("u16.csv", "\xff\xfec\x00m\x00d\x00")},
	} {
		code, _, errs := s.cmd(args...)
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d: %s", name, code, exitUsage, errs)
		}
	}
	if n := totalCalls(s.sim.Calls()); n != 0 {
		t.Errorf("bad files made %d calls", n)
	}
}

// TestApplyStopsOnAMissingFunction: a function the file needs and the
// service lacks stops the apply (exit 1) before anything is sent, naming
// the function; every line goes to the tryback file.
func TestApplyStopsOnAMissingFunction(t *testing.T) {
	var without []string
	for _, fn := range moodlesim.FunctionNames() {
		if fn != moodle.FnUnassignRoles {
			without = append(without, fn)
		}
	}
	s := newApplySite(t, store.EngineSQLite, "", func(o *moodlesim.Options) { o.Functions = without })
	path := s.file("fn.csv", "cmd;rolename;cid;uid\nadd;student;COURSE1;100001\ndel;student;COURSE1;100002\n")
	code, out, errs := s.cmd("apply", path)
	if code != exitFatal || !strings.Contains(errs, moodle.FnUnassignRoles) {
		t.Fatalf("exit %d, want %d naming %s\n%s\n%s", code, exitFatal, moodle.FnUnassignRoles, out, errs)
	}
	wantOut(t, out, "line 2: add student 100001 in COURSE1: FAILED: not carried out: apply stopped", "2 failed")
	if n := writeCalls(s.sim.Calls()); n != 0 {
		t.Errorf("%d writes", n)
	}
	tb := readFile(t, filepath.Join(s.dir, "fn.tryback.csv"))
	wantOut(t, tb, "\nadd;student;COURSE1;100001\n", "\ndel;student;COURSE1;100002\n")
}

// TestApplyRolesSetting: apply.roles maps names to ids, from the file or
// the environment; a name without an id, or an id that is not positive,
// stops cmissync at start-up (exit 2).
func TestApplyRolesSetting(t *testing.T) {
	c, err := loadConfig("", false, envOf(map[string]string{"CMISSYNC_APPLY_ROLES": "tutor=4, demonstrator = 9"}))
	if err != nil || len(c.Apply.Roles) != 2 || c.Apply.Roles["tutor"] != 4 || c.Apply.Roles["demonstrator"] != 9 {
		t.Fatalf("roles %v, %v", c.Apply.Roles, err)
	}
	path := writeFile(t, "c.toml", "[apply]\nroles = { tutor = 4, \"lab helper\" = 10 }\n")
	if _, err := loadConfig(path, true, envOf(nil)); err == nil || !strings.Contains(err.Error(), "apply.roles") {
		t.Errorf("a role name with a space: %v", err)
	}
	for value, want := range map[string]string{"tutor": "name=id", "tutor=x": "name=id", "tutor=0": "positive", "tutor=-4": "positive"} {
		_, err := loadConfig("", false, envOf(map[string]string{"CMISSYNC_APPLY_ROLES": value}))
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
			t.Errorf("CMISSYNC_APPLY_ROLES=%s: %v, want a configuration error saying %q", value, err, want)
		}
	}
}

// TestApplyLaterLinesSeeEarlierOnes: lines about the same person in the
// same course run in the file's order, each seeing what the one before did,
// on a dry run (which plays the earlier lines forward) as in a real run; a
// course's groups are read when the first line that needs them comes.
func TestApplyLaterLinesSeeEarlierOnes(t *testing.T) {
	s := newApplySite(t, store.EngineSQLite, "")
	path := s.file("order.csv", "cmd;rolename;cid;uid;gcmd;g1\n"+
		"add;student;COURSE2;100001;;\n"+
		"add;teacher;COURSE2;100002;;\n"+
		"add;teacher;COURSE2;100001;gaddcreate;Seminar\n"+
		"del;student;COURSE2;100001;;\n"+
		"del;student;COURSE2;100002;gadd;Seminar\n")
	want := []string{
		"line 2: add student 100001 in COURSE2: %s enrol as student (role 5)",
		"line 3: add teacher 100002 in COURSE2: %s enrol as teacher (role 4)",
		`line 4: add teacher 100001 in COURSE2, gaddcreate "Seminar": %s create group "Seminar`,
		"line 5: del student 100001 in COURSE2: %s remove role student (role 5)",
		`line 6: del student 100002 in COURSE2, gadd "Seminar": %s add to group "Seminar`,
	}
	for _, dry := range []bool{true, false} {
		args, verb := []string{"apply", path}, "done:"
		if dry {
			args, verb = append(args, "--dry-run"), "would"
		}
		out := s.run(0, args...)
		for _, w := range want {
			wantOut(t, out, fmt.Sprintf(w, verb))
		}
	}
	s.wantView("course 2", s.c2, "bill.smith roles=[teacher] groups=[Seminar]", "john.doe roles=[teacher] groups=[Seminar]")
}
