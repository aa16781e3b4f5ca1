-- The (toadd, todelete) indexes of the staged tables serve no query: every
-- read of the staged tables selects by id or by course, or scans the whole
-- table in key order (the stage step) or to count (status), and a flag with
-- two values selects nothing an index helps with. Each costs a B-tree write
-- per staged row, which a first stage of a large institution pays a million
-- times.
DROP INDEX cmis_groupings_flags ON cmis_groupings;
DROP INDEX cmis_groups_course_flags ON cmis_groups_course;
DROP INDEX cmis_groupmembers_flags ON cmis_groupmembers;
