package extract_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmissync/cmissync/extract"
	"github.com/cmissync/cmissync/stage/store"
	"github.com/cmissync/cmissync/stage/store/storetest"
)

// FuzzCSVRefusedRowsProtect damages a valid CSV source and checks the rule
// that bad data never deletes anything: every record of the original files
// that the damaged files still hold, unchanged and on a line of its own, is
// either in the dump or covered by a key the extract refused in its view, so
// nothing CMIS still lists can be deleted for being absent.
//
// The damage breaks values and structure, and never makes another valid
// value on its own: cut a file anywhere; put in or replace a byte with a
// quote, a comma, a NUL, an invalid or mangled byte; put in a CR or a tab;
// delete a quote, comma or line break; open a quoted field; delete, repeat,
// move lines or add blank ones. (A digit turned into another digit would be
// a different valid record, which no extract can tell from the truth.) So
// when at most one operation changes the structure (quotes, commas, line
// breaks, lines), no row may be accepted whose key the original files did
// not hold: no id cut short at the end of a file, no record made of pieces
// of others. Two such operations can rebuild a valid-looking record (a
// comma deleted between two codes and another put in further on), which is
// data as far as any reader can tell; the first rule still holds then.
//
// `go test` runs the seeds below. To look for more, for as long as you
// like (new failing inputs land in testdata/fuzz, which then replays them):
//
//	go test ./extract -run '^$' -fuzz FuzzCSVRefusedRowsProtect -fuzztime 10m
func FuzzCSVRefusedRowsProtect(f *testing.F) {
	for _, seed := range protectSeeds() {
		f.Add(seed)
	}
	// One store for all inputs: each extract replaces the dump, and
	// RefusedKeys reads the refused rows of the last one only.
	st := storetest.Open(f, store.EngineSQLite)
	runs := 0
	f.Fuzz(func(t *testing.T, in []byte) {
		runs++
		orig := generateCSV(in)
		var ops []byte
		if len(in) > genHeader {
			ops = in[genHeader:]
		}
		texts, structural := damage(orig, ops)
		dir := t.TempDir()
		for i, g := range orig {
			if err := os.WriteFile(filepath.Join(dir, g.name), []byte(texts[i]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		src, err := extract.OpenCSV(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		res, err := extract.Run(ctx, src, st, extract.Options{RunID: fmt.Sprint("fuzz-", runs)}, quietLog())
		if err != nil {
			// A header the contract refuses stops the extract: nothing is
			// committed, so nothing can be deleted because of it.
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("extract failed for another reason than a CSV file: %v", err)
			}
			return
		}
		keys, err := st.RefusedKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range orig {
			checkProtected(t, st, g, texts[i], keys, res, structural <= 1)
		}
	})
}

// checkProtected checks the rule for one file of the source; onlyOriginal
// also checks that every key loaded is one the original file held.
func checkProtected(t *testing.T, st *store.Store, g genFile, text string, keys []store.RefusedKey, res extract.Result, onlyOriginal bool) {
	t.Helper()
	if res.Read[g.table] != res.Loaded[g.table]+res.Rejected[g.table] {
		t.Errorf("%s: read %d, loaded %d, rejected %d", g.table, res.Read[g.table], res.Loaded[g.table], res.Rejected[g.table])
	}
	n := keyLen(g.table)
	loaded := map[string]bool{}
	for _, r := range storetest.DumpRows(t, st, g.table) {
		key := strings.Join(strings.Split(r, "|")[:n], "|")
		loaded[key] = true
		if onlyOriginal && !g.keys[key] {
			t.Errorf("%s holds %q, which %s never had; the file was:\n%s", g.table, r, g.name, excerpt(text))
		}
	}
	holds := completeLines(text)
	for _, rec := range g.records {
		if !holds[rec.body] {
			continue
		}
		k := rec.fields[:n]
		if loaded[strings.Join(k, "|")] {
			continue
		}
		var cmisid string
		if n == 3 {
			cmisid = k[2]
		}
		covered := false
		for _, rk := range keys {
			if rk.Table == g.table && rk.Covers(k[0], k[1], cmisid) {
				covered = true
				break
			}
		}
		if !covered {
			t.Errorf("%s: %q is still in the file but neither loaded nor covered by a refused key %v; the file was:\n%s",
				g.name, rec.body, keys, excerpt(text))
		}
	}
}

func keyLen(t store.DumpTable) int {
	if t == store.ModuleGroups {
		return 2
	}
	return 3
}

// completeLines returns the lines text holds on their own: each after a
// line break, up to a line break (LF or CRLF), or a lone CR at the end, or
// the end. A line at the very start is the header's place.
func completeLines(text string) map[string]bool {
	lines := strings.Split(text, "\n")
	out := make(map[string]bool, len(lines))
	for _, l := range lines[1:] {
		out[strings.TrimSuffix(l, "\r")] = true
	}
	return out
}

// excerpt shows a damaged file in a failure message, cut to a readable size.
func excerpt(text string) string {
	const max = 3000
	if len(text) > max {
		return fmt.Sprintf("%q... (%d bytes)", text[:max], len(text))
	}
	return fmt.Sprintf("%q", text)
}

// genFile is one generated CSV file: its text and its data records.
type genFile struct {
	name    string
	table   store.DumpTable
	text    string
	records []genRecord
	keys    map[string]bool // the keys of its records, joined by "|"
}

// genRecord is one data record: its line without the line break, and its
// values in the table's column order.
type genRecord struct {
	body   string
	fields []string
}

// genHeader is the number of input bytes that shape the generated source;
// the rest are damage operations.
const genHeader = 4

// Input byte 0 sets the number of groups (255: 200, the size of the file in
// which one bad title once deleted 30 groups); byte 1 the most members per
// group; byte 2 the line ends and column orders; byte 3 the shuffle.
func generateCSV(in []byte) []genFile {
	var h [genHeader]byte
	copy(h[:], in)
	groups, maxMembers := 1+int(h[0])%24, int(h[1])%6
	if h[0] == 255 {
		groups, maxMembers = 200, 31
	}
	rng := rand.New(rand.NewPCG(uint64(h[3]), uint64(h[0])<<8|uint64(h[1])))
	moduleNames := []string{"Algorithms", "Littérature française", "Data, Logic & Proof", ""}
	groupNames := []string{"Seminar %d", "Lab %d, Friday", `Tutorial "%d"`, "Séminaire %d", "", "  Workshop %d  "}
	prefixes := []string{"SEM", "LAB", "TUT"}
	var mg, gm, gt [][]string
	for i := range groups {
		module := fmt.Sprintf("MOD%04d", 1000+i/4)
		group := fmt.Sprintf("%s%03d", prefixes[i%3], i)
		name := groupNames[rng.IntN(len(groupNames))]
		if strings.Contains(name, "%d") {
			name = fmt.Sprintf(name, i)
		}
		mg = append(mg, []string{module, group, moduleNames[(i/4)%len(moduleNames)], name})
		members := maxMembers
		if h[0] != 255 {
			members = rng.IntN(maxMembers + 1)
		}
		first := rng.IntN(50)
		for m := range members {
			gm = append(gm, []string{module, group, fmt.Sprintf("%08d", 10000000+first+m)})
		}
		if rng.IntN(2) == 0 {
			gt = append(gt, []string{module, group, fmt.Sprintf("S%06d", rng.IntN(20))})
		}
	}
	for _, rows := range [][][]string{mg, gm, gt} {
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	}
	// Members and tutors may name their id first: any column order works.
	order := func(bit byte, t store.DumpTable) []int {
		if h[2]&bit != 0 && t != store.ModuleGroups {
			return []int{2, 0, 1}
		}
		return []int{0, 1, 2, 3}[:len(t.Columns())]
	}
	return []genFile{
		writeGenFile(extract.DefaultCSVFile(store.ModuleGroups), store.ModuleGroups, mg, h[2]&1 != 0, order(0, store.ModuleGroups)),
		writeGenFile(extract.DefaultCSVFile(store.GroupMembers), store.GroupMembers, gm, h[2]&2 != 0, order(8, store.GroupMembers)),
		writeGenFile(extract.DefaultCSVFile(store.GroupTutors), store.GroupTutors, gt, h[2]&4 != 0, order(16, store.GroupTutors)),
	}
}

// writeGenFile writes rows (in column order) as CSV with the columns in the
// given order.
func writeGenFile(name string, t store.DumpTable, rows [][]string, crlf bool, order []int) genFile {
	line := func(vals []string) string {
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		w.UseCRLF = crlf
		out := make([]string, len(order))
		for i, j := range order {
			out[i] = vals[j]
		}
		_ = w.Write(out)
		w.Flush()
		return b.String()
	}
	g := genFile{name: name, table: t, keys: map[string]bool{}}
	var text strings.Builder
	text.WriteString(line(t.Columns()))
	for _, r := range rows {
		l := line(r)
		text.WriteString(l)
		g.records = append(g.records, genRecord{body: strings.TrimRight(l, "\r\n"), fields: r})
		g.keys[strings.Join(r[:keyLen(t)], "|")] = true
	}
	g.text = text.String()
	return g
}

// Damage operations: each is 5 input bytes, kind, file, position (2 bytes,
// a share of the file's length) and an argument.
const (
	opCut = iota
	opInsert
	opReplace
	opDeleteStructural
	opDeleteLine
	opRepeatLine
	opMoveLine
	opBlankLine
	opOpenQuote
	opKinds
)

// inserts may go anywhere: each breaks the value it lands in, or lands
// where it changes nothing (a CR before a line feed, a tab beside a value).
var inserts = []string{`"`, ",", "\x00", "\xff", "\uFFFD", "Ã©", "\xe9", "\r", "\t"}

// replacements break what they replace; whitespace is not one of them, as
// a value whose last character becomes a space is a shorter valid value.
var replacements = []string{`"`, ",", "\x00", "\xff", "\uFFFD", "Ã©"}

// damage applies the operations in ops to the files' texts. It also counts
// the operations that change the structure: quotes, commas, line breaks or
// whole lines.
func damage(files []genFile, ops []byte) (_ []string, structural int) {
	texts := make([]string, len(files))
	for i, g := range files {
		texts[i] = g.text
	}
	for len(ops) >= 5 {
		kind, file := int(ops[0])%opKinds, int(ops[1])%len(files)
		share, arg := binary.BigEndian.Uint16(ops[2:4]), ops[4]
		ops = ops[5:]
		text := texts[file]
		at := func(n int) int { return int(share) * (n + 1) / 65536 }
		switch kind {
		case opInsert:
			if p := inserts[int(arg)%len(inserts)]; p == `"` || p == "," {
				structural++
			}
		case opReplace:
			if p := replacements[int(arg)%len(replacements)]; p == `"` || p == "," {
				structural++
			}
		case opBlankLine:
		default:
			structural++
		}
		switch kind {
		case opCut:
			text = text[:at(len(text))]
		case opInsert:
			p := at(len(text))
			text = text[:p] + inserts[int(arg)%len(inserts)] + text[p:]
		case opReplace:
			if text != "" {
				p := min(at(len(text)), len(text)-1)
				text = text[:p] + replacements[int(arg)%len(replacements)] + text[p+1:]
			}
		case opDeleteStructural:
			var places []int
			for i := 0; i < len(text); i++ {
				if strings.IndexByte("\",\n\r", text[i]) >= 0 {
					places = append(places, i)
				}
			}
			if len(places) > 0 {
				p := places[min(at(len(places)), len(places)-1)]
				text = text[:p] + text[p+1:]
			}
		case opOpenQuote:
			// A quote at the start of a field opens a quoted field, which
			// runs on until some later quote closes it.
			var places []int
			for i := 0; i < len(text); i++ {
				if text[i] == ',' {
					places = append(places, i+1)
				}
			}
			if len(places) > 0 {
				p := places[min(at(len(places)), len(places)-1)]
				text = text[:p] + `"` + text[p:]
			}
		case opDeleteLine, opRepeatLine, opMoveLine, opBlankLine:
			lines := strings.SplitAfter(text, "\n")
			k := min(at(len(lines)), len(lines)-1)
			l := lines[k]
			switch kind {
			case opDeleteLine:
				lines = append(lines[:k], lines[k+1:]...)
			case opRepeatLine:
				lines = append(lines[:k+1], append([]string{l}, lines[k+1:]...)...)
			case opMoveLine:
				lines = append(lines[:k], lines[k+1:]...)
				j := int(arg) * (len(lines) + 1) / 256
				lines = append(lines[:j], append([]string{l}, lines[j:]...)...)
			case opBlankLine:
				lines = append(lines[:k], append([]string{"\n"}, lines[k:]...)...)
			}
			text = strings.Join(lines, "")
		}
		texts[file] = text
	}
	return texts, structural
}

// protectSeeds are the inputs go test always runs: each class of damage
// once, and the case that deleted 30 groups of 200.
func protectSeeds() [][]byte {
	op := func(kind, file int, share float64, arg byte) []byte {
		b := []byte{byte(kind), byte(file), 0, 0, arg}
		binary.BigEndian.PutUint16(b[2:4], uint16(share*65535))
		return b
	}
	seed := func(shape []byte, ops ...[]byte) []byte {
		return append(shape, bytes.Join(ops, nil)...)
	}
	const groups, members, tutors = 0, 1, 2
	small := []byte{11, 4, 0, 1}
	crlf := []byte{17, 5, 7 | 8, 2}
	return [][]byte{
		seed(small),
		seed(small, op(opCut, members, 0.99, 0)),
		seed(small, op(opCut, groups, 0.5, 0)),
		seed(crlf, op(opCut, tutors, 0.995, 0)),
		seed(small, op(opCut, tutors, 0.001, 0)),
		seed(small, op(opInsert, groups, 0.4, 0)),
		seed(small, op(opInsert, members, 0.6, 2), op(opInsert, members, 0.3, 4)),
		seed(crlf, op(opReplace, groups, 0.45, 0), op(opReplace, members, 0.2, 1)),
		seed(small, op(opDeleteStructural, groups, 0.3, 0), op(opDeleteStructural, groups, 0.7, 0)),
		seed(small, op(opDeleteLine, groups, 0.5, 0), op(opRepeatLine, members, 0.5, 0), op(opMoveLine, tutors, 0.2, 200)),
		seed(small, op(opRepeatLine, groups, 0, 0), op(opBlankLine, members, 0.5, 0)),
		seed(crlf, op(opInsert, groups, 0.5, 7), op(opInsert, members, 0.5, 8), op(opReplace, tutors, 0.5, 5)),
		seed(small, op(opOpenQuote, members, 0.5, 0), op(opOpenQuote, tutors, 0.3, 0)),
		// The header and the one record both lose a comma: the record reads
		// as module "MOD1000SEM000", group "Algorithms", which is data as far
		// as any reader can tell.
		[]byte("\x00110'Zb02000000"),
		// One bad title in a shuffled file of 200 groups and 6,200
		// memberships: a quote that is not closed where it should be.
		seed([]byte{255, 0, 0, 9}, op(opOpenQuote, groups, 0.3, 0)),
	}
}
