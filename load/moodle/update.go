package moodle

import (
	"context"
	"strconv"
)

// Update is a new name and idnumber for an existing group or grouping
// (core_group_update_groups / core_group_update_groupings).
type Update struct {
	ID       int64
	Name     string
	IDNumber string
}

// VarsPerUpdate is the form variables of one Update.
const VarsPerUpdate = 4 // id, name, description, idnumber

// UpdateForm renders update parameters under key ("groups" or "groupings").
// Moodle requires description for groupings; the group's is optional, and
// both get cmissync's own so teachers can tell its objects apart.
func UpdateForm(key string, items []Update, description string) *Form {
	f := &Form{}
	for i, u := range items {
		p := key + "[" + strconv.Itoa(i) + "]"
		f.AddInt(p+"[id]", u.ID)
		f.Add(p+"[name]", u.Name)
		f.Add(p+"[description]", description)
		f.Add(p+"[idnumber]", u.IDNumber)
	}
	return f
}

// UpdateGroups renames groups and sets their idnumbers.
func (c *Client) UpdateGroups(ctx context.Context, items []Update, description string) error {
	return c.Call(ctx, FnUpdateGroups, UpdateForm("groups", items, description), nil)
}

// UpdateGroupings renames groupings and sets their idnumbers.
func (c *Client) UpdateGroupings(ctx context.Context, items []Update, description string) error {
	return c.Call(ctx, FnUpdateGroupings, UpdateForm("groupings", items, description), nil)
}

// FnUpdateGroupings renames groupings.
const FnUpdateGroupings = "core_group_update_groupings"
