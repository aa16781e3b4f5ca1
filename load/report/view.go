package report

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// examplesPerKind is how many failures of one kind a message shows in full: enough to see the
// pattern, few enough that forty identical failures take one screen.
const examplesPerKind = 3

// maxCoursesListed bounds the courses named for one kind of failure.
const maxCoursesListed = 10

// view is the scrubbed report with everything the text and HTML layouts need worked out once.
type view struct {
	Report
	Subject  string
	Title    string
	Started  string
	Finished string
	Took     string
	// Kinds are the failures collapsed: identical failures are one kind, with a count.
	Kinds []failureKind
	// RefusedKinds are the refused rows collapsed the same way.
	RefusedKinds []refusedKind
	// Items is how many failures or refused rows there are; Hidden how many of them are not
	// shown as examples (they are all in the CSV).
	Items, Hidden int
	CSVName       string
	// Counts are the summary's non-zero counts; Zero says some were left out.
	Counts []Count
	Zero   bool
}

// courseRef is a course named in a report, with the link to its groups page.
type courseRef struct {
	ID   int
	Name string
	URL  string
}

// Label names the course as people know it, with its id.
func (c courseRef) Label() string {
	switch {
	case c.Name != "" && c.ID != 0:
		return fmt.Sprintf("%s (id %d)", c.Name, c.ID)
	case c.ID != 0:
		return fmt.Sprintf("course id %d", c.ID)
	}
	return c.Name
}

// failureKind is a set of identical failures: the same function and the same answer from
// Moodle (ids aside).
type failureKind struct {
	N                              int
	Count                          int
	Function, ErrorCode, Exception string
	Answer                         string
	Hint                           string
	Courses                        []courseRef
	MoreCourses                    int
	Examples                       []failureExample
}

type failureExample struct {
	Course courseRef
	Group  string
	User   string
	// Params are the parameters sent, one per line when they are form-encoded.
	Params []string
}

// refusedKind is a set of refused rows of one file with the same reason (line numbers aside).
type refusedKind struct {
	N           int
	Count       int
	File, Field string
	Reason      string
	Lines       string
	Modules     string
	Unknown     bool
	Courses     []courseRef
	MoreCourses int
	Examples    []Refused
}

func newView(r Report, maxRows int) view {
	v := view{Report: r}
	if v.Outcome == "" {
		v.Outcome = Outcome(r)
	}
	step := r.Step
	if step == "" {
		step = "run"
	}
	v.Title = "cmissync " + step + ": " + v.Outcome
	subject := "[cmissync] "
	if r.Site != "" {
		subject += r.Site + ": "
	}
	subject += step + " " + v.Outcome
	if r.RunID != "" {
		subject += " (run " + r.RunID + ")"
	}
	v.Subject = oneLine(subject)
	v.Started = formatTime(r.Started)
	v.Finished = formatTime(r.Finished)
	if !r.Started.IsZero() && !r.Finished.IsZero() && !r.Finished.Before(r.Started) {
		v.Took = r.Finished.Sub(r.Started).Round(time.Second).String()
	}
	shown := 0
	if len(r.Refused) > 0 {
		v.RefusedKinds, shown = refusedKinds(r.Refused, r.MoodleURL, maxRows)
		v.Items = len(r.Refused)
	} else {
		v.Kinds, shown = failureKinds(r.Failures, r.MoodleURL, maxRows)
		v.Items = len(r.Failures)
	}
	v.Hidden = v.Items - shown
	if v.Hidden > 0 {
		what := "failures"
		if len(r.Refused) > 0 {
			what = "refused-rows"
		}
		v.CSVName = safeName("cmissync-"+r.RunID+"-"+step+"-"+what) + ".csv"
	}
	for _, c := range r.Summary {
		if c.Value == 0 {
			v.Zero = true
			continue
		}
		v.Counts = append(v.Counts, c)
	}
	return v
}

// digits stands for the ids in a message, which do not make two failures different.
var digits = regexp.MustCompile(`[0-9]+`)

// failureKinds collapses identical failures, most frequent first, and picks up to
// examplesPerKind examples of each while fewer than maxRows are picked in all. It returns how
// many failures are shown as examples.
func failureKinds(fs []Failure, wwwroot string, maxRows int) ([]failureKind, int) {
	idx := map[string]int{}
	var kinds []failureKind
	var members [][]Failure
	for _, f := range fs {
		key := strings.Join([]string{f.Function, f.ErrorCode, f.Exception, digits.ReplaceAllString(f.Message, "#"), f.Hint}, "\x00")
		i, ok := idx[key]
		if !ok {
			i = len(kinds)
			idx[key] = i
			kinds = append(kinds, failureKind{Function: f.Function, ErrorCode: f.ErrorCode, Exception: f.Exception,
				Answer: answerLabel(f), Hint: f.Hint})
			members = append(members, nil)
		}
		kinds[i].Count++
		members[i] = append(members[i], f)
	}
	order := make([]int, len(kinds))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return kinds[order[a]].Count > kinds[order[b]].Count })
	out := make([]failureKind, 0, len(kinds))
	shown := 0
	for n, i := range order {
		k := kinds[i]
		k.N = n + 1
		seen := map[int]bool{}
		for _, f := range members[i] {
			if f.CourseID == 0 || seen[f.CourseID] {
				continue
			}
			seen[f.CourseID] = true
			if len(k.Courses) == maxCoursesListed {
				k.MoreCourses++
				continue
			}
			k.Courses = append(k.Courses, courseRef{ID: f.CourseID, Name: f.CourseName, URL: groupsURL(wwwroot, f.CourseID)})
		}
		for _, f := range members[i] {
			if len(k.Examples) == examplesPerKind || shown == maxRows {
				break
			}
			k.Examples = append(k.Examples, failureExample{
				Course: courseRef{ID: f.CourseID, Name: f.CourseName, URL: groupsURL(wwwroot, f.CourseID)},
				Group:  groupLabel(f), User: f.User, Params: paramLines(f.Params),
			})
			shown++
		}
		out = append(out, k)
	}
	return out, shown
}

// refusedKinds collapses refused rows of one file, field and reason (line numbers aside), in
// the order they were first met, with examples as failureKinds picks them.
func refusedKinds(rs []Refused, wwwroot string, maxRows int) ([]refusedKind, int) {
	idx := map[string]int{}
	var kinds []refusedKind
	var members [][]Refused
	for _, r := range rs {
		key := strings.Join([]string{r.File, r.Field, digits.ReplaceAllString(r.Reason, "#")}, "\x00")
		i, ok := idx[key]
		if !ok {
			i = len(kinds)
			idx[key] = i
			kinds = append(kinds, refusedKind{File: r.File, Field: r.Field, Reason: r.Reason})
			members = append(members, nil)
		}
		kinds[i].Count++
		members[i] = append(members[i], r)
	}
	shown := 0
	for i := range kinds {
		k := &kinds[i]
		k.N = i + 1
		k.Lines = lineList(members[i])
		k.Modules, k.Unknown = moduleList(members[i])
		seen := map[int]bool{}
		for _, r := range members[i] {
			for _, c := range r.Courses {
				if seen[c] {
					continue
				}
				seen[c] = true
				if len(k.Courses) == maxCoursesListed {
					k.MoreCourses++
					continue
				}
				k.Courses = append(k.Courses, courseRef{ID: c, URL: groupsURL(wwwroot, c)})
			}
		}
		sort.Slice(k.Courses, func(a, b int) bool { return k.Courses[a].ID < k.Courses[b].ID })
		for _, r := range members[i] {
			if len(k.Examples) == examplesPerKind || shown == maxRows {
				break
			}
			k.Examples = append(k.Examples, r)
			shown++
		}
	}
	return kinds, shown
}

// maxLinesListed bounds the line numbers named for one kind of refused row.
const maxLinesListed = 12

func lineList(rs []Refused) string {
	var parts []string
	for i, r := range rs {
		if i == maxLinesListed {
			parts = append(parts, fmt.Sprintf("… (%d in all)", len(rs)))
			break
		}
		if r.Line > 0 {
			parts = append(parts, strconv.FormatInt(r.Line, 10))
		} else {
			parts = append(parts, "?")
		}
	}
	return strings.Join(parts, ", ")
}

// moduleList names the modules and groups the rows would have described, e.g. "ECON0001
// (SEM1, SEM2); LAWS0010". unknown is true when some row's module could not be read: it may
// then describe any module.
func moduleList(rs []Refused) (list string, unknown bool) {
	var modules []string
	groups := map[string][]string{}
	for _, r := range rs {
		if r.Module == "" {
			unknown = true
			continue
		}
		if _, ok := groups[r.Module]; !ok {
			modules = append(modules, r.Module)
			groups[r.Module] = nil
		}
		if r.Group != "" && !slices.Contains(groups[r.Module], r.Group) {
			groups[r.Module] = append(groups[r.Module], r.Group)
		}
	}
	var parts []string
	for i, m := range modules {
		if i == maxCoursesListed {
			parts = append(parts, fmt.Sprintf("and %d more modules", len(modules)-i))
			break
		}
		g := groups[m]
		switch {
		case len(g) == 0:
			parts = append(parts, m+" (any group)")
		case len(g) > maxCoursesListed:
			parts = append(parts, fmt.Sprintf("%s (%s and %d more)", m, strings.Join(g[:maxCoursesListed], ", "), len(g)-maxCoursesListed))
		default:
			parts = append(parts, m+" ("+strings.Join(g, ", ")+")")
		}
	}
	return strings.Join(parts, "; "), unknown
}

func groupLabel(f Failure) string {
	switch {
	case f.GroupName != "" && f.GroupIDNumber != "":
		return f.GroupName + " [" + f.GroupIDNumber + "]"
	case f.GroupIDNumber != "":
		return "[" + f.GroupIDNumber + "]"
	default:
		return f.GroupName
	}
}

func answerLabel(f Failure) string {
	code := f.ErrorCode
	if f.Exception != "" {
		if code == "" {
			code = f.Exception
		} else {
			code += " (" + f.Exception + ")"
		}
	}
	switch {
	case code != "" && f.Message != "":
		return code + ": " + f.Message
	case code != "":
		return code
	default:
		return f.Message
	}
}
