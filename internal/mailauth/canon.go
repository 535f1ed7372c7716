package mailauth

import (
	"bufio"
	"bytes"
	"errors"
	"hash"
	"io"
	"strings"
)

// relaxedBody writes the "relaxed" canonical form of a message body to h as
// it streams (RFC 6376 §3.4.4), without holding lines in memory:
//
//   - whitespace (SP, HTAB) at the end of a line is removed;
//   - runs of whitespace within a line become one SP;
//   - empty lines at the end of the body are removed, and a non-empty body
//     ends in exactly one CRLF. An empty body hashes as nothing.
type relaxedBody struct {
	h          hash.Hash
	out        []byte
	wsp        bool // whitespace seen and not yet written
	pendingEOL int  // line ends not yet written (they may be trailing)
	cr         bool // last byte was CR
	content    bool // something has been written
}

func newRelaxedBody(h hash.Hash) *relaxedBody {
	return &relaxedBody{h: h, out: make([]byte, 0, 32<<10)}
}

// special marks the bytes the canonicaliser must look at; runs of other
// bytes are copied as they are.
var special = [256]bool{' ': true, '\t': true, '\r': true, '\n': true}

func (r *relaxedBody) Write(p []byte) (int, error) {
	for i := 0; i < len(p); {
		if len(r.out) >= 16<<10 {
			r.h.Write(r.out)
			r.out = r.out[:0]
		}
		if r.cr {
			r.cr = false
			if p[i] == '\n' {
				r.wsp = false // trailing whitespace is dropped
				r.pendingEOL++
				i++
				continue
			}
			r.emit('\r') // a lone CR is ordinary text
		}
		c := p[i]
		switch {
		case c == '\r':
			r.cr = true
			i++
		case c == ' ' || c == '\t':
			r.wsp = true
			i++
		case c == '\n':
			r.emit(c)
			i++
		default:
			// A run of ordinary bytes: flush what is pending once, then copy.
			// A single SP between ordinary bytes is already canonical, so
			// it stays in the run: runs are then whole words and phrases.
			j := i + 1
			for j < len(p) && (!special[p[j]] || p[j] == ' ' && j+1 < len(p) && !special[p[j+1]]) {
				j++
			}
			r.emit(c)
			r.out = append(r.out, p[i+1:j]...)
			i = j
		}
	}
	return len(p), nil
}

func (r *relaxedBody) emit(c byte) {
	for ; r.pendingEOL > 0; r.pendingEOL-- {
		r.out = append(r.out, '\r', '\n')
	}
	if r.wsp {
		r.out = append(r.out, ' ')
		r.wsp = false
	}
	r.out = append(r.out, c)
	r.content = true
}

// Sum finishes the canonical body and returns its hash.
func (r *relaxedBody) Sum() []byte {
	if r.cr {
		r.emit('\r')
	}
	if r.content {
		r.out = append(r.out, '\r', '\n')
	}
	r.h.Write(r.out)
	return r.h.Sum(nil)
}

// relaxedHeader is the "relaxed" canonical form of one header field
// (RFC 6376 §3.4.2): name in lower case, unfolded, whitespace runs as one
// SP, no whitespace around the colon or at the end; with CRLF.
func relaxedHeader(raw string) string {
	name, value, _ := strings.Cut(raw, ":")
	var b strings.Builder
	b.Grow(len(raw))
	b.WriteString(strings.ToLower(strings.TrimRight(name, " \t")))
	b.WriteByte(':')
	wsp, started := false, false
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch c {
		case '\r', '\n':
			// unfold: CRLF before WSP disappears
		case ' ', '\t':
			wsp = true
		default:
			if wsp && started {
				b.WriteByte(' ')
			}
			wsp, started = false, true
			b.WriteByte(c)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// field is one header field as it appears in the message, folding kept.
type field struct {
	lname string // lower-case name
	raw   string // "Name: value" with any folding, without the final CRLF
}

var errHeader = errors.New("malformed message header")

// readHeader reads the header section (up to max bytes) and leaves br at the
// start of the body.
func readHeader(br *bufio.Reader, max int) ([]field, error) {
	var fields []field
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && !(errors.Is(err, io.EOF) && len(line) == 0) {
			if errors.Is(err, io.EOF) {
				// header without a body: take the last line
				line = append(bytes.Clone(line), '\r', '\n')
			} else {
				return nil, errHeader
			}
		}
		if len(line) == 0 {
			return fields, nil
		}
		n += len(line)
		if n > max {
			return nil, errHeader
		}
		if len(line) <= 2 && (string(line) == "\r\n" || string(line) == "\n") {
			return fields, nil
		}
		s := strings.TrimRight(string(line), "\r\n")
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return nil, errHeader
			}
			fields[len(fields)-1].raw += "\r\n" + s
			continue
		}
		name, _, ok := strings.Cut(s, ":")
		if !ok || name == "" {
			return nil, errHeader
		}
		fields = append(fields, field{lname: strings.ToLower(strings.TrimRight(name, " \t")), raw: s})
		if errors.Is(err, io.EOF) {
			return fields, nil
		}
	}
}
