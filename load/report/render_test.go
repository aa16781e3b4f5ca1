package report

import (
	"bytes"
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testToken = "abc123secret"

// fixedStart is the clock for every test report.
var fixedStart = time.Date(2026, 11, 22, 2, 15, 0, 0, time.UTC)

func fewReport() Report {
	return Report{
		Site:      "Moodle Live",
		RunID:     "20261122-021500-ab12",
		Step:      "load",
		Started:   fixedStart,
		Finished:  fixedStart.Add(2*time.Minute + 43*time.Second),
		Outcome:   "finished with 3 failures",
		MoodleURL: "https://moodle.example.ac.uk/",
		Summary: []Count{
			{"Groups created", 12},
			{"Groupings created", 3},
			{"Members added", 340},
			{"Members removed", 7},
			{"Failures", 3},
		},
		Advice: []string{
			`Run "cmissync status" to see pending and failed items.`,
			`Fix the causes below, then run "cmissync load" to retry only what failed.`,
		},
		Failures: []Failure{
			{
				CourseID: 1234, CourseName: "ECON0001 Introduction to Economics 2026/27",
				GroupName: "ECON0001 Seminar 1", GroupIDNumber: "cmis:ECON0001:SEM1",
				User:      "s1234567 (Moodle user 42)",
				Function:  "core_group_add_group_members",
				Params:    "wstoken=" + testToken + "&members[0][groupid]=70373&members[0][userid]=42",
				ErrorCode: "invalidrecord", Exception: "dml_missing_record_exception",
				Message: "Can not find data record in database table groups.",
			},
			{
				CourseID: 1234, CourseName: "ECON0001 Introduction to Economics 2026/27",
				GroupName: "ECON0001 Seminar 2", GroupIDNumber: "cmis:ECON0001:SEM2",
				User:      "s7654321 (Moodle user 77)",
				Function:  "core_group_add_group_members",
				Params:    `{"members":[{"groupid":70374,"userid":77}],"wstoken":"` + testToken + `"}`,
				ErrorCode: CodeNotEnrolled,
				Message:   "User is not enrolled in the course.",
			},
			{
				CourseID: 2001, CourseName: "LAWS0010 Law & Society <Year 1>",
				GroupName: "LAWS0010 Tutorial A", GroupIDNumber: "cmis:LAWS0010:TUTA",
				Function:  "core_group_create_groupings",
				Params:    "groupings[0][courseid]=2001&groupings[0][name]=LAWS0010&groupings[0][idnumber]=cmis:LAWS0010",
				ErrorCode: "accessexception", Exception: "webservice_access_exception",
				Message: "Access control exception",
				Hint:    "Add core_group_create_groupings to the cmissync service (Site administration > Server > Web services > External services > Functions).",
			},
		},
	}
}

func manyReport() Report {
	r := fewReport()
	r.RunID = "20261123-021500-cd34"
	r.Started = fixedStart.Add(24 * time.Hour)
	r.Finished = r.Started.Add(11*time.Minute + 5*time.Second)
	r.Outcome = "finished with 50 failures"
	r.Summary = []Count{{"Groups created", 3}, {"Members added", 1204}, {"Failures", 50}}
	r.Failures = nil
	codes := []struct{ code, exc, msg string }{
		{CodeNotEnrolled, "", "User is not enrolled in the course."},
		{"invaliduser", "invalid_parameter_exception", "Invalid user"},
		{"invalidrecord", "dml_missing_record_exception", "Can not find data record in database table groups."},
		{"idnumbertaken", "moodle_exception", "ID number is already used for another group (cmis:HIST0101:LAB1)"},
		{CodeTransient, "", "Post \"https://moodle.example.ac.uk/webservice/rest/server.php\": context deadline exceeded"},
	}
	for i := 0; i < 50; i++ {
		c := codes[i%len(codes)]
		if i%7 == 0 {
			c = codes[0]
		}
		name := fmt.Sprintf("HIST01%02d History module %d", i%9, i%9)
		if i == 49 {
			name = "=HYPERLINK(\"http://example.invalid\")"
		}
		r.Failures = append(r.Failures, Failure{
			CourseID:      3000 + i%9,
			CourseName:    name,
			GroupName:     fmt.Sprintf("HIST01%02d Lab %d", i%9, i%4+1),
			GroupIDNumber: fmt.Sprintf("cmis:HIST01%02d:LAB%d", i%9, i%4+1),
			User:          fmt.Sprintf("s%07d (Moodle user %d)", 2000000+i, 500+i),
			Function:      "core_group_add_group_members",
			Params:        fmt.Sprintf("wstoken=%s&members[0][groupid]=%d&members[0][userid]=%d", testToken, 80000+i%4, 500+i),
			ErrorCode:     c.code,
			Exception:     c.exc,
			Message:       c.msg,
		})
	}
	return r
}

func fatalReport() Report {
	return Report{
		Site:     "Moodle Live",
		RunID:    "20261124-021500-ef56",
		Step:     "extract",
		Started:  fixedStart.Add(48 * time.Hour),
		Finished: fixedStart.Add(48*time.Hour + 30*time.Second),
		Summary:  []Count{{"Rows read", 0}},
		Fatal:    "connect to CMIS: ORA-12541: TNS:no listener\n(dsn user=cmis_ro password=" + testToken + ")",
		Advice: []string{
			"Check that the CMIS database is up and reachable from this host.",
			`Run "cmissync extract" once it is; Moodle was not changed.`,
		},
	}
}

// outageReport is one Moodle outage seen by many calls: the web server's error page came back
// instead of Moodle's JSON, 41 times.
func outageReport() Report {
	r := Report{
		Site: "Moodle Live", RunID: "20261125-021500-0a0b", Step: "load",
		Started: fixedStart.Add(72 * time.Hour), Finished: fixedStart.Add(72*time.Hour + 95*time.Second),
		MoodleURL: "https://moodle.example.ac.uk",
		Summary:   []Count{{"groups created", 0}, {"members added", 12}, {"failed items", 41}},
		Advice:    []string{"Fix the cause named for each item (in Moodle, or in the staged rows), then rerun: cmissync load"},
	}
	// As moodle.TransportError quotes the body.
	page := strconv.Quote("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>500 Internal Server Error</title>\n" +
		"</head><body>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error.</p>\n</body></html>\n")
	for i := range 41 {
		r.Failures = append(r.Failures, Failure{
			CourseID: 100 + i%7, CourseName: fmt.Sprintf("CHEM%04d Chemistry %d (CHEM%04d_26-27)", i%7, i%7, i%7),
			GroupName: fmt.Sprintf("CHEM%04d LAB%02d", i%7, i), GroupIDNumber: fmt.Sprintf("cmis:CHEM%04d:LAB%02d", i%7, i),
			User:      fmt.Sprintf("student %07d (Moodle user %d)", 3000000+i, 900+i),
			Function:  "core_group_add_group_members",
			Params:    fmt.Sprintf("members[0][groupid]=%d&members[0][userid]=%d", 5000+i, 900+i),
			ErrorCode: CodeTransient, Exception: "transport",
			Message: "core_group_add_group_members: HTTP 500: " + page,
		})
	}
	r.Failures = append(r.Failures, Failure{
		CourseID: 104, CourseName: "CHEM0004 Chemistry 4 (CHEM0004_26-27)",
		GroupName: "CHEM0004 LAB99", GroupIDNumber: "cmis:CHEM0004:LAB99",
		Function:  "core_group_create_groups",
		Params:    "groups[0][courseid]=104&groups[0][name]=CHEM0004 LAB99&groups[0][idnumber]=cmis:CHEM0004:LAB99&groups[0][description]=&groups[0][descriptionformat]=1",
		ErrorCode: "idnumbertaken", Exception: "core\\exception\\moodle_exception", Message: "This ID number is already in use",
	})
	return r
}

// extractReport is an extract that refused rows of two files.
func extractReport() Report {
	r := Report{
		Site: "Moodle Live", RunID: "20261126-021500-1c2d", Step: "extract",
		Started: fixedStart.Add(96 * time.Hour), Finished: fixedStart.Add(96*time.Hour + 4*time.Second),
		MoodleURL: "https://moodle.example.ac.uk",
		Summary: []Count{{"cmis_groups_dump rows loaded", 412}, {"cmis_groupmembers_dump rows loaded", 9120},
			{"cmis_groupmembers_dump rows rejected", 4}, {"cmis_groups_dump rows rejected", 1}, {"cmis_tutgroupmembers_dump rows loaded", 0}},
		Advice: []string{"Fix the rows in CMIS (or the CSV files); they were left out of this run and the rest went on. See cmis_error_data_dump."},
	}
	for i, line := range []int64{14, 15, 31} {
		r.Refused = append(r.Refused, Refused{
			File: "group_members.csv", Line: line, Field: "studentid",
			Reason: "missing studentid; as its studentid cannot be read, no student is removed from group ECON0001 SEM" + fmt.Sprint(i+1) + " by this run",
			Row:    fmt.Sprintf(`modulecode="ECON0001" groupcode="SEM%d" studentid=""`, i+1),
			Module: "ECON0001", Group: fmt.Sprintf("SEM%d", i+1), Courses: []int{12, 40},
		})
	}
	r.Refused = append(r.Refused,
		Refused{File: "group_members.csv", Line: 88, Reason: "3 values, want 2 (modulecode, groupcode, studentid); as its key cannot be read, no student is removed from a group by this run",
			Row: `"LAWS0010,TUTA`},
		Refused{File: "module_groups.csv", Line: 7, Field: "groupname", Reason: "groupname longer than 254 characters (301)",
			Row: `modulecode="HIST0101" groupcode="LAB1" modulename="History" groupname="Lab 1 …"`, Module: "HIST0101", Group: "LAB1", Courses: []int{77}},
	)
	return r
}

// heldReport is a load whose deletions the mass-change guard held back.
func heldReport() Report {
	return Report{
		Site: "Moodle Live", RunID: "20261127-021500-2e3f", Step: "load", Hold: true,
		Started: fixedStart.Add(120 * time.Hour), Finished: fixedStart.Add(120*time.Hour + 20*time.Second),
		MoodleURL: "https://moodle.example.ac.uk",
		Fatal:     "the plan would delete 1204 of 3000 memberships (40%), more than guard.max_delete_share allows (25%)",
		Advice: []string{"Check why so much would be deleted: an outage or a partial export in CMIS, or mappings changed in bulk?",
			"See the plan with: cmissync plan", "If the deletions are intended, approve them with: cmissync load --approve-deletes"},
		Held: []string{
			"course 12: remove student s1234567 from ECON0001 SEM1: held back: over the mass-change guard",
			"course 40: delete group ECON0001 SEM9 (id 881): held back: over the mass-change guard",
		},
		Summary: []Count{{"members added", 3}, {"deletions held back", 2}},
	}
}

// noticeReport is a clean load whose only news is a course retired and a group recreated.
func noticeReport() Report {
	return Report{
		Site: "Moodle Live", RunID: "20261128-021500-4a5b", Step: "load",
		Started: fixedStart.Add(144 * time.Hour), Finished: fixedStart.Add(144*time.Hour + 7*time.Second),
		MoodleURL: "https://moodle.example.ac.uk",
		Notices: []string{
			"course 4 : course 4 no longer exists in Moodle: its mappings were set to RMV and its staged groups forgotten; it comes back if its mappings are set to ADD again",
			"course 2 cmis:ELEC1018:LAB02: group \"ELEC1018 LAB02\" was deleted in Moodle by hand: recreated as id 18",
		},
		Summary: []Count{{"groups created", 1}, {"members added", 7}, {"courses retired (deleted in Moodle)", 1}, {"failed items", 0}},
	}
}

// waitingReport is a load with nothing to report but students waiting for enrolment.
func waitingReport() Report {
	return Report{
		Site: "Moodle Live", RunID: "20261129-021500-6c7d", Step: "load",
		Started: fixedStart.Add(168 * time.Hour), Finished: fixedStart.Add(168*time.Hour + 5*time.Second),
		MoodleURL: "https://moodle.example.ac.uk",
		Waiting: []string{
			"course 12: student s7654321 for ECON0001 SEM2 is not enrolled yet",
			"course 40: student s7654321 for ECON0001 SEM2 is not enrolled yet",
			"3 memberships wait for enrolment; the oldest since 2026-11-27 (2 days)",
		},
		Summary: []Count{{"members added", 0}, {"memberships waiting for enrolment", 3}},
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got ---\n%s", name, got)
	}
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name    string
		report  Report
		wantCSV bool
	}{
		{"few", fewReport(), false},
		{"many", manyReport(), true},
		{"fatal", fatalReport(), false},
		{"outage", outageReport(), true},
		{"extract", extractReport(), false},
		{"held", heldReport(), false},
		{"notices", noticeReport(), false},
		{"waiting", waitingReport(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.report, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tt.name+".subject.txt", []byte(got.Subject+"\n"))
			checkGolden(t, tt.name+".txt", []byte(got.Text))
			checkGolden(t, tt.name+".html", []byte(got.HTML))
			if (got.CSV != nil) != tt.wantCSV {
				t.Fatalf("CSV attached = %v, want %v", got.CSV != nil, tt.wantCSV)
			}
			if tt.wantCSV {
				checkGolden(t, tt.name+".csv", got.CSV)
			}
		})
	}
}

func TestRenderSubject(t *testing.T) {
	got, err := Render(fewReport(), RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := "[cmissync] Moodle Live: load finished with 3 failures (run 20261122-021500-ab12)"
	if got.Subject != want {
		t.Errorf("subject = %q, want %q", got.Subject, want)
	}

	r := Report{Step: "stage", Site: "a\r\nBcc: x@example.org", Failures: make([]Failure, 2)}
	got, err = Render(r, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[cmissync] a Bcc: x@example.org: stage finished with 2 failures"; got.Subject != want {
		t.Errorf("subject = %q, want %q", got.Subject, want)
	}
	got, err = Render(Report{Step: "extract", Fatal: "boom"}, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[cmissync] extract failed"; got.Subject != want {
		t.Errorf("subject = %q, want %q", got.Subject, want)
	}
}

func TestRenderCollapsesAndAttachesCSV(t *testing.T) {
	r := manyReport()
	for _, tt := range []struct {
		maxRows, shown int
	}{{0, 5 * examplesPerKind}, {4, 4}, {1, 1}} {
		got, err := Render(r, RenderOptions{MaxRows: tt.maxRows})
		if err != nil {
			t.Fatal(err)
		}
		// Five kinds of failure, each shown once with its count, however few examples fit.
		for _, head := range []string{"[1] 16 x ", "[2] 9 x ", "[3] 9 x ", "[4] 8 x ", "[5] 8 x "} {
			if !strings.Contains(got.Text, head) {
				t.Errorf("MaxRows %d: text lacks a kind headed %q", tt.maxRows, head)
			}
		}
		if n := strings.Count(got.Text, "\n["); n != 5 {
			t.Errorf("MaxRows %d: text shows %d kinds, want 5", tt.maxRows, n)
		}
		if n := strings.Count(got.Text, "\n    -\n"); n != tt.shown {
			t.Errorf("MaxRows %d: text shows %d examples, want %d", tt.maxRows, n, tt.shown)
		}
		if n := strings.Count(got.HTML, "background:#f6f7f9"); n != tt.shown {
			t.Errorf("MaxRows %d: HTML shows %d examples, want %d", tt.maxRows, n, tt.shown)
		}
		if !strings.Contains(got.Text, "All 50 failures are in the attached CSV") ||
			!strings.Contains(got.HTML, "All 50 failures are in the attached CSV") {
			t.Errorf("MaxRows %d: the CSV is not announced", tt.maxRows)
		}
		if got.CSVName != "cmissync-20261123-021500-cd34-load-failures.csv" {
			t.Errorf("CSVName = %q", got.CSVName)
		}
		recs := readCSV(t, got.CSV)
		if len(recs) != len(r.Failures)+1 {
			t.Fatalf("CSV has %d records, want header + %d", len(recs), len(r.Failures))
		}
		if strings.Join(recs[0], ",") != strings.Join(csvHeader, ",") {
			t.Errorf("CSV header = %v", recs[0])
		}
	}

	// Every failure shown: nothing to attach.
	got, err := Render(fewReport(), RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.CSV != nil || got.CSVName != "" || strings.Contains(got.Text, "attached CSV") {
		t.Error("every failure is shown, yet a CSV was attached or announced")
	}
}

func TestRenderOutageIsOneKindWithoutHTMLPages(t *testing.T) {
	got, err := Render(outageReport(), RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.Text, "[1] 41 x core_group_add_group_members") || !strings.Contains(got.HTML, "41&times;") {
		t.Error("the 41 identical failures are not one kind with a count")
	}
	for name, part := range map[string]string{"text": got.Text, "html": got.HTML, "csv": string(got.CSV)} {
		for _, page := range []string{"DOCTYPE HTML PUBLIC", "<h1>Internal", "&lt;h1&gt;", "The server encountered"} {
			if strings.Contains(part, page) {
				t.Errorf("%s carries the web server's page (%q)", name, page)
			}
		}
		if !strings.Contains(part, `HTTP 500: an HTML page (`) {
			t.Errorf("%s lacks the one-line summary of the page", name)
		}
	}
	// Links to the groups page of each course.
	if !strings.Contains(got.HTML, `href="https://moodle.example.ac.uk/group/index.php?id=100"`) ||
		!strings.Contains(got.Text, "https://moodle.example.ac.uk/group/index.php?id=106") {
		t.Error("courses do not link to their groups pages")
	}
}

func TestSummarizeHTML(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain message", "plain message"},
		{"HTTP 502: <html><head><title>502 Bad Gateway</title></head><body><h1>Bad</h1></body></html>", `HTTP 502: an HTML page ("502 Bad Gateway")`},
		{"HTTP 503: <!DOCTYPE html><html><body><h1>Site in &amp; maintenance</h1></body></html> (after 3 tries)", `HTTP 503: an HTML page ("Site in & maintenance") (after 3 tries)`},
		{`get: HTTP 303: "<!DOCTYPE html><html><head><title>Redirect</title></head><body><a href=\"x\">Continue</a></body></html>": more`, `get: HTTP 303: an HTML page ("Redirect"): more`},
		{"cut short: <html><body>no title", "cut short: an HTML page"},
		{"value <b>bold</b> is not a page", "value <b>bold</b> is not a page"},
	}
	for _, tt := range tests {
		if got := summarizeHTML(tt.in); got != tt.want {
			t.Errorf("summarizeHTML(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestParamLines(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{`{"a":1}`, []string{`{"a":1}`}},
		{"members[0][groupid]=7&members[0][userid]=41", []string{"members[0][groupid]=7", "members[0][userid]=41"}},
		{"groups[0][name]=Law & Society&groups[0][idnumber]=cmis:LAW:A", []string{"groups[0][name]=Law & Society", "groups[0][idnumber]=cmis:LAW:A"}},
	}
	for _, tt := range tests {
		if got := paramLines(tt.in); strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("paramLines(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var long []string
	for i := range 40 {
		long = append(long, fmt.Sprintf("members[%d][userid]=%d", i, i))
	}
	got := paramLines(strings.Join(long, "&"))
	if len(got) != maxParamLines+1 || !strings.Contains(got[maxParamLines], "28 more parameters") {
		t.Errorf("40 parameters shown as %q", got)
	}
}

func TestOutcomeCountsEverything(t *testing.T) {
	tests := []struct {
		r    Report
		want string
	}{
		{Report{}, "finished"},
		{Report{Failures: make([]Failure, 2), Notices: []string{"n"}}, "finished with 2 failures, 1 notice"},
		{Report{Held: []string{"a", "b"}}, "finished with 2 deletions held back"},
		{Report{Waiting: []string{"summary"}}, "finished"},
		{Report{Waiting: []string{"new", "summary"}}, "finished with 1 new member waiting for enrolment"},
		{Report{Refused: make([]Refused, 3)}, "finished with 3 rows refused"},
		{Report{Fatal: "x", Notices: []string{"n"}}, "failed; 1 notice"},
		{Report{Fatal: "x", Hold: true, Held: []string{"a"}}, "stopped by a safety rail; 1 deletion held back"},
	}
	for _, tt := range tests {
		if got := Outcome(tt.r); got != tt.want {
			t.Errorf("Outcome(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestCourseLinks(t *testing.T) {
	if got := groupsURL("https://moodle.example.ac.uk/moodle/", 12); got != "https://moodle.example.ac.uk/moodle/group/index.php?id=12" {
		t.Errorf("groupsURL = %q", got)
	}
	for _, bad := range []string{"", "javascript:alert(1)", "moodle.example.ac.uk"} {
		if got := groupsURL(bad, 12); got != "" {
			t.Errorf("groupsURL(%q) = %q, want no link", bad, got)
		}
	}
	got := string(linkCourses(`course 12: group "<b>" & course id 40`, "https://m.example"))
	want := `<a href="https://m.example/group/index.php?id=12" style="color:#0b57d0;">course 12</a>: group &#34;&lt;b&gt;&#34; &amp; ` +
		`<a href="https://m.example/group/index.php?id=40" style="color:#0b57d0;">course id 40</a>`
	if got != want {
		t.Errorf("linkCourses\n got %s\nwant %s", got, want)
	}
}

func readCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	b, ok := bytes.CutPrefix(b, []byte("\ufeff"))
	if !ok {
		t.Error("CSV does not start with a UTF-8 byte-order mark")
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	return recs
}

func TestRenderCSVDefusesFormulas(t *testing.T) {
	got, err := Render(manyReport(), RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recs := readCSV(t, got.CSV)
	last := recs[len(recs)-1]
	if want := `'=HYPERLINK("http://example.invalid")`; last[3] != want {
		t.Errorf("course_name cell = %q, want %q", last[3], want)
	}
}

func TestRenderNeverShowsSecrets(t *testing.T) {
	r := manyReport()
	r.Fatal = "moodle said: {\"wstoken\": \"" + testToken + "\"}"
	r.Advice = append(r.Advice, "retry with token="+testToken)
	r.Failures[0].Message = `debuginfo: array ('wstoken' => '` + testToken + `')`
	r.Failures[1].Params = "https://moodle.example.ac.uk/webservice/rest/server.php?wstoken%3D" + testToken
	r.Failures[2].User = "hunter2-literal"
	got, err := Render(r, RenderOptions{MaxRows: 5, Secrets: []string{"hunter2-literal"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, part := range map[string]string{
		"subject": got.Subject, "text": got.Text, "html": got.HTML, "csv": string(got.CSV),
	} {
		for _, secret := range []string{testToken, "hunter2-literal"} {
			if strings.Contains(part, secret) {
				t.Errorf("%s contains the secret %q", name, secret)
			}
		}
	}
	if !strings.Contains(got.Text, "wstoken="+Redacted) {
		t.Error("text does not show where the token was removed")
	}
}

func TestRenderEscapesHTML(t *testing.T) {
	r := fewReport()
	r.Failures[0].CourseName = `<script>alert("x")</script>`
	r.Failures[0].Message = `<b>bold</b> & more`
	got, err := Render(r, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got.HTML, "<script>") || strings.Contains(got.HTML, "<b>bold") {
		t.Error("HTML part contains unescaped markup from the report")
	}
	if !strings.Contains(got.HTML, "&lt;script&gt;") || !strings.Contains(got.HTML, "&amp; more") {
		t.Error("HTML part does not show the escaped text")
	}
	if !strings.Contains(got.Text, `<script>alert("x")</script>`) {
		t.Error("text part should show the course name as it is")
	}
}

func TestHintFor(t *testing.T) {
	codes := []string{
		"invalidrecord", "invalidparameter", "idnumbertaken", "invaliduser", "invalidtoken",
		"accessexception", "errorcoursecontextnotvalid", CodeNotEnrolled, CodeTransient,
	}
	seen := map[string]string{}
	for _, c := range codes {
		h := HintFor(c)
		if h == defaultHint {
			t.Errorf("HintFor(%q) gives the generic hint", c)
		}
		if other, dup := seen[h]; dup {
			t.Errorf("HintFor(%q) is the same as HintFor(%q)", c, other)
		}
		seen[h] = c
	}
	if !strings.Contains(HintFor("accessexception"),
		"Site administration > Server > Web services > External services > Functions") {
		t.Error("accessexception hint does not say where to add the function")
	}
	if HintFor(" InvalidRecord ") != HintFor("invalidrecord") {
		t.Error("HintFor is not forgiving about case and spaces")
	}
	if HintFor("somethingnew") != defaultHint || HintFor("") != defaultHint {
		t.Error("unknown codes should get the generic hint")
	}

	// A hint from the caller wins; an empty one is filled in.
	got, err := Render(fewReport(), RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.Text, "Add core_group_create_groupings to the cmissync service") {
		t.Error("caller's hint is missing")
	}
	if !strings.Contains(got.HTML, "Moodle only lets enrolled users into its groups") {
		t.Error("built-in notenrolled hint is missing")
	}
}

func TestScrub(t *testing.T) {
	tests := []struct{ in, want string }{
		{"wstoken=abc&x=1", "wstoken=[redacted]&x=1"},
		{"x=1&wstoken=abc", "x=1&wstoken=[redacted]"},
		{"wstoken%3Dabc%26x", "wstoken%3D[redacted]%26x"},
		{`{"wstoken":"abc","a":1}`, `{"wstoken":"[redacted]","a":1}`},
		{`{"wstoken" : "a\"bc"}`, `{"wstoken" : "[redacted]"}`},
		{`{"privatetoken":"abc"}`, `{"privatetoken":"[redacted]"}`},
		{`array ('wstoken' => 'abc')`, `array ('wstoken' => '[redacted]')`},
		{"Password: hunter2 and more", "Password: [redacted] and more"},
		{"smtp password=hunter2", "smtp password=[redacted]"},
		{"members[0][token]=abc", "members[0][token]=[redacted]"},
		// Moodle's own words about tokens stay readable.
		{"invalidtoken: Invalid token - token not found", "invalidtoken: Invalid token - token not found"},
		{`{"errorcode":"invalidtoken"}`, `{"errorcode":"invalidtoken"}`},
		{"groupid=70373&userid=42", "groupid=70373&userid=42"},
	}
	for _, tt := range tests {
		if got := Scrub(tt.in); got != tt.want {
			t.Errorf("Scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := Scrub("the value is s3cr3t-value!", "s3cr3t-value", ""); got != "the value is [redacted]!" {
		t.Errorf("literal secret not removed: %q", got)
	}
	if got := Scrub("group 12 of course 1234", "12"); got != "group 12 of course 1234" {
		t.Errorf("a very short secret garbled the text: %q", got)
	}
}

func TestSafeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"20261122-021500-ab12-load", "20261122-021500-ab12-load"},
		{"../../etc/passwd", "_.._etc_passwd"},
		{"run id/with spaces", "run_id_with_spaces"},
		{"", "report"},
	}
	for _, tt := range tests {
		if got := safeName(tt.in); got != tt.want {
			t.Errorf("safeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
