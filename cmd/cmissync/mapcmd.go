package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cmissync/cmissync/load/moodle"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
)

func (a *app) mapCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "map",
		Short: "Manage mapped_modules: which Moodle course takes groups from which CMIS module",
		Long: `Lists and changes mapped_modules from the command line, the table that says
which Moodle course takes the groups of which CMIS module (whatever maintains
mappings today, e.g. a Moodle block, may keep writing it too):

  map list   the mappings, with what each means and its module's groups in
             the last extract
  map add    map a module to a course (group_import and mapping_action ADD)
  map rm     remove a mapping: the next run removes the groups, grouping and
             memberships cmissync made for it (an explicit request, not
             counted by the mass-change guard); a mapping nothing was ever
             made for is deleted outright
  map set    set group_import or mapping_action of a mapping (ADD or RMV),
             e.g. to fix a row the stage step does not understand

add checks the module against the last extract and the course against Moodle
(--offline skips Moodle); each change prints what the next run will do for the
course. Changes take effect at the next stage (or run).`,
	}
	c.AddCommand(a.mapListCommand(), a.mapAddCommand(), a.mapRmCommand(), a.mapSetCommand())
	return a.withHelp(c)
}

// mapping flags shared by add, rm and set.
type mapArgs struct {
	courses []int64
	module  string
	offline bool
}

func (m *mapArgs) flags(c *cobra.Command, offline bool) {
	courseFlag(c, &m.courses)
	c.Flags().StringVar(&m.module, "module", "", "CMIS module code, e.g. COMP1001")
	if offline {
		c.Flags().BoolVar(&m.offline, "offline", false, "do not check the course in Moodle")
	}
}

// run is the body of a mapping change: the flags are checked, then first
// (when set) runs once, then change runs for each course, followed by what
// the next run will do for it.
func (m *mapArgs) run(a *app, first func(context.Context, *pipeline) error, change func(context.Context, *pipeline, int64) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		if err := m.validate(); err != nil {
			return err
		}
		// A mapping may be made for a course outside stage.courses (an
		// allow-list for a pilot, say): it is said, not refused.
		return a.withPipeline(nil, func(ctx context.Context, p *pipeline) error {
			if first != nil {
				if err := first(ctx, p); err != nil {
					return err
				}
			}
			for _, course := range m.courses {
				if err := change(ctx, p, course); err != nil {
					return err
				}
				if len(p.cfg.Stage.Courses) > 0 && !slices.Contains(p.cfg.Stage.Courses, course) {
					fmt.Fprintf(p.a.stdout, "note: course %d is not in stage.courses, so runs leave it alone until it is\n", course)
				}
				if err := p.writeOutlook(ctx, course); err != nil {
					return err
				}
			}
			return nil
		})(c, args)
	}
}

// validate checks the flags every change needs.
func (m *mapArgs) validate() error {
	m.module = strings.TrimSpace(m.module)
	switch {
	case len(m.courses) == 0:
		return &usageError{err: errors.New("--course is required (a Moodle course id, or several)")}
	case m.module == "":
		return &usageError{err: errors.New("--module is required (a CMIS module code)")}
	case len([]rune(m.module)) > 100:
		return &usageError{err: fmt.Errorf("--module %q is longer than 100 characters, the longest code staging keeps", m.module)}
	}
	for _, c := range m.courses {
		if c <= 0 {
			return &usageError{err: fmt.Errorf("--course %d: Moodle course ids are positive whole numbers", c)}
		}
	}
	return nil
}

func (a *app) mapListCommand() *cobra.Command {
	var (
		courses []int64
		module  string
		asJSON  bool
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List the mappings, what each means, and its module's groups in the last extract",
		Args:  cobra.NoArgs,
		RunE: a.withPipeline(&courses, func(ctx context.Context, p *pipeline) error {
			maps, err := p.st.MappingsWithDump(ctx, p.filter)
			if err != nil {
				return err
			}
			var rows []mappingView
			for _, m := range maps {
				if module == "" || m.ModuleCode == module {
					rows = append(rows, viewMapping(m))
				}
			}
			if asJSON {
				if rows == nil {
					rows = []mappingView{}
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			writeMappings(a.stdout, rows)
			return nil
		}),
	}
	courseFlag(c, &courses)
	c.Flags().StringVar(&module, "module", "", "only this CMIS module code")
	c.Flags().BoolVar(&asJSON, "json", false, "print the mappings as JSON")
	return a.withHelp(c)
}

// mappingView is a mapping as map list shows it.
type mappingView struct {
	ID            int64  `json:"id"`
	CourseID      int64  `json:"courseid"`
	ModuleCode    string `json:"modulecode"`
	GroupImport   string `json:"group_import"`
	MappingAction string `json:"mapping_action"`
	// State is active, groups-removed, mapping-removed or not-understood.
	State      string `json:"state"`
	Meaning    string `json:"meaning"`
	DumpGroups int64  `json:"groups_in_last_extract"`
}

// Mapping states, as the stage step reads a mapped_modules row.
const (
	mapActive         = "active"
	mapGroupsRemoved  = "groups-removed"
	mapMappingRemoved = "mapping-removed"
	mapNotUnderstood  = "not-understood"
)

// mappingState says what the stage step makes of a mapping row, in words.
func mappingState(m store.Mapping) (state, meaning string) {
	gi, ma := stage.NormalAction(m.GroupImport), stage.NormalAction(m.MappingAction)
	switch {
	case strings.TrimSpace(m.ModuleCode) == "":
		return mapNotUnderstood, "modulecode is blank: the row is refused, and what it maps is kept as it is"
	case gi == "" || ma == "":
		bad, v := "group_import", m.GroupImport
		if gi != "" {
			bad, v = "mapping_action", m.MappingAction
		}
		return mapNotUnderstood, fmt.Sprintf("%s %q is not ADD or RMV: the row is refused, and the groups it maps are kept as they are (never deleted) until it is fixed", bad, v)
	case ma == store.ActionRemove:
		return mapMappingRemoved, "mapping_action RMV: the mapping is removed; cmissync removes the module's groups, grouping and memberships from the course"
	case gi == store.ActionRemove:
		return mapGroupsRemoved, "group_import RMV: cmissync removes the module's groups, grouping and memberships from the course"
	}
	return mapActive, "the course takes the module's groups"
}

func viewMapping(m store.MappingInfo) mappingView {
	state, meaning := mappingState(m.Mapping)
	return mappingView{ID: m.ID, CourseID: m.CourseID, ModuleCode: m.ModuleCode, GroupImport: m.GroupImport, MappingAction: m.MappingAction,
		State: state, Meaning: meaning, DumpGroups: m.DumpGroups}
}

func writeMappings(w io.Writer, rows []mappingView) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no mappings (cmissync map add --course N --module CODE adds one)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "course\tmodule\tgroup_import\tmapping_action\tstate\tgroups in last extract")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\n", r.CourseID, r.ModuleCode, r.GroupImport, r.MappingAction, r.State, r.DumpGroups)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d mappings\n", len(rows))
}

func (a *app) mapAddCommand() *cobra.Command {
	var (
		m     mapArgs
		force bool
	)
	c := &cobra.Command{
		Use:   "add",
		Short: "Map a CMIS module to Moodle courses (group_import and mapping_action ADD)",
		Long: `Maps the module to each course: the next run creates the module's grouping
and groups in the course, with their members. A mapping set to RMV is set to
ADD again.

The module must have groups in the last extract, and the course must exist in
Moodle (checked unless --offline); --force maps it anyway (a module of next
term, say).`,
		Args: cobra.NoArgs,
		RunE: m.run(a, func(ctx context.Context, p *pipeline) error {
			return p.checkModule(ctx, m.module, force)
		}, func(ctx context.Context, p *pipeline, course int64) error {
			if !m.offline {
				if err := p.checkCourse(ctx, course, force); err != nil {
					return err
				}
			}
			old := p.mapping(ctx, course, m.module)
			if old != nil && stage.NormalAction(old.GroupImport) == store.ActionAdd && stage.NormalAction(old.MappingAction) == store.ActionAdd {
				fmt.Fprintf(a.stdout, "course %d already takes the groups of %s\n", course, m.module)
				return nil
			}
			if err := p.st.UpsertMapping(ctx, store.Mapping{CourseID: course, ModuleCode: m.module, GroupImport: store.ActionAdd, MappingAction: store.ActionAdd}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "mapped %s to course %d\n", m.module, course)
			return nil
		}),
	}
	m.flags(c, true)
	c.Flags().BoolVar(&force, "force", false, "map even when the module has no groups in the last extract, or the course is not in Moodle")
	return a.withHelp(c)
}

func (a *app) mapRmCommand() *cobra.Command {
	var m mapArgs
	c := &cobra.Command{
		Use:   "rm",
		Short: "Remove a mapping: the next run removes what cmissync made for it",
		Long: `Removes the module's mapping from each course. When cmissync made anything for
it (a grouping, groups, memberships), the row is set to RMV (group_import and
mapping_action): the next run removes the groups, grouping and memberships it
made, as an explicit request that the mass-change guard does not hold back;
hand-made groups are never touched, and adopted ones are given back. When
nothing was ever made for it, the row is deleted.`,
		Args: cobra.NoArgs,
		RunE: m.run(a, nil, func(ctx context.Context, p *pipeline, course int64) error {
			if p.mapping(ctx, course, m.module) == nil {
				return &usageError{err: fmt.Errorf("course %d has no mapping of %s (see cmissync map list --course %d)", course, m.module, course)}
			}
			staged, err := p.st.StagedCourse(ctx, course)
			if err != nil {
				return err
			}
			if n := stagedOf(staged, m.module); n > 0 {
				if err := p.st.UpsertMapping(ctx, store.Mapping{CourseID: course, ModuleCode: m.module, GroupImport: store.ActionRemove, MappingAction: store.ActionRemove}); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "mapping of %s to course %d set to RMV: %d staged groupings and groups go at the next run\n", m.module, course, n)
				return nil
			}
			if _, err := p.st.DeleteMapping(ctx, course, m.module); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "mapping of %s to course %d deleted (cmissync made nothing for it)\n", m.module, course)
			return nil
		}),
	}
	m.flags(c, false)
	return a.withHelp(c)
}

func (a *app) mapSetCommand() *cobra.Command {
	var (
		m                  mapArgs
		groupImport, mapAc string
	)
	c := &cobra.Command{
		Use:   "set",
		Short: "Set group_import or mapping_action (ADD or RMV) of a mapping",
		Long: `Sets group_import and/or mapping_action of the module's mapping in each course,
to ADD or RMV (any case). Both ADD: the course takes the module's groups;
group_import RMV: its groups, grouping and memberships are removed;
mapping_action RMV: the mapping is removed (the same, and the row is done
with). It fixes a row the stage step does not understand: give both values
when both are wrong.`,
		Args: cobra.NoArgs,
		RunE: m.run(a, func(context.Context, *pipeline) error {
			if groupImport == "" && mapAc == "" {
				return &usageError{err: errors.New("give --group-import or --mapping-action (ADD or RMV)")}
			}
			for flag, v := range map[string]string{"--group-import": groupImport, "--mapping-action": mapAc} {
				if v != "" && stage.NormalAction(v) == "" {
					return &usageError{err: fmt.Errorf("%s %q: want ADD or RMV", flag, v)}
				}
			}
			return nil
		}, func(ctx context.Context, p *pipeline, course int64) error {
			old := p.mapping(ctx, course, m.module)
			if old == nil {
				return &usageError{err: fmt.Errorf("course %d has no mapping of %s: add one with cmissync map add --course %d --module %s", course, m.module, course, m.module)}
			}
			gi, ma := stage.NormalAction(old.GroupImport), stage.NormalAction(old.MappingAction)
			if groupImport != "" {
				gi = stage.NormalAction(groupImport)
			}
			if mapAc != "" {
				ma = stage.NormalAction(mapAc)
			}
			if gi == "" || ma == "" {
				return &usageError{err: fmt.Errorf("the mapping of %s to course %d holds group_import %q and mapping_action %q: give both --group-import and --mapping-action", m.module, course, old.GroupImport, old.MappingAction)}
			}
			if err := p.st.UpsertMapping(ctx, store.Mapping{CourseID: course, ModuleCode: m.module, GroupImport: gi, MappingAction: ma}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "mapping of %s to course %d: group_import %s, mapping_action %s\n", m.module, course, gi, ma)
			return nil
		}),
	}
	m.flags(c, false)
	c.Flags().StringVar(&groupImport, "group-import", "", "ADD or RMV")
	c.Flags().StringVar(&mapAc, "mapping-action", "", "ADD or RMV")
	return a.withHelp(c)
}

// mapping returns the mapping row of (course, module), or nil.
func (p *pipeline) mapping(ctx context.Context, course int64, module string) *store.Mapping {
	maps, err := p.st.Mappings(ctx, course)
	if err != nil {
		return nil
	}
	for _, m := range maps {
		if m.ModuleCode == module {
			return &m
		}
	}
	return nil
}

// stagedOf counts the staged groupings and groups of a module in a course.
func stagedOf(c *store.CourseStaged, module string) int {
	n := 0
	for _, g := range c.Groupings {
		if g.ModuleCode == module {
			n++
		}
	}
	for _, g := range c.Groups {
		if g.ModuleCode == module {
			n++
		}
	}
	return n
}

// checkModule refuses a module the last extract does not list, naming
// modules it does list with a similar code.
func (p *pipeline) checkModule(ctx context.Context, module string, force bool) error {
	dump, err := p.st.CurrentDump(ctx)
	if err != nil {
		return err
	}
	if dump == nil {
		fmt.Fprintf(p.a.stdout, "warning: no extract has run yet, so %s could not be checked against CMIS\n", module)
		return nil
	}
	groups, err := p.st.DumpGroups(ctx, module)
	if err != nil {
		return err
	}
	if len(groups) > 0 {
		return nil
	}
	msg := fmt.Sprintf("module %s has no groups in the last extract (%s)", module, localTime(dump.Started))
	if similar := p.similarModules(ctx, module); len(similar) > 0 {
		msg += "; did you mean " + strings.Join(similar, ", ") + "?"
	}
	if force {
		fmt.Fprintf(p.a.stdout, "warning: %s; mapped anyway (--force): it gets groups once CMIS lists some\n", msg)
		return nil
	}
	return &usageError{err: fmt.Errorf("%s: check the code, or map it anyway with --force (a module of next term, say)", msg)}
}

// similarModules lists modules of the dump whose code differs from module
// only in case or surrounding spaces, or starts the same way.
func (p *pipeline) similarModules(ctx context.Context, module string) []string {
	maps, err := p.st.DumpModules(ctx)
	if err != nil {
		return nil
	}
	want := strings.ToUpper(strings.TrimSpace(module))
	var out []string
	for _, m := range maps {
		got := strings.ToUpper(strings.TrimSpace(m))
		if got == want || (len(want) >= 4 && strings.HasPrefix(got, want[:4]) && len(out) < 5) {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

// checkCourse refuses a course Moodle does not have: a mapping to it would
// be retired at the first load. A course the service user cannot open is a
// warning: the mapping is right, the role is not.
func (p *pipeline) checkCourse(ctx context.Context, course int64, force bool) error {
	if err := p.preflight(ctx); err != nil {
		return err
	}
	state, name, err := courseInMoodle(ctx, p.mc, *p.site.info, course)
	switch {
	case err != nil:
		return fmt.Errorf("check course %d in Moodle: %w (--offline skips the check)", course, err)
	case state == courseMissing && !force:
		return &usageError{err: fmt.Errorf("course %d does not exist in Moodle (--force maps it anyway; a load would retire the mapping)", course)}
	case state == courseMissing:
		fmt.Fprintf(p.a.stdout, "warning: course %d does not exist in Moodle; mapped anyway (--force)\n", course)
	case state == courseClosed:
		fmt.Fprintf(p.a.stdout, "warning: cmissync's service user cannot open course %d: give it a role there with moodle/course:view and moodle/course:managegroups\n", course)
	case name != "":
		fmt.Fprintf(p.a.stdout, "course %d in Moodle: %s\n", course, name)
	}
	return nil
}

// What Moodle says of a course.
const (
	courseThere   = "exists"
	courseMissing = "missing"
	courseClosed  = "inaccessible"
)

// courseInMoodle asks Moodle whether a course exists, by
// core_course_get_courses_by_field when the service offers it (which also
// names it), else from the course-context errors: only invalidrecord on
// the course table means deleted (see the Moodle reference).
func courseInMoodle(ctx context.Context, mc *moodle.Client, si moodle.SiteInfo, course int64) (state, name string, err error) {
	if si.Has(moodle.FnCoursesByField) {
		cs, err := mc.CoursesByID(ctx, []int64{course})
		if err != nil {
			return "", "", err
		}
		if len(cs) == 0 {
			return courseMissing, "", nil
		}
		return courseThere, fmt.Sprintf("%s (%s)", cs[0].FullName, cs[0].ShortName), nil
	}
	_, err = mc.CourseGroupings(ctx, course)
	if err == nil {
		return courseThere, "", nil
	}
	if moodle.ErrorCode(err) != moodle.CodeCourseContext {
		return "", "", err
	}
	_, err = mc.EnrolledUsers(ctx, course)
	switch moodle.ErrorCode(err) {
	case moodle.CodeInvalidRecord:
		return courseMissing, "", nil
	case moodle.CodeCourseContext:
		return courseClosed, "", nil
	}
	if err != nil {
		return "", "", err
	}
	return courseThere, "", nil
}

// writeOutlook says, for each mapping of a course, what the next run does
// with it, from the last extract and staging.
func (p *pipeline) writeOutlook(ctx context.Context, course int64) error {
	lines, err := p.outlook(ctx, course)
	if err != nil {
		return err
	}
	fmt.Fprintf(p.a.stdout, "The next run, for course %d:\n", course)
	for _, l := range lines {
		fmt.Fprintf(p.a.stdout, "  %s\n", l)
	}
	return nil
}

// outlook is one line per mapping of a course: what the next run does with
// it.
func (p *pipeline) outlook(ctx context.Context, course int64) ([]string, error) {
	maps, err := p.st.Mappings(ctx, course)
	if err != nil {
		return nil, err
	}
	staged, err := p.st.StagedCourse(ctx, course)
	if err != nil {
		return nil, err
	}
	if len(maps) == 0 {
		return []string{"no mapping: nothing (groups cmissync made there before are removed only if their mappings were set to RMV)"}, nil
	}
	var out []string
	for _, m := range maps {
		state, meaning := mappingState(m)
		made := 0
		for _, g := range staged.Groups {
			if g.ModuleCode == m.ModuleCode && g.MoodleID != 0 {
				made++
			}
		}
		switch state {
		case mapActive:
			groups, err := p.st.DumpGroups(ctx, m.ModuleCode)
			if err != nil {
				return nil, err
			}
			var students, tutors int64
			for _, g := range groups {
				students += g.Students
				tutors += g.Tutors
			}
			switch {
			case len(groups) == 0:
				out = append(out, fmt.Sprintf("%s: no groups in the last extract, so nothing to create; %d groups cmissync made stay until a complete extract leaves them out", m.ModuleCode, made))
			case made == 0:
				out = append(out, fmt.Sprintf("%s: creates its grouping and %d groups with %d student and %d tutor memberships (members not enrolled in the course wait until they are)", m.ModuleCode, len(groups), students, tutors))
			default:
				out = append(out, fmt.Sprintf("%s: keeps its %d groups in step with the last extract's %d groups, %d student and %d tutor memberships", m.ModuleCode, made, len(groups), students, tutors))
			}
		case mapNotUnderstood:
			out = append(out, fmt.Sprintf("%s: %s", m.ModuleCode, meaning))
		default:
			if made == 0 {
				out = append(out, fmt.Sprintf("%s: nothing (%s; cmissync has made nothing of it in the course)", m.ModuleCode, strings.SplitN(meaning, ":", 2)[0]))
			} else {
				out = append(out, fmt.Sprintf("%s: removes the %d groups cmissync made (and its grouping, with their memberships); hand-made groups stay, adopted ones are given back", m.ModuleCode, made))
			}
		}
	}
	out = append(out, fmt.Sprintf("(the exact changes after the next stage: cmissync stage --course %d && cmissync plan --course %d)", course, course))
	return out, nil
}
