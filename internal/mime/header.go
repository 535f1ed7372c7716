// Package mime reads the header blocks of MIME entities (RFC 2045, 2046,
// 2047, 2231) the way mail clients do: leniently, with every plausible
// reading kept where a value is not plain, so that what any client would
// show is what the checks read. It is the one place the project parses
// Content-Type and Content-Disposition parameters, decodes encoded words
// and names parts; dlp, the portal and the inbound checks use it.
//
// The walk of the MIME tree itself still lives in dlp (mimewalk.go), on
// these functions.
package mime

import (
	"bytes"
	"io"
	stdmime "mime"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Lenient MIME header reading. Mail clients read broken headers in
// different ways (RFC 822 comments inside parameters, escaped or duplicated
// parameters, RFC 2231 continuations, bare CR), and whatever one of them
// shows, the scanner must have read. So a header value that is not plain
// RFC 2045 is read every plausible way: the parser returns, per parameter,
// every candidate value, and says whether anything was odd, so that the
// walk reads the entity's body under each candidate and, if they still
// disagree, reports it as unscannable.

// ContentType is a Content-Type (or Content-Disposition) read leniently.
type ContentType struct {
	Types  []string            // media type candidates, lower case; [0] is the most likely
	Params map[string][]string // parameter (lower case) → candidate values
	Odd    bool                // something in the value is not plain RFC 2045
}

// MediaType is the most likely media type ("" for none).
func (c ContentType) MediaType() string {
	if len(c.Types) == 0 {
		return ""
	}
	return c.Types[0]
}

// Param is the most likely value of parameter k (lower case).
func (c ContentType) Param(k string) string {
	if v := c.Params[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ParseContentType reads a Content-Type or Content-Disposition value. Go's
// stdmime.ParseMediaType is tried first; where it fails or the value holds
// anything unusual, the lenient reading below supplies the candidates.
func ParseContentType(v string) ContentType {
	c := ContentType{Params: map[string][]string{}}
	v = strings.TrimSpace(v)
	if v == "" {
		return c
	}
	strictType, strictParams, err := stdmime.ParseMediaType(v)
	plain := err == nil && !strings.ContainsAny(v, "()\\\r'") && !strings.Contains(v, "=?")
	if plain {
		c.Types = []string{strictType}
		for k, val := range strictParams {
			c.Params[k] = []string{val}
		}
	}
	// The lenient reading, always: it finds RFC 2231 values with an empty
	// charset (which ParseMediaType drops) and duplicated parameters
	// (which it refuses).
	lt, lp, odd := lenientCT(v)
	if err != nil {
		odd = true
	}
	c.Odd = odd
	if !plain || odd {
		c.Types = appendUniq(c.Types, lt...)
		if err == nil {
			c.Types = appendUniq(c.Types, strictType)
		}
	}
	for _, k := range sortedKeys(lp) {
		c.Params[k] = appendUniq(c.Params[k], lp[k]...)
	}
	return c
}

func sortedKeys(m map[string][]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func appendUniq(dst []string, vs ...string) []string {
	for _, v := range vs {
		dup := false
		for _, d := range dst {
			if d == v {
				dup = true
				break
			}
		}
		if !dup {
			dst = append(dst, v)
		}
	}
	return dst
}

// splitTop splits s at sep outside quoted strings and comments.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case quoted:
			if c == '"' {
				quoted = false
			}
		case c == '"' && depth == 0:
			quoted = true
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == sep && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// uncomment removes RFC 822 comments (nested, with quoted-pairs) outside
// quoted strings, and says whether there were any.
func uncomment(s string) (string, bool) {
	if !strings.Contains(s, "(") {
		return s, false
	}
	var b strings.Builder
	depth, quoted, found := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			if depth == 0 {
				b.WriteByte(c)
				b.WriteByte(s[i+1])
			}
			i++
		case quoted:
			b.WriteByte(c)
			if c == '"' {
				quoted = false
			}
		case c == '"' && depth == 0:
			quoted = true
			b.WriteByte(c)
		case c == '(':
			depth++
			found = true
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String(), found
}

// unquote reads a parameter value: a quoted string (with quoted-pairs) and
// whatever follows it, or a token. It returns the candidates a client
// might take.
func unquote(v string) ([]string, bool) {
	v = strings.TrimSpace(v)
	odd := false
	if strings.HasPrefix(v, "\"") {
		var b strings.Builder
		i := 1
		closed := false
		for ; i < len(v); i++ {
			c := v[i]
			if c == '\\' && i+1 < len(v) {
				i++
				b.WriteByte(v[i])
				continue
			}
			if c == '"' {
				closed = true
				i++
				break
			}
			b.WriteByte(c)
		}
		q := b.String()
		rest := strings.TrimSpace(v[min(i, len(v)):])
		if !closed || rest != "" {
			odd = true
			return appendUniq([]string{q}, q+rest, strings.Trim(v, "\"")), odd
		}
		if strings.Contains(v, "\\") {
			odd = true
			return appendUniq([]string{q}, strings.Trim(v, "\"")), odd
		}
		return []string{q}, odd
	}
	if strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") && len(v) > 1 {
		// Single quotes are no quoting in MIME, but some clients take them so.
		return []string{v, v[1 : len(v)-1]}, true
	}
	if strings.ContainsAny(v, "\\\" \t\r") {
		odd = true
		un := strings.ReplaceAll(v, "\\", "")
		cands := []string{v, un, strings.Trim(un, "\"")}
		if i := strings.IndexAny(v, " \t\r"); i > 0 {
			cands = append(cands, v[:i])
		}
		return appendUniq(nil, cands...), odd
	}
	return []string{v}, odd
}

// lenientCT reads "type/subtype; k=v; ..." the forgiving way.
func lenientCT(v string) (types []string, params map[string][]string, odd bool) {
	params = map[string][]string{}
	v = strings.ReplaceAll(v, "\r", " ")
	parts := splitTop(v, ';')
	t, c := uncomment(parts[0])
	odd = c
	t = strings.ToLower(strings.TrimSpace(t))
	if strings.HasPrefix(t, "\"") {
		odd = true
		t = strings.Trim(t, "\"")
	}
	if strings.Contains(t, "=?") {
		odd = true
		if d, err := wordDecoder.DecodeHeader(t); err == nil {
			types = append(types, strings.ToLower(strings.TrimSpace(d)))
		}
	}
	if strings.Contains(t, "=") {
		// "Content-Type: boundary=x": the type is missing; the first
		// "parameter" is in its place.
		odd = true
		parts = append([]string{""}, parts...)
		parts[1] = t
	} else {
		types = append(types, strings.Join(strings.Fields(t), ""))
	}
	type seg struct {
		n   int
		ext bool
		val string
	}
	cont := map[string][]seg{}
	for _, p := range parts[1:] {
		p, c := uncomment(p)
		odd = odd || c
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			if strings.TrimSpace(p) != "" {
				odd = true
			}
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" || strings.ContainsAny(k, " \t\"\\") {
			odd = true
			k = strings.Trim(strings.ReplaceAll(strings.Join(strings.Fields(k), ""), "\\", ""), "\"")
		}
		// RFC 2231: name*, name*0, name*0*, ...
		if i := strings.IndexByte(k, '*'); i >= 0 {
			base, rest := k[:i], k[i+1:]
			ext := strings.HasSuffix(rest, "*") || rest == ""
			rest = strings.TrimSuffix(rest, "*")
			n := 0
			if rest != "" {
				var err error
				if n, err = strconv.Atoi(rest); err != nil {
					odd = true
					continue
				}
			}
			vals, o := unquote(val)
			odd = odd || o
			for _, vv := range vals {
				cont[base] = append(cont[base], seg{n, ext, vv})
			}
			continue
		}
		vals, o := unquote(val)
		odd = odd || o
		if len(params[k]) > 0 {
			odd = true // duplicated parameter
		}
		params[k] = appendUniq(params[k], vals...)
	}
	for base, segs := range cont {
		sort.SliceStable(segs, func(i, j int) bool { return segs[i].n < segs[j].n })
		// Duplicated segment numbers: every choice of one per number.
		var byN [][]seg
		for _, s := range segs {
			if len(byN) > 0 && byN[len(byN)-1][0].n == s.n {
				byN[len(byN)-1] = append(byN[len(byN)-1], s)
				odd = true
				continue
			}
			byN = append(byN, []seg{s})
		}
		combos := []string{""}
		charset := ""
		for idx, choices := range byN {
			var next []string
			for _, pre := range combos {
				for _, s := range choices {
					val := s.val
					if s.ext {
						if idx == 0 {
							// charset'language'value; the charset may be empty.
							if p := strings.SplitN(val, "'", 3); len(p) == 3 {
								val = p[2]
								charset = strings.ToLower(p[0])
							}
						}
						if d, err := url.PathUnescape(val); err == nil {
							val = d
						}
					}
					next = append(next, pre+val)
				}
			}
			if len(next) > 16 {
				next = next[:16]
			}
			combos = next
		}
		if charset != "" && charset != "utf-8" && charset != "us-ascii" {
			// RFC 2231 section 4: the value is in the named charset.
			for i, c := range combos {
				if r, err := CharsetReader(charset, strings.NewReader(c)); err == nil {
					if d, err := io.ReadAll(r); err == nil {
						combos[i] = string(d)
					}
				}
			}
		}
		if len(params[base]) > 0 {
			odd = true // both name= and name*=
		}
		// The RFC 2231 value wins where clients support it.
		params[base] = appendUniq(combos, params[base]...)
	}
	return types, params, odd
}

// ReadHeader reads a header block leniently: continuation lines are
// unfolded, a space before the colon is forgiven, a bare CR ends a line,
// and lines that are no header at all are skipped. It returns the header,
// the offset of the body and whether anything was odd.
func ReadHeader(b []byte) (textproto.MIMEHeader, int, bool) {
	h := textproto.MIMEHeader{}
	odd := false
	var last string
	i := 0
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '\n')
		var line []byte
		next := len(b)
		if j >= 0 {
			line, next = b[i:i+j], i+j+1
		} else {
			line = b[i:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		i = next
		if len(line) == 0 {
			return h, i, odd
		}
		// A bare CR inside a line separates header lines for some readers
		// and not for others: read both ways.
		segs := [][]byte{line}
		if bytes.IndexByte(line, '\r') >= 0 {
			odd = true
			segs = append(segs, bytes.Split(line, []byte("\r"))...)
		}
		for si, l := range segs {
			if len(l) == 0 {
				continue
			}
			if (l[0] == ' ' || l[0] == '\t') && si == 0 {
				if last != "" {
					vs := h[last]
					vs[len(vs)-1] += " " + strings.TrimSpace(string(l))
				} else {
					odd = true
				}
				// A folded line that is itself a header ("X-Foo: a\r\n
				// Content-Type: ..."): some readers take it as one.
				if k, v, ok := headerLine(bytes.TrimSpace(l)); ok && isMIMEKey(k) {
					odd = true
					h[k] = append(h[k], v)
				}
				continue
			}
			k, v, ok := headerLine(l)
			if !ok {
				odd = true
				continue
			}
			if si > 0 && k == last {
				continue
			}
			if strings.ContainsAny(string(l[:bytes.IndexByte(l, ':')]), " \t") {
				odd = true
			}
			h[k] = append(h[k], v)
			last = k
		}
	}
	return h, i, odd
}

func isMIMEKey(k string) bool {
	return k == "Content-Type" || k == "Content-Transfer-Encoding" || k == "Content-Disposition"
}

func headerLine(l []byte) (string, string, bool) {
	c := bytes.IndexByte(l, ':')
	if c <= 0 {
		return "", "", false
	}
	k := strings.TrimSpace(string(l[:c]))
	if k == "" || strings.ContainsAny(k, " \t") {
		return "", "", false
	}
	return textproto.CanonicalMIMEHeaderKey(k), strings.TrimSpace(string(l[c+1:])), true
}

// PartName is the name a mail client shows for a part: the
// Content-Disposition filename (RFC 2231 or RFC 2047 encoded), else the
// Content-Type name.
func PartName(h textproto.MIMEHeader, ct ContentType) string {
	name := ""
	for _, d := range h["Content-Disposition"] {
		if n := ParseContentType(d).Param("filename"); n != "" {
			name = n
			break
		}
	}
	if name == "" {
		name = ct.Param("name")
	}
	if dec, err := wordDecoder.DecodeHeader(name); err == nil {
		name = dec
	}
	return strings.TrimSpace(name)
}

// SplitParams splits a header value at the semicolons outside quoted
// strings and comments: its media type and each parameter.
func SplitParams(v string) []string { return splitTop(v, ';') }
