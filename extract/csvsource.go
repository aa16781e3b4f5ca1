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
// mark, with LF or CRLF line ends, and ends with a line break. The first
// record is a header naming the columns of the view's contract
// (case-insensitively, in any order; other columns are ignored).
//
// A record that cannot be trusted is a bad row with no key, not an error:
// a syntax error (a stray quote, or one never closed, which runs to the end
// of the file), the wrong number of fields, a last record no line break
// follows (the file may have been cut off in it), a quoted field that runs
// over lines which read as records of their own, or the header repeated.
// Run records it, and as nothing says which rows it stood for, it protects
// everything its file describes (see store.RefusedKey).
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
//
// A record it cannot trust is not a row (Row returns nil, Malformed says
// why): a syntax error, a wrong number of fields, a last record not
// followed by a line break (the file may have been cut off in it), a quoted
// field that runs over lines which read as records of their own (a quote is
// missing or extra, and records may have been swallowed), or the header
// again. Nothing of such a record's key can be known.
type csvRows struct {
	r      *csv.Reader
	raw    *rawReader // the file's bytes, to see each record as written
	skip   int64      // bytes before the CSV reader's offset 0 (a byte order mark)
	closer io.Closer
	origin string
	header []string // as spelled in the file, trimmed
	idx    []int    // per contract column, the header position or -1
	width  int      // fields per record, from the header
	row    []string
	line   int64
	err    error
	// headerCut: the header is not followed by a line break, so the file
	// may have been cut off right after it; Next reports it once.
	headerCut  bool
	headerLine int64
	bad        string // why the current record is not a row
	rendered   string // the current malformed record, for humans
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// reasonCutOff is the reason for a last record that no line break follows.
const reasonCutOff = "the file does not end with a line break: its last record may be cut off"

// newCSVRows reads the header from r and checks it against the contract of
// table t; origin names the file in messages.
func newCSVRows(r io.Reader, origin string, t store.DumpTable) (*csvRows, error) {
	raw := &rawReader{r: r}
	br := bufio.NewReaderSize(raw, 64*1024)
	var skip int64
	head, _ := br.Peek(3)
	switch {
	case bytes.HasPrefix(head, utf8BOM):
		_, _ = br.Discard(len(utf8BOM))
		skip = int64(len(utf8BOM))
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
	for i, h := range header {
		header[i] = strings.TrimSpace(h)
	}
	end := skip + cr.InputOffset()
	headerLine, _ := cr.FieldPos(0)
	return &csvRows{
		r:          cr,
		raw:        raw,
		skip:       skip,
		origin:     origin,
		header:     header,
		idx:        idx,
		width:      len(header),
		row:        make([]string, len(idx)),
		headerCut:  !bytes.HasSuffix(raw.bytes(0, end), []byte("\n")),
		headerLine: int64(headerLine),
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

func (c *csvRows) Malformed() (reason, raw string) { return c.bad, c.rendered }

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
	c.bad, c.rendered = "", ""
	if c.headerCut {
		// Nothing follows a record without a line break.
		c.headerCut = false
		c.line = c.headerLine
		c.bad = reasonCutOff + " (the header is the last record: rows after it may be lost)"
		c.rendered = renderFields(c.header)
		return true
	}
	start := c.skip + c.r.InputOffset()
	c.raw.forget(start)
	rec, err := c.r.Read()
	if err == io.EOF {
		return false
	}
	text := recordText(c.raw.bytes(start, c.skip+c.r.InputOffset()))
	if err != nil {
		var perr *csv.ParseError
		if !errors.As(err, &perr) {
			c.err = err
			return false
		}
		// A syntax error spoils one record; the reader goes on from the
		// line after it.
		c.line = int64(perr.StartLine)
		c.bad = c.syntaxError(perr, len(rec), text)
		c.rendered = renderText(text)
		return true
	}
	line, _ := c.r.FieldPos(0)
	c.line = int64(line)
	if !bytes.HasSuffix(text, []byte("\n")) {
		c.bad = reasonCutOff
	} else {
		c.bad = c.swallowed(text)
	}
	switch {
	case c.bad != "":
		c.rendered = renderText(text)
	case len(rec) != c.width:
		c.bad = fmt.Sprintf("%d fields, want %d as in the header", len(rec), c.width)
		c.rendered = renderFields(rec)
	case c.isHeader(rec):
		c.bad = "the header again, as a record (were two files joined?)"
		c.rendered = renderFields(rec)
	}
	if c.bad != "" {
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

// field names the i-th field (0-based) of a record for messages, e.g.
// `modulename (field 3)`.
func (c *csvRows) field(i int) string {
	if i < len(c.header) && c.header[i] != "" {
		return fmt.Sprintf("%s (field %d)", c.header[i], i+1)
	}
	return fmt.Sprintf("field %d, beyond the %d of the header", i+1, len(c.header))
}

// syntaxError explains a CSV syntax error in field i (0-based) of the record
// whose text is given.
func (c *csvRows) syntaxError(perr *csv.ParseError, i int, text []byte) string {
	lines := int64(bytes.Count(bytes.TrimSuffix(text, []byte("\n")), []byte("\n")))
	end := int64(perr.StartLine) + lines
	if perr.Err == csv.ErrQuote && !quoteAt(text, perr.Line-perr.StartLine, perr.Column) {
		// The reader went to the end of the file looking for the quote that
		// closes the field.
		if end > int64(perr.StartLine) {
			return fmt.Sprintf("CSV syntax error in %s: the quote that opens it on line %d is never closed, so the record runs to the end of the file (line %d)",
				c.field(i), perr.StartLine, end)
		}
		return fmt.Sprintf("CSV syntax error in %s: the quote that opens it is never closed before the end of the file", c.field(i))
	}
	msg := fmt.Sprintf("CSV syntax error in %s: %v", c.field(i), perr.Err)
	if end > int64(perr.StartLine) {
		msg += fmt.Sprintf(" (on line %d; the record runs from line %d to line %d)", perr.Line, perr.StartLine, end)
	}
	return msg
}

// quoteAt reports whether the byte at the 1-based column col of line n
// (0-based) of text is a quote. The CSV reader places a stray quote's error
// there, and the error of a quote never closed after the end of the text.
func quoteAt(text []byte, n, col int) bool {
	for ; n > 0; n-- {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			return false
		}
		text = text[i+1:]
	}
	return col >= 1 && col <= len(text) && text[col-1] == '"'
}

// swallowed explains why a record whose quoted field runs over several lines
// cannot be trusted, or returns "". When one of those lines reads on its own
// as a record of the file, a quote is most likely missing or extra and the
// field has swallowed whole records: nothing says which rows the record
// stands for.
func (c *csvRows) swallowed(text []byte) string {
	body := bytes.TrimSuffix(text, []byte("\n"))
	first := bytes.IndexByte(body, '\n')
	if first < 0 {
		return ""
	}
	start, _ := c.r.FieldPos(0)
	lines := bytes.Split(body[first+1:], []byte("\n"))
	for k, l := range lines {
		r := csv.NewReader(bytes.NewReader(l))
		r.FieldsPerRecord = -1
		if rec, err := r.Read(); err == nil && len(rec) == c.width {
			return fmt.Sprintf("a quoted field runs from line %d to line %d, over line %d, which reads as a record of its own: a quote is probably missing or extra",
				start, start+len(lines), start+k+1)
		}
	}
	return ""
}

// isHeader reports whether a record repeats the header.
func (c *csvRows) isHeader(rec []string) bool {
	for i, f := range rec {
		if !strings.EqualFold(strings.TrimSpace(f), c.header[i]) {
			return false
		}
	}
	return true
}

// recordText strips the blank lines the CSV reader skips before a record
// from the bytes it read for it.
func recordText(b []byte) []byte {
	for {
		switch {
		case bytes.HasPrefix(b, []byte("\n")):
			b = b[1:]
		case bytes.HasPrefix(b, []byte("\r\n")):
			b = b[2:]
		default:
			return b
		}
	}
}

// renderText renders the text of a malformed record for the error table.
func renderText(text []byte) string {
	return quoteValue(strings.TrimRight(string(text), "\r\n"))
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

// rawReader passes a file's bytes on and keeps those not yet forgotten, so
// that each record can be seen as it was written: whether a line break ends
// it, and which lines a quoted field runs over.
type rawReader struct {
	r    io.Reader
	buf  []byte // the bytes from offset base on
	base int64
}

func (r *rawReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// bytes returns the bytes from offset start to end; they stay valid until
// the next forget.
func (r *rawReader) bytes(start, end int64) []byte {
	return r.buf[start-r.base : end-r.base]
}

// forget drops the bytes before offset upto. It moves the rest down only
// when that frees at least half the buffer, so each byte is moved a bounded
// number of times.
func (r *rawReader) forget(upto int64) {
	n := int(upto - r.base)
	if n < 64*1024 || 2*n < len(r.buf) {
		return
	}
	r.buf = r.buf[:copy(r.buf, r.buf[n:])]
	r.base = upto
}
