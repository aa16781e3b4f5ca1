-- Default extraction query: the tutors of each CMIS group.
-- Column contract:
--   modulecode  text, required
--   groupcode   text, required
--   staffid     text, required: matched to the Moodle user field set by
--               moodle.user_match_field (idnumber by default)
SELECT MODULE_CODE AS modulecode,
       GROUP_CODE  AS groupcode,
       STAFF_ID    AS staffid
  FROM CMIS_MOODLE_V_GROUP_TUTOR
