package moodle

import (
	"encoding/json"
	"time"
)

// Course dates. core_course_get_courses_by_field (CoursesByID) reports a
// course's startdate and enddate (unix times; enddate 0: none) only to a
// user who may access the course: for one the service user may not access,
// Moodle's code answers the public fields alone. Course.DatesKnown tells the
// two apart, so that a course is never taken for one without an end date,
// or for one that has ended, on an answer that did not say.

// UnmarshalJSON decodes a course of core_course_get_courses_by_field and
// sets DatesKnown when the answer carries its end date.
func (c *Course) UnmarshalJSON(b []byte) error {
	type fields Course // without this method
	var aux struct {
		fields
		StartDate *int64 `json:"startdate"`
		EndDate   *int64 `json:"enddate"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*c = Course(aux.fields)
	c.StartDate, c.EndDate, c.DatesKnown = 0, 0, aux.EndDate != nil
	if aux.StartDate != nil {
		c.StartDate = *aux.StartDate
	}
	if aux.EndDate != nil {
		c.EndDate = *aux.EndDate
	}
	return nil
}

// Ended reports whether the course has an end date, known from Moodle's
// answer, that is not after now.
func (c Course) Ended(now time.Time) bool {
	return c.DatesKnown && c.EndDate > 0 && !now.Before(time.Unix(c.EndDate, 0))
}

// End returns the course's end date, and false when it has none or Moodle
// did not say.
func (c Course) End() (time.Time, bool) {
	if !c.DatesKnown || c.EndDate <= 0 {
		return time.Time{}, false
	}
	return time.Unix(c.EndDate, 0), true
}
