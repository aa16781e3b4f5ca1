package store

// DisableLoadData makes g write with multi-row INSERTs, as it does when the
// MySQL server has local_infile OFF, so tests cover both MySQL write paths
// on one server.
func DisableLoadData(g *Generation) {
	g.loadData = false
	g.method = methodInsert + " (LOAD DATA disabled by a test)"
}
