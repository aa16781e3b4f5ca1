-- Deletions only follow positive evidence (see the README, "How cmissync
-- decides"), and what cmissync cannot read protects what it might describe.

-- The key of a refused extract row as far as it could be read. An empty key
-- column means "unknown": a refused row whose module code could not be read
-- protects every group of its view, one whose student id could not be read
-- protects every membership of its group (dumptable names the view).
ALTER TABLE cmis_error_data_dump
  ADD COLUMN cmisid VARCHAR(100) COLLATE utf8mb4_bin NOT NULL DEFAULT '';

-- delete_reason says why stage flagged a row todelete: cmis (absent from a
-- complete extract), rmv (an RMV mapping), unmapped (its mapping row was
-- removed) or badmapping (its mapping row is not understood; such rows are
-- never deleted). The load step's policy decides from it whether the
-- deletion has positive evidence and whether the mass-change guard counts it.
-- adopted = 1: a hand-made group or grouping taken over by
-- load.on_name_clash = adopt; it is never deleted, only given back.
ALTER TABLE cmis_groupings
  ADD COLUMN delete_reason VARCHAR(20) NOT NULL DEFAULT '',
  ADD COLUMN adopted TINYINT NOT NULL DEFAULT 0;

ALTER TABLE cmis_groups_course
  ADD COLUMN delete_reason VARCHAR(20) NOT NULL DEFAULT '',
  ADD COLUMN adopted TINYINT NOT NULL DEFAULT 0;

-- removed_in_moodle = 1: someone removed this CMIS member from the group in
-- Moodle and load.on_member_removed = respect, so cmissync does not add
-- them back while CMIS keeps listing them.
ALTER TABLE cmis_groupmembers
  ADD COLUMN delete_reason VARCHAR(20) NOT NULL DEFAULT '',
  ADD COLUMN removed_in_moodle TINYINT NOT NULL DEFAULT 0;

-- Ownership of a membership can be rebuilt from the audit trail when its
-- staged row was lost.
CREATE INDEX cmissync_audit_member ON cmissync_audit (courseid, idnumber, userid);
