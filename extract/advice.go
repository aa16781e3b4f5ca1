package extract

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"

	"github.com/cmissync/cmissync/stage/store"
)

// stagingError marks an error of the staging database, as opposed to one of
// the source, so that Advice points at the right server. Its message is the
// wrapped error's.
type stagingError struct{ err error }

func (e *stagingError) Error() string { return e.err.Error() }
func (e *stagingError) Unwrap() error { return e.err }

// fileKind says what a file the extract could not open was for.
type fileKind int

const (
	csvFile    fileKind = iota + 1 // source.csv_dir or one of its files
	queryFile                      // a query file (source.queries_dir or built in)
	sqliteFile                     // the database file of a sqlite source
)

// fileError marks an error opening a file with what the file was for, for
// Advice. Its message is the wrapped error's.
type fileError struct {
	kind fileKind
	err  error
}

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// oracleCode finds an Oracle error code in error text: "ORA-00942" or
// "DPI-1047". Codes are stable identifiers, unlike the messages after them,
// and appear in the text of every layer that wraps the driver's error.
var oracleCode = regexp.MustCompile(`\b(ORA|DPI)-(\d{4,5})\b`)

// Advice returns what an operator should check after an extract failed with
// err, one line per check, the most likely cause first, for the failure
// report and the log. It recognises the shrink guard, interruption, the
// column contract, missing or unreadable files, the staging database,
// Oracle errors by code (through godror's error type, else by the
// "ORA-NNNNN" or "DPI-NNNN" token in the text), MySQL and SQLite source
// errors and unreachable servers; for anything else it gives general
// advice. It returns nil for a nil error.
func Advice(err error) []string {
	if err == nil {
		return nil
	}
	var (
		shrink   *ShrinkError
		contract *ContractError
		staging  *stagingError
		file     *fileError
	)
	switch {
	case errors.As(err, &shrink):
		return []string{
			"The extract is much smaller than the dump committed before, so it was held back: the previous dump is kept and Moodle is not changed from it.",
			"Check the CMIS views for an outage or a refresh in progress (count the rows of " + viewName(store.GroupMembers) + ") and rerun when CMIS is complete.",
			"If CMIS really holds that much less (e.g. between academic years), approve it once: rerun with --approve-shrink.",
		}
	case errors.Is(err, context.Canceled):
		return []string{"The extract was interrupted before it finished; the previous dump is kept. Run it again."}
	case errors.As(err, &contract):
		what := "does not return"
		if contract.Problem == "duplicated" {
			what = "returns more than once"
		}
		return []string{
			fmt.Sprintf("%s %s the column %q that cmissync needs (columns found: %s).", contract.Origin, what, contract.Column, strings.Join(contract.Found, ", ")),
			"Fix the query file (your own ones live in source.queries_dir) or the CSV header: names are matched case-insensitively, so an alias such as `STUDENT_ID AS " + contract.Column + "` is enough. The README's \"CMIS column contract\" lists every column.",
		}
	case errors.As(err, &staging):
		if errors.Is(err, store.ErrSchema) {
			return []string{"The staging schema is out of date: run `cmissync migrate`."}
		}
		return []string{
			"The staging database failed, not the CMIS source: check that it is reachable with staging.dsn, that it has free disk space, and that its user may create, rename and truncate the dump tables.",
			"The previous dump is kept; rerun once staging is healthy.",
		}
	case errors.As(err, &file):
		return fileAdvice(file)
	}
	if code, ok := oracleErrorCode(err); ok {
		return oracleAdvice(code)
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return mysqlAdvice(me)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return []string{
			fmt.Sprintf("The SQLite source failed (SQLite error %d): check that the file in source.dsn holds the CMIS views %s, %s and %s, and that the query files match them.",
				se.Code(), viewName(store.ModuleGroups), viewName(store.GroupMembers), viewName(store.GroupTutors)),
		}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return []string{fmt.Sprintf("The source database's host name %q could not be resolved: check the host in source.dsn and this host's DNS.", dnsErr.Name)}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) || errors.Is(err, context.DeadlineExceeded) {
		return []string{
			"The source database could not be reached: check the host and port in source.dsn, that the database server is running, and that no firewall blocks this host.",
			"The previous dump is kept; rerun once the server answers.",
		}
	}
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) {
		return []string{"The connection to the source database was lost during the extract; the previous dump is kept. Rerun; if it repeats, ask the database administrator about connection time limits."}
	}
	return []string{
		"Read the error above: it names the view, the query or CSV file and, where it applies, the row.",
		"Check that the CMIS source is reachable and that the source.* settings (type, driver, dsn, queries_dir, csv_dir, charset) are right.",
	}
}

// fileAdvice explains a file the extract could not open.
func fileAdvice(e *fileError) []string {
	var what string
	switch e.kind {
	case csvFile:
		what = "Check source.csv_dir: it must be a directory holding module_groups.csv, group_members.csv and group_tutors.csv"
	case queryFile:
		what = "Check source.queries_dir: a query file there replaces the built-in one of the same name (module_groups.sql, group_members.sql, group_tutors.sql); a missing one falls back to the built-in query"
	case sqliteFile:
		what = "Check source.dsn: for a sqlite source it is the path of an existing database file"
	}
	switch {
	case errors.Is(e, fs.ErrNotExist):
		return []string{what + ". The file named above does not exist."}
	case errors.Is(e, fs.ErrPermission):
		return []string{what + ". The file named above exists but the user cmissync runs as may not read it."}
	}
	return []string{what + "."}
}

// oracleErrorCode returns the Oracle code of err: ORA codes as their
// number, DPI (client library) codes as their negative number, so the two
// cannot be confused. godror's error type is asked first; the code token in
// the text is the fallback, which also covers DPI errors and drivers or
// layers that flatten errors into text.
func oracleErrorCode(err error) (int, bool) {
	if code, ok := oraErrCode(err); ok && code != 0 {
		return code, true
	}
	m := oracleCode.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	n, convErr := strconv.Atoi(m[2])
	if convErr != nil {
		return 0, false
	}
	if m[1] == "DPI" {
		return -n, true
	}
	return n, true
}

// Oracle codes with advice. DPI codes are negative (see oracleErrorCode).
const (
	dpiNoClientLibrary = -1047
	dpiConnClosed      = -1080
)

// oracleAdvice explains an Oracle error code.
func oracleAdvice(code int) []string {
	views := viewName(store.ModuleGroups) + ", " + viewName(store.GroupMembers) + " and " + viewName(store.GroupTutors)
	switch code {
	case dpiNoClientLibrary:
		return []string{
			"The Oracle client libraries were not found (DPI-1047): install Oracle Instant Client (Basic or Basic Light) on this host.",
			"Make it findable by the cmissync process, cron included: run ldconfig for its directory (or set LD_LIBRARY_PATH in the crontab), or name it with libDir=\"...\" in source.dsn.",
		}
	case 12154, 12262, 12263:
		return []string{fmt.Sprintf("Oracle could not resolve the connect identifier (ORA-%05d): check connectString in source.dsn. Use host:port/service (e.g. cmis-db:1521/GEND), or for a TNS alias set TNS_ADMIN (or configDir in source.dsn) to the directory of the tnsnames.ora that defines it.", code)}
	case 12541:
		return []string{"No Oracle listener answers at the host and port of connectString (ORA-12541): check the host name and the port (usually 1521), that the listener is running, and that no firewall blocks this host."}
	case 12514, 12505:
		return []string{fmt.Sprintf("The Oracle listener does not know the service (ORA-%05d): check the service name after the slash in connectString (e.g. GEND) with the database administrator.", code)}
	case 12170, 12535, 12543, 12545, 12560, 12537, 12547:
		return []string{
			fmt.Sprintf("The Oracle server could not be reached (ORA-%05d): check the host name in connectString, the network route and the firewall between this host and the database.", code),
			"The previous dump is kept; rerun once the database answers.",
		}
	case 1017:
		return []string{"Oracle refused the user name or password (ORA-01017): check user and password in source.dsn (or the file named by source.dsn_file); passwords are case-sensitive."}
	case 28000:
		return []string{"The Oracle account is locked (ORA-28000): ask the database administrator to unlock the user of source.dsn."}
	case 28001:
		return []string{"The Oracle password has expired (ORA-28001): have it changed and update source.dsn."}
	case 942:
		return []string{
			"A view does not exist, or the user of source.dsn may not read it (ORA-00942): check that " + views + " exist and that the user has SELECT on them (GRANT SELECT ON schema.view TO user).",
			"If the views belong to another schema, prefix them in your own query files (source.queries_dir), or add onInit=\"ALTER SESSION SET CURRENT_SCHEMA=schema\" to source.dsn.",
		}
	case 904:
		return []string{"A query names a column the view does not have (ORA-00904): compare the query file named above with the view's columns (DESCRIBE the view) and fix the query in source.queries_dir."}
	case 3113, 3114, 3135, dpiConnClosed:
		return []string{"The connection to Oracle was lost during the extract; the previous dump is kept. Rerun; if it repeats, ask the database administrator about session limits and idle timeouts."}
	case 1555:
		return []string{"Oracle could not keep a consistent view of CMIS during the extract (ORA-01555, snapshot too old): rerun at a quieter time, or ask the database administrator for more undo retention."}
	case 29275, 12704:
		return []string{fmt.Sprintf("Oracle met characters it could not convert (ORA-%05d): check source.charset; with AL32UTF8 Oracle converts the database's characters to UTF-8 itself.", code)}
	}
	if code < 0 {
		return []string{fmt.Sprintf("The Oracle client library failed (DPI-%d): see the message above and the ODPI-C error reference.", -code)}
	}
	return []string{fmt.Sprintf("Oracle failed with ORA-%05d: see the message above, and `oerr ora %d` or Oracle's error reference for the cause and action.", code, code)}
}

// mysqlAdvice explains an error of a MySQL/MariaDB source.
func mysqlAdvice(e *mysql.MySQLError) []string {
	switch e.Number {
	case 1045:
		return []string{"The source MySQL server refused the user name or password (error 1045): check them in source.dsn, and that the user may connect from this host."}
	case 1044, 1142:
		return []string{fmt.Sprintf("The user of source.dsn may not read the CMIS database or views (error %d): grant it SELECT on them.", e.Number)}
	case 1049:
		return []string{"The database named in source.dsn does not exist on the source MySQL server (error 1049): check the part after the slash."}
	case 1146:
		return []string{"A view does not exist in the source database (error 1146): check that " + viewName(store.ModuleGroups) + ", " + viewName(store.GroupMembers) + " and " + viewName(store.GroupTutors) + " exist there, or fix your query files (source.queries_dir)."}
	case 1054:
		return []string{"A query names a column the view does not have (error 1054): compare the query file named above with the view and fix it in source.queries_dir."}
	}
	return []string{fmt.Sprintf("The source MySQL server failed with error %d: see the message above.", e.Number)}
}
