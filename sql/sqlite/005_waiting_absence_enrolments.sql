-- Members waiting for enrolment, absences counted over extracts, and the
-- enrolments cmissync makes (see the MySQL twin of this file).
ALTER TABLE cmis_groupmembers ADD COLUMN waiting_since DATETIME NULL;
ALTER TABLE cmis_groupmembers ADD COLUMN waiting_runs INT NOT NULL DEFAULT 0;

ALTER TABLE cmis_groupmembers ADD COLUMN absent_runs INT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groupmembers ADD COLUMN absent_dump VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE cmis_groups_course ADD COLUMN absent_runs INT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groups_course ADD COLUMN absent_dump VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE cmis_groupings ADD COLUMN absent_runs INT NOT NULL DEFAULT 0;
ALTER TABLE cmis_groupings ADD COLUMN absent_dump VARCHAR(64) NOT NULL DEFAULT '';

CREATE TABLE cmissync_enrolments (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  courseid    BIGINT NOT NULL,
  userid      BIGINT NOT NULL,
  cmisid      VARCHAR(100) NOT NULL,
  role        VARCHAR(10) NOT NULL,
  roleid      BIGINT NOT NULL,
  status      VARCHAR(20) NOT NULL DEFAULT 'active',
  created_at  DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
  updated_at  DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);
CREATE UNIQUE INDEX cmissync_enrolments_key ON cmissync_enrolments (courseid, userid, roleid);

CREATE TABLE cmissync_frozen_courses (
  courseid     BIGINT PRIMARY KEY,
  reason       VARCHAR(255) NOT NULL,
  frozen_at    DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);
