-- Keys of refused rows, so that stage can keep what a refused row would
-- otherwise delete (bad input must never remove what cmissync made), and the
-- run that produced the current dump.
ALTER TABLE cmis_error_data_dump
  ADD COLUMN dumptable VARCHAR(64) NOT NULL DEFAULT '',
  ADD COLUMN modulecode VARCHAR(100) COLLATE utf8mb4_bin NOT NULL DEFAULT '',
  ADD COLUMN groupcode VARCHAR(100) COLLATE utf8mb4_bin NOT NULL DEFAULT '';

CREATE TABLE cmissync_meta (
  name   VARCHAR(64) PRIMARY KEY,
  value  VARCHAR(255) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
