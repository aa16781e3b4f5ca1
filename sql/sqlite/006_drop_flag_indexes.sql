-- The (toadd, todelete) indexes of the staged tables serve no query: every
-- read of the staged tables selects by id or by course, or scans the whole
-- table in key order (the stage step) or to count (status), and a flag with
-- two values selects nothing an index helps with. Each costs a B-tree write
-- per staged row, which a first stage of a large institution pays a million
-- times. See the MySQL twin of this file.
DROP INDEX cmis_groupings_flags;
DROP INDEX cmis_groups_course_flags;
DROP INDEX cmis_groupmembers_flags;
