-- The audit trail of memberships in one row per group and change: see the
-- MySQL twin of this file.
CREATE TABLE cmissync_audit_members (
  audit_id  INTEGER NOT NULL,
  n         INTEGER NOT NULL,
  userid    BIGINT NOT NULL,
  cmisid    VARCHAR(100) NOT NULL DEFAULT '',
  PRIMARY KEY (audit_id, n)
) WITHOUT ROWID;
