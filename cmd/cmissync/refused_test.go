package main

import (
	"testing"

	"github.com/cmissync/cmissync/stage/store"
)

func TestFaultyField(t *testing.T) {
	cases := []struct {
		table  store.DumpTable
		reason string
		want   string
	}{
		{store.GroupMembers, "missing studentid; as its studentid cannot be read, no student is removed from group M G by this run", "studentid"},
		{store.ModuleGroups, "control character U+0001 in groupcode; as its groupcode cannot be read, nothing of module M is deleted", "groupcode"},
		{store.ModuleGroups, "groupname longer than 254 characters (301)", "groupname"},
		{store.ModuleGroups, "modulecode and groupcode too long together: the Moodle idnumber would have 120 characters", "modulecode"},
		{store.GroupMembers, "3 values, want 2 (modulecode, groupcode, studentid); as its key cannot be read, no student is removed", ""},
		{store.GroupTutors, "duplicate of line 12", ""},
		{"", "unterminated quote", ""},
	}
	for _, c := range cases {
		if got := faultyField(store.BadRow{Table: c.table, Reason: c.reason}); got != c.want {
			t.Errorf("faultyField(%s, %q) = %q, want %q", c.table, c.reason, got, c.want)
		}
	}
}
