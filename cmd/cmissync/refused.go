package main

import (
	"context"
	"fmt"
	"regexp"

	"github.com/cmissync/cmissync/stage/store"
)

// refusedRows returns the rows this run's extract refused, with their keys
// as far as they could be read (store.BadRows leaves the keys out).
//
// The query belongs in stage/store: once BadRows returns Table, Module,
// Group and CMISID too, this becomes a call to it.
func (p *pipeline) refusedRows(ctx context.Context) ([]store.BadRow, error) {
	rows, err := p.st.DB().QueryContext(ctx, `SELECT source, line, rowdata, reason, dumptable, modulecode, groupcode, cmisid
FROM cmis_error_data_dump WHERE run_id = ? ORDER BY id`, p.runID)
	if err != nil {
		return nil, fmt.Errorf("read refused rows: %w", err)
	}
	defer rows.Close()
	var out []store.BadRow
	for rows.Next() {
		var b store.BadRow
		var table string
		if err := rows.Scan(&b.Source, &b.Line, &b.Row, &b.Reason, &table, &b.Module, &b.Group, &b.CMISID); err != nil {
			return nil, fmt.Errorf("read refused rows: %w", err)
		}
		b.Table = store.DumpTable(table)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read refused rows: %w", err)
	}
	return out, nil
}

// wholeRecord is a reason about the record, not one of its fields: "3
// values, want 2 (modulecode, groupcode, studentid)" names every column.
var wholeRecord = regexp.MustCompile(`^[0-9]+ values, want`)

// faultyField names the column a refused row's reason is about: the
// column of its view that the reason names first ("missing studentid",
// "control character U+0001 in groupcode"), or "" when the reason is about
// the whole record (a wrong number of values, a CSV syntax error).
func faultyField(b store.BadRow) string {
	if wholeRecord.MatchString(b.Reason) {
		return ""
	}
	first, at := "", len(b.Reason)
	for _, col := range b.Table.Columns() {
		loc := regexp.MustCompile(`\b` + regexp.QuoteMeta(col) + `\b`).FindStringIndex(b.Reason)
		if loc != nil && loc[0] < at {
			first, at = col, loc[0]
		}
	}
	return first
}
