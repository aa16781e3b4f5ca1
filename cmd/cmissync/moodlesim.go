package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cmissync/cmissync/extract/sample"
	"github.com/cmissync/cmissync/load/moodlesim"
)

func (a *app) moodleSimCommand() *cobra.Command {
	var (
		listen     string
		seedFile   string
		withSample bool
		maxVars    int
		hideIDNum  bool
	)
	c := &cobra.Command{
		Use:   "moodle-sim",
		Short: "Run the Moodle web-service simulator on a loopback port",
		Long: `Serves a simulated Moodle site (the group, enrolment and user web-service
functions cmissync uses, answering as Moodle 4.5 does) at
http://<listen>/webservice/rest/server.php until interrupted.

The token is read from CMISSYNC_MOODLE_TOKEN; when unset a random one is made
and printed. Seed the site with --seed (a JSON file: courses, users,
enrolments, groups) or --sample (the demo's courses and users).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			token, _ := a.env("CMISSYNC_MOODLE_TOKEN")
			printed := false
			if token == "" {
				token = randomToken()
				printed = true
			}
			sim := moodlesim.New(moodlesim.Options{Token: token, MaxInputVars: maxVars, ShowIdnumber: !hideIDNum, SiteName: "cmissync Moodle simulator"})
			if seedFile != "" {
				f, err := os.Open(seedFile)
				if err != nil {
					return &usageError{err: fmt.Errorf("--seed: %w", err)}
				}
				err = sim.LoadSeed(f)
				f.Close()
				if err != nil {
					return &usageError{err: fmt.Errorf("--seed %s: %w", seedFile, err)}
				}
			}
			if withSample {
				if _, err := seedDemoMoodle(sim, sample.Generate(sample.Demo()), demoUnenrolled); err != nil {
					return err
				}
			}
			if !strings.HasPrefix(listen, "127.") && !strings.HasPrefix(listen, "localhost:") && !strings.HasPrefix(listen, "[::1]:") {
				return &usageError{err: fmt.Errorf("--listen %s: the simulator only listens on loopback addresses", listen)}
			}
			url, err := sim.Start(listen)
			if err != nil {
				return err
			}
			defer sim.Close()
			fmt.Fprintf(a.stdout, "Moodle simulator listening: moodle.url = %q\n", url)
			if printed {
				fmt.Fprintf(a.stdout, "token (set CMISSYNC_MOODLE_TOKEN to choose one): %s\n", token)
			}
			fmt.Fprintln(a.stdout, "Press Ctrl-C to stop.")
			<-c.Context().Done()
			return nil
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8088", "loopback address and port to listen on")
	c.Flags().StringVar(&seedFile, "seed", "", "JSON seed file with courses, users, enrolments and groups")
	c.Flags().BoolVar(&withSample, "sample", false, "seed with the demo's sample courses, users and enrolments")
	c.Flags().IntVar(&maxVars, "max-input-vars", 1000, "emulated PHP max_input_vars")
	c.Flags().BoolVar(&hideIDNum, "hide-idnumber", false, "do not show user idnumbers (as a site whose showuseridentity lacks idnumber)")
	return c
}
