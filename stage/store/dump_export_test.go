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
