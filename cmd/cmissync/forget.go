package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cmissync/cmissync/stage/store"
)

func (a *app) forgetCommand() *cobra.Command {
	var (
		courses []int64
		yes     bool
	)
	c := &cobra.Command{
		Use:   "forget",
		Short: "Forget a course's staged state without touching Moodle; the next run finds its groups again",
		Long: `Removes everything staging records of the courses (their staged groupings,
groups and memberships, with their flags, attempts and parking) and touches
nothing else: not Moodle, not mapped_modules, not the audit trail, not the
enrolments cmissync made. It replaces the runbook's DELETEs on a course's
rows in eleven tables.

The next run stages the courses again from their mappings and finds their
groupings and groups in Moodle by idnumber: it records them rather than
creating them twice, and takes the members it finds there for its own where
the audit trail says it added them. Use it when staging and Moodle disagree
beyond repair for a course; "cmissync explain --course N" first says whether
that is needed at all.

Without --yes it only says what it would forget. It takes the run lock.`,
		Args: cobra.NoArgs,
		RunE: a.withPipeline(&courses, func(ctx context.Context, p *pipeline) error {
			if len(courses) == 0 {
				return &usageError{err: errors.New("--course is required: the courses to forget")}
			}
			for _, course := range courses {
				if err := p.describeForget(ctx, course); err != nil {
					return err
				}
			}
			if !yes {
				return &usageError{err: errors.New("nothing was forgotten: rerun with --yes to forget")}
			}
			return p.locked(ctx, func(ctx context.Context) error {
				for _, course := range courses {
					n, err := p.st.ForgetCourse(ctx, course, store.AuditEntry{RunID: p.runID, Object: "course", Action: "forget",
						Detail: "cmissync forget: staged rows dropped, Moodle untouched"})
					if err != nil {
						return err
					}
					fmt.Fprintf(a.stdout, "course %d forgotten: %d groupings, %d groups, %d memberships; Moodle was not touched. The next run stages it again and finds its groups in Moodle by idnumber.\n",
						course, n.Groupings, n.Groups, n.Members)
				}
				return nil
			})
		}),
	}
	courseFlag(c, &courses)
	c.Flags().BoolVar(&yes, "yes", false, "forget for real (without it, only say what would be forgotten)")
	return a.withHelp(c)
}

// describeForget says what forgetting a course drops, and warns of what
// the next run cannot tell apart afterwards.
func (p *pipeline) describeForget(ctx context.Context, course int64) error {
	s, err := p.st.StagedCourse(ctx, course)
	if err != nil {
		return err
	}
	inMoodle := 0
	for _, g := range s.Groups {
		if g.MoodleID != 0 {
			inMoodle++
		}
	}
	fmt.Fprintf(p.a.stdout, "course %d: staging records %d groupings, %d groups (%d of them in Moodle) and %d memberships\n",
		course, len(s.Groupings), len(s.Groups), inMoodle, len(s.Members))
	for _, g := range s.Groupings {
		if g.Adopted {
			fmt.Fprintf(p.a.stdout, "  warning: grouping %s %q is a hand-made one cmissync adopted; once forgotten, the next run takes it for one of its own\n", g.IDNumber, g.MoodleName)
		}
	}
	for _, g := range s.Groups {
		if g.Adopted {
			fmt.Fprintf(p.a.stdout, "  warning: group %s %q (id %d) is a hand-made one cmissync adopted; once forgotten, the next run takes it for one of its own, and deletes it rather than give it back when CMIS drops it\n", g.IDNumber, g.MoodleName, g.MoodleID)
		}
	}
	return nil
}
