package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manCommand writes the manual pages, generated from the commands
// themselves, so that they never disagree with --help.
func (a *app) manCommand() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "man",
		Short: "Write the manual pages of cmissync and its commands",
		Long: `Writes one troff manual page per command (cmissync.1, cmissync-run.1, ...)
into --dir, generated from the commands' help, to be installed under
/usr/share/man/man1 (scripts/release.sh ships them). The date in the pages is
$SOURCE_DATE_EPOCH when it is set, so that a release build is reproducible,
and today otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			date := time.Now()
			if v, ok := a.env("SOURCE_DATE_EPOCH"); ok && v != "" {
				sec, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return &usageError{err: fmt.Errorf("SOURCE_DATE_EPOCH = %q: want seconds since the epoch", v)}
				}
				date = time.Unix(sec, 0).UTC()
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			root := c.Root()
			root.DisableAutoGenTag = true
			preformat(root)
			header := &doc.GenManHeader{Title: "CMISSYNC", Section: "1", Source: "cmissync", Manual: "cmissync manual", Date: &date}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("write manual pages: %w", err)
			}
			fmt.Fprintf(a.stdout, "manual pages written to %s\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "directory to write the pages into (created if need be)")
	return c
}

// preformat keeps the indented blocks of the commands' help (the exit
// codes, numbered steps) as they are in the manual pages: the generator
// reads help as Markdown, where only a block indented by four spaces after
// a blank line is kept as written.
func preformat(c *cobra.Command) {
	var out []string
	inBlock := false
	for _, line := range strings.Split(c.Long, "\n") {
		indented := strings.HasPrefix(line, "  ")
		if indented && !inBlock && len(out) > 0 && out[len(out)-1] != "" {
			out = append(out, "")
		}
		if indented {
			line = "  " + line
		}
		inBlock = indented
		out = append(out, line)
	}
	c.Long = strings.Join(out, "\n")
	for _, sub := range c.Commands() {
		preformat(sub)
	}
}
