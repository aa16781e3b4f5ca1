package load

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cmissync/cmissync/load/enrolsync"
	"github.com/cmissync/cmissync/load/moodle"
)

// Finding what a command file's lines name: courses by the course field,
// users by the user field (as few calls as Moodle allows), roles by
// shortname or id; then the order the lines run in.

// courseRef is a course found by the file's value, or why not.
type courseRef struct {
	id    int64
	label string
	code  string
	err   string
	cause error
}

// userRef is a user found by the file's value, or why not.
type userRef struct {
	id    int64
	code  string
	err   string
	cause error
}

// resolve finds every line's course, user and role, and fails the lines
// whose course, user or role cannot be found.
func (a *applier) resolve(ctx context.Context, runs []*lineRun) error {
	var courseVals, userVals []string
	seenC, seenU := map[string]bool{}, map[string]bool{}
	for _, r := range runs {
		if !seenC[r.l.Course] {
			seenC[r.l.Course] = true
			courseVals = append(courseVals, r.l.Course)
		}
		if !seenU[r.l.User] {
			seenU[r.l.User] = true
			userVals = append(userVals, r.l.User)
		}
	}
	courses, err := a.findCourses(ctx, courseVals)
	if err != nil {
		return err
	}
	users, err := a.findUsers(ctx, userVals)
	if err != nil {
		return err
	}
	for _, r := range runs {
		c := courses[r.l.Course]
		r.out.CourseID = c.id
		if c.err != "" {
			reason := c.err
			if _, isRole := a.opts.Roles[strings.ToLower(r.l.Course)]; isRole {
				reason += fmt.Sprintf(" (%q is a role: do the header's column names match the order of the line's fields?)", r.l.Course)
			}
			a.failLine(r.out, c.code, reason, moodle.FnCoursesByField, c.cause)
			continue
		}
		cs := a.courses[c.id]
		if cs == nil {
			cs = &applyCourse{id: c.id, label: c.label}
			a.courses[c.id] = cs
		}
		r.course, r.out.Course = cs, c.label
		u := users[r.l.User]
		r.user, r.out.UserID = u.id, u.id
		if u.err != "" {
			a.failLine(r.out, u.code, u.err, moodle.FnUsersByField, u.cause)
			continue
		}
		if r.l.Cmd == enrolsync.Del && r.roleName == "" {
			continue
		}
		r.roleID = a.roleID(r.roleName)
		if r.roleID == 0 && r.l.Cmd != enrolsync.Del {
			a.failLine(r.out, codeUnknownRole, a.unknownRole(r.l.Role), "", nil)
		}
	}
	return nil
}

// roleID is the id of a role named by shortname or id; 0 when unknown.
func (a *applier) roleID(name string) int64 {
	if id, ok := a.opts.Roles[name]; ok {
		return id
	}
	if n, err := strconv.ParseInt(name, 10, 64); err == nil && n > 0 {
		return n
	}
	return 0
}

func (a *applier) unknownRole(name string) string {
	known := make([]string, 0, len(a.opts.Roles))
	for k := range a.opts.Roles {
		known = append(known, k)
	}
	sort.Strings(known)
	return fmt.Sprintf("unknown role %q: use a role shortname (%s), a Moodle role id, or map the shortname to its id with apply.roles", name, strings.Join(known, ", "))
}

// findCourses looks the courses up by the course field, one call per value
// (by id: many ids per call).
func (a *applier) findCourses(ctx context.Context, values []string) (map[string]courseRef, error) {
	out := map[string]courseRef{}
	var mu sync.Mutex
	set := func(v string, c courseRef) { mu.Lock(); out[v] = c; mu.Unlock() }
	field := a.opts.CourseField
	label := func(c moodle.Course) string { return fmt.Sprintf("%s (%s, id %d)", c.FullName, c.ShortName, c.ID) }
	notFound := func(v string) courseRef {
		return courseRef{code: codeUnknownCourse, err: fmt.Sprintf("no course has %s %q (or the web-service user may not see it)", field, v)}
	}
	if field == "id" {
		var ids []int64
		byID := map[int64][]string{}
		for _, v := range values {
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 {
				out[v] = courseRef{code: codeUnknownCourse, err: fmt.Sprintf("%q is not a course id (the cid column holds course ids: --course-field id)", v)}
				continue
			}
			if byID[id] == nil {
				ids = append(ids, id)
			}
			byID[id] = append(byID[id], v)
		}
		courses, err := a.mc.CoursesByID(ctx, ids)
		if err != nil && (moodle.IsFatal(err) || ctx.Err() != nil) {
			return nil, err
		}
		found := map[int64]moodle.Course{}
		for _, c := range courses {
			found[c.ID] = c
		}
		for id, vs := range byID {
			for _, v := range vs {
				c, ok := found[id]
				switch {
				case err != nil:
					out[v] = courseRef{code: codeUnknownCourse, err: "could not look the course up", cause: err}
				case !ok:
					out[v] = notFound(v)
				default:
					out[v] = courseRef{id: id, label: label(c)}
				}
			}
		}
		return out, nil
	}
	err := forEach(ctx, a.opts.Concurrency, values, func(ctx context.Context, v string) error {
		courses, err := a.mc.CoursesByField(ctx, field, v)
		switch {
		case err != nil && (moodle.IsFatal(err) || ctx.Err() != nil):
			return err
		case err != nil:
			set(v, courseRef{code: codeUnknownCourse, err: "could not look the course up", cause: err})
		case len(courses) == 0:
			set(v, notFound(v))
		case len(courses) > 1:
			set(v, courseRef{code: codeUnknownCourse, err: fmt.Sprintf("%d courses have %s %q: name the course by another field", len(courses), field, v)})
		default:
			set(v, courseRef{id: courses[0].ID, label: label(courses[0])})
		}
		return nil
	})
	return out, err
}

// findUsers looks the users up by the user field, many values per call. A
// refused call is split until the value Moodle refuses is alone. When
// Moodle leaves the field out of its answer (a site that does not show
// idnumber), each value not matched is looked up on its own.
func (a *applier) findUsers(ctx context.Context, values []string) (map[string]userRef, error) {
	field := a.opts.UserField
	out := map[string]userRef{}
	query := map[string]string{} // file value -> value sent
	var send []string
	for _, v := range values {
		q := v
		switch field {
		case "username":
			q = strings.ToLower(v) // Moodle keeps usernames in lower case
		case "id":
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || n <= 0 {
				out[v] = userRef{code: codeUnknownUser, err: fmt.Sprintf("%q is not a user id (the uid column holds user ids: --user-field id)", v)}
				continue
			}
		}
		query[v] = q
		send = append(send, q)
	}
	hits := map[string][]int64{}
	refused := map[string]error{}
	fieldHidden := false
	var mu sync.Mutex
	var lookup func(ctx context.Context, vs []string) error
	lookup = func(ctx context.Context, vs []string) error {
		users, err := a.mc.UsersByField(ctx, field, vs)
		switch {
		case err != nil && (moodle.IsFatal(err) || ctx.Err() != nil):
			return err
		case err != nil && len(vs) > 1 && !moodle.IsTransient(err):
			mid := len(vs) / 2
			if err := lookup(ctx, vs[:mid]); err != nil {
				return err
			}
			return lookup(ctx, vs[mid:])
		case err != nil:
			mu.Lock()
			for _, v := range vs {
				refused[v] = err
			}
			mu.Unlock()
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		for _, u := range users {
			got := u.Field(field)
			if got == "" {
				fieldHidden = true
				if len(vs) == 1 {
					hits[userKey(vs[0])] = append(hits[userKey(vs[0])], u.ID)
				}
				continue
			}
			hits[userKey(got)] = append(hits[userKey(got)], u.ID)
		}
		return nil
	}
	// The field takes a variable of its own.
	if err := forEach(ctx, a.opts.Concurrency, chunks(send, max(a.mc.Capacity(moodle.VarsPerReadByID)-1, 1)), lookup); err != nil {
		return nil, err
	}
	if fieldHidden {
		var again [][]string
		for _, q := range send {
			if len(hits[userKey(q)]) == 0 && refused[q] == nil {
				again = append(again, []string{q})
			}
		}
		if err := forEach(ctx, a.opts.Concurrency, again, lookup); err != nil {
			return nil, err
		}
	}
	for v, q := range query {
		ids := hits[userKey(q)]
		switch {
		case refused[q] != nil:
			out[v] = userRef{code: codeUnknownUser, err: fmt.Sprintf("could not look up the user with %s %q", field, v), cause: refused[q]}
		case len(ids) == 0:
			out[v] = userRef{code: codeUnknownUser, err: fmt.Sprintf("no Moodle user has %s %q", field, v)}
		case len(ids) > 1:
			out[v] = userRef{code: codeUnknownUser, err: fmt.Sprintf("%d Moodle users have %s %q: name the user by another field (--user-field)", len(ids), field, v)}
		default:
			out[v] = userRef{id: ids[0]}
		}
	}
	return out, nil
}

// userKey compares user field values without case, as Moodle's database
// usually does: two users whose values differ only in case are then both
// found, and the line fails as ambiguous rather than pick one.
func userKey(v string) string { return strings.ToLower(strings.TrimSpace(v)) }

// waves orders the lines that found their course, user and role: a line
// goes in the wave after the last line about the same person in the same
// course, so that it sees what that line did.
func (a *applier) waves(runs []*lineRun) [][]*lineRun {
	seen := map[[2]int64]int{}
	var waves [][]*lineRun
	for _, r := range runs {
		if r.failed() {
			continue
		}
		k := [2]int64{r.course.id, r.user}
		r.wave = seen[k]
		seen[k]++
		for len(waves) <= r.wave {
			waves = append(waves, nil)
		}
		waves[r.wave] = append(waves[r.wave], r)
	}
	return waves
}
