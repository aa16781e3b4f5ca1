package store

// DisableLoadData makes g write with multi-row INSERTs, as it does when the
// MySQL server has local_infile OFF, so tests cover both MySQL write paths
// on one server.
func DisableLoadData(g *Generation) {
	g.loadData = false
	g.method = methodInsert + " (LOAD DATA disabled by a test)"
}

// SetBeforeSwitch makes g's Commit call fn where a crash would fall between
// the copy or swap of the dumps and the record of their run.
func SetBeforeSwitch(g *Generation, fn func() error) { g.beforeSwitch = fn }

// SetCompactAudit turns the compact form of member audit entries on or off
// (off: as on a MySQL server whose multi-row INSERTs do not give
// consecutive ids), so tests cover both ways of writing the trail on one
// server.
func SetCompactAudit(s *Store, on bool) { s.compactAudit = on }
