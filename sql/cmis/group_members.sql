-- Default extraction query: the students of each CMIS group.
-- Column contract:
--   modulecode  text, required
--   groupcode   text, required
--   studentid   text, required: matched to the Moodle user field set by
--               moodle.user_match_field (idnumber by default)
SELECT MODULE_CODE AS modulecode,
       GROUP_CODE  AS groupcode,
       STUDENT_ID  AS studentid
  FROM CMIS_MOODLE_V_GROUP_MEMBER
