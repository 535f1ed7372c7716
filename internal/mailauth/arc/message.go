package arc

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
)

// field is one header field as it appeared: Raw includes the name, the
// colon, folding and the final CRLF, so that "simple" canonicalisation and
// b= stripping can work on the original bytes.
type field struct {
	Name  string // as written
	Lower string // lower-cased, for matching
	Raw   string
	Value string // after the colon, unfolded-as-is (CRLFs kept)
}

// maxHeaderBytes bounds the header section we parse; larger headers are a
// fail, not a truncation (fail closed).
const maxHeaderBytes = 1 << 20

var errMalformed = errors.New("malformed header section")

// toCRLF turns bare LF into CRLF; messages in SMTP are CRLF already and
// test corpora are often LF-only. Bare CR is left alone.
func toCRLF(msg []byte) []byte {
	if !bytes.Contains(msg, []byte("\n")) {
		return msg
	}
	var b bytes.Buffer
	b.Grow(len(msg) + len(msg)/32)
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(c)
	}
	return b.Bytes()
}

// split parses the header section of a CRLF message (RFC 5322 §2.2) and
// returns its fields top to bottom and the body. A message without a blank
// line has no body; a line that is neither a field nor a continuation is
// malformed.
func split(msg []byte) ([]field, []byte, error) {
	var fields []field
	rest := msg
	off := 0
	for {
		if off > maxHeaderBytes {
			return nil, nil, fmt.Errorf("%w: header section over %d bytes", errMalformed, maxHeaderBytes)
		}
		if len(rest) == 0 {
			return fields, nil, nil
		}
		if bytes.HasPrefix(rest, []byte("\r\n")) {
			return fields, rest[2:], nil
		}
		// One field: first line plus continuation lines starting with WSP.
		end := 0
		for {
			i := bytes.Index(rest[end:], []byte("\r\n"))
			if i < 0 {
				end = len(rest)
				break
			}
			end += i + 2
			if end >= len(rest) || (rest[end] != ' ' && rest[end] != '\t') {
				break
			}
		}
		raw := string(rest[:end])
		colon := strings.IndexByte(raw, ':')
		if colon <= 0 || strings.ContainsAny(raw[:colon], " \t\r\n") {
			return nil, nil, fmt.Errorf("%w: line %q is not a header field", errMalformed, firstLine(raw))
		}
		if !strings.HasSuffix(raw, "\r\n") {
			raw += "\r\n"
		}
		name := raw[:colon]
		fields = append(fields, field{Name: name, Lower: strings.ToLower(name), Raw: raw, Value: raw[colon+1 : len(raw)-2]})
		rest = rest[end:]
		off += end
	}
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// relaxedHeader is RFC 6376 §3.4.2: lower-case name, unfold, runs of WSP
// to one SP, no WSP at the end or around the colon. Result ends in CRLF.
func relaxedHeader(raw string) string {
	colon := strings.IndexByte(raw, ':')
	name := strings.ToLower(strings.TrimRight(raw[:colon], " \t"))
	v := raw[colon+1:]
	v = strings.ReplaceAll(v, "\r\n", "")
	var b strings.Builder
	b.Grow(len(name) + len(v) + 3)
	b.WriteString(name)
	b.WriteByte(':')
	space := false
	started := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space && started {
			b.WriteByte(' ')
		}
		space = false
		started = true
		b.WriteByte(c)
	}
	b.WriteString("\r\n")
	return b.String()
}

// canonHeader returns the field canonicalised by the named algorithm.
func canonHeader(raw string, relaxed bool) string {
	if relaxed {
		return relaxedHeader(raw)
	}
	return raw
}

// bodyHash hashes the body canonicalised per RFC 6376 §3.4.3/§3.4.4, limited
// to l bytes when l >= 0.
func bodyHash(body []byte, relaxed bool, l int64) []byte {
	var c []byte
	if relaxed {
		var b bytes.Buffer
		for _, line := range bytes.SplitAfter(body, []byte("\r\n")) {
			if len(line) == 0 {
				continue
			}
			crlf := bytes.HasSuffix(line, []byte("\r\n"))
			line = bytes.TrimSuffix(line, []byte("\r\n"))
			space := false
			var o []byte
			for _, ch := range line {
				if ch == ' ' || ch == '\t' {
					space = true
					continue
				}
				if space {
					o = append(o, ' ')
				}
				space = false
				o = append(o, ch)
			}
			b.Write(o)
			if crlf {
				b.WriteString("\r\n")
			}
		}
		c = b.Bytes()
		if len(c) > 0 && !bytes.HasSuffix(c, []byte("\r\n")) {
			c = append(c, '\r', '\n')
		}
		for bytes.HasSuffix(c, []byte("\r\n\r\n")) {
			c = c[:len(c)-2]
		}
		if bytes.Equal(c, []byte("\r\n")) {
			c = nil
		}
	} else {
		c = append([]byte(nil), body...)
		if len(c) > 0 && !bytes.HasSuffix(c, []byte("\r\n")) {
			c = append(c, '\r', '\n')
		}
		for bytes.HasSuffix(c, []byte("\r\n\r\n")) {
			c = c[:len(c)-2]
		}
		if len(c) == 0 {
			c = []byte("\r\n")
		}
	}
	if l >= 0 && int64(len(c)) > l {
		c = c[:l]
	}
	h := sha256.Sum256(c)
	return h[:]
}

// tag is one tag=value pair of a tag-list (RFC 6376 §3.2).
type tag struct {
	Name, Value string
}

// parseTags parses a tag-list strictly: every tag named once, names made of
// ALPHA/DIGIT/"_", values without control characters. A trailing ';' is
// allowed; an empty list is not.
func parseTags(v string) (map[string]string, []tag, error) {
	m := map[string]string{}
	var list []tag
	parts := strings.Split(v, ";")
	for i, p := range parts {
		if strings.Trim(p, " \t\r\n") == "" {
			if i == len(parts)-1 && i > 0 {
				break
			}
			return nil, nil, fmt.Errorf("empty tag in tag-list")
		}
		eq := strings.IndexByte(p, '=')
		if eq < 0 {
			return nil, nil, fmt.Errorf("tag %q without '='", strings.TrimSpace(p))
		}
		name := strings.Trim(p[:eq], " \t\r\n")
		val := strings.Trim(p[eq+1:], " \t\r\n")
		if name == "" || !isTagName(name) {
			return nil, nil, fmt.Errorf("bad tag name %q", name)
		}
		for _, c := range val {
			if c < 0x20 && c != ' ' && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
				return nil, nil, fmt.Errorf("control character in tag %s", name)
			}
		}
		if _, dup := m[name]; dup {
			return nil, nil, fmt.Errorf("duplicate tag %s", name)
		}
		m[name] = val
		list = append(list, tag{name, val})
	}
	return m, list, nil
}

func isTagName(s string) bool {
	for i, c := range s {
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !(alpha || (i > 0 && (c >= '0' && c <= '9' || c == '_'))) {
			return false
		}
	}
	return true
}

// stripB returns raw with the value of its b= tag removed (RFC 6376 §3.7:
// "the value of the b= tag (including all surrounding whitespace) is
// deleted"), leaving every other byte as it was.
func stripB(raw string) string {
	colon := strings.IndexByte(raw, ':')
	head, v := raw[:colon+1], raw[colon+1:]
	parts := strings.Split(v, ";")
	for i, p := range parts {
		eq := strings.IndexByte(p, '=')
		if eq >= 0 && strings.Trim(p[:eq], " \t\r\n") == "b" {
			parts[i] = p[:eq+1]
		}
	}
	return head + strings.Join(parts, ";")
}

// b64 decodes a base64 tag value, ignoring folding whitespace (RFC 6376 §2.4).
func b64clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}
