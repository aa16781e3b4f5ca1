package report

import (
	"bytes"
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"path/filepath"
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
		Site:     "Moodle Live",
		RunID:    "20261122-021500-ab12",
		Step:     "load",
		Started:  fixedStart,
		Finished: fixedStart.Add(2*time.Minute + 43*time.Second),
		Outcome:  "finished with 3 failures",
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

func TestRenderTruncatesAndAttachesCSV(t *testing.T) {
	r := manyReport()
	for _, tt := range []struct {
		maxRows, shown int
	}{{0, DefaultMaxRows}, {10, 10}, {49, 49}} {
		got, err := Render(r, RenderOptions{MaxRows: tt.maxRows})
		if err != nil {
			t.Fatal(err)
		}
		more := fmt.Sprintf("… and %d more in the attached CSV", len(r.Failures)-tt.shown)
		if !strings.Contains(got.Text, more) {
			t.Errorf("MaxRows %d: text lacks %q", tt.maxRows, more)
		}
		if !strings.Contains(got.HTML, fmt.Sprintf("&hellip; and %d more in the attached CSV", len(r.Failures)-tt.shown)) {
			t.Errorf("MaxRows %d: HTML lacks the truncation note", tt.maxRows)
		}
		if n := strings.Count(got.Text, "\n#"); n != tt.shown {
			t.Errorf("MaxRows %d: text shows %d failures, want %d", tt.maxRows, n, tt.shown)
		}
		if n := strings.Count(got.HTML, "<tr>\n<td"); n != tt.shown {
			t.Errorf("MaxRows %d: HTML shows %d failures, want %d", tt.maxRows, n, tt.shown)
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

	got, err := Render(r, RenderOptions{MaxRows: 50})
	if err != nil {
		t.Fatal(err)
	}
	if got.CSV != nil || got.CSVName != "" || strings.Contains(got.Text, "more in the attached CSV") {
		t.Error("all 50 rows fit inline, yet a CSV was attached or announced")
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
