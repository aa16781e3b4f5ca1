//go:build !cgo

package extract

// Without cgo godror cannot be built: such a build (CGO_ENABLED=0) still
// reads MySQL, SQLite and CSV sources, and OpenSQL refuses "oracle" with
// a clear message.
const oracleBuilt = false
