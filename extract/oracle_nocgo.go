//go:build !cgo

package extract

import (
	"database/sql"

	"github.com/godror/godror/dsn"
)

// Without cgo godror cannot be built: such a build (CGO_ENABLED=0) still
// reads MySQL, SQLite and CSV sources, and OpenSQL refuses "oracle" with
// a clear message.
const oracleBuilt = false

func openOracle(dsn.ConnectionParams) (*sql.DB, error) { return nil, errNoOracle }

// oraErrCode finds no godror error without godror; Advice falls back to
// the ORA-NNNNN token in the text.
func oraErrCode(error) (int, bool) { return 0, false }
