package sample

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// View table names, as the default extraction queries read them.
const (
	ModuleGroupView = "CMIS_MOODLE_V_MODULE_GROUP"
	GroupMemberView = "CMIS_MOODLE_V_GROUP_MEMBER"
	GroupTutorView  = "CMIS_MOODLE_V_GROUP_TUTOR"
)

// view is one CMIS view written as a table: its DDL and how the dataset's
// rows map onto its columns.
type view struct {
	name    string
	columns []string // in the order of the dataset's rows
	ddl     string
	rows    func(d Dataset) [][]string
	csvFile string
	header  []string
}

var views = []view{
	{
		name:    ModuleGroupView,
		columns: []string{"MODULE_CODE", "GROUP_CODE", "MODULE_NAME", "GROUP_NAME"},
		ddl: "CREATE TABLE " + ModuleGroupView + " (MODULE_CODE VARCHAR(255), MODULE_NAME VARCHAR(255), " +
			"GROUP_CODE VARCHAR(255), GROUP_NAME VARCHAR(255))",
		rows:    func(d Dataset) [][]string { return d.ModuleGroups },
		csvFile: "module_groups.csv",
		header:  []string{"modulecode", "groupcode", "modulename", "groupname"},
	},
	{
		name:    GroupMemberView,
		columns: []string{"MODULE_CODE", "GROUP_CODE", "STUDENT_ID"},
		ddl:     "CREATE TABLE " + GroupMemberView + " (MODULE_CODE VARCHAR(255), GROUP_CODE VARCHAR(255), STUDENT_ID VARCHAR(255))",
		rows:    func(d Dataset) [][]string { return d.Members },
		csvFile: "group_members.csv",
		header:  []string{"modulecode", "groupcode", "studentid"},
	},
	{
		name:    GroupTutorView,
		columns: []string{"MODULE_CODE", "GROUP_CODE", "STAFF_ID"},
		ddl:     "CREATE TABLE " + GroupTutorView + " (MODULE_CODE VARCHAR(255), GROUP_CODE VARCHAR(255), STAFF_ID VARCHAR(255))",
		rows:    func(d Dataset) [][]string { return d.Tutors },
		csvFile: "group_tutors.csv",
		header:  []string{"modulecode", "groupcode", "staffid"},
	},
}

// insertRows is the number of rows per multi-row INSERT: 4,000 placeholders
// at most, well inside the limits of SQLite and MySQL.
const insertRows = 1000

// WriteSQL creates the three CMIS views as tables in db and fills them with
// the dataset: CMIS_MOODLE_V_MODULE_GROUP(MODULE_CODE, MODULE_NAME,
// GROUP_CODE, GROUP_NAME), CMIS_MOODLE_V_GROUP_MEMBER(MODULE_CODE,
// GROUP_CODE, STUDENT_ID) and CMIS_MOODLE_V_GROUP_TUTOR(MODULE_CODE,
// GROUP_CODE, STAFF_ID), all VARCHAR. The tables must not exist yet. It
// works on SQLite and MySQL/MariaDB; rows go in by multi-row INSERTs, one
// transaction per table.
func WriteSQL(ctx context.Context, db *sql.DB, d Dataset) error {
	for _, v := range views {
		if _, err := db.ExecContext(ctx, v.ddl); err != nil {
			return fmt.Errorf("sample: create %s: %w", v.name, err)
		}
		if err := insertAll(ctx, db, v.name, v.columns, v.rows(d)); err != nil {
			return fmt.Errorf("sample: fill %s: %w", v.name, err)
		}
	}
	return nil
}

func insertAll(ctx context.Context, db *sql.DB, table string, cols []string, rows [][]string) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	var full *sql.Stmt
	args := make([]any, 0, insertRows*len(cols))
	for start := 0; start < len(rows); start += insertRows {
		chunk := rows[start:min(start+insertRows, len(rows))]
		args = args[:0]
		for i, r := range chunk {
			if len(r) != len(cols) {
				return fmt.Errorf("row %d has %d values, want %d", start+i, len(r), len(cols))
			}
			for _, v := range r {
				args = append(args, v)
			}
		}
		if len(chunk) == insertRows {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, insertSQL(table, cols, insertRows)); err != nil {
					return err
				}
				defer full.Close()
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertSQL(table, cols, len(chunk)), args...)
		}
		if err != nil {
			return fmt.Errorf("rows %d-%d: %w", start+1, start+len(chunk), err)
		}
	}
	return tx.Commit()
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

func insertSQL(table string, cols []string, n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// WriteCSV writes the three views as the CSV files the CSV source reads by
// default (module_groups.csv, group_members.csv, group_tutors.csv) in dir,
// which is created if needed: UTF-8, a header row, RFC 4180 quoting.
func WriteCSV(dir string, d Dataset) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	for _, v := range views {
		if err := writeCSVFile(filepath.Join(dir, v.csvFile), v.header, v.rows(d)); err != nil {
			return fmt.Errorf("sample: write %s: %w", v.csvFile, err)
		}
	}
	return nil
}

func writeCSVFile(path string, header []string, rows [][]string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, 256*1024)
	w := csv.NewWriter(bw)
	if err := w.Write(header); err != nil {
		return err
	}
	if err := w.WriteAll(rows); err != nil {
		return err
	}
	return bw.Flush()
}
