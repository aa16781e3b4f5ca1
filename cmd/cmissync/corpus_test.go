package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/extract/sample"
	"github.com/cmissync/cmissync/load/moodlesim"
	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// corpus is an installation whose CMIS source is three CSV files, synced
// once cleanly before a case breaks something.
type corpus struct {
	t      *testing.T
	dir    string
	cmis   string
	config string
	env    map[string]string
	sim    *moodlesim.Server
	st     *store.Store
	data   sample.Dataset
	seed   demoSeed
}

func newCorpus(t *testing.T, engine string) *corpus {
	t.Helper()
	ctx := context.Background()
	c := &corpus{t: t, dir: t.TempDir(), data: sample.Generate(sample.Demo())}
	c.cmis = filepath.Join(c.dir, "cmis")
	if err := sample.WriteCSV(c.cmis, c.data); err != nil {
		t.Fatal(err)
	}
	c.sim = moodlesim.New(moodlesim.Options{Token: testToken, ShowIdnumber: true})
	url, err := c.sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.sim.Close() })
	if c.seed, err = seedDemoMoodle(c.sim, c.data, 0); err != nil {
		t.Fatal(err)
	}
	_, dsn := storetest.DSN(t, engine)
	c.config = filepath.Join(c.dir, "cmissync.toml")
	cfg := fmt.Sprintf(`[staging]
engine = %q
dsn = %q

[source]
type = "csv"
csv_dir = %q

[moodle]
url = %q
retry_wait = "5ms"

[email]
report_dir = %q

[log]
level = "error"
`, engine, dsn, c.cmis, url, filepath.Join(c.dir, "reports"))
	if err := os.WriteFile(c.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c.env = map[string]string{"CMISSYNC_MOODLE_TOKEN": testToken}
	c.must(exitOK, "migrate")
	if c.st, err = store.Open(ctx, engine, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.st.Close() })
	for _, m := range c.data.Mappings {
		if err := c.st.UpsertMapping(ctx, store.Mapping{CourseID: c.seed.courseIDs[m.CourseShortName], ModuleCode: m.ModuleCode}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *corpus) cmd(args ...string) (int, string, string) {
	var out, errs bytes.Buffer
	env := func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }
	code := execute(context.Background(), append(args, "--config", c.config), &out, &errs, env)
	return code, out.String(), errs.String()
}

func (c *corpus) must(want int, args ...string) {
	c.t.Helper()
	if code, out, errs := c.cmd(args...); code != want {
		c.t.Fatalf("cmissync %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), code, want, out, errs)
	}
}

// owned lists what cmissync owns in Moodle: "course idnumber" for its
// groupings and groups, "course idnumber member" for their members.
func (c *corpus) owned() map[string]bool {
	st := c.sim.State()
	idn := map[int]string{}
	for _, u := range st.Users {
		idn[u.ID] = u.IDNumber
	}
	out := map[string]bool{}
	for _, g := range st.Groupings {
		if stage.IsOwnedIDNumber(g.IDNumber) {
			out[fmt.Sprintf("%d %s", g.CourseID, g.IDNumber)] = true
		}
	}
	for _, g := range st.Groups {
		if !stage.IsOwnedIDNumber(g.IDNumber) {
			continue
		}
		out[fmt.Sprintf("%d %s", g.CourseID, g.IDNumber)] = true
		for _, u := range g.Members {
			out[fmt.Sprintf("%d %s %s", g.CourseID, g.IDNumber, idn[u])] = true
		}
	}
	return out
}

// file returns the lines of a CMIS CSV file (without line ends).
func (c *corpus) lines(name string) []string {
	b, err := os.ReadFile(filepath.Join(c.cmis, name))
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// write replaces a CMIS CSV file; end is what follows the last line.
func (c *corpus) write(name string, lines []string, end string) {
	if err := os.WriteFile(filepath.Join(c.cmis, name), []byte(strings.Join(lines, "\n")+end), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// edit changes line n (1-based, the header is line 1) of a CMIS CSV file.
func (c *corpus) edit(name string, n int, fn func(string) string) {
	ls := c.lines(name)
	ls[n-1] = fn(ls[n-1])
	c.write(name, ls, "\n")
}

func (c *corpus) sql(query string, args ...any) {
	if _, err := c.st.DB().ExecContext(context.Background(), query, args...); err != nil {
		c.t.Fatal(err)
	}
}

// reports returns the text of every report written since the reports
// directory was last emptied, decoded, and standard error.
func (c *corpus) reports(stderr string) string {
	paths, _ := filepath.Glob(filepath.Join(c.dir, "reports", "*.eml"))
	var b strings.Builder
	b.WriteString(stderr)
	for _, p := range paths {
		raw, _ := os.ReadFile(p)
		dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
		if err != nil {
			dec = raw
		}
		b.Write(dec)
	}
	return b.String()
}

// field returns column i of a CSV line written by sample.WriteCSV (no
// quoted commas in codes and ids).
func field(line string, i int) string { return strings.Split(line, ",")[i] }

// corpusCase breaks something and says what may and must follow.
type corpusCase struct {
	name string
	// breaks changes the CMIS files, staging or Moodle after a clean sync;
	// it returns what, of what cmissync owned, the case validly removes
	// (keys as corpus.owned gives them) and may therefore vanish.
	breaks func(c *corpus) []string
	// exits are the acceptable exit codes of the run that follows.
	exits []int
	// report lists texts the reports or standard error must hold (file,
	// line, field, reason).
	report []string
}

// corpusCases are the bad inputs of the review that found cmissync
// deleting on bad evidence, and others like them. The invariant, for
// every one: Moodle loses nothing CMIS still lists validly.
func corpusCases() []corpusCase {
	const groups, members, tutors = "module_groups.csv", "group_members.csv", "group_tutors.csv"
	return []corpusCase{
		{name: "bare quote in a group title", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				c.edit(groups, 3, func(l string) string { return l + `x"y` })
				return nil
			}, report: []string{groups, "line 3"}},
		{name: "unterminated quote mid-file swallows every later group row", exits: []int{exitPartial, exitHeld},
			breaks: func(c *corpus) []string {
				c.edit(groups, 4, func(l string) string {
					f := strings.SplitN(l, ",", 3)
					return f[0] + "," + f[1] + `,"` + f[2]
				})
				return nil
			}, report: []string{groups, "line 4"}},
		{name: "a group row with a field too many", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				c.edit(groups, 3, func(l string) string { return l + ",extra" })
				return nil
			}, report: []string{groups, "line 3"}},
		{name: "a group row with a field too few", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				c.edit(groups, 5, func(l string) string { return strings.Join(strings.Split(l, ",")[:2], ",") })
				return nil
			}, report: []string{groups, "line 5"}},
		{name: "module groups file cut off in its last record", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				ls := c.lines(groups)
				last := ls[len(ls)-1]
				ls[len(ls)-1] = last[:len(last)-4]
				c.write(groups, ls, "")
				return nil
			}, report: []string{groups}},
		{name: "members file cut off in the middle of an id", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				ls := c.lines(members)
				last := ls[len(ls)-1]
				ls[len(ls)-1] = last[:len(last)-2]
				c.write(members, ls, "")
				return nil
			}, report: []string{members}},
		{name: "tutors file cut off at the end of a record", exits: []int{exitPartial, exitOK},
			breaks: func(c *corpus) []string {
				c.write(tutors, c.lines(tutors), "")
				return nil
			}},
		{name: "NUL byte in a student id", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				c.edit(members, 5, func(l string) string { return l[:len(l)-2] + "\x00" + l[len(l)-2:] })
				return nil
			}, report: []string{members, "line 5", "studentid"}},
		{name: "replacement character in a group code", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				c.edit(groups, 3, func(l string) string {
					f := strings.Split(l, ",")
					f[1] += "\uFFFD"
					return strings.Join(f, ",")
				})
				return nil
			}, report: []string{groups, "line 3", "groupcode"}},
		{name: "blank student id", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				c.edit(members, 6, func(l string) string { f := strings.Split(l, ","); f[2] = ""; return strings.Join(f, ",") })
				return nil
			}, report: []string{members, "line 6", "studentid"}},
		{name: "whitespace-only staff id", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				c.edit(tutors, 2, func(l string) string { f := strings.Split(l, ","); f[2] = "   "; return strings.Join(f, ",") })
				return nil
			}, report: []string{tutors, "line 2", "staffid"}},
		{name: "stray quote in the members file", exits: []int{exitPartial, exitHeld},
			breaks: func(c *corpus) []string {
				c.edit(members, 7, func(l string) string { return `"` + l })
				return nil
			}, report: []string{members, "line 7"}},
		{name: "group title mangled by a wrong charset", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				c.edit(groups, 2, func(l string) string { f := strings.Split(l, ","); f[3] = "SÃ©minaire"; return strings.Join(f, ",") })
				return nil
			}, report: []string{groups, "line 2", "mangled"}},
		{name: "group title longer than Moodle allows", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				c.edit(groups, 2, func(l string) string {
					f := strings.Split(l, ",")
					f[3] = strings.Repeat("x", 300)
					return strings.Join(f, ",")
				})
				return nil
			}, report: []string{groups, "line 2", "groupname"}},
		{name: "duplicated member row", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				ls := c.lines(members)
				c.write(members, append(ls, ls[3]), "\n")
				return nil
			}, report: []string{members, "duplicate"}},
		{name: "members file emptied (an outage)", exits: []int{exitHeld},
			breaks: func(c *corpus) []string {
				c.write(members, c.lines(members)[:1], "\n")
				return nil
			}, report: []string{"approve-shrink"}},
		{name: "members file missing", exits: []int{exitFatal, exitUsage},
			breaks: func(c *corpus) []string {
				if err := os.Remove(filepath.Join(c.cmis, members)); err != nil {
					c.t.Fatal(err)
				}
				return nil
			}, report: []string{members}},
		{name: "a renamed column", exits: []int{exitFatal, exitUsage},
			breaks: func(c *corpus) []string {
				c.edit(members, 1, func(string) string { return "modulecode,groupcode,student_id" })
				return nil
			}, report: []string{"studentid"}},
		{name: "file saved as UTF-16", exits: []int{exitFatal, exitUsage},
			breaks: func(c *corpus) []string {
				b, _ := os.ReadFile(filepath.Join(c.cmis, groups))
				u := []byte{0xFF, 0xFE}
				for _, r := range string(b) {
					u = append(u, byte(r), byte(r>>8))
				}
				if err := os.WriteFile(filepath.Join(c.cmis, groups), u, 0o644); err != nil {
					c.t.Fatal(err)
				}
				return nil
			}, report: []string{"UTF-16"}},
		{name: "byte order mark and CRLF line ends are fine", exits: []int{exitOK},
			breaks: func(c *corpus) []string {
				for _, f := range []string{groups, members, tutors} {
					c.write(f, c.lines(f), "\r\n")
					b, _ := os.ReadFile(filepath.Join(c.cmis, f))
					b = append([]byte("\xEF\xBB\xBF"), bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))...)
					b = bytes.ReplaceAll(b, []byte("\r\r\n"), []byte("\r\n"))
					if err := os.WriteFile(filepath.Join(c.cmis, f), b, 0o644); err != nil {
						c.t.Fatal(err)
					}
				}
				return nil
			}},
		{name: "mapped_modules emptied", exits: []int{exitHeld},
			breaks: func(c *corpus) []string { c.sql(`DELETE FROM mapped_modules`); return nil },
			report: []string{"mapped_modules is empty"}},
		{name: "mapping values in lower case", exits: []int{exitOK},
			breaks: func(c *corpus) []string {
				c.sql(`UPDATE mapped_modules SET group_import = 'add', mapping_action = 'Add'`)
				return nil
			}},
		{name: "a mapping value that is neither ADD nor RMV", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				c.sql(`UPDATE mapped_modules SET group_import = 'ADX'`)
				return nil
			}, report: []string{"ADX", "not ADD or RMV"}},
		{name: "a membership table emptied by hand", exits: []int{exitOK},
			breaks: func(c *corpus) []string { c.sql(`DELETE FROM cmis_groupmembers`); return nil }},
		{name: "a valid removal beside a refused member row", exits: []int{exitPartial},
			breaks: func(c *corpus) []string {
				ls := c.lines(members)
				gone := ls[2]
				// Line 9 gets a NUL in its id; the row of line 3 leaves CMIS.
				ls[8] = ls[8][:len(ls[8])-1] + "\x00"
				c.write(members, append(ls[:2:2], ls[3:]...), "\n")
				var removed []string
				for _, m := range c.data.Mappings {
					if m.ModuleCode == field(gone, 0) {
						removed = append(removed, fmt.Sprintf("%d %s %s", c.seed.courseIDs[m.CourseShortName], stage.GroupIDNumber(field(gone, 0), field(gone, 1)), field(gone, 2)))
					}
				}
				return removed
			}, report: []string{members, "studentid"}},
	}
}

// TestBadInputNeverDeletes runs every case through the real command line
// on both staging engines: after a clean sync, something is broken, and
// the next run must leave Moodle holding everything CMIS still lists
// validly, exit as documented, and name the file, line and field.
func TestBadInputNeverDeletes(t *testing.T) {
	for _, tc := range corpusCases() {
		for _, engine := range storetest.Engines {
			t.Run(tc.name+"/"+engine, func(t *testing.T) {
				t.Parallel()
				c := newCorpus(t, engine)
				c.must(exitOK, "run")
				before := c.owned()
				if len(before) < 50 {
					t.Fatalf("the clean sync made only %d objects", len(before))
				}
				may := map[string]bool{}
				for _, k := range tc.breaks(c) {
					may[k] = true
				}
				os.RemoveAll(filepath.Join(c.dir, "reports"))
				code, out, errs := c.cmd("run")
				ok := false
				for _, e := range tc.exits {
					ok = ok || code == e
				}
				if !ok {
					t.Errorf("exit %d, want one of %v\n%s\n%s", code, tc.exits, out, errs)
				}
				after := c.owned()
				var lost []string
				for k := range before {
					if !after[k] && !may[k] {
						lost = append(lost, k)
					}
				}
				sort.Strings(lost)
				if len(lost) > 0 {
					t.Errorf("Moodle lost %d things CMIS still lists validly: %v", len(lost), lost)
				}
				for k := range may {
					if after[k] {
						t.Errorf("%s was validly removed from CMIS but is still in Moodle", k)
					}
				}
				text := c.reports(errs)
				for _, want := range tc.report {
					if !strings.Contains(text, want) {
						t.Errorf("the reports do not say %q:\n%s", want, text)
					}
				}
				// Whatever happened, a run once the input is fixed converges
				// and still loses nothing CMIS lists.
				if err := sample.WriteCSV(c.cmis, c.data); err != nil {
					t.Fatal(err)
				}
				for _, m := range c.data.Mappings {
					if err := c.st.UpsertMapping(context.Background(), store.Mapping{CourseID: c.seed.courseIDs[m.CourseShortName], ModuleCode: m.ModuleCode}); err != nil {
						t.Fatal(err)
					}
				}
				c.cmd("run", "--approve-shrink", "--approve-deletes")
				if code, out, errs := c.cmd("run"); code != exitOK {
					t.Fatalf("after fixing the input: exit %d\n%s\n%s", code, out, errs)
				}
				final := c.owned()
				for k := range before {
					if !final[k] {
						t.Errorf("after fixing the input, %s is missing", k)
					}
				}
			})
		}
	}
}

// TestCodesWithColonsNeverCollide: module A:B group C and module A group
// B:C are two groups; dropping one never deletes the other.
func TestCodesWithColonsNeverCollide(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			c := newCorpus(t, engine)
			course := c.seed.courseIDs[c.data.Courses[0].ShortName]
			for _, m := range []string{"A:B", "A"} {
				if err := c.st.UpsertMapping(context.Background(), store.Mapping{CourseID: course, ModuleCode: m}); err != nil {
					t.Fatal(err)
				}
			}
			ls := c.lines("module_groups.csv")
			c.write("module_groups.csv", append(ls, "A:B,C,Module AB,Group C", "A,B:C,Module A,Group BC"), "\n")
			c.must(exitOK, "run")
			one, two := stage.GroupIDNumber("A:B", "C"), stage.GroupIDNumber("A", "B:C")
			have := c.owned()
			for _, idn := range []string{one, two} {
				if !have[fmt.Sprintf("%d %s", course, idn)] {
					t.Fatalf("%s missing from Moodle: %v", idn, have)
				}
			}
			c.write("module_groups.csv", append(ls, "A,B:C,Module A,Group BC"), "\n")
			c.must(exitOK, "run")
			have = c.owned()
			if have[fmt.Sprintf("%d %s", course, one)] || !have[fmt.Sprintf("%d %s", course, two)] {
				t.Fatalf("dropping A:B C: %v", have)
			}
		})
	}
}

// damaged is what was done to a file this round. Two changes to its
// structure (quotes, commas, joined lines) could rebuild a valid record out
// of pieces, e.g. a comma inserted and another removed, which no reader
// can tell from data: a file gets one at most. Once cut off, a file stays
// without its final line break (restoring it would turn the cut record
// into a different, valid one).
type damaged struct{ structural, cut bool }

// damage applies one damaging change to a CMIS CSV file: a change that can
// only make records unreadable or malformed, never turn a record into a
// different valid one, so after it Moodle must lose nothing at all.
func damage(c *corpus, rng *mrand.Rand, file string, done map[string]*damaged) string {
	if done[file] == nil {
		done[file] = &damaged{}
	}
	d := done[file]
	ls := c.lines(file)
	if len(ls) < 2 || len(ls[len(ls)-1]) < 2 {
		return file + ": left as it is"
	}
	line := 1 + rng.IntN(len(ls)-1) // never the header
	l := ls[line]
	at := len(l)
	if len(l) > 1 {
		at = 1 + rng.IntN(len(l)-1)
	}
	insert := func(s string) { ls[line] = l[:at] + s + l[at:] }
	end := "\n"
	if d.cut {
		end = ""
	}
	var what string
	switch op := rng.IntN(7); {
	case op == 0:
		ch := []string{"\x00", "\x01", "\x7f", "\x1b"}[rng.IntN(4)]
		insert(ch)
		what = fmt.Sprintf("control character %q at line %d", ch, line+1)
	case op == 1:
		ch := []string{"\uFFFD", "\xff", "\xc3"}[rng.IntN(3)]
		insert(ch)
		what = fmt.Sprintf("bad bytes %q at line %d", ch, line+1)
	case op == 2 && !d.structural:
		d.structural = true
		insert(`"`)
		what = fmt.Sprintf("a quote at line %d", line+1)
	case op == 3 && !d.structural:
		d.structural = true
		insert(",")
		what = fmt.Sprintf("an extra comma at line %d", line+1)
	case op == 4 && !d.structural:
		d.structural = true
		i := strings.Index(l, ",")
		ls[line] = l[:i] + l[i+1:]
		what = fmt.Sprintf("a missing comma at line %d", line+1)
	case op == 5 && line < len(ls)-1 && !d.structural:
		d.structural = true
		ls[line] = l + ls[line+1]
		ls = append(ls[:line+1], ls[line+2:]...)
		what = fmt.Sprintf("lines %d and %d joined", line+1, line+2)
	default:
		last := ls[len(ls)-1]
		ls[len(ls)-1] = last[:rng.IntN(len(last)+1)]
		if ls[len(ls)-1] == "" {
			ls = ls[:len(ls)-1]
			last := ls[len(ls)-1]
			ls[len(ls)-1] = last[:len(last)-1]
		}
		end, d.cut = "", true
		what = "cut off in its last record"
	}
	c.write(file, ls, end)
	return file + ": " + what
}

// TestRandomDamageNeverDeletes is the property behind the corpus: whatever
// damage reaches the CSV files (unreadable bytes, broken quoting, fields too
// many or too few, a file cut off), the run reports it and Moodle loses
// nothing; once the files are whole again, nothing is missing. The damage
// is drawn from a fixed seed; CMISSYNC_DAMAGE_RUNS sets how many rounds.
func TestRandomDamageNeverDeletes(t *testing.T) {
	rounds := 30
	if v, ok := os.LookupEnv("CMISSYNC_DAMAGE_RUNS"); ok {
		fmt.Sscan(v, &rounds)
	}
	c := newCorpus(t, store.EngineSQLite)
	c.must(exitOK, "run")
	before := c.owned()
	rng := mrand.New(mrand.NewPCG(2026, 11))
	files := []string{"module_groups.csv", "group_members.csv", "group_tutors.csv"}
	clean := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(c.cmis, f))
		if err != nil {
			t.Fatal(err)
		}
		clean[f] = b
	}
	for round := 0; round < rounds; round++ {
		state := map[string]*damaged{}
		var done []string
		for n := 1 + rng.IntN(3); n > 0; n-- {
			done = append(done, damage(c, rng, files[rng.IntN(len(files))], state))
		}
		changed := false
		for _, f := range files {
			now, _ := os.ReadFile(filepath.Join(c.cmis, f))
			changed = changed || !bytes.Equal(now, clean[f])
		}
		code, out, errs := c.cmd("run")
		if changed && code != exitPartial && code != exitHeld {
			t.Errorf("round %d (%s): exit %d, want %d or %d\n%s\n%s", round, strings.Join(done, "; "), code, exitPartial, exitHeld, out, errs)
		}
		after := c.owned()
		var lost []string
		for k := range before {
			if !after[k] {
				lost = append(lost, k)
			}
		}
		if len(lost) > 0 {
			sort.Strings(lost)
			t.Fatalf("round %d (%s): Moodle lost %v", round, strings.Join(done, "; "), lost)
		}
		if err := sample.WriteCSV(c.cmis, c.data); err != nil {
			t.Fatal(err)
		}
		if code, out, errs := c.cmd("run"); code != exitOK {
			t.Fatalf("round %d: after repair, exit %d\n%s\n%s", round, code, out, errs)
		}
	}
}

// TestNoDeletesHoldsEveryDeletion: run --no-deletes does everything but
// delete, and says what it held back.
func TestNoDeletesHoldsEveryDeletion(t *testing.T) {
	c := newCorpus(t, store.EngineSQLite)
	c.must(exitOK, "run")
	ls := c.lines("group_members.csv")
	gone := ls[1]
	c.write("group_members.csv", append(ls[:1:1], ls[2:]...), "\n")
	key := fmt.Sprintf("%s %s", stage.GroupIDNumber(field(gone, 0), field(gone, 1)), field(gone, 2))
	has := func() bool {
		for k := range c.owned() {
			if strings.HasSuffix(k, key) {
				return true
			}
		}
		return false
	}
	os.RemoveAll(filepath.Join(c.dir, "reports"))
	c.must(exitOK, "run", "--no-deletes")
	if !has() {
		t.Fatal("run --no-deletes removed a member")
	}
	if text := c.reports(""); !strings.Contains(text, "--no-deletes") || !strings.Contains(text, field(gone, 2)) {
		t.Fatalf("the report does not list the held removal:\n%s", text)
	}
	c.must(exitOK, "run")
	if has() {
		t.Fatal("the removal did not happen once allowed")
	}
}
