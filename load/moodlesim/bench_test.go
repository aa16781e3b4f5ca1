package moodlesim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/load/moodlesim"
)

// Shape of the benchmark site, per course: about the large institution's
// 10 groups and 16.5 memberships per group.
const (
	benchGroupsPerCourse = 10
	benchEnrolled        = 40 // users enrolled per course
	benchMembers         = 16 // members per group, among the enrolled
	benchAdded           = 8  // members one call adds, enrolled but not members
)

// benchSite builds a site of the given number of groups with their courses,
// users, enrolments and memberships. It returns, per group, the users a call
// may add.
func benchSite(b *testing.B, groups int) (*moodlesim.Server, map[int][]int) {
	b.Helper()
	s := moodlesim.New(moodlesim.Options{Token: token})
	courses := groups / benchGroupsPerCourse
	users := make([]int, 4*benchEnrolled+courses)
	for i := range users {
		users[i] = s.AddUser(moodlesim.User{Username: "u" + strconv.Itoa(i)})
	}
	addable := map[int][]int{}
	for c := 0; c < courses; c++ {
		cid := s.AddCourse(moodlesim.Course{ShortName: "C" + strconv.Itoa(c)})
		enrolled := users[c : c+benchEnrolled]
		for _, u := range enrolled {
			if err := s.Enrol(cid, u); err != nil {
				b.Fatal(err)
			}
		}
		for g := 0; g < benchGroupsPerCourse; g++ {
			start := g % (benchEnrolled - benchMembers - benchAdded + 1)
			id, err := s.AddGroup(moodlesim.Group{CourseID: cid, Name: "G" + strconv.Itoa(g),
				Members: enrolled[start : start+benchMembers]})
			if err != nil {
				b.Fatal(err)
			}
			addable[id] = enrolled[start+benchMembers : start+benchMembers+benchAdded]
		}
	}
	return s, addable
}

// BenchmarkAddGroupMembers measures one core_group_add_group_members call
// adding 8 members to a group, on sites of 1,000 and 50,000 groups: its cost
// should not depend on the size of the site. Each call is followed by
// removing the members by hand (a few map operations) so that the next call
// adds them again; the request goes straight to ServeHTTP, without a network.
func BenchmarkAddGroupMembers(b *testing.B) {
	for _, groups := range []int{1000, 50000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			s, addable := benchSite(b, groups)
			ids := make([]int, 0, len(addable))
			bodies := map[int]string{}
			for gid, users := range addable {
				ids = append(ids, gid)
				p := []string{"wstoken", token, "wsfunction", "core_group_add_group_members", "moodlewsrestformat", "json"}
				for i, u := range users {
					p = append(p, fmt.Sprintf("members[%d][groupid]", i), itoa(gid), fmt.Sprintf("members[%d][userid]", i), itoa(u))
				}
				bodies[gid] = kv(p...)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				gid := ids[i%len(ids)]
				req := httptest.NewRequest(http.MethodPost, moodlesim.RESTPath, strings.NewReader(bodies[gid]))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if body := rec.Body.String(); body != "null" {
					b.Fatalf("add members: %s", body)
				}
				for _, u := range addable[gid] {
					if err := s.RemoveMember(gid, u); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
