package load

import (
	"context"

	"github.com/cmissync/cmissync/stage/store"
)

// Frozen courses get no writes at all: those listed in load.frozen_courses
// (a finished course keeps its groups as they were; teachers may still be
// marking against them). A course is reported once when it freezes, and
// once when it thaws. Naming a course on the command line (--course)
// writes to it all the same.

// freeze splits the staged courses into frozen ones, planned with no items
// but the report of the change, and the others; it returns the courses that
// thawed since the last run too.
func freeze(ctx context.Context, st *store.Store, opts *Options, courses []*courseStaging) (frozen []*CoursePlan, rest []*courseStaging, thawed map[int64]bool, err error) {
	if opts.Offline {
		return nil, courses, nil, nil
	}
	was, err := st.FrozenCourses(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	why := map[int64]string{}
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
