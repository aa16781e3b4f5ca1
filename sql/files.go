// Package sqlfiles embeds the SQL that ships with cmissync: the numbered
// staging-schema migrations for each engine (mysql/, sqlite/) and the default
// CMIS extraction queries (cmis/). Callers receive them as an fs.FS so tests
// can substitute their own.
package sqlfiles

import (
	"embed"
	"io/fs"
)

//go:embed mysql/*.sql sqlite/*.sql cmis/*.sql
var files embed.FS

// Migrations returns the migration files for an engine ("mysql" or "sqlite"),
// rooted at that engine's directory.
func Migrations(engine string) (fs.FS, error) {
	return fs.Sub(files, engine)
}

// Queries returns the default CMIS extraction queries, rooted at cmis/.
func Queries() fs.FS {
	q, err := fs.Sub(files, "cmis")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return q
}
