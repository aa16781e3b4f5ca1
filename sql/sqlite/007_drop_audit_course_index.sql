-- The audit trail's (courseid, created_at) index serves no query: the
-- trail is read by course, run, user or object and always in id order, and
-- the (courseid, idnumber, userid) index of migration 004 selects a course
-- as well. The load writes one audit row per membership it adds, so a
-- first load of a large institution paid this B-tree write a million
-- times. See the MySQL twin of this file.
DROP INDEX cmissync_audit_course;
