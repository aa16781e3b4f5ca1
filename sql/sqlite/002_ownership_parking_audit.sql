-- Ownership of memberships, renames, parking of items that keep failing, and
-- the audit trail of every change applied to Moodle. See the MySQL twin of
-- this file for the meaning of each column.

ALTER TABLE cmis_groupmembers ADD COLUMN owned TINYINT NOT NULL DEFAULT 1;
ALTER TABLE cmis_groupmembers ADD COLUMN attempts INT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groupmembers ADD COLUMN parked TINYINT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groupmembers ADD COLUMN last_error VARCHAR(1000) NOT NULL DEFAULT '';

ALTER TABLE cmis_groups_course ADD COLUMN moodlename VARCHAR(254) NOT NULL DEFAULT '';
ALTER TABLE cmis_groups_course ADD COLUMN torename TINYINT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groups_course ADD COLUMN attempts INT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groups_course ADD COLUMN parked TINYINT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groups_course ADD COLUMN last_error VARCHAR(1000) NOT NULL DEFAULT '';

ALTER TABLE cmis_groupings ADD COLUMN moodlename VARCHAR(254) NOT NULL DEFAULT '';
ALTER TABLE cmis_groupings ADD COLUMN torename TINYINT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groupings ADD COLUMN attempts INT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groupings ADD COLUMN parked TINYINT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groupings ADD COLUMN last_error VARCHAR(1000) NOT NULL DEFAULT '';

CREATE TABLE cmissync_audit (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id      VARCHAR(64) NOT NULL,
  courseid    BIGINT NOT NULL,
  object      VARCHAR(20) NOT NULL,
  idnumber    VARCHAR(100) NOT NULL,
  name        VARCHAR(254) NOT NULL DEFAULT '',
  action      VARCHAR(20) NOT NULL,
  moodle_id   BIGINT NOT NULL DEFAULT 0,
  userid      BIGINT NOT NULL DEFAULT 0,
  cmisid      VARCHAR(100) NOT NULL DEFAULT '',
  detail      VARCHAR(1000) NOT NULL DEFAULT '',
  created_at  DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);
CREATE INDEX cmissync_audit_course ON cmissync_audit (courseid, created_at);
CREATE INDEX cmissync_audit_run ON cmissync_audit (run_id);
