package moodle

import "context"

// Reads by id. core_group_get_groups, core_group_get_group_members and
// core_group_get_groupings accept ids from many courses in one call. One id
// that no longer exists fails the whole call with invalidrecord (table
// groups or groupings), so a caller splits a refused read to find exactly
// the deleted objects. Unlike the course listings, they read Moodle's
// database, not its group cache: an object they return exists. Each method
// makes exactly one call; the caller sizes the batch with Capacity.

// GroupsByID calls core_group_get_groups.
func (c *Client) GroupsByID(ctx context.Context, ids []int64) ([]Group, error) {
	var out []Group
	err := c.Call(ctx, FnGetGroups, IDsForm("groupids", ids), &out)
	return out, err
}

// MembersOf calls core_group_get_group_members once and returns the user
// ids of each group.
func (c *Client) MembersOf(ctx context.Context, groupIDs []int64) (map[int64][]int64, error) {
	var ans []struct {
		GroupID int64   `json:"groupid"`
		UserIDs []int64 `json:"userids"`
	}
	if err := c.Call(ctx, FnGroupMembers, IDsForm("groupids", groupIDs), &ans); err != nil {
		return nil, err
	}
	out := make(map[int64][]int64, len(ans))
	for _, g := range ans {
		out[g.GroupID] = g.UserIDs
	}
	return out, nil
}

// GroupingsWithGroups calls core_group_get_groupings with returngroups=1:
// the groupings and, in each, the groups assigned to it.
func (c *Client) GroupingsWithGroups(ctx context.Context, ids []int64) ([]Grouping, error) {
	return c.Groupings(ctx, ids, true)
}

// VarsPerReadByID is the form variables of one id in a read by id.
const VarsPerReadByID = 1
