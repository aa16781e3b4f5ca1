package moodlesim

import (
	"io"
	"mime"
	"mime/multipart"
	"strconv"
	"strings"
)

// postMaxSize is PHP's default post_max_size (8M). Larger bodies are dropped.
const postMaxSize = 8 << 20

// phpArray is an ordered PHP array. Values are string or *phpArray. Keys are
// kept as strings; integer-like keys ("0", "12", "-3") act as integer keys
// for appends, as in PHP.
type phpArray struct {
	keys []string
	vals map[string]any
	next int64
}

func newPHPArray() *phpArray { return &phpArray{vals: map[string]any{}} }

func (a *phpArray) get(k string) (any, bool) {
	v, ok := a.vals[k]
	return v, ok
}

func (a *phpArray) set(k string, v any) {
	if _, ok := a.vals[k]; !ok {
		a.keys = append(a.keys, k)
	}
	a.vals[k] = v
	if n, ok := phpIntKey(k); ok && n >= a.next {
		a.next = n + 1
	}
}

func (a *phpArray) appendValue(v any) {
	a.set(strconv.FormatInt(a.next, 10), v)
}

func (a *phpArray) del(k string) {
	if _, ok := a.vals[k]; !ok {
		return
	}
	delete(a.vals, k)
	for i, kk := range a.keys {
		if kk == k {
			a.keys = append(a.keys[:i:i], a.keys[i+1:]...)
			break
		}
	}
}

func (a *phpArray) len() int { return len(a.keys) }

// phpIntKey reports whether PHP would use k as an integer array key.
func phpIntKey(k string) (int64, bool) {
	if k == "" || len(k) > 20 {
		return 0, false
	}
	s := k
	if s[0] == '-' {
		s = s[1:]
	}
	if s == "" || (s[0] == '0' && len(s) > 1) || (k[0] == '-' && s == "0") {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(k, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// phpURLDecode decodes like PHP's php_url_decode: '+' is a space, %XX a byte,
// and malformed escapes are kept literally.
func phpURLDecode(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// parseQueryVars parses a query string as PHP's php_default_treat_data does
// for $_GET: empty segments and segments with an empty name are skipped, and
// the count is checked before a variable is registered, so at most limit
// variables are kept (limit < 0: no limit).
func parseQueryVars(q string, limit int) *phpArray {
	arr := newPHPArray()
	count := 0
	for _, seg := range strings.Split(q, "&") {
		if seg == "" || seg[0] == '=' {
			continue
		}
		count++
		if limit >= 0 && count > limit {
			break
		}
		name, val, _ := strings.Cut(seg, "=")
		registerVar(arr, phpURLDecode(name), phpURLDecode(val))
	}
	return arr
}

// parseBodyVars parses an application/x-www-form-urlencoded body as PHP's
// add_post_vars does for $_POST. Every '&'-separated segment is a variable
// (an empty one is counted but registers nothing), except an empty last
// segment. PHP registers a variable and then checks the count, so it keeps
// limit+1 variables (limit < 0: no limit).
func parseBodyVars(body string, limit int) *phpArray {
	arr := newPHPArray()
	if body == "" {
		return arr
	}
	segs := strings.Split(body, "&")
	if segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
	}
	if limit >= 0 && len(segs) > limit+1 {
		segs = segs[:limit+1]
	}
	for _, seg := range segs {
		name, val, _ := strings.Cut(seg, "=")
		registerVar(arr, phpURLDecode(name), phpURLDecode(val))
	}
	return arr
}

// parseMultipartVars reads the non-file fields of a multipart/form-data body
// in order, keeping limit of them as PHP's rfc1867 handler does.
func parseMultipartVars(r io.Reader, boundary string, limit int) *phpArray {
	arr := newPHPArray()
	mr := multipart.NewReader(r, boundary)
	count := 0
	for {
		p, err := mr.NextPart()
		if err != nil {
			return arr
		}
		name := p.FormName()
		if name == "" || p.FileName() != "" {
			_ = p.Close()
			continue
		}
		count++
		if limit >= 0 && count > limit {
			_ = p.Close()
			return arr
		}
		val, _ := io.ReadAll(io.LimitReader(p, postMaxSize))
		_ = p.Close()
		registerVar(arr, name, string(val))
	}
}

// readBody reads a POST body into $_POST, as PHP would for the given
// Content-Type. Other content types leave $_POST empty.
func readBody(body io.Reader, contentType string, limit int) *phpArray {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return newPHPArray()
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		data, _ := io.ReadAll(io.LimitReader(body, postMaxSize+1))
		if len(data) > postMaxSize {
			return newPHPArray()
		}
		return parseBodyVars(string(data), limit)
	case "multipart/form-data":
		if params["boundary"] == "" {
			return newPHPArray()
		}
		return parseMultipartVars(io.LimitReader(body, postMaxSize), params["boundary"], limit)
	}
	return newPHPArray()
}

// registerVar stores name=val into arr as php_register_variable_ex does,
// turning "a[b][]" into nested arrays.
func registerVar(arr *phpArray, name, val string) {
	base, idx, ok := splitPHPName(name)
	if !ok {
		return
	}
	if len(idx) == 0 {
		arr.set(base, val)
		return
	}
	// Descend: the base key, then every index but the last.
	cur := arr
	path := append([]*string{&base}, idx[:len(idx)-1]...)
	for _, k := range path {
		var next *phpArray
		if k == nil {
			next = newPHPArray()
			cur.appendValue(next)
		} else if v, found := cur.get(*k); found {
			if a, isArr := v.(*phpArray); isArr {
				next = a
			}
		}
		if next == nil {
			next = newPHPArray()
			cur.set(*k, next)
		}
		cur = next
	}
	last := idx[len(idx)-1]
	if last == nil {
		cur.appendValue(val)
	} else {
		cur.set(*last, val)
	}
}

// splitPHPName splits a request variable name into its base name and its
// bracketed indices (nil for "[]"), following PHP's rules: leading spaces are
// dropped, ' ' and '.' in the base name become '_', an unterminated first
// bracket becomes part of the name, and anything after a closing bracket that
// does not open another one is ignored.
func splitPHPName(name string) (string, []*string, bool) {
	name = strings.TrimLeft(name, " ")
	var b strings.Builder
	i := 0
	for ; i < len(name); i++ {
		c := name[i]
		if c == '[' {
			break
		}
		if c == ' ' || c == '.' {
			c = '_'
		}
		b.WriteByte(c)
	}
	base := b.String()
	if base == "" {
		return "", nil, false
	}
	if i == len(name) {
		return base, nil, true
	}
	var idx []*string
	for i < len(name) && name[i] == '[' {
		start := i + 1
		if start < len(name) && name[start] == ']' {
			idx = append(idx, nil)
			i = start + 1
			continue
		}
		end := strings.IndexByte(name[start:], ']')
		if end < 0 {
			if len(idx) == 0 {
				rest := strings.NewReplacer(" ", "_", ".", "_", "[", "_").Replace(name[start:])
				return base + "_" + rest, nil, true
			}
			break
		}
		k := name[start : start+end]
		idx = append(idx, &k)
		i = start + end + 1
	}
	return base, idx, true
}

// arrayMerge merges $_GET and $_POST as PHP's array_merge does: string keys
// from post overwrite (keeping the first position), integer keys append.
func arrayMerge(get, post *phpArray) *phpArray {
	out := newPHPArray()
	for _, a := range []*phpArray{get, post} {
		for _, k := range a.keys {
			v := a.vals[k]
			if _, isInt := phpIntKey(k); isInt {
				out.appendValue(v)
			} else {
				out.set(k, v)
			}
		}
	}
	return out
}
