package moodlesim

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file is the simulator's copy of Moodle's external_description classes:
// validate() is external_api::validate_parameters, clean() is
// external_api::clean_returnvalue, and writeJSON/writeXML are the REST
// server's json_encode and xmlize_result.

// ptype is a Moodle PARAM_* type, named as Moodle prints it in debuginfo.
type ptype string

const (
	paramInt      ptype = "int"
	paramBool     ptype = "bool"
	paramText     ptype = "text"
	paramRaw      ptype = "raw"
	paramAlpha    ptype = "alpha"
	paramAlnumExt ptype = "alphanumext"
)

// need is VALUE_REQUIRED, VALUE_OPTIONAL or VALUE_DEFAULT.
type need int

const (
	valueRequired need = iota
	valueOptional
	valueDefault
)

// desc is an external_description: *valueDesc, *singleDesc or *multipleDesc.
type desc interface{ needed() need }

type valueDesc struct {
	typ  ptype
	need need
	def  any
}

type keyDesc struct {
	name string
	d    desc
}

type singleDesc struct {
	keys []keyDesc
	need need
}

type multipleDesc struct {
	content desc
	need    need
}

func (d *valueDesc) needed() need    { return d.need }
func (d *singleDesc) needed() need   { return d.need }
func (d *multipleDesc) needed() need { return d.need }

func val(t ptype) *valueDesc             { return &valueDesc{typ: t} }
func optVal(t ptype) *valueDesc          { return &valueDesc{typ: t, need: valueOptional} }
func defVal(t ptype, def any) *valueDesc { return &valueDesc{typ: t, need: valueDefault, def: def} }
func key(name string, d desc) keyDesc    { return keyDesc{name: name, d: d} }
func single(keys ...keyDesc) *singleDesc { return &singleDesc{keys: keys} }
func multi(c desc) *multipleDesc         { return &multipleDesc{content: c} }
func optMulti(c desc) *multipleDesc      { return &multipleDesc{content: c, need: valueOptional} }
func defMulti(c desc) *multipleDesc      { return &multipleDesc{content: c, need: valueDefault} }
func formatVal() *valueDesc              { return defVal(paramInt, formatHTML) }
func (d *singleDesc) with(k ...keyDesc) *singleDesc {
	keys := append(append([]keyDesc(nil), d.keys...), k...)
	return &singleDesc{keys: keys, need: d.need}
}

// Moodle text formats.
const (
	formatMoodle   = 0
	formatHTML     = 1
	formatPlain    = 2
	formatMarkdown = 4
)

// validate checks request parameters p (a string or *phpArray from PHP's
// input parsing) against d, returning Go values: int, bool, string,
// map[string]any and []any.
func validate(d desc, p any) (any, *wsError) {
	switch d := d.(type) {
	case *valueDesc:
		switch p := p.(type) {
		case string:
			return validateScalar(d.typ, p)
		case *phpArray:
			return nil, invalidParam("Scalar type expected, array or object received.")
		default:
			return p, nil // a default value
		}
	case *singleDesc:
		a, ok := p.(*phpArray)
		if !ok {
			return nil, invalidParam("Only arrays accepted. The bad value is: '" + printR(p) + "'")
		}
		res := make(map[string]any, len(d.keys))
		known := make(map[string]bool, len(d.keys))
		for _, k := range d.keys {
			known[k.name] = true
			v, found := a.get(k.name)
			if !found {
				switch k.d.needed() {
				case valueRequired:
					return nil, invalidParam("Missing required key in single structure: " + k.name)
				case valueDefault:
					res[k.name] = defaultOf(k.d)
				}
				continue
			}
			cv, err := validate(k.d, v)
			if err != nil {
				if err.ErrorCode == "invalidparameter" {
					return nil, invalidParam(k.name + " => " + err.Message + ": " + err.DebugInfo)
				}
				return nil, err
			}
			res[k.name] = cv
		}
		var extra []string
		for _, k := range a.keys {
			if !known[k] {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			return nil, invalidParam("Unexpected keys (" + strings.Join(extra, ", ") + ") detected in parameter array.")
		}
		return res, nil
	case *multipleDesc:
		a, ok := p.(*phpArray)
		if !ok {
			if l, isList := p.([]any); isList { // a default value
				return l, nil
			}
			return nil, invalidParam("Only arrays accepted. The bad value is: '" + printR(p) + "'")
		}
		res := make([]any, 0, a.len())
		for _, k := range a.keys {
			cv, err := validate(d.content, a.vals[k])
			if err != nil {
				return nil, err
			}
			res = append(res, cv)
		}
		return res, nil
	}
	return nil, invalidParam("Invalid external api description")
}

func defaultOf(d desc) any {
	switch d := d.(type) {
	case *valueDesc:
		return d.def
	case *multipleDesc:
		return []any{}
	}
	return nil
}

func printR(p any) string {
	switch p := p.(type) {
	case nil:
		return ""
	case string:
		return p
	default:
		return fmt.Sprint(p)
	}
}

// validateScalar is validate_param(): the value must survive clean_param()
// unchanged.
func validateScalar(t ptype, s string) (any, *wsError) {
	bad := func() (any, *wsError) {
		return nil, invalidParam(`Invalid external api parameter: the value is "` + s +
			`", the server was expecting "` + string(t) + `" type`)
	}
	switch t {
	case paramInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != s {
			return bad()
		}
		return int(n), nil
	case paramBool:
		switch s {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
		return bad()
	case paramText:
		if !utf8.ValidString(s) || stripTags(s) != s {
			return bad()
		}
	case paramRaw:
		if !utf8.ValidString(s) {
			return bad()
		}
	case paramAlpha:
		for i := 0; i < len(s); i++ {
			if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return bad()
			}
		}
	case paramAlnumExt:
		if cleanAlnumExt(s) != s {
			return bad()
		}
	}
	return s, nil
}

func cleanAlnumExt(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// stripTags approximates PHP's strip_tags: a '<' not followed by white space
// opens a tag that runs to the next '>' (or to the end).
func stripTags(s string) string {
	if !strings.Contains(s, "<") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '<' || (i+1 < len(s) && isSpace(s[i+1])) {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i:], '>')
		if end < 0 {
			break
		}
		i += end
	}
	return b.String()
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// phpTrim is PHP's trim(): " \t\n\r\0\x0B".
func phpTrim(s string) string { return strings.Trim(s, " \t\n\r\x00\x0B") }

// phpEmpty is PHP's empty() for a string.
func phpEmpty(s string) bool { return s == "" || s == "0" }

// onode is a cleaned return value, ready to be written as JSON or XML.
type onode struct {
	kind byte // 'n' null, 'i' int, 'b' bool, 's' string, 'l' list, 'o' object
	i    int64
	b    bool
	s    string
	list []*onode
	keys []string
	vals map[string]*onode
}

// clean is clean_returnvalue(): it orders keys as the description does, fills
// defaults, skips missing optional keys and fails on missing required ones.
func clean(d desc, v any) (*onode, *wsError) {
	switch d := d.(type) {
	case *valueDesc:
		if v == nil {
			return &onode{kind: 'n'}, nil
		}
		switch d.typ {
		case paramInt:
			switch x := v.(type) {
			case int:
				return &onode{kind: 'i', i: int64(x)}, nil
			case int64:
				return &onode{kind: 'i', i: x}, nil
			case bool:
				if x {
					return &onode{kind: 'i', i: 1}, nil
				}
				return &onode{kind: 'i', i: 0}, nil
			}
		case paramBool:
			if x, ok := v.(bool); ok {
				return &onode{kind: 'b', b: x}, nil
			}
			if x, ok := v.(int); ok {
				return &onode{kind: 'b', b: x != 0}, nil
			}
		default:
			switch x := v.(type) {
			case string:
				return &onode{kind: 's', s: x}, nil
			case int:
				return &onode{kind: 's', s: strconv.Itoa(x)}, nil
			}
		}
		return nil, invalidResponse(fmt.Sprintf("Invalid external api response: the value is \"%v\", the server was expecting \"%s\" type", v, d.typ))
	case *singleDesc:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, invalidResponse("Only arrays accepted.")
		}
		n := &onode{kind: 'o', vals: map[string]*onode{}}
		for _, k := range d.keys {
			x, found := m[k.name]
			if !found {
				if k.d.needed() == valueRequired {
					return nil, invalidResponse("Error in response - Missing following required key in a single structure: " + k.name)
				}
				vd, isValue := k.d.(*valueDesc)
				if !isValue || vd.need != valueDefault {
					continue
				}
				x = vd.def
			}
			c, err := clean(k.d, x)
			if err != nil {
				return nil, invalidResponse(k.name + " => " + err.Message + ": " + err.DebugInfo)
			}
			n.keys = append(n.keys, k.name)
			n.vals[k.name] = c
		}
		return n, nil
	case *multipleDesc:
		l, ok := v.([]any)
		if !ok {
			return nil, invalidResponse("Only arrays accepted.")
		}
		n := &onode{kind: 'l', list: make([]*onode, 0, len(l))}
		for _, x := range l {
			c, err := clean(d.content, x)
			if err != nil {
				return nil, err
			}
			n.list = append(n.list, c)
		}
		return n, nil
	}
	return nil, invalidResponse("Invalid external api response description")
}

// writeJSON writes n as PHP's json_encode would.
func writeJSON(b *bytes.Buffer, n *onode) {
	if n == nil {
		b.WriteString("null")
		return
	}
	switch n.kind {
	case 'n':
		b.WriteString("null")
	case 'i':
		b.WriteString(strconv.FormatInt(n.i, 10))
	case 'b':
		b.WriteString(strconv.FormatBool(n.b))
	case 's':
		writePHPString(b, n.s)
	case 'l':
		b.WriteByte('[')
		for i, e := range n.list {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, e)
		}
		b.WriteByte(']')
	case 'o':
		if len(n.keys) == 0 {
			// PHP encodes an empty array as [].
			b.WriteString("[]")
			return
		}
		b.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writePHPString(b, k)
			b.WriteByte(':')
			writeJSON(b, n.vals[k])
		}
		b.WriteByte('}')
	}
}

// writePHPString writes s as a JSON string the way PHP's json_encode does by
// default: "/" escaped, non-ASCII as \uXXXX (lower-case hex).
func writePHPString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	u4 := func(r rune) {
		b.WriteString(`\u`)
		b.WriteByte(hex[r>>12&0xf])
		b.WriteByte(hex[r>>8&0xf])
		b.WriteByte(hex[r>>4&0xf])
		b.WriteByte(hex[r&0xf])
	}
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '/':
			b.WriteString(`\/`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			switch {
			case r < 0x20:
				u4(r)
			case r < 0x80:
				b.WriteByte(byte(r))
			case r <= 0xffff:
				u4(r)
			default:
				r -= 0x10000
				u4(0xd800 + (r >> 10))
				u4(0xdc00 + (r & 0x3ff))
			}
		}
	}
	b.WriteByte('"')
}

// writeXML is the REST server's xmlize_result().
func writeXML(b *bytes.Buffer, d desc, n *onode) {
	switch d := d.(type) {
	case nil:
		return
	case *valueDesc:
		if n == nil || n.kind == 'n' {
			b.WriteString("<VALUE null=\"null\"/>\n")
			return
		}
		b.WriteString("<VALUE>")
		switch n.kind {
		case 'i':
			b.WriteString(strconv.FormatInt(n.i, 10))
		case 'b':
			if n.b {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		default:
			b.WriteString(htmlSpecialChars(n.s))
		}
		b.WriteString("</VALUE>\n")
	case *multipleDesc:
		b.WriteString("<MULTIPLE>\n")
		if n != nil {
			for _, e := range n.list {
				writeXML(b, d.content, e)
			}
		}
		b.WriteString("</MULTIPLE>\n")
	case *singleDesc:
		b.WriteString("<SINGLE>\n")
		for _, k := range d.keys {
			var v *onode
			if n != nil && n.vals != nil {
				v = n.vals[k.name]
			}
			b.WriteString(`<KEY name="` + k.name + `">`)
			writeXML(b, k.d, v)
			b.WriteString("</KEY>\n")
		}
		b.WriteString("</SINGLE>\n")
	}
}

// htmlSpecialChars is PHP's htmlspecialchars with ENT_COMPAT.
func htmlSpecialChars(s string) string {
	return strings.NewReplacer("&", "&amp;", `"`, "&quot;", "<", "&lt;", ">", "&gt;").Replace(s)
}
