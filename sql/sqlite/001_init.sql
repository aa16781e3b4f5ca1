-- Staging schema for cmissync on SQLite (the embedded default).
-- Text compares with SQLite's default BINARY collation, which is Go's byte
-- order: the stage step merge-joins sorted streams.

CREATE TABLE mapped_modules (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  moodle_id       BIGINT NOT NULL,
  modulecode      VARCHAR(100) NOT NULL,
  group_import    VARCHAR(3) NOT NULL DEFAULT 'ADD',
  mapping_action  VARCHAR(3) NOT NULL DEFAULT 'ADD',
  created_at      DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
  updated_at      DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);
CREATE UNIQUE INDEX mapped_modules_course_module ON mapped_modules (moodle_id, modulecode);
CREATE INDEX mapped_modules_module ON mapped_modules (modulecode);

CREATE TABLE cmis_groups_dump (
  modulecode  VARCHAR(100) NOT NULL,
  groupcode   VARCHAR(100) NOT NULL,
  modulename  VARCHAR(254) NOT NULL DEFAULT '',
  groupname   VARCHAR(254) NOT NULL DEFAULT '',
  PRIMARY KEY (modulecode, groupcode)
);

CREATE TABLE cmis_groupmembers_dump (
  modulecode  VARCHAR(100) NOT NULL,
  groupcode   VARCHAR(100) NOT NULL,
  studentid   VARCHAR(100) NOT NULL,
  PRIMARY KEY (modulecode, groupcode, studentid)
);

CREATE TABLE cmis_tutgroupmembers_dump (
  modulecode  VARCHAR(100) NOT NULL,
  groupcode   VARCHAR(100) NOT NULL,
  staffid     VARCHAR(100) NOT NULL,
  PRIMARY KEY (modulecode, groupcode, staffid)
);

-- Shadow tables: a new extract lands here and replaces the dump above in one
-- transaction only when it is complete (see the extract step).
CREATE TABLE cmis_groups_dump_next (
  modulecode  VARCHAR(100) NOT NULL,
  groupcode   VARCHAR(100) NOT NULL,
  modulename  VARCHAR(254) NOT NULL DEFAULT '',
  groupname   VARCHAR(254) NOT NULL DEFAULT '',
  PRIMARY KEY (modulecode, groupcode)
);

CREATE TABLE cmis_groupmembers_dump_next (
  modulecode  VARCHAR(100) NOT NULL,
  groupcode   VARCHAR(100) NOT NULL,
  studentid   VARCHAR(100) NOT NULL,
  PRIMARY KEY (modulecode, groupcode, studentid)
);

CREATE TABLE cmis_tutgroupmembers_dump_next (
  modulecode  VARCHAR(100) NOT NULL,
  groupcode   VARCHAR(100) NOT NULL,
  staffid     VARCHAR(100) NOT NULL,
  PRIMARY KEY (modulecode, groupcode, staffid)
);

CREATE TABLE cmis_error_data_dump (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id      VARCHAR(64) NOT NULL,
  source      VARCHAR(255) NOT NULL,
  line        BIGINT NOT NULL DEFAULT 0,
  rowdata     TEXT NOT NULL,
  reason      VARCHAR(1000) NOT NULL,
  created_at  DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);
CREATE INDEX cmis_error_data_dump_run ON cmis_error_data_dump (run_id);

-- Staged groupings: one per (course, module). moodlegroupingid is set once
-- cmissync has created (or adopted) it in Moodle.
CREATE TABLE cmis_groupings (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  courseid          BIGINT NOT NULL,
  modulecode        VARCHAR(100) NOT NULL,
  idnumber          VARCHAR(100) NOT NULL,
  name              VARCHAR(254) NOT NULL,
  moodlegroupingid  BIGINT NULL,
  toadd             TINYINT NOT NULL DEFAULT 0,
  todelete          TINYINT NOT NULL DEFAULT 0,
  created_at        DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
  updated_at        DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);
CREATE UNIQUE INDEX cmis_groupings_key ON cmis_groupings (courseid, modulecode);
CREATE INDEX cmis_groupings_flags ON cmis_groupings (toadd, todelete);

-- Staged groups: one per (course, module, CMIS group). The name of the old
-- tool's table is kept so operators who know the runbook find their way.
CREATE TABLE cmis_groups_course (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  courseid         BIGINT NOT NULL,
  modulecode       VARCHAR(100) NOT NULL,
  groupcode        VARCHAR(100) NOT NULL,
  idnumber         VARCHAR(100) NOT NULL,
  name             VARCHAR(254) NOT NULL,
  moodlegroupid    BIGINT NULL,
  assigned         TINYINT NOT NULL DEFAULT 0,
  toadd            TINYINT NOT NULL DEFAULT 0,
  todelete         TINYINT NOT NULL DEFAULT 0,
  created_at       DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
  updated_at       DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);
CREATE UNIQUE INDEX cmis_groups_course_key ON cmis_groups_course (courseid, modulecode, groupcode);
CREATE INDEX cmis_groups_course_flags ON cmis_groups_course (toadd, todelete);

-- Staged memberships, students and tutors (role). A row with toadd=0 is a
-- membership cmissync added and so owns.
CREATE TABLE cmis_groupmembers (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  courseid      BIGINT NOT NULL,
  modulecode    VARCHAR(100) NOT NULL,
  groupcode     VARCHAR(100) NOT NULL,
  role          VARCHAR(10) NOT NULL,
  cmisid        VARCHAR(100) NOT NULL,
  moodleuserid  BIGINT NULL,
  toadd         TINYINT NOT NULL DEFAULT 0,
  todelete      TINYINT NOT NULL DEFAULT 0,
  created_at    DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
  updated_at    DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);
CREATE UNIQUE INDEX cmis_groupmembers_key ON cmis_groupmembers (courseid, modulecode, groupcode, role, cmisid);
CREATE INDEX cmis_groupmembers_flags ON cmis_groupmembers (toadd, todelete);

CREATE TABLE rest_error_logs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id      VARCHAR(64) NOT NULL,
  step        VARCHAR(20) NOT NULL,
  courseid    BIGINT NOT NULL DEFAULT 0,
  object      VARCHAR(255) NOT NULL DEFAULT '',
  wsfunction  VARCHAR(100) NOT NULL,
  params      TEXT NOT NULL,
  exception   VARCHAR(255) NOT NULL DEFAULT '',
  errorcode   VARCHAR(100) NOT NULL DEFAULT '',
  message     TEXT NOT NULL,
  created_at  DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);
CREATE INDEX rest_error_logs_run ON rest_error_logs (run_id);
CREATE INDEX rest_error_logs_course ON rest_error_logs (courseid);

-- One row per run and step.
CREATE TABLE cmissync_runs (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id       VARCHAR(64) NOT NULL,
  step         VARCHAR(20) NOT NULL,
  started_at   DATETIME NOT NULL,
  finished_at  DATETIME NULL,
  outcome      VARCHAR(20) NOT NULL,
  counts       TEXT NOT NULL,
  message      TEXT NOT NULL
);
CREATE INDEX cmissync_runs_run ON cmissync_runs (run_id);
CREATE INDEX cmissync_runs_started ON cmissync_runs (started_at);

-- The run lock: at most one row. A holder whose heartbeat is older than the
-- stale limit is presumed dead and may be replaced.
CREATE TABLE cmissync_lock (
  name          VARCHAR(40) PRIMARY KEY,
  holder        VARCHAR(255) NOT NULL,
  acquired_at   DATETIME NOT NULL,
  heartbeat_at  DATETIME NOT NULL
);
