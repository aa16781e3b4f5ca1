-- Evidence for deletions, adoption and respected removals (see the MySQL twin
-- of this file for the meaning of each column).
ALTER TABLE cmis_error_data_dump ADD COLUMN cmisid VARCHAR(100) NOT NULL DEFAULT '';

ALTER TABLE cmis_groupings ADD COLUMN delete_reason VARCHAR(20) NOT NULL DEFAULT '';
ALTER TABLE cmis_groupings ADD COLUMN adopted TINYINT NOT NULL DEFAULT 0;

ALTER TABLE cmis_groups_course ADD COLUMN delete_reason VARCHAR(20) NOT NULL DEFAULT '';
ALTER TABLE cmis_groups_course ADD COLUMN adopted TINYINT NOT NULL DEFAULT 0;

ALTER TABLE cmis_groupmembers ADD COLUMN delete_reason VARCHAR(20) NOT NULL DEFAULT '';
ALTER TABLE cmis_groupmembers ADD COLUMN removed_in_moodle TINYINT NOT NULL DEFAULT 0;

CREATE INDEX cmissync_audit_member ON cmissync_audit (courseid, idnumber, userid);
