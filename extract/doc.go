// Package extract is the first step of the cmissync pipeline. It reads the
// three CMIS views (the teaching groups of each module, their students and
// their tutors) from a Source, checks every row against the column contract
// of the extraction queries and against Moodle's limits, and writes the good
// rows into the staging _dump tables. The stage step reads those dumps next.
//
// A Source is either a database reached through database/sql (godror for
// CMIS on Oracle in production, MySQL/MariaDB or SQLite for sample data and
// the demo) running the query files of sql/cmis (replaceable by
// configuration), or a directory of CSV files, one per view.
//
// Run writes into a store.Generation: the new extract becomes visible only
// when all three views have been read, and replaces the previous dump at
// once. Any error or cancellation leaves the previous dump as it was. Rows
// that break the contract are recorded in cmis_error_data_dump with a reason
// and the extract goes on without them. Each refused row also records its
// key as far as it could be read (store.BadRow), which the later steps read
// back (store.Store.RefusedKeys) so that nothing a refused row might have
// described is deleted: a record whose key cannot be read at all protects
// everything of its view for as long as its extract is the current dump.
// Batches are written to staging on a second goroutine while the next batch
// is read and checked.
//
// The shrink guard (Options.ShrinkThreshold) holds back an extract much
// smaller than the committed dump, such as the empty views of a CMIS outage,
// with a *ShrinkError until an operator approves it. Advice turns any error
// of the step into what to check.
package extract
