package load

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/cmissync/cmissync/stage/store"
)

// Plan is what the load step would do with the current flags, per course.
// It reads staging only.
type Plan struct {
	Courses []CoursePlan `json:"courses"`
	Totals  PlanCounts   `json:"totals"`
}

// CoursePlan is the plan of one course.
type CoursePlan struct {
	CourseID int64 `json:"courseid"`
	PlanCounts
	Items []PlanItem `json:"items"`
}

// PlanCounts counts planned changes.
type PlanCounts struct {
	CreateGroupings int `json:"create_groupings"`
	CreateGroups    int `json:"create_groups"`
	Rename          int `json:"rename"`
	Assign          int `json:"assign"`
	AddMembers      int `json:"add_members"`
	RemoveMembers   int `json:"remove_members"`
	DeleteGroups    int `json:"delete_groups"`
	DeleteGroupings int `json:"delete_groupings"`
}

func (c *PlanCounts) add(o PlanCounts) {
	c.CreateGroupings += o.CreateGroupings
	c.CreateGroups += o.CreateGroups
	c.Rename += o.Rename
	c.Assign += o.Assign
	c.AddMembers += o.AddMembers
	c.RemoveMembers += o.RemoveMembers
	c.DeleteGroups += o.DeleteGroups
	c.DeleteGroupings += o.DeleteGroupings
}

// Empty reports whether nothing is planned.
func (c PlanCounts) Empty() bool { return c == PlanCounts{} }

// PlanItem is one planned change of a group or grouping (memberships are
// counted, not listed).
type PlanItem struct {
	Action   string `json:"action"` // create-grouping, create-group, rename-grouping, rename-group, delete-group, delete-grouping
	IDNumber string `json:"idnumber"`
	Name     string `json:"name"`
}

// MakePlan reads the flagged work from staging.
func MakePlan(ctx context.Context, st *store.Store, f store.Filter) (*Plan, error) {
	courses := map[int64]*CoursePlan{}
	get := func(id int64) *CoursePlan {
		c := courses[id]
		if c == nil {
			c = &CoursePlan{CourseID: id}
			courses[id] = c
		}
		return c
	}
	gings, err := st.GroupingsToCreate(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, g := range gings {
		c := get(g.CourseID)
		c.CreateGroupings++
		c.Items = append(c.Items, PlanItem{"create-grouping", g.IDNumber, g.Name})
	}
	groups, err := st.GroupsToCreate(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		c := get(g.CourseID)
		c.CreateGroups++
		c.Assign++ // every new group joins its grouping
		c.Items = append(c.Items, PlanItem{"create-group", g.IDNumber, g.Name})
	}
	rgs, err := st.GroupingsToRename(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, g := range rgs {
		c := get(g.CourseID)
		c.Rename++
		c.Items = append(c.Items, PlanItem{"rename-grouping", g.IDNumber, g.MoodleName + " -> " + g.Name})
	}
	rg, err := st.GroupsToRename(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, g := range rg {
		c := get(g.CourseID)
		c.Rename++
		c.Items = append(c.Items, PlanItem{"rename-group", g.IDNumber, g.MoodleName + " -> " + g.Name})
	}
	assign, err := st.GroupsToAssign(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, a := range assign {
		get(a.CourseID).Assign++
	}
	adds, err := st.MembersToAdd(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, m := range adds {
		get(m.CourseID).AddMembers++
	}
	// Members of groups still to be created are added right after them.
	pendingGroups, err := st.StagedMembersOfNewGroups(ctx, f)
	if err != nil {
		return nil, err
	}
	for course, n := range pendingGroups {
		get(course).AddMembers += n
	}
	removes, err := st.MembersToRemove(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, m := range removes {
		get(m.CourseID).RemoveMembers++
	}
	dgroups, err := st.GroupsToDelete(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, g := range dgroups {
		c := get(g.CourseID)
		c.DeleteGroups++
		c.Items = append(c.Items, PlanItem{"delete-group", g.IDNumber, g.Name})
	}
	dgings, err := st.GroupingsToDeleteAll(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, g := range dgings {
		c := get(g.CourseID)
		c.DeleteGroupings++
		c.Items = append(c.Items, PlanItem{"delete-grouping", g.IDNumber, g.Name})
	}
	p := &Plan{Courses: []CoursePlan{}}
	for _, c := range courses {
		if c.Items == nil {
			c.Items = []PlanItem{}
		}
		p.Courses = append(p.Courses, *c)
		p.Totals.add(c.PlanCounts)
	}
	sort.Slice(p.Courses, func(i, j int) bool { return p.Courses[i].CourseID < p.Courses[j].CourseID })
	return p, nil
}

// WriteText prints the plan for people.
func (p *Plan) WriteText(w io.Writer) {
	if p.Totals.Empty() {
		fmt.Fprintln(w, "Nothing to do: Moodle is in step with staging.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "course\tnew groupings\tnew groups\trename\tassign\tadd members\tremove members\tdelete groups\tdelete groupings\t")
	row := func(label string, c PlanCounts) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", label, c.CreateGroupings, c.CreateGroups, c.Rename, c.Assign,
			c.AddMembers, c.RemoveMembers, c.DeleteGroups, c.DeleteGroupings)
	}
	for _, c := range p.Courses {
		row(fmt.Sprint(c.CourseID), c.PlanCounts)
	}
	row("total", p.Totals)
	tw.Flush()
	for _, c := range p.Courses {
		if len(c.Items) == 0 {
			continue
		}
		fmt.Fprintf(w, "\ncourse %d:\n", c.CourseID)
		for _, it := range c.Items {
			fmt.Fprintf(w, "  %-16s %-28s %s\n", it.Action, it.IDNumber, it.Name)
		}
	}
}
