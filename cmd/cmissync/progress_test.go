package main

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the progress display's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressShowsPlanAndWrites(t *testing.T) {
	var term syncBuffer
	var direct bytes.Buffer
	sink := &logSink{w: &direct}
	pr := newProgress(&term, "load", sink, true)
	for done := 0; done <= 300; done += 50 {
		pr.stepStage("plan", done, 300)
	}
	if _, err := sink.Write([]byte("a log line while the bars run\n")); err != nil {
		t.Fatal(err)
	}
	for done := 0; done <= 120; done += 40 {
		pr.stepStage("write", done, 480)
	}
	pr.finish("partial", 2*time.Second)
	out := term.String()
	for _, want := range []string{"load", "planning", "300/300 courses", "writing", "120/480 writes", "a log line while the bars run", "partial"} {
		if !strings.Contains(out, want) {
			t.Errorf("the display lacks %q:\n%q", want, out)
		}
	}
	if direct.Len() != 0 {
		t.Errorf("a log line bypassed the display: %q", direct.String())
	}
	// Once the step is over, log lines go straight out again.
	if _, err := sink.Write([]byte("after\n")); err != nil || direct.String() != "after\n" {
		t.Errorf("log line after the display: %q, %v", direct.String(), err)
	}
	var nilProgress *progress
	nilProgress.stepStage("plan", 1, 2) // off a terminal: nothing, no panic
	nilProgress.finish("ok", time.Second)
}

// TestProgressWriteTotalGrows: the load's write total grows as courses are
// resolved; reaching a total that later grows does not end the bar, and
// the bar ends complete when every write counted is done.
func TestProgressWriteTotalGrows(t *testing.T) {
	var term syncBuffer
	pr := newProgress(&term, "load", &logSink{w: &bytes.Buffer{}}, true)
	pr.stepStage("write", 100, 100)
	pr.stepStage("write", 150, 300)
	pr.stepStage("write", 300, 300)
	pr.finish("ok", time.Second)
	out := term.String()
	for _, want := range []string{"300/300 writes", "100 %"} {
		if !strings.Contains(out, want) {
			t.Errorf("the display lacks %q:\n%q", want, out)
		}
	}
}

func TestLoggerTimestampsAndColours(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	for format, stamp := range map[string]*regexp.Regexp{
		"text": regexp.MustCompile(`time="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"`),
		"json": regexp.MustCompile(`"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}`),
		"auto": regexp.MustCompile(`"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}`), // not a terminal: JSON
	} {
		cfg := defaultConfig()
		cfg.Log.Format = format
		var buf bytes.Buffer
		newLogger(cfg, &buf).WithField("step", "load").Warn("load finished")
		newLogger(cfg, &buf).WithField(pipelineMark, true).Warn("load finished")
		out := buf.String()
		if !stamp.MatchString(out) {
			t.Errorf("%s: no millisecond timestamp in %q", format, out)
		}
		if strings.Contains(out, "\x1b[") {
			t.Errorf("%s: colours with NO_COLOR set: %q", format, out)
		}
		// The step's own boundary line is dropped, the pipeline's kept
		// without its mark.
		if n := strings.Count(out, "load finished"); n != 1 || strings.Contains(out, pipelineMark) {
			t.Errorf("%s: %q", format, out)
		}
	}
}
