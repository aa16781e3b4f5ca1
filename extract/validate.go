package extract

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cmissync/cmissync/stage"
	"github.com/cmissync/cmissync/stage/store"
)

// Limits of Moodle and of the staging schema, in characters.
const (
	MaxCodeLen     = 100 // module codes, group codes, student and staff ids
	MaxNameLen     = 254 // module and group names (Moodle group names)
	MaxIDNumberLen = 100 // Moodle idnumber, which cmissync sets to stage.GroupIDNumber
)

// Charsets accepted in Options.Charset: how bytes from the source that are
// not valid UTF-8 are read.
const (
	CharsetUTF8   = "AL32UTF8"     // reject them (the source should send UTF-8)
	CharsetLatin1 = "WE8ISO8859P1" // decode them as ISO-8859-1
)

// ReasonMangled is the reason given for values that show the marks of a
// wrong client character set (UTF-8 read as Latin-1, or U+FFFD).
const ReasonMangled = "mangled characters, check the source charset setting"

// normalCharset maps the names accepted in Options.Charset to the two
// behaviours.
func normalCharset(cs string) (string, error) {
	switch strings.ToUpper(strings.TrimSpace(cs)) {
	case "", "AL32UTF8", "UTF8", "UTF-8":
		return CharsetUTF8, nil
	case "WE8ISO8859P1", "ISO-8859-1", "ISO8859-1", "LATIN1":
		return CharsetLatin1, nil
	}
	return "", fmt.Errorf("unknown charset %q (want %s or %s)", cs, CharsetUTF8, CharsetLatin1)
}

type groupKey struct{ module, group string }

type groupInfo struct {
	line int64
	id   int32
}

type rejection struct {
	line   int64
	reason string
}

// checker validates rows and tracks the keys seen, per table. Module groups
// must be checked first: member and tutor rows are matched against them.
type checker struct {
	latin1       bool
	groupsOrigin string
	groups       map[groupKey]groupInfo
	rejected     map[groupKey]rejection // groups refused for a reason other than their key being blank
	// members holds, per member or tutor table and per group id, the ids
	// seen and the line of each. Many small maps (one per group) grow and
	// hash faster than one map of a million (group, id) pairs.
	members map[store.DumpTable][]map[string]int64
}

func newChecker(charset string) *checker {
	return &checker{
		latin1:   charset == CharsetLatin1,
		groups:   map[groupKey]groupInfo{},
		rejected: map[groupKey]rejection{},
		members:  map[store.DumpTable][]map[string]int64{},
	}
}

// check validates one row of table t read at line of origin. It returns the
// row to load (decoded, trimmed; a new slice) or the reason to reject it.
func (c *checker) check(t store.DumpTable, origin string, line int64, raw []string) ([]string, string) {
	cols := t.Columns()
	if len(raw) != len(cols) {
		return nil, fmt.Sprintf("%d values, want %d (%s)", len(raw), len(cols), strings.Join(cols, ", "))
	}
	vals := make([]string, len(raw))
	var reason string
	for i, v := range raw {
		v, ok := c.decode(v)
		if !ok {
			return nil, fmt.Sprintf("invalid UTF-8 in %s, check the source charset setting (charset %s decodes such bytes as ISO-8859-1)", cols[i], CharsetLatin1)
		}
		v = strings.TrimSpace(v)
		if optional(t, cols[i]) && strings.ContainsAny(v, "\t\r\n") {
			// A line break or tab inside a name (a quoted CSV field, a
			// multi-line CMIS title) becomes a space; in codes it is an error.
			v = strings.Join(strings.Fields(v), " ")
		}
		if r := checkChars(v); r != "" && reason == "" {
			reason = r + " in " + cols[i]
		}
		vals[i] = v
	}
	module, group := vals[0], vals[1]
	key := groupKey{module, group}
	if reason == "" {
		reason = checkFields(t, cols, vals)
	}
	if reason != "" {
		if t == store.ModuleGroups && module != "" && group != "" {
			if _, ok := c.rejected[key]; !ok {
				c.rejected[key] = rejection{line: line, reason: reason}
			}
		}
		return nil, reason
	}
	if t == store.ModuleGroups {
		if c.groupsOrigin == "" {
			c.groupsOrigin = origin
		}
		if g, ok := c.groups[key]; ok {
			return nil, "duplicate of line " + strconv.FormatInt(g.line, 10)
		}
		key = groupKey{strings.Clone(module), strings.Clone(group)}
		c.groups[key] = groupInfo{line: line, id: int32(len(c.groups))}
		return vals, ""
	}
	g, ok := c.groups[key]
	if !ok {
		if rej, ok := c.rejected[key]; ok {
			return nil, fmt.Sprintf("group rejected from %s line %d (%s)", c.groupsName(), rej.line, rej.reason)
		}
		return nil, "group not in " + c.groupsName()
	}
	byGroup := c.members[t]
	if int(g.id) >= len(byGroup) {
		byGroup = append(byGroup, make([]map[string]int64, len(c.groups)-len(byGroup))...)
		c.members[t] = byGroup
	}
	seen := byGroup[g.id]
	if seen == nil {
		seen = make(map[string]int64, 8)
		byGroup[g.id] = seen
	}
	id := vals[2]
	if first, ok := seen[id]; ok {
		return nil, "duplicate of line " + strconv.FormatInt(first, 10)
	}
	// A clone, so the key does not pin the source's whole record in memory.
	seen[strings.Clone(id)] = line
	return vals, ""
}

// keyLen is the number of columns that make a row's key: module and group
// codes, and for member and tutor rows the id.
func keyLen(t store.DumpTable) int {
	if t == store.ModuleGroups {
		return 2
	}
	return 3
}

// key returns the parts of a refused row's key that can be read, as staging
// would hold them, and how many: the module code, the group code and, for
// member and tutor rows, the id, up to the first that cannot be read (bytes
// that are not text in the charset, control or mangled characters, blank);
// the parts from there on are "", which matches everything. A value that is
// only too long stays: it can describe only itself.
func (c *checker) key(t store.DumpTable, raw []string) (parts [3]string, known int) {
	if len(raw) != len(t.Columns()) {
		return parts, 0
	}
	for known < keyLen(t) {
		v, ok := c.decode(raw[known])
		v = strings.TrimSpace(v)
		if !ok || v == "" || checkChars(v) != "" {
			break
		}
		parts[known] = v
		known++
	}
	return parts, known
}

// decode returns v as text: as it is when it is UTF-8, decoded as Latin-1
// when it is not and the charset says so; ok is false when it cannot be
// read.
func (c *checker) decode(v string) (_ string, ok bool) {
	if utf8.ValidString(v) {
		return v, true
	}
	if !c.latin1 {
		return v, false
	}
	return decodeLatin1(v), true
}

// done releases the keys of a member or tutor table once it is read; the
// module-group keys stay, later tables are checked against them.
func (c *checker) done(t store.DumpTable) {
	if t != store.ModuleGroups {
		delete(c.members, t)
	}
}

// groupsName names the module-groups view and where it was read from.
func (c *checker) groupsName() string {
	if c.groupsOrigin == "" {
		return viewName(store.ModuleGroups)
	}
	return viewName(store.ModuleGroups) + " (" + c.groupsOrigin + ")"
}

// checkFields checks presence and length of the trimmed values.
func checkFields(t store.DumpTable, cols, vals []string) string {
	for i, v := range vals {
		col := cols[i]
		if optional(t, col) {
			if n := utf8.RuneCountInString(v); n > MaxNameLen {
				return fmt.Sprintf("%s longer than %d characters (%d)", col, MaxNameLen, n)
			}
			continue
		}
		if v == "" {
			return "missing " + col
		}
		if n := utf8.RuneCountInString(v); n > MaxCodeLen {
			return fmt.Sprintf("%s longer than %d characters (%d)", col, MaxCodeLen, n)
		}
	}
	if t == store.ModuleGroups {
		// The group's idnumber holds the grouping's and more, so checking
		// it checks both.
		idnumber := stage.GroupIDNumber(vals[0], vals[1])
		if n := utf8.RuneCountInString(idnumber); n > MaxIDNumberLen {
			msg := fmt.Sprintf("modulecode and groupcode too long together: the Moodle idnumber %s would have %d characters, the limit is %d", idnumber, n, MaxIDNumberLen)
			if strings.ContainsAny(vals[0]+vals[1], ":%") {
				msg += ` (":" and "%" in the codes take three characters each there, as %3A and %25)`
			}
			return msg
		}
	}
	return ""
}

// checkChars looks for characters no CMIS value should hold: control
// characters, and the marks of text decoded with the wrong character set.
func checkChars(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x20 || b == 0x7F {
			return fmt.Sprintf("control character U+%04X", b)
		}
		if b >= 0x80 {
			ascii = false
		}
	}
	if ascii {
		return ""
	}
	for _, r := range s {
		if r == utf8.RuneError || (r >= 0x80 && r <= 0x9F) {
			return ReasonMangled
		}
	}
	if mojibake(s) {
		return ReasonMangled
	}
	return ""
}

// cp1252 maps the characters Windows-1252 puts at bytes 0x80–0x9F to those
// bytes; Latin-1 has control characters there.
var cp1252 = map[rune]byte{
	'€': 0x80, '‚': 0x82, 'ƒ': 0x83, '„': 0x84, '…': 0x85, '†': 0x86, '‡': 0x87, 'ˆ': 0x88,
	'‰': 0x89, 'Š': 0x8A, '‹': 0x8B, 'Œ': 0x8C, 'Ž': 0x8E, '‘': 0x91, '’': 0x92, '“': 0x93,
	'”': 0x94, '•': 0x95, '–': 0x96, '—': 0x97, '˜': 0x98, '™': 0x99, 'š': 0x9A, '›': 0x9B,
	'œ': 0x9C, 'ž': 0x9E, 'Ÿ': 0x9F,
}

// cp1252Runes is the inverse of cp1252, indexed by byte-0x80; 0 where
// Windows-1252 leaves the byte undefined.
var cp1252Runes = func() [32]rune {
	var a [32]rune
	for r, b := range cp1252 {
		a[b-0x80] = r
	}
	return a
}()

// singleByte returns the byte a character has in Latin-1 or Windows-1252.
func singleByte(r rune) (byte, bool) {
	if r < 0x100 {
		return byte(r), true
	}
	b, ok := cp1252[r]
	return b, ok
}

// mojibake reports whether s holds UTF-8 that was decoded as Latin-1 or
// Windows-1252: a run of characters whose single-byte codes form a valid
// multi-byte UTF-8 sequence, such as "Ã©" for "é" or "â€™" for "’".
func mojibake(s string) bool {
	var rs []rune
	for i := 0; i < len(s); i++ {
		if s[i] >= 0xC3 { // non-ASCII beyond U+00BF: a possible lead byte
			rs = []rune(s)
			break
		}
	}
	var seq [4]byte
	for i := 0; i < len(rs); i++ {
		b, ok := singleByte(rs[i])
		if !ok || b < 0xC2 || b > 0xF4 {
			continue
		}
		n := 2
		if b >= 0xF0 {
			n = 4
		} else if b >= 0xE0 {
			n = 3
		}
		if i+n > len(rs) {
			continue
		}
		seq[0] = b
		good := true
		for k := 1; k < n; k++ {
			c, ok := singleByte(rs[i+k])
			if !ok || c < 0x80 || c > 0xBF {
				good = false
				break
			}
			seq[k] = c
		}
		if good && utf8.Valid(seq[:n]) {
			return true
		}
	}
	return false
}

// decodeLatin1 reads s as ISO-8859-1, taking bytes 0x80–0x9F as Windows-1252
// (which WE8ISO8859P1 databases fed by Windows clients commonly hold);
// bytes that Windows-1252 leaves undefined stay C1 control characters and
// are then rejected as mangled.
func decodeLatin1(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x80:
			b.WriteByte(c)
		case c <= 0x9F && cp1252Runes[c-0x80] != 0:
			b.WriteRune(cp1252Runes[c-0x80])
		default:
			b.WriteRune(rune(c))
		}
	}
	return b.String()
}

// renderRow renders a row for humans, e.g.
// `modulecode=COMP1001 groupcode=SEM01 studentid=12345678`.
func renderRow(t store.DumpTable, vals []string) string {
	cols := t.Columns()
	var b strings.Builder
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(' ')
		}
		if i < len(cols) {
			b.WriteString(cols[i])
		} else {
			b.WriteString("field" + strconv.Itoa(i+1))
		}
		b.WriteByte('=')
		b.WriteString(quoteValue(v))
	}
	return b.String()
}

// maxRendered bounds each value in a rendered row, so one huge field cannot
// bloat the error table or an email.
const maxRendered = 120

// quoteValue renders a value bare when it is plain, and Go-quoted (invalid
// bytes as \x escapes, so the rendering is valid UTF-8) otherwise.
func quoteValue(v string) string {
	if utf8.RuneCountInString(v) > maxRendered {
		cut, n := 0, 0
		for cut < len(v) && n < maxRendered {
			_, size := utf8.DecodeRuneInString(v[cut:])
			cut += size
			n++
		}
		return strconv.Quote(v[:cut]) + "..."
	}
	plain := v != "" && utf8.ValidString(v)
	if plain {
		for _, r := range v {
			if r <= ' ' || r == '"' || r == '=' || r == '\\' || r == 0x7F || (r >= 0x80 && r <= 0x9F) || r == utf8.RuneError {
				plain = false
				break
			}
		}
	}
	if plain {
		return v
	}
	return strconv.Quote(v)
}
