-- Keys of refused rows and the run that produced the current dump (see the
-- MySQL twin of this file).
ALTER TABLE cmis_error_data_dump ADD COLUMN dumptable VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE cmis_error_data_dump ADD COLUMN modulecode VARCHAR(100) NOT NULL DEFAULT '';
ALTER TABLE cmis_error_data_dump ADD COLUMN groupcode VARCHAR(100) NOT NULL DEFAULT '';

CREATE TABLE cmissync_meta (
  name   VARCHAR(64) PRIMARY KEY,
  value  VARCHAR(255) NOT NULL
);
