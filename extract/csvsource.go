package extract

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cmissync/cmissync/stage/store"
)

// csvSource reads the three views from CSV files.
type csvSource struct {
	dir   string
	paths map[store.DumpTable]string
}

// OpenCSV returns a Source that reads the three views from CSV files in dir.
// files overrides the file of a table (a name relative to dir, or an
// absolute path); the defaults are module_groups.csv, group_members.csv and
// group_tutors.csv. Every file must exist.
//
// Each file is comma-separated (RFC 4180: fields may be quoted, with commas,
// line breaks and doubled quotes inside), UTF-8 with or without a byte order
// mark, with LF or CRLF line ends. The first record is a header naming the
// columns of the view's contract (case-insensitively, in any order; other
// columns are ignored). A record with the wrong number of fields is a bad
// row, not an error.
func OpenCSV(dir string, files map[store.DumpTable]string) (Source, error) {
	if dir == "" {
		dir = "."
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("csv source: %w", &fileError{kind: csvFile, err: err})
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("csv source: %s is not a directory", dir)
	}
	for t := range files {
		if t.Columns() == nil {
			return nil, fmt.Errorf("csv source: unknown dump table %q", t)
		}
	}
	s := &csvSource{dir: dir, paths: map[store.DumpTable]string{}}
	for _, t := range store.DumpTables {
		name := files[t]
		if name == "" {
			name = DefaultCSVFile(t)
		}
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, name)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("csv source: file for %s: %w", viewName(t), &fileError{kind: csvFile, err: err})
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("csv source: file for %s: %s is a directory", viewName(t), path)
		}
		s.paths[t] = path
	}
	return s, nil
}

func (s *csvSource) Describe() string { return "csv (dir " + s.dir + ")" }
func (s *csvSource) Close() error     { return nil }

func (s *csvSource) Open(_ context.Context, t store.DumpTable) (Rows, error) {
	path, ok := s.paths[t]
	if !ok {
		return nil, fmt.Errorf("csv source: unknown dump table %q", t)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("csv source: %w", &fileError{kind: csvFile, err: err})
	}
	r, err := newCSVRows(f, path, t)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// csvRows reads one CSV file as contract rows.
type csvRows struct {
	r      *csv.Reader
	closer io.Closer
	origin string
	idx    []int // per contract column, the header position or -1
	width  int   // fields per record, from the header
	row    []string
	line   int64
	err    error
	bad    string // why the current record is not a row
	raw    string // the current malformed record, rendered
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// newCSVRows reads the header from r and checks it against the contract of
// table t; origin names the file in messages.
func newCSVRows(r io.Reader, origin string, t store.DumpTable) (*csvRows, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	head, _ := br.Peek(3)
	switch {
	case bytes.HasPrefix(head, utf8BOM):
		_, _ = br.Discard(len(utf8BOM))
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return nil, fmt.Errorf("%s: the file is UTF-16; save it as CSV in UTF-8", origin)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // checked against the header here, as a bad row
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty file: a header row naming the columns (%s) is required", origin, strings.Join(t.Columns(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read header: %w", origin, err)
	}
	header = append([]string(nil), header...)
	idx, err := mapColumns(t, header, origin)
	if err != nil {
		return nil, err
	}
	return &csvRows{
		r:      cr,
		origin: origin,
		idx:    idx,
		width:  len(header),
		row:    make([]string, len(idx)),
	}, nil
}

func (c *csvRows) Origin() string { return c.origin }
func (c *csvRows) Line() int64    { return c.line }
func (c *csvRows) Err() error     { return c.err }

func (c *csvRows) Row() []string {
	if c.bad != "" {
		return nil
	}
	return c.row
}

func (c *csvRows) Malformed() (reason, raw string) { return c.bad, c.raw }

func (c *csvRows) Close() error {
	if c.closer == nil {
		return nil
	}
	err := c.closer.Close()
	c.closer = nil
	return err
}

func (c *csvRows) Next() bool {
	if c.err != nil {
		return false
	}
	c.bad, c.raw = "", ""
	rec, err := c.r.Read()
	if err == io.EOF {
		return false
	}
	if err != nil {
		var perr *csv.ParseError
		if !errors.As(err, &perr) {
			c.err = err
			return false
		}
		// A syntax error spoils one record; the reader goes on from the
		// next line.
		c.line = int64(perr.StartLine)
		c.bad = "CSV syntax error: " + perr.Err.Error()
		if perr.Line != perr.StartLine {
			c.bad += " (record ends at line " + strconv.Itoa(perr.Line) + ")"
		}
		c.raw = renderFields(rec)
		return true
	}
	line, _ := c.r.FieldPos(0)
	c.line = int64(line)
	if len(rec) != c.width {
		c.bad = fmt.Sprintf("%d fields, want %d as in the header", len(rec), c.width)
		c.raw = renderFields(rec)
		return true
	}
	for i, j := range c.idx {
		if j < 0 {
			c.row[i] = ""
		} else {
			c.row[i] = rec[j]
		}
	}
	return true
}

// renderFields renders the fields of a malformed record for the error table.
func renderFields(rec []string) string {
	var b strings.Builder
	for i, f := range rec {
		if i > 0 {
			b.WriteByte(' ')
		}
		if i == 20 {
			fmt.Fprintf(&b, "... (%d fields)", len(rec))
			break
		}
		b.WriteString(quoteValue(f))
	}
	return b.String()
}
