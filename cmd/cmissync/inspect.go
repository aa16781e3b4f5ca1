package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmissync/cmissync/stage/store"
)

func (a *app) planCommand() *cobra.Command {
	var (
		courses []int64
		asJSON  bool
		offline bool
	)
	c := &cobra.Command{
		Use:   "plan",
		Short: "Show what the load step would do, per course",
		Long: `Builds the plan the load step would carry out now, from the staged flags and
Moodle's real state (read from Moodle, as load reads it), and prints it: per
course, the groupings and groups to create, adopt, rename, assign, give back
and delete, the members to add and remove (who, and why), the repairs of
changes made in Moodle by hand, and every deletion held back with its reason.
It is the same plan "run --dry-run" prints and "load" executes. Sends nothing
to Moodle. Run "cmissync stage" first to refresh the flags.

With --offline Moodle is not read: the plan is built from staging alone, so
changes made in Moodle by hand and enrolments are not seen. Otherwise Moodle
is checked first, as a run checks it: a wrong address, token, service, or
another site than staging is bound to stops the plan (exit 2).`,
		Args: cobra.NoArgs,
		RunE: a.withPipeline(&courses, func(ctx context.Context, p *pipeline) error {
			if !offline {
				if err := p.preflight(ctx); err != nil {
					return err
				}
			}
			pl, err := p.makePlan(ctx, offline)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(pl)
			}
			pl.WriteText(a.stdout)
			return nil
		}),
	}
	courseFlag(c, &courses)
	c.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON, every item included")
	c.Flags().BoolVar(&offline, "offline", false, "build the plan from staging alone, without reading Moodle")
	return a.withHelp(c)
}

func (a *app) statusCommand() *cobra.Command {
	var (
		runs   int
		asJSON bool
		maxAge time.Duration
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show recent runs, the lock holder and pending items; exit non-zero when the last run failed",
		Long: `Shows the outcome of the last run, the steps of the most recent runs with
their counts, who holds the run lock (if anyone), the Moodle site staging is
bound to, the last extract and its refused rows, how many staged items are
still flagged, and the REST errors of the last run. --json prints the same
for scripts.

For monitoring, the exit status says how the last run ended (a run still
going is not judged, nor a cmissync apply: the one before it is):
  0    it succeeded (or no run is recorded, without --max-age)
  10   it failed (a step failed, was interrupted, or the process died)
  11   it was stopped by a safety rail and waits for an operator's approval
  12   it finished, but some items failed
  13   no run started within --max-age (is cron still running cmissync?)
13 wins over the others; errors of status itself exit 1 or 2 as usual.`,
		Args: cobra.NoArgs,
		RunE: a.withPipeline(nil, func(ctx context.Context, p *pipeline) error {
			st, err := p.readStatus(ctx, runs, maxAge)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			} else {
				st.writeText(a.stdout)
			}
			if st.ExitCode != exitOK {
				return &statusError{code: st.ExitCode, verdict: st.Verdict}
			}
			return nil
		}),
	}
	c.Flags().IntVar(&runs, "runs", 5, "number of recent runs to show")
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	c.Flags().DurationVar(&maxAge, "max-age", 0, "exit 13 when the last run started longer ago than this (e.g. 26h for a nightly run); 0: off")
	return a.withHelp(c)
}

func countsText(m map[string]int64) string {
	var parts []string
	for k, v := range m {
		if v != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(parts)
	return oneLine(strings.Join(parts, " "), 100)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func (a *app) migrateCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the staging schema",
		Long: `Applies the numbered schema migrations built into this binary that the staging
database has not had yet (recorded in schema_migrations). Safe to run at any
time; every other command refuses to run on an out-of-date schema.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			st, err := store.Open(ctx, cfg.Staging.Engine, cfg.Staging.DSN)
			if err != nil {
				return err
			}
			defer st.Close()
			applied, err := st.Migrate(ctx)
			for _, m := range applied {
				fmt.Fprintf(a.stdout, "applied %s\n", m.Name)
			}
			if err != nil {
				return err
			}
			v, _ := st.SchemaVersion(ctx)
			fmt.Fprintf(a.stdout, "staging schema (%s) is at version %d\n", cfg.Staging.Engine, v)
			return nil
		},
	}
	return a.withHelp(c)
}

func (a *app) retryCommand() *cobra.Command {
	var courses []int64
	c := &cobra.Command{
		Use:   "retry",
		Short: "Unpark items that failed repeatedly, and try members waiting for enrolment, at the next load",
		Long: `Items Moodle refused load.park_after runs in a row (and groups parked by
load.on_deleted = forget) are skipped by load and listed in every report.
Once the cause is fixed, retry makes them eligible again; the next
"cmissync load" (or run) sends them. Members waiting for enrolment are tried
every run in their first week of waiting, then weekly; retry makes the next
load try them (e.g. once they have been enrolled by hand).`,
		Args: cobra.NoArgs,
		RunE: a.withPipeline(&courses, func(ctx context.Context, p *pipeline) error {
			items, err := p.st.Parked(ctx, p.filter)
			if err != nil {
				return err
			}
			for _, it := range items {
				fmt.Fprintf(a.stdout, "course %d %s %s %s: %s\n", it.CourseID, it.Table, it.IDNumber, it.CMISID, oneLine(it.LastError, 100))
			}
			n, err := p.st.Unpark(ctx, p.filter)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%d items unparked; the next load tries them again\n", n)
			w, err := p.st.RetryWaiting(ctx, p.filter)
			if err != nil {
				return err
			}
			if w > 0 {
				fmt.Fprintf(a.stdout, "%d members waiting for enrolment are tried at the next load\n", w)
			}
			return nil
		}),
	}
	courseFlag(c, &courses)
	return a.withHelp(c)
}

func (a *app) auditCommand() *cobra.Command {
	var (
		q    store.AuditQuery
		last bool
	)
	c := &cobra.Command{
		Use:   "audit",
		Short: "Show what cmissync did in Moodle (the audit trail), e.g. to one course or one person",
		Long: `Lists the changes cmissync applied to Moodle, oldest first, from the
audit trail (tables cmissync_audit and cmissync_audit_members): groupings
and groups created, adopted, renamed, recreated, deleted and forgotten,
members added, found and removed.

Narrow it by course (--course), run (--run, --last), person (--user: a CMIS
student or staff id, or a Moodle user id), group or grouping (--moodle-id:
the Moodle id a report or Moodle's own pages show; --idnumber), or keep the
newest entries (--limit).`,
		Args: cobra.NoArgs,
		RunE: a.withPipeline(nil, func(ctx context.Context, p *pipeline) error {
			if last {
				steps, err := p.st.RecentSteps(ctx, 50)
				if err != nil {
					return err
				}
				for _, s := range steps {
					// The steps that write to Moodle.
					if s.Step == "load" || s.Step == "apply" {
						q.RunID = s.RunID
						break
					}
				}
				if q.RunID == "" {
					fmt.Fprintln(a.stdout, "no load or apply has run yet")
					return nil
				}
			}
			q.User = strings.TrimSpace(q.User)
			entries, err := p.st.FindAudit(ctx, q)
			if err != nil {
				return err
			}
			writeAudit(a.stdout, entries)
			fmt.Fprintf(a.stdout, "%d changes\n", len(entries))
			return nil
		}),
	}
	courseFlag(c, &q.Courses)
	c.Flags().StringVar(&q.RunID, "run", "", "only this run id (see cmissync status)")
	c.Flags().BoolVar(&last, "last", false, "only the most recent load or apply")
	c.Flags().StringVar(&q.User, "user", "", "only this person: a CMIS student or staff id, or a Moodle user id")
	c.Flags().Int64Var(&q.MoodleID, "moodle-id", 0, "only this Moodle group or grouping id")
	c.Flags().StringVar(&q.IDNumber, "idnumber", "", "only this group or grouping idnumber (cmis:MODULE or cmis:MODULE:GROUP)")
	c.Flags().IntVar(&q.Limit, "limit", 0, "only the newest N entries; 0: all")
	return a.withHelp(c)
}

// writeAudit prints audit entries as a table.
func writeAudit(w io.Writer, entries []store.AuditRecord) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "time\trun\tcourse\tobject\tidnumber\tname\taction\tmoodle id\tuser\tdetail")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", localTime(e.Created), e.RunID, e.CourseID, e.Object, e.IDNumber, e.Name, e.Action, e.MoodleID, auditUser(e.AuditEntry), oneLine(e.Detail, 400))
	}
	tw.Flush()
}

// auditUser names the person of a membership entry.
func auditUser(e store.AuditEntry) string {
	if e.UserID == 0 && e.CMISID == "" {
		return ""
	}
	return fmt.Sprintf("%s (%d)", e.CMISID, e.UserID)
}

// localTime renders a time for people, in the local zone, to the second.
func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}
