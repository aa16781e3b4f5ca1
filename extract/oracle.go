//go:build cgo

package extract

// godror registers the "godror" database/sql driver that OpenSQL uses for
// CMIS on Oracle. It needs cgo to build and the Oracle client libraries
// (Instant Client) at run time, when an oracle source is opened.
import _ "github.com/godror/godror"

// oracleBuilt reports whether this build can reach Oracle.
const oracleBuilt = true
