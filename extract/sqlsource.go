package extract

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/godror/godror/dsn"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	sqlfiles "github.com/cmissync/cmissync/sql"
	"github.com/cmissync/cmissync/stage/store"
)

// Driver names accepted by OpenSQL.
const (
	DriverOracle = "oracle" // CMIS in production, through godror (needs cgo and Oracle client libraries at run time)
	DriverMySQL  = "mysql"
	DriverSQLite = "sqlite"
)

// sqlSource runs the extraction queries through database/sql.
type sqlSource struct {
	db      *sql.DB
	name    string
	queries fs.FS
	owned   bool // Close closes db
}

// SQLOption tunes OpenSQL.
type SQLOption func(*sqlOptions)

type sqlOptions struct {
	charset string
}

// WithCharset passes the source.charset setting (see Options.Charset) to
// OpenSQL, which matters for Oracle only: there it chooses the client
// character set, the one Oracle converts the data to before sending it.
//
//   - AL32UTF8 (the default): Oracle converts from the database character
//     set, e.g. WE8ISO8859P1, to UTF-8 itself. This is right for a database
//     whose text is stored in its declared character set, as CMIS's is.
//   - WE8ISO8859P1: Oracle sends the bytes as stored, unconverted; cmissync
//     keeps values that are valid UTF-8 and decodes the others as Latin-1
//     (Windows-1252). Only for a Latin-1 database into which applications
//     wrote UTF-8 ("pass-through"), whose values come out mangled, e.g.
//     "Ã©" for "é", with AL32UTF8.
//
// A charset parameter in the Oracle DSN wins over this setting. MySQL
// connections always ask for utf8mb4, so the server converts; SQLite and
// CSV sources are read as they are. For every source, Run's Options.Charset
// then says what to do with bytes that are still not UTF-8.
func WithCharset(charset string) SQLOption {
	return func(o *sqlOptions) { o.charset = charset }
}

// OpenSQL connects to the CMIS database and returns a Source that runs the
// query files of queries (module_groups.sql, group_members.sql,
// group_tutors.sql; nil means the defaults shipped in sql/cmis).
//
// driver is "oracle" (godror; dataSource as godror accepts it, e.g.
// `user="cmis" password="..." connectString="cmis-db:1521/GEND"`), "mysql"
// (go-sql-driver DSN) or "sqlite" (a database file, which must exist). The
// query files are read and the connection is checked before OpenSQL returns.
// Describe, and every error OpenSQL returns, leave the password out.
func OpenSQL(ctx context.Context, driver, dataSource string, queries fs.FS, options ...SQLOption) (Source, error) {
	var opts sqlOptions
	for _, o := range options {
		o(&opts)
	}
	name, goDriver, password, err := describeDSN(driver, dataSource)
	if err != nil {
		return nil, err
	}
	if goDriver == "godror" && !oracleBuilt {
		return nil, errNoOracle
	}
	if queries == nil {
		queries = sqlfiles.Queries()
	}
	for _, t := range store.DumpTables {
		if _, err := readQuery(queries, t); err != nil {
			return nil, err
		}
	}
	var db *sql.DB
	switch goDriver {
	case "godror":
		params, err := oracleParams(dataSource, opts.charset)
		if err != nil {
			return nil, err
		}
		if db, err = openOracle(params); err != nil {
			return nil, fmt.Errorf("%s: %w", name, scrubbed(err, password))
		}
	case "sqlite":
		path := strings.TrimPrefix(dataSource, "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if path != ":memory:" {
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("%s: %w", name, &fileError{kind: sqliteFile, err: err})
			}
		}
		fallthrough
	default:
		if db, err = sql.Open(goDriver, dataSource); err != nil {
			return nil, fmt.Errorf("%s: %w", name, scrubbed(err, password))
		}
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: connect: %w", name, scrubbed(err, password))
	}
	return &sqlSource{db: db, name: name, queries: queries, owned: true}, nil
}

// errNoOracle is OpenSQL's answer for an oracle source in a build without
// cgo.
var errNoOracle = errors.New("source: this cmissync was built without cgo and cannot reach Oracle; build it with CGO_ENABLED=1")

// oracleParams parses a godror DSN and sets the client character set that
// charset (source.charset) asks for, unless the DSN sets one itself; see
// WithCharset.
func oracleParams(dataSource, charset string) (dsn.ConnectionParams, error) {
	cs, err := normalCharset(charset)
	if err != nil {
		return dsn.ConnectionParams{}, fmt.Errorf("source: %w", err)
	}
	p, err := dsn.Parse(dataSource)
	if err != nil {
		// The parser's message quotes the DSN, password included.
		return dsn.ConnectionParams{}, errors.New(`source: the oracle DSN is not valid (expected e.g. user="cmis" password="..." connectString="host:1521/SERVICE", or user/password@host:1521/SERVICE)`)
	}
	if p.Charset == "" {
		p.Charset = "UTF-8"
		if cs == CharsetLatin1 {
			p.Charset = "ISO-8859-1"
		}
	}
	return p, nil
}

// NewSQL returns a Source that runs the query files of queries (nil means
// the defaults) on db, which the caller keeps and closes; name is what
// Describe returns. It is meant for tests and for callers that manage their
// own connection.
func NewSQL(db *sql.DB, name string, queries fs.FS) Source {
	if queries == nil {
		queries = sqlfiles.Queries()
	}
	return &sqlSource{db: db, name: name, queries: queries}
}

// describeDSN validates a driver name and DSN and returns the description
// of the source (no password), the database/sql driver name and the password
// (to scrub from driver errors).
func describeDSN(driver, dataSource string) (desc, goDriver, password string, err error) {
	switch strings.ToLower(driver) {
	case DriverOracle, "godror":
		p, perr := dsn.Parse(dataSource)
		if perr != nil {
			// The parser's message quotes the DSN, password included.
			return "", "", "", errors.New(`source: the oracle DSN is not valid (expected e.g. user="cmis" password="..." connectString="host:1521/SERVICE", or user/password@host:1521/SERVICE)`)
		}
		cs := p.ConnectString
		if cs == "" {
			cs = "default connection"
		}
		return "oracle (" + cs + ")", "godror", p.Password.Secret(), nil
	case DriverMySQL:
		cfg, perr := mysql.ParseDSN(dataSource)
		if perr != nil {
			return "", "", "", errors.New("source: the mysql DSN is not valid (expected user:password@tcp(host:port)/database)")
		}
		return "mysql (" + cfg.Addr + "/" + cfg.DBName + ")", "mysql", cfg.Passwd, nil
	case DriverSQLite:
		if dataSource == "" {
			return "", "", "", errors.New("source: sqlite needs a database file path")
		}
		path := strings.TrimPrefix(dataSource, "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		return "sqlite (file " + path + ")", "sqlite", "", nil
	}
	return "", "", "", fmt.Errorf("source: unknown driver %q (want %q, %q or %q)", driver, DriverOracle, DriverMySQL, DriverSQLite)
}

// scrubbedError hides a password a driver may have quoted in its message,
// keeping the original error for errors.Is/As.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func scrubbed(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &scrubbedError{msg: strings.ReplaceAll(err.Error(), password, "***"), err: err}
}

func (s *sqlSource) Describe() string { return s.name }

func (s *sqlSource) Close() error {
	if !s.owned {
		return nil
	}
	return s.db.Close()
}

// readQuery reads a table's query file and prepares it for any driver: the
// leading comment block and a trailing ";" or "/" are removed (Oracle
// rejects a terminating semicolon).
func readQuery(queries fs.FS, t store.DumpTable) (string, error) {
	file := DefaultQueryFile(t)
	b, err := fs.ReadFile(queries, file)
	if err != nil {
		return "", fmt.Errorf("query file %s for %s: %w", file, viewName(t), &fileError{kind: queryFile, err: err})
	}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	for len(lines) > 0 {
		l := strings.TrimSpace(lines[0])
		if l != "" && !strings.HasPrefix(l, "--") {
			break
		}
		lines = lines[1:]
	}
	q := strings.TrimSpace(strings.Join(lines, "\n"))
	for {
		trimmed := strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(q, ";"), "/"))
		if trimmed == q {
			break
		}
		q = trimmed
	}
	if q == "" {
		return "", fmt.Errorf("query file %s for %s is empty", file, viewName(t))
	}
	return q, nil
}

func (s *sqlSource) Open(ctx context.Context, t store.DumpTable) (Rows, error) {
	origin := DefaultQueryFile(t)
	q, err := readQuery(s.queries, t)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: run query: %w", origin, err)
	}
	names, err := rows.Columns()
	if err != nil {
		rows.Close()
		return nil, fmt.Errorf("%s: read result columns: %w", origin, err)
	}
	idx, err := mapColumns(t, names, origin)
	if err != nil {
		rows.Close()
		return nil, err
	}
	numeric := make([]bool, len(names))
	if types, err := rows.ColumnTypes(); err == nil {
		for i, ct := range types {
			numeric[i] = numericType(ct.DatabaseTypeName())
		}
	}
	r := &sqlRows{
		rows:    rows,
		origin:  origin,
		idx:     idx,
		numeric: numeric,
		vals:    make([]any, len(names)),
		ptrs:    make([]any, len(names)),
		row:     make([]string, len(idx)),
	}
	for i := range r.vals {
		r.ptrs[i] = &r.vals[i]
	}
	return r, nil
}

// sqlRows turns a query result into contract rows of text.
type sqlRows struct {
	rows    *sql.Rows
	origin  string
	idx     []int
	numeric []bool
	vals    []any
	ptrs    []any
	row     []string
	line    int64
	err     error
}

func (r *sqlRows) Origin() string { return r.origin }
func (r *sqlRows) Line() int64    { return r.line }
func (r *sqlRows) Row() []string  { return r.row }
func (r *sqlRows) Close() error   { return r.rows.Close() }

func (r *sqlRows) Err() error {
	if r.err != nil {
		return r.err
	}
	if err := r.rows.Err(); err != nil {
		return err
	}
	return nil
}

func (r *sqlRows) Next() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	clear(r.vals)
	if err := r.rows.Scan(r.ptrs...); err != nil {
		r.err = err // Line still names the last good row
		return false
	}
	r.line++
	for i, j := range r.idx {
		if j < 0 {
			r.row[i] = ""
			continue
		}
		r.row[i] = text(r.vals[j], r.numeric[j])
	}
	return true
}

// numericType reports whether a column's database type is a number, whose
// integral values are rendered without a fraction.
func numericType(name string) bool {
	switch strings.ToUpper(name) {
	case "NUMBER", "DECIMAL", "NUMERIC", "FLOAT", "DOUBLE", "REAL", "BINARY_DOUBLE", "BINARY_FLOAT",
		"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "MEDIUMINT":
		return true
	}
	return false
}

// text renders a scanned value as text, whatever type the driver chose:
// NULL becomes "", integral numbers have no ".0".
func text(v any, numeric bool) string {
	var s string
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		s = x
	case []byte:
		s = string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int:
		return strconv.Itoa(x)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return formatFloat(x, 64)
	case float32:
		return formatFloat(float64(x), 32)
	case bool:
		if x {
			return "1"
		}
		return "0"
	case time.Time:
		return x.Format("2006-01-02 15:04:05")
	case fmt.Stringer: // godror.Number, among others
		s = x.String()
	default:
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.String:
			s = rv.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return strconv.FormatInt(rv.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return strconv.FormatUint(rv.Uint(), 10)
		case reflect.Float32, reflect.Float64:
			return formatFloat(rv.Float(), 64)
		default:
			s = fmt.Sprint(v)
		}
	}
	if numeric {
		s = trimZeroFraction(s)
	}
	return s
}

func formatFloat(f float64, bits int) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e18 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// trimZeroFraction turns "12345678.0" or "12345678.000" into "12345678";
// other text is returned unchanged.
func trimZeroFraction(s string) string {
	t := strings.TrimSpace(s)
	dot := strings.IndexByte(t, '.')
	if dot <= 0 {
		return s
	}
	digits := strings.TrimPrefix(t[:dot], "-")
	if digits == "" {
		return s
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return s
		}
	}
	for _, c := range t[dot+1:] {
		if c != '0' {
			return s
		}
	}
	return t[:dot]
}
