package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cmissync/cmissync/load"
	"github.com/cmissync/cmissync/load/enrolsync"
	"github.com/cmissync/cmissync/load/report"
)

const applyLong = `Carries out an Enrol Sync command file (the format of Moodle's tool_sync
plugin): one-off enrolment and group corrections, instead of SQL or an
afternoon of clicking. The first line names the columns, in any order,
separated by ";":

  cmd;rolename;cid;uid;hidden;gcmd;g1;g2;g3
  add;student;COMP1001;100001;0;gadd;Lab A;;
  shift;teacher;COMP1001;200002;0;greplacecreate;Tutors;;
  del;;COMP1002;100001;;;;;

cmd: add enrols the user (uid) in the course (cid) in the role (rolename),
manual enrolment, other roles kept; del removes that role, or every role
when rolename is empty, and unenrols the user when no role is left; shift
gives the role and removes the others (never unenrolling). hidden = 1 is
ignored (Moodle no longer has hidden role assignments), with a warning.
gcmd: gadd adds the user to each group named in g1 ... gn; greplace also
removes them from the course's other groups; gaddcreate and greplacecreate
create a missing group (by name). Groups the CMIS sync owns are never left
by greplace or unenrolment unless --force ("owned by the CMIS sync; change
CMIS instead"); adding to one is allowed with a warning (refused like a
removal when load.remove_members_not_in_cmis is on).

Courses are found by apply.course_field (default shortname), users by
apply.user_field (default idnumber, as CMIS ids are); roles by shortname
(the stock ones, and apply.roles) or id. Each line's outcome is printed.
Lines that failed are written, unchanged and each after a comment with the
reason, to the tryback file (default: FILE with ".tryback" before its
extension; a tryback file is rewritten in place), so that "cmissync apply
TRYBACK" reruns just them once the causes are fixed. A line fails whole
before anything is sent when something it names cannot be found; a line
whose change Moodle refuses is not taken further.

The writes take the run lock and go through the load's gate, batches and
read-back checks; each change is recorded in the audit with FILE:LINE
("cmissync audit --run RUN"), and a report is emailed when lines failed or
groups the CMIS sync owns were changed. Exit 3 when some lines failed.
--dry-run reads Moodle, prints what each line would do and sends nothing
(no lock, no tryback file, no audit); it exits 3 when some lines would fail.`

func (a *app) applyCommand() *cobra.Command {
	var (
		dryRun, force          bool
		tryback                string
		courseField, userField string
	)
	c := &cobra.Command{
		Use:   "apply FILE",
		Short: "Carry out an Enrol Sync command file (enrolment and group corrections), with a tryback file for the lines that failed",
		Long:  applyLong,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{err: errors.New("apply takes one command file (see cmissync apply --help)")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			p, err := a.pipeline(c.Context(), nil)
			if err != nil {
				return err
			}
			defer p.close()
			opts := load.ApplyOptions{
				RunID: p.runID, CourseField: p.cfg.Apply.CourseField, UserField: p.cfg.Apply.UserField,
				Roles: p.cfg.Apply.Roles, Force: force, OwnedAddsUndone: p.cfg.Load.RemoveNotInCMIS, DryRun: dryRun,
				Concurrency: p.cfg.Load.Concurrency,
			}
			if courseField != "" {
				if !slices.Contains(load.CourseFields, courseField) {
					return &usageError{err: fmt.Errorf("--course-field %q: want one of %s", courseField, strings.Join(load.CourseFields, ", "))}
				}
				opts.CourseField = courseField
			}
			if userField != "" {
				if !slices.Contains(load.UserFields, userField) {
					return &usageError{err: fmt.Errorf("--user-field %q: want one of %s", userField, strings.Join(load.UserFields, ", "))}
				}
				opts.UserField = userField
			}
			return p.apply(c.Context(), args[0], tryback, opts)
		},
	}
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print what each line would do and send nothing")
	c.Flags().StringVar(&tryback, "tryback", "", `where to write the lines that failed (default: FILE with ".tryback" before its extension)`)
	c.Flags().StringVar(&courseField, "course-field", "", "what the cid column holds: id, shortname or idnumber (default: apply.course_field)")
	c.Flags().StringVar(&userField, "user-field", "", "what the uid column holds: id, username, email or idnumber (default: apply.user_field)")
	c.Flags().BoolVar(&force, "force", false, "let lines change groups the CMIS sync owns: remove users from them (greplace, unenrolment), or add users while load.remove_members_not_in_cmis is on (the nightly load may undo it)")
	return a.withHelp(c)
}

// trybackPath is where the lines of path that fail are written: path with
// ".tryback" before its extension, or path itself when it is a tryback
// file already, so that reruns shrink one file.
func trybackPath(path string) string {
	dir, base := filepath.Split(path)
	if strings.Contains(base, ".tryback") {
		return path
	}
	ext := filepath.Ext(base)
	return filepath.Join(dir, strings.TrimSuffix(base, ext)+".tryback"+ext)
}

// apply reads the command file and carries it out: on a dry run without
// the lock, else as the "apply" step of a run under the lock, with its
// report, its tryback file and its audit rows.
func (p *pipeline) apply(ctx context.Context, path, tryback string, opts load.ApplyOptions) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return &usageError{err: fmt.Errorf("command file: %w", err)}
	}
	f, err := enrolsync.Parse(bytes.NewReader(raw), path)
	if err != nil {
		if errors.Is(err, enrolsync.ErrFormat) {
			return &usageError{err: err}
		}
		return err
	}
	if tryback == "" {
		tryback = trybackPath(path)
	}
	mc, err := p.moodleClient()
	if err != nil {
		return err
	}
	if opts.DryRun {
		res, err := load.Apply(ctx, p.st, mc, f, opts, p.log)
		if err != nil {
			return err
		}
		fmt.Fprintf(p.a.stdout, "Dry run: nothing was sent to Moodle. %s would do this:\n", path)
		p.printApply(res, true)
		if n := res.Counts.LinesFailed; n > 0 {
			return &PartialError{Step: "apply (dry run)", Failures: int(n)}
		}
		return nil
	}
	return p.locked(ctx, func(ctx context.Context) error {
		return p.step(ctx, "apply", func(ctx context.Context) (stepResult, error) {
			res, err := load.Apply(ctx, p.st, mc, f, opts, p.log)
			out := stepResult{advice: []string{
				"Each failed line is in " + tryback + ", after a comment with its reason. Fix the causes, then rerun just them: cmissync apply " + tryback,
				"What this apply changed: cmissync audit --run " + p.runID,
			}}
			if res == nil {
				return out, err
			}
			p.printApply(res, false)
			if werr := p.writeTryback(f, res, tryback); werr != nil {
				err = errors.Join(err, werr)
			}
			fmt.Fprintf(p.a.stdout, "What this apply changed: cmissync audit --run %s\n", p.runID)
			c := res.Counts
			out.counts = c.Map()
			out.summary = []report.Count{
				{Label: "lines read", Value: c.Lines}, {Label: "lines done", Value: c.LinesDone},
				{Label: "lines with nothing to do", Value: c.LinesUnchanged}, {Label: "lines failed", Value: c.LinesFailed},
				{Label: "groups created", Value: c.GroupsCreated}, {Label: "enrolled", Value: c.Enrolled},
				{Label: "roles removed", Value: c.RolesRemoved}, {Label: "unenrolled", Value: c.Unenrolled},
				{Label: "members added", Value: c.Added}, {Label: "members removed", Value: c.Removed},
			}
			for _, fl := range res.Failures {
				fl.Hint = "Fix the cause, then rerun the failed lines: cmissync apply " + tryback
				out.failures = append(out.failures, fl)
			}
			out.notices = append(out.notices, res.Warnings...)
			for _, o := range res.Lines {
				if o.Failed && len(o.Done) == 0 {
					continue // nothing of the line happened
				}
				for _, w := range o.Warnings {
					out.notices = append(out.notices, o.Line.Where(f.Name)+": "+w)
				}
			}
			return out, err
		})
	})
}

// printApply prints each line's outcome and the totals.
func (p *pipeline) printApply(res *load.ApplyResult, dry bool) {
	w := p.a.stdout
	for _, o := range res.Lines {
		fmt.Fprintln(w, o.Text(res.File.Name, dry))
	}
	for _, n := range res.Warnings {
		fmt.Fprintln(w, "warning: "+n)
	}
	c := res.Counts
	verb := "done"
	if dry {
		verb = "would change something"
	}
	fmt.Fprintf(w, "%s: %d lines: %d %s, %d with nothing to do, %d failed (run %s)\n",
		res.File.Name, c.Lines, c.LinesDone, verb, c.LinesUnchanged, c.LinesFailed, p.runID)
}

// writeTryback writes the lines that failed to the tryback file, replacing
// it whole. With no line failed, a tryback file already there (an earlier
// run's, or the file just rerun) is rewritten without lines, so that it no
// longer reruns what is done; none is made otherwise.
func (p *pipeline) writeTryback(f *enrolsync.File, res *load.ApplyResult, path string) error {
	var failed []enrolsync.Failed
	for _, o := range res.Lines {
		if o.Failed {
			failed = append(failed, enrolsync.Failed{Line: o.Line, Reason: o.Reason})
		}
	}
	if len(failed) == 0 {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	note := fmt.Sprintf("cmissync apply, run %s (%s): the %d lines of %s that failed, each after its reason.\nFix the causes, then rerun just them: cmissync apply %s",
		p.runID, time.Now().UTC().Format("2006-01-02 15:04 UTC"), len(failed), f.Name, path)
	if len(failed) == 0 {
		note = fmt.Sprintf("cmissync apply, run %s (%s): every line of %s was applied; nothing is left to rerun.",
			p.runID, time.Now().UTC().Format("2006-01-02 15:04 UTC"), f.Name)
	}
	var buf bytes.Buffer
	if err := enrolsync.WriteTryback(&buf, f, failed, note); err != nil {
		return err
	}
	mode := fs.FileMode(0o600)
	if fi, err := os.Stat(f.Name); err == nil {
		mode = fi.Mode().Perm()
	}
	// Written beside the target and renamed over it: a reader never sees
	// half a file, and the input itself may be the target.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cmissync-tryback-*")
	if err != nil {
		return fmt.Errorf("write the tryback file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("write the tryback file: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write the tryback file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write the tryback file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write the tryback file: %w", err)
	}
	if len(failed) > 0 {
		fmt.Fprintf(p.a.stdout, "The %d failed lines are in %s with their reasons; fix the causes, then: cmissync apply %s\n", len(failed), path, path)
	} else {
		fmt.Fprintf(p.a.stdout, "Every line was applied; %s now holds nothing to rerun.\n", path)
	}
	return nil
}
