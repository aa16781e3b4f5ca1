package load

import (
	"context"
	"io"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestRunPicksEachItemOnce: when the gate holds a deletion back (which
// takes it out of its course's items), the later phases still pick every
// other item once, and only once.
func TestRunPicksEachItemOnce(t *testing.T) {
	cp := &CoursePlan{CourseID: 1, State: "ok"}
	removal := cp.item(&Item{Action: ActRemove, Object: "member", weightMembers: 1})
	group := cp.item(&Item{Action: ActDelete, Object: "group"})
	grouping := cp.item(&Item{Action: ActDelete, Object: "grouping"})
	p := &Plan{Courses: []*CoursePlan{cp}}
	log := logrus.New()
	log.SetOutput(io.Discard)
	l := &loader{gate: newGate(p, false, nil), log: log}
	// No budget allowed (gate.allow not called): the guard holds the removal.
	var passed, picked []*Item
	pick := func(_ context.Context, its []*Item) error { picked = append(picked, its...); return nil }
	phases := []phase{
		{"remove", is(ActRemove, ""), func(_ context.Context, its []*Item) error { passed = l.gate.pass(its); return nil }},
		{"delete groups", is(ActDelete, "group"), pick},
		{"delete groupings", is(ActDelete, "grouping"), pick},
	}
	if err := l.run(context.Background(), phases, p.Courses); err != nil {
		t.Fatal(err)
	}
	if len(passed) != 0 || removal.Held == "" || len(cp.Held) != 1 {
		t.Fatalf("the removal passed the gate (%v), held %q", passed, removal.Held)
	}
	if len(picked) != 2 || picked[0] != group || picked[1] != grouping {
		t.Fatalf("picked %d items after the hold, want the group's and the grouping's deletions once each", len(picked))
	}
}

// TestHeldNothingRun: a plan whose policies held back an item the run has
// already carried out is refused before any deletion.
func TestHeldNothingRun(t *testing.T) {
	cp := &CoursePlan{CourseID: 1, State: "ok"}
	add := cp.item(&Item{Action: ActAdd, Object: "member"})
	removal := cp.item(&Item{Action: ActRemove, Object: "member"})
	p := &Plan{Courses: []*CoursePlan{cp}}
	cp.hold(removal, "a policy")
	if err := p.heldNothingRun(); err != nil {
		t.Fatalf("a deletion held before it ran: %v", err)
	}
	add.Outcome = "done"
	cp.hold(add, "a policy that holds additions")
	if err := p.heldNothingRun(); err == nil {
		t.Fatal("an addition already carried out was held back, and the plan was accepted")
	}
}
