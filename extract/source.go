package extract

import (
	"context"
	"fmt"
	"strings"

	"github.com/cmissync/cmissync/stage/store"
)

// Source yields the rows of the three CMIS views.
type Source interface {
	// Describe names the source for logs and emails, e.g.
	// "oracle (cmis-db:1521/GEND)" or "csv (dir /data/cmis)". It never
	// contains a password.
	Describe() string
	// Open streams the rows for one dump table. The column contract has been
	// checked when Open returns: a missing required column is an error that
	// names the column, the query file or CSV file, and the columns found.
	Open(ctx context.Context, t store.DumpTable) (Rows, error)
	// Close releases the source (a database connection it opened).
	Close() error
}

// Rows is a stream of the rows of one view, in the style of sql.Rows.
type Rows interface {
	// Origin names where the rows come from for error messages: the query
	// file name or the CSV file path.
	Origin() string
	// Next advances to the next row; it returns false at the end or on
	// error (see Err).
	Next() bool
	// Row returns the current row's values in t.Columns() order, as text,
	// untrimmed; NULL and absent optional columns are "". The slice may be
	// reused by the next call to Next. Row returns nil for a record the
	// source could not turn into a row (see Malformed).
	Row() []string
	// Line is the current row's position in the source: the 1-based row
	// number of a query result, or the line of a CSV file where the record
	// starts.
	Line() int64
	// Err reports the error that ended the stream, if any.
	Err() error
	// Close releases the stream; it may be called more than once.
	Close() error
}

// Malformed is implemented by Rows that can meet records they cannot turn
// into a row, such as a CSV line with the wrong number of fields. For such a
// record Next returns true, Row returns nil, and Malformed returns why and
// the record as read (for the error table); Run rejects it as a bad row
// whose key is unknown, which protects everything of its view, and goes on.
// For a good row Malformed returns "", "".
type Malformed interface {
	Malformed() (reason, raw string)
}

// DefaultQueryFile returns the name of the query file for a dump table in
// the queries fs.FS given to OpenSQL: module_groups.sql, group_members.sql or
// group_tutors.sql.
func DefaultQueryFile(t store.DumpTable) string { return baseName(t) + ".sql" }

// DefaultCSVFile returns the default CSV file name for a dump table:
// module_groups.csv, group_members.csv or group_tutors.csv.
func DefaultCSVFile(t store.DumpTable) string { return baseName(t) + ".csv" }

func baseName(t store.DumpTable) string {
	switch t {
	case store.ModuleGroups:
		return "module_groups"
	case store.GroupMembers:
		return "group_members"
	case store.GroupTutors:
		return "group_tutors"
	}
	return string(t)
}

// viewName is the CMIS view a dump table is read from by default, used in
// messages.
func viewName(t store.DumpTable) string {
	switch t {
	case store.ModuleGroups:
		return "CMIS_MOODLE_V_MODULE_GROUP"
	case store.GroupMembers:
		return "CMIS_MOODLE_V_GROUP_MEMBER"
	case store.GroupTutors:
		return "CMIS_MOODLE_V_GROUP_TUTOR"
	}
	return string(t)
}

// optional reports whether a contract column may be absent from a query
// result or CSV header: only the module and group names may.
func optional(t store.DumpTable, col string) bool {
	return t == store.ModuleGroups && (col == "modulename" || col == "groupname")
}

// ContractError reports a query result or CSV header that does not meet the
// column contract of its view. It is a configuration error: nothing was
// extracted.
type ContractError struct {
	Origin  string   // query file name or CSV file path
	Column  string   // the contract column at fault
	Problem string   // "missing" or "duplicated"
	Found   []string // the columns the query or header has, as spelled there
	Hint    string   // optional advice
}

// Error renders the problem, e.g. `group_members.csv: missing column "studentid" (columns found: modulecode, groupcode, student_id)`.
func (e *ContractError) Error() string {
	found := strings.Join(e.Found, ", ")
	if found == "" {
		found = "none"
	}
	msg := fmt.Sprintf("%s: %s column %q (columns found: %s)", e.Origin, e.Problem, e.Column, found)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// mapColumns matches the names found in a query result or CSV header to the
// table's contract columns, case-insensitively and ignoring surrounding
// whitespace. It returns, per contract column, the index of the found column,
// or -1 for an absent optional one.
func mapColumns(t store.DumpTable, found []string, origin string) ([]int, error) {
	cols := t.Columns()
	if cols == nil {
		return nil, fmt.Errorf("%s: unknown dump table %q", origin, t)
	}
	idx := make([]int, len(cols))
	for i := range idx {
		idx[i] = -1
	}
	for j, name := range found {
		name = strings.ToLower(strings.TrimSpace(name))
		for i, c := range cols {
			if name != c {
				continue
			}
			if idx[i] >= 0 {
				return nil, &ContractError{Origin: origin, Column: c, Problem: "duplicated", Found: found}
			}
			idx[i] = j
		}
	}
	for i, c := range cols {
		if idx[i] < 0 && !optional(t, c) {
			e := &ContractError{Origin: origin, Column: c, Problem: "missing", Found: found}
			if len(found) == 1 {
				for _, sep := range []string{";", "\t", "|"} {
					if strings.Contains(found[0], sep) {
						e.Hint = fmt.Sprintf("the file seems to use %q as separator; cmissync reads comma-separated values", sep)
						break
					}
				}
			}
			return nil, e
		}
	}
	return idx, nil
}
