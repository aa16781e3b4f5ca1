package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
)

// csvHeader names the columns of the failures attachment.
var csvHeader = []string{
	"run_id", "step", "course_id", "course_name", "group_name", "group_idnumber", "user",
	"function", "params", "errorcode", "exception", "message", "likely_fix",
}

// refusedHeader names the columns of the refused-rows attachment.
var refusedHeader = []string{
	"run_id", "file", "line", "field", "reason", "row", "modulecode", "groupcode", "id", "course_ids",
}

// failuresCSV writes every failure of the (already scrubbed) report.
func failuresCSV(r Report) ([]byte, error) {
	recs := make([][]string, 0, len(r.Failures))
	for _, f := range r.Failures {
		id := ""
		if f.CourseID != 0 {
			id = strconv.Itoa(f.CourseID)
		}
		recs = append(recs, []string{
			r.RunID, r.Step, id, f.CourseName, f.GroupName, f.GroupIDNumber, f.User,
			f.Function, f.Params, f.ErrorCode, f.Exception, f.Message, f.Hint,
		})
	}
	return writeCSV(csvHeader, recs)
}

// refusedCSV writes every refused row of the (already scrubbed) report.
func refusedCSV(r Report) ([]byte, error) {
	recs := make([][]string, 0, len(r.Refused))
	for _, x := range r.Refused {
		courses := make([]string, len(x.Courses))
		for i, c := range x.Courses {
			courses[i] = strconv.Itoa(c)
		}
		recs = append(recs, []string{
			r.RunID, x.File, lineNumber(x.Line), x.Field, x.Reason, x.Row, x.Module, x.Group, x.Member,
			strings.Join(courses, " "),
		})
	}
	return writeCSV(refusedHeader, recs)
}

// writeCSV writes a header and records. It starts with a UTF-8 byte-order mark and ends lines
// with CRLF, as spreadsheet programs expect, so that accented names open correctly when
// support staff double-click the file.
func writeCSV(header []string, recs [][]string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("\ufeff")
	w := csv.NewWriter(&buf)
	w.UseCRLF = true
	if err := w.Write(header); err != nil {
		return nil, fmt.Errorf("write CSV header: %w", err)
	}
	for _, rec := range recs {
		for i := range rec {
			rec[i] = csvCell(rec[i])
		}
		if err := w.Write(rec); err != nil {
			return nil, fmt.Errorf("write CSV row: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("write CSV: %w", err)
	}
	return buf.Bytes(), nil
}

// csvCell defuses cells that a spreadsheet would run as a formula (course and group names come
// from other systems), by prefixing an apostrophe, as OWASP recommends.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
