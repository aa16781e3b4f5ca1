// Package enrolsync reads the Enrol Sync command files of Moodle's tool_sync
// plugin, with which Moodle administrators have long scripted one-off
// enrolment and group corrections, and writes their "tryback" files: the
// lines that failed, unchanged, for a rerun. It serves `cmissync apply`
// (load/apply.go), which carries the lines out; this package only reads
// and writes the format and checks each line's syntax.
//
// A file is text in UTF-8, with or without a byte order mark, with CRLF or
// LF line ends. Its first line that is neither blank nor a comment is the
// header, which names the columns, in any order, separated by ";":
//
//	cmd;rolename;cid;uid;hidden;gcmd;g1;g2;g3
//
// cmd (add, del or shift), cid (the course) and uid (the user) are
// required; rolename, hidden, gcmd and the group columns g1 ... gn are
// optional. Each following line is one command. A field may be quoted
// with double quotes (a quote inside written twice), so that a group name
// can hold a ";". Lines starting with "#" or "//" are comments; blank
// lines, and lines whose fields are all empty, are skipped. Fields past the
// header's columns must be empty (spreadsheets add trailing ";").
package enrolsync

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Column names.
const (
	ColCmd      = "cmd"
	ColRole     = "rolename"
	ColCourse   = "cid"
	ColUser     = "uid"
	ColHidden   = "hidden"
	ColGroupCmd = "gcmd"
)

// Verbs of the cmd column.
const (
	Add   = "add"   // enrol in the role; other roles stay
	Del   = "del"   // remove the role, or every role when rolename is empty
	Shift = "shift" // the role only: del of every other role, then add
)

// Verbs of the gcmd column.
const (
	GAdd           = "gadd"           // add the user to each named group
	GAddCreate     = "gaddcreate"     // the same, creating a missing group
	GReplace       = "greplace"       // the named groups only: out of the course's others
	GReplaceCreate = "greplacecreate" // the same, creating a missing group
)

// Codes of the reasons a line cannot be read, for reports.
const (
	CodeUnknownVerb = "unknownverb"
	CodeBadLine     = "badline"
)

// File is a command file as read.
type File struct {
	// Name is the file's name as given, for messages and the audit.
	Name string
	// BOM: the file started with a UTF-8 byte order mark; LineEnd is
	// "\r\n" when its lines end so, else "\n". A tryback file keeps both.
	BOM     bool
	LineEnd string
	// Header is the header line as written; HeaderNo its line number.
	Header   string
	HeaderNo int
	// Columns are the header's column names, trimmed and in lower case.
	Columns []string
	// Lines are the command lines, in order; comments and blank lines are
	// left out.
	Lines []*Line
}

// Line is one command line.
type Line struct {
	// No is the line's number in the file (the first line is 1); Raw is the
	// line as written, without its line end.
	No  int
	Raw string
	// Origin is where the line first came from ("FILE:LINE") when the file
	// is a tryback file that says so; empty otherwise.
	Origin string
	// The fields, trimmed; Cmd and GroupCmd in lower case. Groups are the
	// non-empty group columns, in the order of their numbers.
	Cmd, Role, Course, User, Hidden, GroupCmd string
	Groups                                    []string
	// Err says why the line cannot be carried out as written (a *LineError);
	// the fields are then as far as they could be read.
	Err error
}

// Where names the line for people: FILE:LINE, with the line's origin when
// it came from another file through a tryback file.
func (l *Line) Where(file string) string {
	s := file + ":" + strconv.Itoa(l.No)
	if l.Origin != "" {
		s += " (from " + l.Origin + ")"
	}
	return s
}

// Source is where the line first came from: its Origin, else FILE:LINE.
func (l *Line) Source(file string) string {
	if l.Origin != "" {
		return l.Origin
	}
	return file + ":" + strconv.Itoa(l.No)
}

// LineError is why a line cannot be carried out.
type LineError struct {
	Code string // CodeUnknownVerb or CodeBadLine
	Msg  string
}

func (e *LineError) Error() string { return e.Msg }

func lineErr(code, format string, args ...any) *LineError {
	return &LineError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// FormatError is a file that cannot be read as a command file at all: no
// header, a header naming unknown or repeated columns, or not UTF-8 text.
type FormatError struct {
	Name string
	Line int // 0 when not about one line
	Msg  string
}

func (e *FormatError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Name, e.Line, e.Msg)
	}
	return e.Name + ": " + e.Msg
}

// ErrFormat matches every *FormatError with errors.Is.
var ErrFormat = errors.New("not an Enrol Sync command file")

// Is makes errors.Is(err, ErrFormat) true for a *FormatError.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

var groupColumn = regexp.MustCompile(`^g([1-9][0-9]*)$`)

// Parse reads a command file. name is used in messages. A file that cannot
// be read as a command file is a *FormatError; a line that cannot be
// carried out has its Err set, and the others are read all the same.
func Parse(r io.Reader, name string) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	f := &File{Name: name, LineEnd: "\n"}
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return nil, &FormatError{Name: name, Msg: "the file is UTF-16: save it as UTF-8 (CSV UTF-8 in a spreadsheet)"}
	}
	if rest, ok := bytes.CutPrefix(data, []byte("\uFEFF")); ok {
		f.BOM, data = true, rest
	}
	lines := splitLines(data, f)
	var cols map[string]int
	var groupCols []int
	origin := ""
	for i, raw := range lines {
		no := i + 1
		trimmed := strings.TrimSpace(raw)
		if strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "//") {
			origin = originOf(trimmed)
			continue
		}
		lineOrigin := origin
		origin = ""
		if cols == nil {
			if trimmed == "" {
				continue
			}
			if !utf8.ValidString(raw) {
				return nil, &FormatError{Name: name, Line: no, Msg: "the header is not UTF-8 text: save the file as UTF-8"}
			}
			fields, err := split(raw)
			if err != nil {
				return nil, &FormatError{Name: name, Line: no, Msg: "header: " + err.Error()}
			}
			if cols, groupCols, err = header(fields); err != nil {
				return nil, &FormatError{Name: name, Line: no, Msg: err.Error()}
			}
			f.Header, f.HeaderNo = raw, no
			for _, c := range fields {
				f.Columns = append(f.Columns, strings.ToLower(strings.TrimSpace(c)))
			}
			continue
		}
		l := &Line{No: no, Raw: raw, Origin: lineOrigin}
		if !utf8.ValidString(raw) {
			l.Err = lineErr(CodeBadLine, "the line is not UTF-8 text: save the file as UTF-8")
			f.Lines = append(f.Lines, l)
			continue
		}
		fields, err := split(raw)
		if err != nil {
			l.Err = lineErr(CodeBadLine, "%v", err)
			f.Lines = append(f.Lines, l)
			continue
		}
		if allEmpty(fields) {
			continue
		}
		l.Err = l.read(fields, cols, groupCols)
		f.Lines = append(f.Lines, l)
	}
	if cols == nil {
		return nil, &FormatError{Name: name, Msg: "no header line (e.g. cmd;rolename;cid;uid;hidden;gcmd;g1;g2)"}
	}
	return f, nil
}

// splitLines cuts data into lines and notes the line end: LF or CRLF, or CR
// alone in files from old Mac editors.
func splitLines(data []byte, f *File) []string {
	text := string(data)
	switch {
	case strings.Contains(text, "\r\n"):
		f.LineEnd = "\r\n"
	case !strings.Contains(text, "\n") && strings.Contains(text, "\r"):
		text = strings.ReplaceAll(text, "\r", "\n")
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), len(text)+1)
	for sc.Scan() {
		out = append(out, strings.TrimSuffix(sc.Text(), "\r"))
	}
	return out
}

// header maps column names to field positions and lists the group columns
// in the order of their numbers.
func header(fields []string) (map[string]int, []int, error) {
	// Trailing empty names are what a spreadsheet adds; others are a
	// mistake.
	for len(fields) > 0 && strings.TrimSpace(fields[len(fields)-1]) == "" {
		fields = fields[:len(fields)-1]
	}
	cols := map[string]int{}
	groupNo := map[int]int{}
	for i, raw := range fields {
		c := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case c == "":
			return nil, nil, fmt.Errorf("header: column %d has no name", i+1)
		case groupColumn.MatchString(c):
			n, _ := strconv.Atoi(c[1:])
			groupNo[i] = n
		case c != ColCmd && c != ColRole && c != ColCourse && c != ColUser && c != ColHidden && c != ColGroupCmd:
			return nil, nil, fmt.Errorf("header: unknown column %q (known: cmd, rolename, cid, uid, hidden, gcmd, g1 ... gn)", strings.TrimSpace(raw))
		}
		if _, dup := cols[c]; dup {
			return nil, nil, fmt.Errorf("header: column %q is named twice", c)
		}
		cols[c] = i
	}
	for _, need := range []string{ColCmd, ColCourse, ColUser} {
		if _, ok := cols[need]; !ok {
			return nil, nil, fmt.Errorf("header: no %s column (the header names the columns, e.g. cmd;rolename;cid;uid;hidden;gcmd;g1;g2)", need)
		}
	}
	var groups []int
	for i := range groupNo {
		groups = append(groups, i)
	}
	// Group columns in the order of their numbers, whatever the header's.
	slices.SortFunc(groups, func(a, b int) int { return groupNo[a] - groupNo[b] })
	if _, ok := cols[ColGroupCmd]; len(groups) > 0 && !ok {
		return nil, nil, errors.New("header: group columns without a gcmd column")
	}
	return cols, groups, nil
}

// read fills the line's fields and checks them.
func (l *Line) read(fields []string, cols map[string]int, groupCols []int) error {
	get := func(col string) string {
		i, ok := cols[col]
		if !ok || i >= len(fields) {
			return ""
		}
		return strings.TrimSpace(fields[i])
	}
	l.Cmd, l.GroupCmd = strings.ToLower(get(ColCmd)), strings.ToLower(get(ColGroupCmd))
	l.Role, l.Course, l.User, l.Hidden = get(ColRole), get(ColCourse), get(ColUser), get(ColHidden)
	for _, i := range groupCols {
		if i < len(fields) {
			if g := strings.TrimSpace(fields[i]); g != "" {
				l.Groups = append(l.Groups, g)
			}
		}
	}
	width := len(cols)
	for i := width; i < len(fields); i++ {
		if strings.TrimSpace(fields[i]) != "" {
			return lineErr(CodeBadLine, "%d fields, but the header names %d columns: field %d (%q) has no column", len(fields), width, i+1, strings.TrimSpace(fields[i]))
		}
	}
	switch l.Cmd {
	case Add, Shift:
		if l.Role == "" {
			return lineErr(CodeBadLine, "%s needs a role in the rolename column", l.Cmd)
		}
	case Del:
	case "":
		return lineErr(CodeBadLine, "the cmd column is empty (want add, del or shift)")
	default:
		return lineErr(CodeUnknownVerb, "unknown verb %q in the cmd column (want add, del or shift)", get(ColCmd))
	}
	switch {
	case l.Course == "":
		return lineErr(CodeBadLine, "the cid column (the course) is empty")
	case l.User == "":
		return lineErr(CodeBadLine, "the uid column (the user) is empty")
	case l.Hidden != "" && l.Hidden != "0" && l.Hidden != "1":
		return lineErr(CodeBadLine, "hidden is %q: want 0, 1 or nothing (are the header's columns in the order of the fields?)", l.Hidden)
	}
	switch l.GroupCmd {
	case GAdd, GAddCreate, GReplace, GReplaceCreate:
	case "":
		if len(l.Groups) > 0 {
			return lineErr(CodeBadLine, "group names without a group verb in the gcmd column (gadd, gaddcreate, greplace or greplacecreate)")
		}
	default:
		return lineErr(CodeUnknownVerb, "unknown group verb %q in the gcmd column (want gadd, gaddcreate, greplace or greplacecreate)", get(ColGroupCmd))
	}
	return nil
}

func allEmpty(fields []string) bool {
	for _, f := range fields {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// split cuts a line into its ";"-separated fields. A field that starts
// with a double quote runs to the next lone double quote ("" inside is
// one quote), so it may hold ";".
func split(line string) ([]string, error) {
	var out []string
	var b strings.Builder
	for i := 0; ; {
		b.Reset()
		// Spaces before an opening quote are allowed.
		j := i
		for j < len(line) && line[j] == ' ' {
			j++
		}
		if j < len(line) && line[j] == '"' {
			k := j + 1
			closed := false
			for k < len(line) {
				if line[k] == '"' {
					if k+1 < len(line) && line[k+1] == '"' {
						b.WriteByte('"')
						k += 2
						continue
					}
					closed = true
					k++
					break
				}
				b.WriteByte(line[k])
				k++
			}
			if !closed {
				return nil, fmt.Errorf("field %d: a quote is not closed on this line", len(out)+1)
			}
			for k < len(line) && line[k] == ' ' {
				k++
			}
			if k < len(line) && line[k] != ';' {
				return nil, fmt.Errorf("field %d: text after a closing quote", len(out)+1)
			}
			out = append(out, b.String())
			if k >= len(line) {
				return out, nil
			}
			i = k + 1
			continue
		}
		end := strings.IndexByte(line[i:], ';')
		if end < 0 {
			return append(out, line[i:]), nil
		}
		out = append(out, line[i:i+end])
		i += end + 1
	}
}

// trybackComment starts the comment a tryback file puts before each line:
// "# failed at FILE:LINE: reason".
const trybackComment = "# failed at "

var originRE = regexp.MustCompile(`^#\s*failed at (.+?:[0-9]+)(?: \(from (.+?:[0-9]+)\))?: `)

// originOf reads the origin a tryback comment gives the next line.
func originOf(comment string) string {
	m := originRE.FindStringSubmatch(comment)
	switch {
	case m == nil:
		return ""
	case m[2] != "":
		return m[2]
	}
	return m[1]
}

// Failed is a line that failed, with the reason.
type Failed struct {
	Line   *Line
	Reason string
}

// WriteTryback writes the tryback file of f: a comment saying what it is
// (note), the header, and each failed line unchanged after a comment naming
// where it came from and why it failed, with f's byte order mark and line
// ends. Run as a command file it reruns just those lines; Parse reads the
// comments back, so a line keeps its origin through reruns.
func WriteTryback(w io.Writer, f *File, failed []Failed, note string) error {
	bw := bufio.NewWriter(w)
	if f.BOM {
		bw.WriteString("\uFEFF")
	}
	for _, line := range strings.Split(strings.TrimSpace(note), "\n") {
		bw.WriteString("# " + strings.TrimSpace(line) + f.LineEnd)
	}
	bw.WriteString(f.Header + f.LineEnd)
	for _, x := range failed {
		reason := strings.Join(strings.Fields(x.Reason), " ")
		bw.WriteString(trybackComment + x.Line.Where(f.Name) + ": " + reason + f.LineEnd)
		bw.WriteString(x.Line.Raw + f.LineEnd)
	}
	return bw.Flush()
}
