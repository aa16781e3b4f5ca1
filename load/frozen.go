package load

import (
	"context"
	"fmt"
	"time"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage/store"
)

// Frozen courses get no writes at all: those listed in load.frozen_courses,
// and with load.skip_ended_courses those whose end date has passed (a
// finished course keeps its groups as they were; teachers may still be
// marking against them). A course is reported once when it freezes, and
// once when it thaws. Naming a course on the command line (--course)
// writes to it all the same.

// freeze splits the staged courses into frozen ones, planned with no items
// but the report of the change, and the others; it returns the courses that
// thawed since the last run too.
func freeze(ctx context.Context, st *store.Store, opts *Options, courses []*courseStaging, ended map[int64]moodle.Course) (frozen []*CoursePlan, rest []*courseStaging, thawed map[int64]bool, err error) {
	if opts.Offline {
		return nil, courses, nil, nil
	}
	was, err := st.FrozenCourses(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	why := map[int64]string{}
	for id, c := range ended {
		end, _ := c.End()
		why[id] = fmt.Sprintf("the course ended on %s (load.skip_ended_courses)", end.UTC().Format("2006-01-02"))
	}
	for _, id := range opts.FrozenCourses {
		why[id] = "listed in load.frozen_courses"
	}
	named := map[int64]bool{}
	for _, id := range opts.Unfreeze {
		named[id] = true
	}
	thawed = map[int64]bool{}
	for _, cs := range courses {
		reason, isFrozen := why[cs.id]
		_, before := was[cs.id]
		switch {
		case !isFrozen && before:
			thawed[cs.id] = true
			fallthrough
		case !isFrozen, named[cs.id]:
			// Named on the command line: written to this run, frozen still.
			rest = append(rest, cs)
			continue
		}
		cp := &CoursePlan{CourseID: cs.id, State: "frozen", Problem: reason + ": nothing in it is changed", staging: cs, Items: []*Item{}, Held: []*Item{}}
		if !before {
			cp.item(&Item{Action: ActFreeze, Object: "course", Reason: reason})
		}
		frozen = append(frozen, cp)
	}
	return frozen, rest, thawed, nil
}

// coursesPerCall is how many course ids moodle.Client.CoursesByID sends in
// one call, for counting reads.
const coursesPerCall = 200

// endedCourses reads the end dates of the staged courses, many per call,
// and returns those that have ended. A course whose dates Moodle does not
// give (one the service user may not open, or one left out of the answer)
// is never taken for ended: it is planned as usual, and its reads say
// what it is.
func (r *reader) endedCourses(ctx context.Context, courses []*courseStaging, now time.Time) (map[int64]moodle.Course, error) {
	if len(courses) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(courses))
	for i, cs := range courses {
		ids[i] = cs.id
	}
	for range (len(ids) + coursesPerCall - 1) / coursesPerCall {
		r.st.counted(moodle.FnCoursesByField)
	}
	found, err := r.mc.CoursesByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := map[int64]moodle.Course{}
	for _, c := range found {
		if c.Ended(now) {
			out[c.ID] = c
		}
	}
	return out, nil
}
