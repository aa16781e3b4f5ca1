package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// app holds what every command shares.
type app struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)

	configPath string
	logLevel   string
	started    bool
}

const rootLong = `cmissync keeps Moodle course groups in step with the teaching groups of CMIS.

Every night "cmissync run" extracts the CMIS views into the staging database,
stages the desired groupings, groups and memberships of each mapped course
against what cmissync already made, and loads the changes into Moodle through
its web services, emailing a report for each step that had failures or news
(see email.when).

Configuration comes from one file (--config, default ./cmissync.toml) and the
environment (CMISSYNC_<SECTION>_<KEY>); see "cmissync config".

When something looks wrong: "cmissync check" (will a run work?), "cmissync
status" (did the last one? its exit status, 10 to 13, is for monitoring),
"cmissync explain --course N" (why is this course as it is, and the fix).`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "cmissync",
		Short:         "Keep Moodle course groups in step with CMIS teaching groups",
		Long:          rootLong + "\n\n" + exitCodesHelp,
		Version:       versionText(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			a.started = true
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{err: fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	defaultConfig := "cmissync.toml"
	if v, ok := a.env("CMISSYNC_CONFIG"); ok && v != "" {
		defaultConfig = v
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", defaultConfig, "configuration file (default: $CMISSYNC_CONFIG, else ./cmissync.toml; a missing default file is fine)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "", "override log.level: debug, info, warn or error")
	root.AddCommand(
		a.runCommand(),
		a.stepCommand("extract", "Read the CMIS views into the staging _dump tables",
			"Reads the three CMIS views (or CSV files) and replaces the staging _dump tables\nwith them in one step once the extract is complete. Bad rows go to\ncmis_error_data_dump with the reason; the previous dump stays if anything fails."),
		a.stepCommand("stage", "Compute the desired groups and set toadd/todelete flags",
			"Joins the dump with mapped_modules, compares the desired groupings, groups and\nmemberships with what cmissync has made, and sets toadd/todelete flags.\nSends nothing to Moodle."),
		a.stepCommand("load", "Send the flagged changes to Moodle",
			"Checks that Moodle answers at moodle.url to the token with every function\nneeded, and is the site this staging database is bound to (the first load\nrecords it; another site is refused, exit 2, unless --rebind-site). Then it\nreads what cmissync owns in Moodle, builds one plan from it and the staged\nflags (the plan \"cmissync plan\" prints), holds back deletions without evidence\nor over the mass-change guard, and carries the rest out in order (repairs,\ngroupings, groups, adoptions and renames, grouping assignments, member\nadditions, member removals, give-backs, group deletions, grouping deletions),\nrecording each success. Rerun it after fixing staged rows."),
		a.planCommand(),
		a.statusCommand(),
		a.checkCommand(),
		a.mapCommand(),
		a.forgetCommand(),
		a.explainCommand(),
		a.migrateCommand(),
		a.retryCommand(),
		a.auditCommand(),
		a.applyCommand(),
		a.demoCommand(),
		a.moodleSimCommand(),
		a.configCommand(),
		a.manCommand(),
	)
	return root
}

// withPipeline is a command body that runs fn with the invocation's
// pipeline (configuration, staging, logger) for the courses, and closes it.
func (a *app) withPipeline(courses *[]int64, fn func(ctx context.Context, p *pipeline) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, _ []string) error {
		var cs []int64
		if courses != nil {
			cs = *courses
		}
		p, err := a.pipeline(c.Context(), cs)
		if err != nil {
			return err
		}
		defer p.close()
		return fn(c.Context(), p)
	}
}

// courseFlag adds --course to a command.
func courseFlag(c *cobra.Command, dst *[]int64) {
	c.Flags().Int64SliceVar(dst, "course", nil, "limit to these Moodle course ids (repeat or comma-separate); others are left alone")
}

// approveFlag adds --approve-deletes.
func approveFlag(c *cobra.Command, dst *bool) {
	c.Flags().BoolVar(dst, "approve-deletes", false, "let this run delete more than the mass-change guard allows (see guard.* in cmissync config)")
}

// noDeletesFlag adds --no-deletes.
func noDeletesFlag(c *cobra.Command, dst *bool) {
	c.Flags().BoolVar(dst, "no-deletes", false, "hold back every deletion this run (they are listed, with the reason, in the plan and the report); everything else goes ahead")
}

// shrinkFlag adds --approve-shrink.
func shrinkFlag(c *cobra.Command, dst *bool) {
	c.Flags().BoolVar(dst, "approve-shrink", false, "commit this extract even if it is much smaller than the last one (see guard.extract_max_shrink)")
}

func (a *app) withHelp(c *cobra.Command) *cobra.Command {
	c.Long += "\n\n" + exitCodesHelp
	return c
}

func (a *app) runCommand() *cobra.Command {
	var (
		courses []int64
		dryRun  bool
		approve bool
		shrink  bool
		noDel   bool
		rebind  bool
	)
	c := &cobra.Command{
		Use:   "run",
		Short: "Run all steps: extract, stage, load",
		Long: `Runs extract, stage and load under the run lock, recording each step in
cmissync_runs and emailing a report for each step that had failures or news
(email.when). On a terminal it shows each step's progress and a closing
summary; with metrics.textfile and monitor.ping_url set, it writes metrics and
pings a monitoring check at its end (not on a dry run).
The run stops before stage when extract fails, so bad data never deletes
anything; deletions are skipped when an earlier step failed.

Before anything else the run checks Moodle (step "check"): the site must
answer at moodle.url exactly, accept the token, offer every function a load
calls, and be the site this staging database is bound to (the first load
records it). Otherwise nothing is extracted, staged or sent and the run exits
2 (1 when Moodle does not answer at all); "cmissync check" says what to fix.

With --dry-run, extract and stage run (they only write the staging database)
and the plan of what load would do is printed; nothing is sent to Moodle.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.pipeline(c.Context(), courses)
			if err != nil {
				return err
			}
			defer p.close()
			p.approveDeletes, p.approveShrink, p.noDeletes, p.site.rebind = approve, shrink, noDel, rebind
			return p.run(c.Context(), dryRun)
		},
	}
	courseFlag(c, &courses)
	c.Flags().BoolVar(&dryRun, "dry-run", false, "extract and stage, print what load would do, send nothing to Moodle")
	approveFlag(c, &approve)
	noDeletesFlag(c, &noDel)
	shrinkFlag(c, &shrink)
	rebindFlag(c, &rebind)
	return a.withHelp(c)
}

func (a *app) stepCommand(name, short, long string) *cobra.Command {
	var (
		courses []int64
		approve bool
		shrink  bool
		dryRun  bool
		noDel   bool
		rebind  bool
	)
	c := &cobra.Command{
		Use:   name,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			p, err := a.pipeline(c.Context(), courses)
			if err != nil {
				return err
			}
			defer p.close()
			p.approveDeletes, p.approveShrink, p.noDeletes, p.site.rebind = approve, shrink, noDel, rebind
			if dryRun {
				if err := p.preflight(c.Context()); err != nil {
					return err
				}
				pl, err := p.makePlan(c.Context(), false)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, "Dry run: nothing was sent to Moodle. The load step would do this:")
				pl.WriteText(a.stdout)
				return nil
			}
			return p.single(c.Context(), name)
		},
	}
	if name != "extract" {
		courseFlag(c, &courses)
	}
	if name == "load" {
		approveFlag(c, &approve)
		noDeletesFlag(c, &noDel)
		c.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan this load would carry out (the same as cmissync plan) and send nothing")
		rebindFlag(c, &rebind)
	}
	if name == "extract" {
		shrinkFlag(c, &shrink)
	}
	return a.withHelp(c)
}

func (a *app) configCommand() *cobra.Command {
	var example bool
	c := &cobra.Command{
		Use:   "config",
		Short: "List every configuration key, its environment variable and default",
		Long: `Lists every configuration key with its environment variable, default and
meaning. With --example, prints a complete configuration file instead: every
key at its default, commented (the same as cmd/cmissync/cmissync.example.toml),
a starting point for /etc/cmissync/cmissync.toml.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			text := configHelp()
			if example {
				text = exampleConfig()
			}
			_, err := io.WriteString(a.stdout, text)
			return err
		},
	}
	c.Flags().BoolVar(&example, "example", false, "print a complete, commented configuration file with every key at its default")
	return c
}
