package main

import (
	"io"
	"os"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/sirupsen/logrus"
)

// Millisecond timestamps: two events of one second must still sort, and
// the load makes many calls a second.
const (
	jsonTime = "2006-01-02T15:04:05.000Z07:00"
	textTime = "2006-01-02 15:04:05.000"
)

// newLogger builds the logger of a command writing to w: text on a
// terminal (log.format = auto) and JSON otherwise, millisecond timestamps,
// colours only on a terminal and never when NO_COLOR is set.
func newLogger(cfg *Config, w io.Writer) *logrus.Logger {
	l := logrus.New()
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = isTerminal(f)
	}
	l.SetOutput(&logSink{w: w})
	lvl, err := logrus.ParseLevel(cfg.Log.Level)
	if err != nil {
		lvl = logrus.InfoLevel
	}
	l.SetLevel(lvl)
	format := cfg.Log.Format
	if format == "auto" {
		format = "json"
		if tty {
			format = "text"
		}
	}
	var f logrus.Formatter = &logrus.JSONFormatter{TimestampFormat: jsonTime}
	if format == "text" {
		// The sink hides the terminal from logrus, so colours are decided
		// here: https://no-color.org asks for none when NO_COLOR is set.
		color := tty && os.Getenv("NO_COLOR") == ""
		f = &logrus.TextFormatter{FullTimestamp: true, TimestampFormat: textTime, ForceColors: color, DisableColors: !color}
	}
	l.SetFormatter(&oneLinePerEvent{Formatter: f})
	return l
}

// isTerminal reports whether f is a terminal. A character device is not
// enough: /dev/null is one, and a redirect to it is not a person watching.
func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// noColor reports whether NO_COLOR asks for output without colours.
func noColor() bool { return os.Getenv("NO_COLOR") != "" }

// logSink is the logger's output. While a progress display is on the
// terminal, log lines go through it (printed above the bars) so that the
// two do not garble each other.
type logSink struct {
	mu  sync.Mutex
	w   io.Writer
	via io.Writer
}

func (s *logSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	via := s.via
	s.mu.Unlock()
	if via != nil {
		if n, err := via.Write(b); err == nil {
			return n, nil
		}
	}
	return s.w.Write(b)
}

// through sends log lines through w until it is called with nil.
func (s *logSink) through(w io.Writer) {
	s.mu.Lock()
	s.via = w
	s.mu.Unlock()
}

// stepBoundaries are the lines the steps log about their own start and
// end. The pipeline logs every step's start and end itself, with the
// outcome, the duration and the counts, so these would be a second line for
// one event (their owners are asked to drop them).
var stepBoundaries = map[string]bool{"extract started": true, "stage finished": true, "load finished": true}

// oneLinePerEvent drops the steps' own lines about their start and end.
type oneLinePerEvent struct{ logrus.Formatter }

// Format writes nothing for a step's own boundary line, and writes the
// pipeline's (marked with pipelineMark) without its mark.
func (f *oneLinePerEvent) Format(e *logrus.Entry) ([]byte, error) {
	if _, ours := e.Data[pipelineMark]; ours {
		d := e.Dup()
		d.Level, d.Message, d.Buffer = e.Level, e.Message, e.Buffer
		delete(d.Data, pipelineMark)
		return f.Formatter.Format(d)
	}
	if stepBoundaries[e.Message] {
		return nil, nil
	}
	return f.Formatter.Format(e)
}

// pipelineMark marks the pipeline's own lines about a step's start and
// end; the formatter drops it.
const pipelineMark = "pipeline_step_line"
