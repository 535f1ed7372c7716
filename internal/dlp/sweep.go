package dlp

import (
	"bytes"
	"io"
	"net/textproto"
	"strings"

	"sealpost/internal/mime"
)

// Encodings that hide an attachment inside text: base64 blocks whose MIME
// header was unreadable, uuencode ("begin 644 name", which Outlook and
// Thunderbird still show as an attachment) and yEnc ("=ybegin ... name=").
// The sweep finds and decodes them wherever they sit, so that whatever a
// mail client could show as a file, the scanner has read.

var b64val = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(a); i++ {
		t[a[i]] = byte(i)
	}
	t['-'], t['_'] = 62, 63 // the URL-safe alphabet, which some senders use
	return t
}()

// b64 decodes base64 the forgiving way mail clients do: characters outside
// the alphabet are skipped, and padding ends a quantum rather than the data
// (so lines of mixed lengths, each padded, decode whole).
type b64 struct {
	q [4]byte
	n int
}

func (d *b64) write(dst, src []byte) []byte {
	for _, c := range src {
		if c == '=' {
			dst = d.flush(dst)
			continue
		}
		v := b64val[c]
		if v == 0xff || c == '-' || c == '_' {
			continue
		}
		d.q[d.n] = v
		d.n++
		if d.n == 4 {
			dst = append(dst, d.q[0]<<2|d.q[1]>>4, d.q[1]<<4|d.q[2]>>2, d.q[2]<<6|d.q[3])
			d.n = 0
		}
	}
	return dst
}

func (d *b64) flush(dst []byte) []byte {
	switch d.n {
	case 2:
		dst = append(dst, d.q[0]<<2|d.q[1]>>4)
	case 3:
		dst = append(dst, d.q[0]<<2|d.q[1]>>4, d.q[1]<<4|d.q[2]>>2)
	}
	d.n = 0
	return dst
}

func decodeB64(src []byte) []byte {
	var d b64
	out := d.write(make([]byte, 0, len(src)*3/4+3), src)
	return d.flush(out)
}

// b64Reader decodes a base64 body as it streams.
type b64Reader struct {
	r   io.Reader
	d   b64
	in  [4096]byte
	out []byte
	err error
}

func (b *b64Reader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		n, err := b.r.Read(b.in[:])
		b.out = b.d.write(b.out[:0], b.in[:n])
		if err != nil {
			b.out = b.d.flush(b.out)
			b.err = err
		}
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// uudecode decodes the first "begin MODE NAME" ... "end" block in data.
func uudecode(data []byte) ([]byte, string, bool) {
	lines := bytes.Split(data, []byte("\n"))
	for i, l := range lines {
		l = bytes.TrimRight(l, "\r \t")
		if !bytes.HasPrefix(l, []byte("begin ")) {
			continue
		}
		f := strings.Fields(string(l))
		if len(f) < 3 || len(f[1]) < 3 || strings.Trim(f[1], "01234567") != "" {
			continue
		}
		name := strings.Join(f[2:], " ")
		var out []byte
		for _, l := range lines[i+1:] {
			l = bytes.TrimRight(l, "\r")
			if bytes.Equal(bytes.TrimSpace(l), []byte("end")) || len(l) == 0 {
				break
			}
			n := int((l[0] - ' ') & 0x3f)
			var dec []byte
			for j := 1; j < len(l); j += 4 {
				var q [4]byte
				for k := 0; k < 4; k++ {
					if j+k < len(l) {
						q[k] = (l[j+k] - ' ') & 0x3f
					}
				}
				dec = append(dec, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2, q[2]<<6|q[3])
			}
			out = append(out, dec[:min(n, len(dec))]...)
		}
		return out, name, true
	}
	return nil, "", false
}

// ydecode decodes the "=ybegin" ... "=yend" blocks in data (yEnc 1.3), with
// the name of the first.
func ydecode(data []byte) ([]byte, string, bool) {
	i := bytes.Index(data, []byte("=ybegin "))
	if i < 0 {
		return nil, "", false
	}
	nl := bytes.IndexByte(data[i:], '\n')
	if nl < 0 {
		return nil, "", false
	}
	hdr := string(bytes.TrimRight(data[i:i+nl], "\r"))
	name := ""
	if k := strings.Index(hdr, " name="); k >= 0 {
		name = strings.TrimSpace(hdr[k+6:])
	}
	var out []byte
	rest := data[i+nl+1:]
	for len(rest) > 0 {
		e := bytes.IndexByte(rest, '\n')
		line := rest
		if e >= 0 {
			line, rest = rest[:e], rest[e+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimRight(line, "\r")
		if bytes.HasPrefix(line, []byte("=yend")) {
			break
		}
		if bytes.HasPrefix(line, []byte("=ypart ")) {
			continue
		}
		for j := 0; j < len(line); j++ {
			c := line[j]
			if c == '=' && j+1 < len(line) {
				j++
				out = append(out, line[j]-64-42)
				continue
			}
			out = append(out, c-42)
		}
	}
	return out, name, true
}

func isB64Line(l []byte) bool {
	if len(l) < 4 {
		return false
	}
	for _, c := range l {
		if b64val[c] == 0xff && c != '=' || c == '-' || c == '_' {
			return false
		}
	}
	return true
}

// hasEmbedded says whether text may carry an encoded file or a MIME part
// that the walk did not see as one: uuencode or yEnc, or a
// Content-Transfer-Encoding header line inside the text.
func hasEmbedded(b []byte) bool {
	return bytes.Contains(b, []byte("begin ")) || bytes.Contains(b, []byte("ransfer-")) || bytes.Contains(b, []byte("RANSFER-"))
}

// hasHiddenPart says whether text holds a Content-Transfer-Encoding header
// line: a MIME part the walk read as text.
func hasHiddenPart(b []byte) bool {
	return bytes.Contains(b, []byte("ransfer-")) || bytes.Contains(b, []byte("RANSFER-"))
}

// sweep decodes every encoded block in data and scans what it holds, under
// the name the nearest header gives it (where when it has none).
//
// Base64 blocks are looked for only where a MIME header may have been
// missed (blocks): in a broken entity, or in text holding a
// Content-Transfer-Encoding line; uuencode and yEnc wherever their begin
// lines are.
func (s *scan) sweep(data []byte, where, prefix string, depth int, blocks bool) {
	if depth > s.e.limits.MaxDepth {
		s.unscannable(where, "nested too deep")
		return
	}
	if bytes.Contains(data, []byte("begin ")) {
		rest := data
		for n := 0; n < 100; n++ {
			i := bytes.Index(rest, []byte("begin "))
			if i < 0 {
				break
			}
			if i > 0 && rest[i-1] == 'y' && i > 1 && rest[i-2] == '=' {
				if dec, name, ok := ydecode(rest[i-2:]); ok {
					s.part(dec, "", name, at(prefix, where, name), depth+1)
				}
			} else if i == 0 || rest[i-1] == '\n' {
				if dec, name, ok := uudecode(rest[i:]); ok {
					s.part(dec, "", name, at(prefix, where, name), depth+1)
				}
			}
			rest = rest[i+6:]
		}
	}
	if !blocks {
		return
	}
	lines := bytes.Split(data, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		if !isB64Line(bytes.TrimRight(lines[i], "\r \t")) {
			continue
		}
		j := i
		var d b64
		var dec []byte
		chars := 0
		for ; j < len(lines); j++ {
			l := bytes.TrimRight(lines[j], "\r \t")
			if !isB64Line(l) {
				break
			}
			chars += len(l)
			dec = d.write(dec, l)
		}
		dec = d.flush(dec)
		// A visitor (inbound checks) sees binary blocks too: an executable
		// hidden in a body is what it looks for.
		if chars >= 16 && (sniff(dec) != "" || looksText(dec) || bomOf(dec) != "" || s.visit != nil && chars >= 64) {
			name := nameBefore(lines, i)
			s.part(dec, "", name, at(prefix, where, name), depth+1)
		}
		i = j
		if err := s.over(); err != nil {
			s.unscannable(where, err.Error())
			return
		}
	}
}

// nameBefore reads the header lines just above line i (a part's header
// above its base64 body) for the name a client would show.
func nameBefore(lines [][]byte, i int) string {
	k := i - 1
	for k >= 0 && len(bytes.TrimSpace(lines[k])) == 0 {
		k--
	}
	var hdr [][]byte
	for ; k >= 0 && k > i-30; k-- {
		l := bytes.TrimRight(lines[k], "\r")
		if len(bytes.TrimSpace(l)) == 0 || bytes.HasPrefix(l, []byte("--")) {
			break
		}
		hdr = append([][]byte{l}, hdr...)
	}
	if len(hdr) == 0 {
		return ""
	}
	h, _, _ := mime.ReadHeader(append(bytes.Join(hdr, []byte("\n")), '\n', '\n'))
	return mime.PartName(textproto.MIMEHeader(h), mime.ParseContentType(h.Get("Content-Type")))
}
