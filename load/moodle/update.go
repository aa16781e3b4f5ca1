package moodle

import (
	"context"
	"strconv"
)

// Update changes an existing group or grouping (core_group_update_groups /
// core_group_update_groupings). Name is always sent (Moodle requires it);
// IDNumber and Description only when set, so that what is not set stays as
// it is in Moodle (a teacher's description survives adoption). Moodle
// requires a grouping's description: set it for groupings.
type Update struct {
	ID          int64
	Name        string
	IDNumber    *string
	Description *string
}

// Ptr returns a pointer to s, for Update's optional fields.
func Ptr(s string) *string { return &s }

// VarsPerUpdate is the most form variables one Update takes.
const VarsPerUpdate = 4 // id, name, description, idnumber

// UpdateForm renders update parameters under key ("groups" or "groupings").
func UpdateForm(key string, items []Update) *Form {
	f := &Form{}
	for i, u := range items {
		p := key + "[" + strconv.Itoa(i) + "]"
		f.AddInt(p+"[id]", u.ID)
		f.Add(p+"[name]", u.Name)
		if u.Description != nil {
			f.Add(p+"[description]", *u.Description)
		}
		if u.IDNumber != nil {
			f.Add(p+"[idnumber]", *u.IDNumber)
		}
	}
	return f
}

// UpdateGroups changes groups. A call that leaves a group as it is (its
// current name, nothing else) is a write all the same: it clears the
// course's group cache, phantoms included.
func (c *Client) UpdateGroups(ctx context.Context, items []Update) error {
	return c.Call(ctx, FnUpdateGroups, UpdateForm("groups", items), nil)
}

// UpdateGroupings changes groupings; each needs its Description.
func (c *Client) UpdateGroupings(ctx context.Context, items []Update) error {
	return c.Call(ctx, FnUpdateGroupings, UpdateForm("groupings", items), nil)
}

// FnUpdateGroupings renames groupings.
const FnUpdateGroupings = "core_group_update_groupings"
