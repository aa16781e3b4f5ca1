-- The audit trail of memberships in one row per group and change. The load
-- adds the members of a group in one call and audits them alike (same run,
-- group, action and reason); writing the group, name, run and reason again
-- for each of a million members was most of a first load's staging time.
-- Such a run of entries is now one cmissync_audit row (userid 0, cmisid
-- '') and its members here, in order (n from 0); every reader joins the two
-- and sees one entry per member as before. A single member's entry, and
-- every entry written before this migration, stays one cmissync_audit row
-- with its userid and cmisid and has no rows here.
CREATE TABLE cmissync_audit_members (
  audit_id  BIGINT NOT NULL,
  n         INT NOT NULL,
  userid    BIGINT NOT NULL,
  cmisid    VARCHAR(100) COLLATE utf8mb4_bin NOT NULL DEFAULT '',
  PRIMARY KEY (audit_id, n)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
