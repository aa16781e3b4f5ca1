-- Ownership of memberships, renames, parking of items that keep failing, and
-- the audit trail of every change applied to Moodle.

-- owned = 0: the user was already in the group when cmissync came to add
-- them (a teacher added them, or the group was adopted), so cmissync never
-- removes that membership.
-- attempts / parked / last_error: permanent failures of an item; after
-- load.park_after attempts it is parked (skipped and reported) until an
-- operator runs `cmissync retry`.
ALTER TABLE cmis_groupmembers
  ADD COLUMN owned TINYINT NOT NULL DEFAULT 1,
  ADD COLUMN attempts INT NOT NULL DEFAULT 0,
  ADD COLUMN parked TINYINT NOT NULL DEFAULT 0,
  ADD COLUMN last_error VARCHAR(1000) NOT NULL DEFAULT '';

-- name is the name cmissync wants; moodlename the name it last set in
-- Moodle. torename = 1: name changed (template or CMIS), load renames the
-- group. A Moodle name that differs from moodlename was changed by hand.
ALTER TABLE cmis_groups_course
  ADD COLUMN moodlename VARCHAR(254) NOT NULL DEFAULT '',
  ADD COLUMN torename TINYINT NOT NULL DEFAULT 0,
  ADD COLUMN attempts INT NOT NULL DEFAULT 0,
  ADD COLUMN parked TINYINT NOT NULL DEFAULT 0,
  ADD COLUMN last_error VARCHAR(1000) NOT NULL DEFAULT '';

ALTER TABLE cmis_groupings
  ADD COLUMN moodlename VARCHAR(254) NOT NULL DEFAULT '',
  ADD COLUMN torename TINYINT NOT NULL DEFAULT 0,
  ADD COLUMN attempts INT NOT NULL DEFAULT 0,
  ADD COLUMN parked TINYINT NOT NULL DEFAULT 0,
  ADD COLUMN last_error VARCHAR(1000) NOT NULL DEFAULT '';

-- Every change cmissync applied to Moodle: "what did cmissync do to course X
-- last night?" is one query on this table.
CREATE TABLE cmissync_audit (
  id          BIGINT AUTO_INCREMENT PRIMARY KEY,
  run_id      VARCHAR(64) NOT NULL,
  courseid    BIGINT NOT NULL,
  object      VARCHAR(20) NOT NULL,
  idnumber    VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  name        VARCHAR(254) NOT NULL DEFAULT '',
  action      VARCHAR(20) NOT NULL,
  moodle_id   BIGINT NOT NULL DEFAULT 0,
  userid      BIGINT NOT NULL DEFAULT 0,
  cmisid      VARCHAR(100) COLLATE utf8mb4_bin NOT NULL DEFAULT '',
  detail      VARCHAR(1000) NOT NULL DEFAULT '',
  created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY cmissync_audit_course (courseid, created_at),
  KEY cmissync_audit_run (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
