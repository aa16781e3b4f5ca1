-- Default extraction query: the teaching groups of each CMIS module.
-- Column contract (names are matched case-insensitively, in any order):
--   modulecode  text, required: CMIS module code, e.g. COMP1001
--   groupcode   text, required: CMIS group code within the module, e.g. SEM01
--   modulename  text, optional: module title, used in grouping names
--   groupname   text, optional: group title, used in group names
SELECT MODULE_CODE AS modulecode,
       GROUP_CODE  AS groupcode,
       MODULE_NAME AS modulename,
       GROUP_NAME  AS groupname
  FROM CMIS_MOODLE_V_MODULE_GROUP
