package main

import (
	"encoding/json"
	"fmt"
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
changes made in Moodle by hand and enrolments are not seen.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.pipeline(c.Context(), courses)
			if err != nil {
				return err
			}
			defer p.close()
			pl, err := p.makePlan(c.Context(), offline)
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
		},
	}
	courseFlag(c, &courses)
	c.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON, every item included")
	c.Flags().BoolVar(&offline, "offline", false, "build the plan from staging alone, without reading Moodle")
	return a.withHelp(c)
}

func (a *app) statusCommand() *cobra.Command {
	var runs int
	c := &cobra.Command{
		Use:   "status",
		Short: "Show recent runs, the lock holder and pending items",
		Long: `Shows the steps of the most recent runs with their outcome and counts, who
holds the run lock (if anyone), how many staged items are still flagged, and
the REST errors of the last run.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.pipeline(c.Context(), nil)
			if err != nil {
				return err
			}
			defer p.close()
			ctx := c.Context()
			w := a.stdout
			lock, err := p.st.CurrentLock(ctx)
			if err != nil {
				return err
			}
			if lock == nil {
				fmt.Fprintln(w, "Lock: free")
			} else {
				fmt.Fprintf(w, "Lock: held by %s since %s (heartbeat %s)\n", lock.Holder, lock.AcquiredAt.Format(time.RFC3339), lock.Heartbeat.Format(time.RFC3339))
			}
			steps, err := p.st.RecentSteps(ctx, runs)
			if err != nil {
				return err
			}
			fmt.Fprintln(w, "\nRecent runs:")
			if len(steps) == 0 {
				fmt.Fprintln(w, "  none yet")
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  run\tstep\tstarted\tseconds\toutcome\tcounts\tmessage")
			for _, s := range steps {
				secs := "-"
				if s.Finished != nil {
					secs = fmt.Sprintf("%.1f", s.Finished.Sub(s.Started).Seconds())
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.RunID, s.Step, s.Started.Local().Format("2006-01-02 15:04:05"), secs, s.Outcome, countsText(s.Counts), oneLine(s.Message, 80))
			}
			tw.Flush()
			pending, err := p.st.Pending(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(w, "\nPending in staging (flags not yet cleared by load):")
			for _, t := range []string{store.TableGroupings, store.TableGroups, store.TableMembers} {
				fmt.Fprintf(w, "  %-20s toadd %-8d todelete %-8d parked %d\n", t, pending[t+".toadd"], pending[t+".todelete"], pending[t+".parked"])
			}
			if len(steps) > 0 {
				errs, err := p.st.RestErrors(ctx, steps[0].RunID)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "\nREST errors in run %s: %d\n", steps[0].RunID, len(errs))
				for i, e := range errs {
					if i == 20 {
						fmt.Fprintf(w, "  … and %d more (SELECT * FROM rest_error_logs WHERE run_id = '%s')\n", len(errs)-20, steps[0].RunID)
						break
					}
					fmt.Fprintf(w, "  course %d %s %s: %s (%s)\n", e.CourseID, e.Object, e.Function, e.Message, e.ErrorCode)
				}
			}
			return nil
		},
	}
	c.Flags().IntVar(&runs, "runs", 5, "number of recent runs to show")
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
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			st, err := store.Open(c.Context(), cfg.Staging.Engine, cfg.Staging.DSN)
			if err != nil {
				return err
			}
			defer st.Close()
			applied, err := st.Migrate(c.Context())
			for _, m := range applied {
				fmt.Fprintf(a.stdout, "applied %s\n", m.Name)
			}
			if err != nil {
				return err
			}
			v, _ := st.SchemaVersion(c.Context())
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
		Short: "Unpark items that failed repeatedly, so the next load tries them again",
		Long: `Items Moodle refused load.park_after runs in a row (and groups parked by
load.on_deleted = forget) are skipped by load and listed in every report.
Once the cause is fixed, retry makes them eligible again; the next
"cmissync load" (or run) sends them.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.pipeline(c.Context(), courses)
			if err != nil {
				return err
			}
			defer p.close()
			items, err := p.st.Parked(c.Context(), p.filter)
			if err != nil {
				return err
			}
			for _, it := range items {
				fmt.Fprintf(a.stdout, "course %d %s %s %s: %s\n", it.CourseID, it.Table, it.IDNumber, it.CMISID, oneLine(it.LastError, 100))
			}
			n, err := p.st.Unpark(c.Context(), p.filter)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%d items unparked; the next load tries them again\n", n)
			return nil
		},
	}
	courseFlag(c, &courses)
	return a.withHelp(c)
}

func (a *app) auditCommand() *cobra.Command {
	var (
		course int64
		runID  string
		last   bool
	)
	c := &cobra.Command{
		Use:   "audit",
		Short: "Show what cmissync did in Moodle (the audit trail), e.g. to one course last night",
		Long: `Lists the changes cmissync applied to Moodle, oldest first, from the
cmissync_audit table: groupings and groups created, adopted, renamed,
recreated and deleted, members added, found and removed.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.pipeline(c.Context(), nil)
			if err != nil {
				return err
			}
			defer p.close()
			if last {
				steps, err := p.st.RecentSteps(c.Context(), 50)
				if err != nil {
					return err
				}
				for _, s := range steps {
					if s.Step == "load" {
						runID = s.RunID
						break
					}
				}
				if runID == "" {
					fmt.Fprintln(a.stdout, "no load has run yet")
					return nil
				}
			}
			entries, err := p.st.Audit(c.Context(), course, runID)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "run\tcourse\tobject\tidnumber\tname\taction\tmoodle id\tuser\tdetail")
			for _, e := range entries {
				user := ""
				if e.UserID != 0 || e.CMISID != "" {
					user = fmt.Sprintf("%s (%d)", e.CMISID, e.UserID)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.RunID, e.CourseID, e.Object, e.IDNumber, e.Name, e.Action, e.MoodleID, user, e.Detail)
			}
			tw.Flush()
			fmt.Fprintf(a.stdout, "%d changes\n", len(entries))
			return nil
		},
	}
	c.Flags().Int64Var(&course, "course", 0, "only this Moodle course id")
	c.Flags().StringVar(&runID, "run", "", "only this run id (see cmissync status)")
	c.Flags().BoolVar(&last, "last", false, "only the most recent run's load")
	return a.withHelp(c)
}
