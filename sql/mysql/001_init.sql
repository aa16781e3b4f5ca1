-- Staging schema for cmissync on MySQL/MariaDB.
-- Key columns use utf8mb4_bin so that ORDER BY matches Go's byte order (the
-- stage step merge-joins sorted streams) and CMIS codes compare exactly.

CREATE TABLE mapped_modules (
  id              BIGINT AUTO_INCREMENT PRIMARY KEY,
  moodle_id       BIGINT NOT NULL,
  modulecode      VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  group_import    VARCHAR(3) NOT NULL DEFAULT 'ADD',
  mapping_action  VARCHAR(3) NOT NULL DEFAULT 'ADD',
  created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY mapped_modules_course_module (moodle_id, modulecode),
  KEY mapped_modules_module (modulecode)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE cmis_groups_dump (
  modulecode  VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  groupcode   VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  modulename  VARCHAR(254) NOT NULL DEFAULT '',
  groupname   VARCHAR(254) NOT NULL DEFAULT '',
  PRIMARY KEY (modulecode, groupcode)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE cmis_groupmembers_dump (
  modulecode  VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  groupcode   VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  studentid   VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (modulecode, groupcode, studentid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE cmis_tutgroupmembers_dump (
  modulecode  VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  groupcode   VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  staffid     VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (modulecode, groupcode, staffid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Shadow tables: a new extract lands here and replaces the dump above in one
-- transaction only when it is complete (see the extract step).
CREATE TABLE cmis_groups_dump_next (
  modulecode  VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  groupcode   VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  modulename  VARCHAR(254) NOT NULL DEFAULT '',
  groupname   VARCHAR(254) NOT NULL DEFAULT '',
  PRIMARY KEY (modulecode, groupcode)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE cmis_groupmembers_dump_next (
  modulecode  VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  groupcode   VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  studentid   VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (modulecode, groupcode, studentid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE cmis_tutgroupmembers_dump_next (
  modulecode  VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  groupcode   VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  staffid     VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  PRIMARY KEY (modulecode, groupcode, staffid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE cmis_error_data_dump (
  id          BIGINT AUTO_INCREMENT PRIMARY KEY,
  run_id      VARCHAR(64) NOT NULL,
  source      VARCHAR(255) NOT NULL,
  line        BIGINT NOT NULL DEFAULT 0,
  rowdata     TEXT NOT NULL,
  reason      VARCHAR(1000) NOT NULL,
  created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY cmis_error_data_dump_run (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Staged groupings: one per (course, module). moodlegroupingid is set once
-- cmissync has created (or adopted) it in Moodle.
CREATE TABLE cmis_groupings (
  id                BIGINT AUTO_INCREMENT PRIMARY KEY,
  courseid          BIGINT NOT NULL,
  modulecode        VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  idnumber          VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  name              VARCHAR(254) NOT NULL,
  moodlegroupingid  BIGINT NULL,
  toadd             TINYINT NOT NULL DEFAULT 0,
  todelete          TINYINT NOT NULL DEFAULT 0,
  created_at        DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at        DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY cmis_groupings_key (courseid, modulecode),
  KEY cmis_groupings_flags (toadd, todelete)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Staged groups: one per (course, module, CMIS group). The name of the old
-- tool's table is kept so operators who know the runbook find their way.
CREATE TABLE cmis_groups_course (
  id               BIGINT AUTO_INCREMENT PRIMARY KEY,
  courseid         BIGINT NOT NULL,
  modulecode       VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  groupcode        VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  idnumber         VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  name             VARCHAR(254) NOT NULL,
  moodlegroupid    BIGINT NULL,
  assigned         TINYINT NOT NULL DEFAULT 0,
  toadd            TINYINT NOT NULL DEFAULT 0,
  todelete         TINYINT NOT NULL DEFAULT 0,
  created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY cmis_groups_course_key (courseid, modulecode, groupcode),
  KEY cmis_groups_course_flags (toadd, todelete)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Staged memberships, students and tutors (role). A row with toadd=0 is a
-- membership cmissync added and so owns.
CREATE TABLE cmis_groupmembers (
  id            BIGINT AUTO_INCREMENT PRIMARY KEY,
  courseid      BIGINT NOT NULL,
  modulecode    VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  groupcode     VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  role          VARCHAR(10) COLLATE utf8mb4_bin NOT NULL,
  cmisid        VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
  moodleuserid  BIGINT NULL,
  toadd         TINYINT NOT NULL DEFAULT 0,
  todelete      TINYINT NOT NULL DEFAULT 0,
  created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY cmis_groupmembers_key (courseid, modulecode, groupcode, role, cmisid),
  KEY cmis_groupmembers_flags (toadd, todelete)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE rest_error_logs (
  id          BIGINT AUTO_INCREMENT PRIMARY KEY,
  run_id      VARCHAR(64) NOT NULL,
  step        VARCHAR(20) NOT NULL,
  courseid    BIGINT NOT NULL DEFAULT 0,
  object      VARCHAR(255) NOT NULL DEFAULT '',
  wsfunction  VARCHAR(100) NOT NULL,
  params      TEXT NOT NULL,
  exception   VARCHAR(255) NOT NULL DEFAULT '',
  errorcode   VARCHAR(100) NOT NULL DEFAULT '',
  message     TEXT NOT NULL,
  created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY rest_error_logs_run (run_id),
  KEY rest_error_logs_course (courseid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per run and step.
CREATE TABLE cmissync_runs (
  id           BIGINT AUTO_INCREMENT PRIMARY KEY,
  run_id       VARCHAR(64) NOT NULL,
  step         VARCHAR(20) NOT NULL,
  started_at   DATETIME(6) NOT NULL,
  finished_at  DATETIME(6) NULL,
  outcome      VARCHAR(20) NOT NULL,
  counts       TEXT NOT NULL,
  message      TEXT NOT NULL,
  KEY cmissync_runs_run (run_id),
  KEY cmissync_runs_started (started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The run lock: at most one row. A holder whose heartbeat is older than the
-- stale limit is presumed dead and may be replaced.
CREATE TABLE cmissync_lock (
  name          VARCHAR(40) PRIMARY KEY,
  holder        VARCHAR(255) NOT NULL,
  acquired_at   DATETIME(6) NOT NULL,
  heartbeat_at  DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
