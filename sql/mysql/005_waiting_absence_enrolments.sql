-- Members waiting for enrolment, absences counted over extracts, and the
-- enrolments cmissync makes.

-- waiting_since: when a CMIS member was first found not enrolled in the
-- course (NULL: not waiting); waiting_runs: the loads since that found them
-- still waiting. Reports list a member once when they start waiting and
-- summarise the list afterwards, until report.waiting_alert_after.
ALTER TABLE cmis_groupmembers
  ADD COLUMN waiting_since DATETIME NULL,
  ADD COLUMN waiting_runs INT NOT NULL DEFAULT 0;

-- absent_runs: consecutive complete extracts a staged row has been absent
-- from (load.remove_after_runs); absent_dump: the extract last counted, so
-- staging twice from one extract counts once.
ALTER TABLE cmis_groupmembers
  ADD COLUMN absent_runs INT NOT NULL DEFAULT 0,
  ADD COLUMN absent_dump VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE cmis_groups_course
  ADD COLUMN absent_runs INT NOT NULL DEFAULT 0,
  ADD COLUMN absent_dump VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE cmis_groupings
  ADD COLUMN absent_runs INT NOT NULL DEFAULT 0,
  ADD COLUMN absent_dump VARCHAR(64) NOT NULL DEFAULT '';

-- Enrolments cmissync made with the manual enrolment plugin
-- (load.enrol_missing); only these are ever suspended or unenrolled
-- (load.unenrol_action). status: active, suspended or unenrolled.
CREATE TABLE cmissync_enrolments (
  id          BIGINT AUTO_INCREMENT PRIMARY KEY,
  courseid    BIGINT NOT NULL,
  userid      BIGINT NOT NULL,
  cmisid      VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  role        VARCHAR(10) NOT NULL,
  roleid      BIGINT NOT NULL,
  status      VARCHAR(20) NOT NULL DEFAULT 'active',
  created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY cmissync_enrolments_key (courseid, userid, roleid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Courses cmissync no longer writes to (ended, or listed as frozen), and
-- when that was first reported.
CREATE TABLE cmissync_frozen_courses (
  courseid     BIGINT PRIMARY KEY,
  reason       VARCHAR(255) NOT NULL,
  frozen_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
