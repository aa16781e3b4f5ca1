//go:build cgo

package extract

import (
	"database/sql"

	"github.com/godror/godror"
	"github.com/godror/godror/dsn"
)

// godror is the database/sql driver OpenSQL uses for CMIS on Oracle. It
// needs cgo to build and the Oracle client libraries (Instant Client) at run
// time, when an oracle source is opened.

// oracleBuilt reports whether this build can reach Oracle.
const oracleBuilt = true

// openOracle returns a handle on the Oracle database of params; it connects
// on first use.
func openOracle(params dsn.ConnectionParams) (*sql.DB, error) {
	return sql.OpenDB(godror.NewConnector(params)), nil
}

// oraErrCode returns the ORA code of a godror error in err's chain.
func oraErrCode(err error) (int, bool) {
	oe, ok := godror.AsOraErr(err)
	if !ok {
		return 0, false
	}
	return oe.Code(), true
}
