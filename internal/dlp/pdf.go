package dlp

import (
	"bytes"
	"compress/zlib"
	"encoding/ascii85"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"unicode/utf16"
)

// PDF text extraction, enough for finding identifiers: the text of every
// page's content streams and form XObjects. A PDF (ISO 32000) is a set of
// numbered objects; a page names its content streams and its fonts; text is
// drawn by operators in the content stream (Tj, TJ, ', "), as strings of
// character codes that the font's ToUnicode CMap maps to Unicode (§9.10).
// Fonts without one use a single-byte encoding that is Latin-1 for the
// characters identifiers are made of. Compressed object streams (PDF 1.5)
// and the Flate, ASCIIHex and ASCII85 filters are read; encrypted PDFs are
// reported unscannable by the caller.

var (
	errPDFEncrypted = errors.New("encrypted PDF")
	errPDFCorrupt   = errors.New("corrupt PDF")
)

type pdfObj struct {
	dict   []byte // the object before "stream", or all of it
	stream []byte // raw stream bytes, nil if none
}

type pdfDoc struct {
	objs    map[int]*pdfObj
	budget  int64 // bytes of decoded streams still allowed
	decoded map[int][]byte
}

var (
	objHeader = regexp.MustCompile(`(\d+)\s+\d+\s+obj\b`)
	refRe     = regexp.MustCompile(`^\s*(\d+)\s+\d+\s+R`)
)

// pdfText returns the text of a PDF, decoding at most limit bytes of streams.
func pdfText(data []byte, limit int64) ([]byte, error) {
	d := &pdfDoc{objs: map[int]*pdfObj{}, budget: limit, decoded: map[int][]byte{}}
	idx := objHeader.FindAllSubmatchIndex(data, -1)
	for i, m := range idx {
		num, err := strconv.Atoi(string(data[m[2]:m[3]]))
		if err != nil {
			continue
		}
		end := len(data)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		d.objs[num] = splitObj(data[m[1]:end])
	}
	if len(d.objs) == 0 {
		return nil, errPDFCorrupt
	}
	for _, o := range d.objs {
		if bytes.Contains(o.dict, []byte("/Encrypt")) && bytes.Contains(o.dict, []byte("/Root")) || bytes.Contains(o.dict, []byte("/Filter /Standard")) || bytes.Contains(o.dict, []byte("/Filter/Standard")) {
			return nil, errPDFEncrypted
		}
	}
	if tail := data[max(0, len(data)-4096):]; bytes.Contains(tail, []byte("/Encrypt")) {
		return nil, errPDFEncrypted
	}
	// Objects inside object streams.
	for num, o := range d.objs {
		if o.stream != nil && dictName(o.dict, "/Type") == "ObjStm" {
			d.expandObjStm(num, o)
		}
	}
	var out bytes.Buffer
	done := map[int]bool{}
	for num, o := range d.objs {
		switch {
		case dictName(o.dict, "/Type") == "Page":
			fonts := d.fonts(o.dict)
			for _, c := range d.contents(o.dict) {
				if done[c] {
					continue
				}
				done[c] = true
				if b := d.streamOf(c); b != nil {
					contentText(b, fonts, &out)
				}
			}
		case o.stream != nil && dictName(o.dict, "/Subtype") == "Form":
			if done[num] {
				continue
			}
			done[num] = true
			if b := d.streamOf(num); b != nil {
				contentText(b, d.fonts(o.dict), &out)
			}
		}
		if d.budget < 0 {
			return out.Bytes(), fmt.Errorf("%w: more than %d bytes of content", errLimit, limit)
		}
	}
	return out.Bytes(), nil
}

func splitObj(b []byte) *pdfObj {
	if e := bytes.Index(b, []byte("endobj")); e >= 0 {
		b = b[:e]
	}
	i := bytes.Index(b, []byte("stream"))
	for i >= 0 && i > 2 && string(b[i-3:i]) == "end" {
		i = -1
	}
	if i < 0 {
		return &pdfObj{dict: b}
	}
	s := b[i+6:]
	if bytes.HasPrefix(s, []byte("\r\n")) {
		s = s[2:]
	} else if len(s) > 0 && (s[0] == '\n' || s[0] == '\r') {
		s = s[1:]
	}
	if e := bytes.LastIndex(s, []byte("endstream")); e >= 0 {
		s = s[:e]
	}
	o := &pdfObj{dict: b[:i], stream: s}
	if n, ok := dictInt(o.dict, "/Length"); ok && n >= 0 && n <= len(s) {
		o.stream = s[:n]
	}
	return o
}

func (d *pdfDoc) expandObjStm(num int, o *pdfObj) {
	b := d.streamOf(num)
	n, _ := dictInt(o.dict, "/N")
	first, _ := dictInt(o.dict, "/First")
	if b == nil || first <= 0 || first > len(b) || n <= 0 || n > 100000 {
		return
	}
	head := bytes.Fields(b[:first])
	type ent struct{ num, off int }
	var ents []ent
	for i := 0; i+1 < len(head) && len(ents) < n; i += 2 {
		a, err1 := strconv.Atoi(string(head[i]))
		off, err2 := strconv.Atoi(string(head[i+1]))
		if err1 != nil || err2 != nil || first+off > len(b) {
			return
		}
		ents = append(ents, ent{a, first + off})
	}
	for i, e := range ents {
		end := len(b)
		if i+1 < len(ents) && ents[i+1].off >= e.off {
			end = ents[i+1].off
		}
		if _, ok := d.objs[e.num]; !ok {
			d.objs[e.num] = &pdfObj{dict: b[e.off:end]}
		}
	}
}

// streamOf returns the decoded stream of object num (nil if none, or if it
// cannot be decoded).
func (d *pdfDoc) streamOf(num int) []byte {
	if b, ok := d.decoded[num]; ok {
		return b
	}
	o := d.objs[num]
	if o == nil || o.stream == nil {
		return nil
	}
	b := o.stream
	for _, f := range filters(o.dict) {
		var err error
		switch f {
		case "FlateDecode", "Fl":
			var zr io.ReadCloser
			zr, err = zlib.NewReader(bytes.NewReader(b))
			if err == nil {
				var out bytes.Buffer
				_, err = io.Copy(&out, io.LimitReader(zr, max(d.budget, 0)+1))
				zr.Close()
				if err == io.ErrUnexpectedEOF && out.Len() > 0 {
					err = nil // truncated streams are common; keep what came
				}
				b = out.Bytes()
			}
		case "ASCIIHexDecode", "AHx":
			clean := bytes.Map(func(r rune) rune {
				if r == '>' || r == ' ' || r == '\n' || r == '\r' || r == '\t' {
					return -1
				}
				return r
			}, b)
			if len(clean)%2 == 1 {
				clean = append(clean, '0')
			}
			b, err = hex.DecodeString(string(clean))
		case "ASCII85Decode", "A85":
			s := bytes.TrimSpace(b)
			s = bytes.TrimPrefix(s, []byte("<~"))
			if i := bytes.Index(s, []byte("~>")); i >= 0 {
				s = s[:i]
			}
			out := make([]byte, len(s))
			var n int
			n, _, err = ascii85.Decode(out, s, true)
			b = out[:n]
		default:
			return nil // images and the like: no text
		}
		if err != nil {
			return nil
		}
	}
	d.budget -= int64(len(b))
	if d.budget < 0 {
		return nil
	}
	d.decoded[num] = b
	return b
}

var filterRe = regexp.MustCompile(`/Filter\s*(\[[^\]]*\]|/[A-Za-z0-9]+)`)

func filters(dict []byte) []string {
	m := filterRe.FindSubmatch(dict)
	if m == nil {
		return nil
	}
	var out []string
	for _, f := range bytes.Split(m[1], []byte("/"))[1:] {
		out = append(out, string(bytes.Trim(bytes.TrimSpace(f), "[] ")))
	}
	return out
}

// dictValue returns the raw value after key in a dictionary (up to the next
// key at the same level, roughly), resolving one indirect reference.
func dictValue(dict []byte, key string) []byte {
	i := indexKey(dict, key)
	if i < 0 {
		return nil
	}
	return bytes.TrimLeft(dict[i+len(key):], " \t\r\n")
}

func indexKey(dict []byte, key string) int {
	for off := 0; ; {
		i := bytes.Index(dict[off:], []byte(key))
		if i < 0 {
			return -1
		}
		i += off
		end := i + len(key)
		if end == len(dict) || !isNameChar(dict[end]) {
			return i
		}
		off = end
	}
}

func isNameChar(c byte) bool {
	return c > ' ' && c < 0x7f && !bytes.ContainsRune([]byte("/[]<>()%{}"), rune(c))
}

func dictName(dict []byte, key string) string {
	v := dictValue(dict, key)
	if len(v) < 2 || v[0] != '/' {
		return ""
	}
	j := 1
	for j < len(v) && isNameChar(v[j]) {
		j++
	}
	return string(v[1:j])
}

func dictInt(dict []byte, key string) (int, bool) {
	v := dictValue(dict, key)
	j := 0
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	if j == 0 || refRe.Match(v) {
		return 0, false
	}
	n, err := strconv.Atoi(string(v[:j]))
	return n, err == nil
}

// resolve returns the dictionary v, following a reference.
func (d *pdfDoc) resolve(v []byte) []byte {
	if m := refRe.FindSubmatch(v); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		if o := d.objs[n]; o != nil {
			return o.dict
		}
		return nil
	}
	return v
}

// innerDict returns the <<...>> dictionary at the start of v.
func innerDict(v []byte) []byte {
	v = bytes.TrimLeft(v, " \t\r\n")
	if !bytes.HasPrefix(v, []byte("<<")) {
		return nil
	}
	depth := 0
	for i := 0; i+1 < len(v); i++ {
		switch {
		case v[i] == '<' && v[i+1] == '<':
			depth++
			i++
		case v[i] == '>' && v[i+1] == '>':
			depth--
			i++
			if depth == 0 {
				return v[:i+1]
			}
		}
	}
	return v
}

var fontEntry = regexp.MustCompile(`/([^\s/<>\[\]()]+)\s+(\d+)\s+\d+\s+R`)

// fonts maps the font names of a page or form to their ToUnicode maps.
func (d *pdfDoc) fonts(dict []byte) map[string]*cmap {
	out := map[string]*cmap{}
	res := d.resolve(dictValue(dict, "/Resources"))
	if res == nil {
		return out
	}
	res = innerDict(res)
	fd := innerDict(d.resolve(dictValue(res, "/Font")))
	for _, m := range fontEntry.FindAllSubmatch(fd, -1) {
		n, _ := strconv.Atoi(string(m[2]))
		f := d.objs[n]
		if f == nil {
			continue
		}
		tu := refRe.FindSubmatch(dictValue(f.dict, "/ToUnicode"))
		if tu == nil {
			// Type0 fonts keep it on the font itself; simple fonts too.
			out[string(m[1])] = nil
			continue
		}
		tn, _ := strconv.Atoi(string(tu[1]))
		if b := d.streamOf(tn); b != nil {
			out[string(m[1])] = parseCMap(b)
		}
	}
	return out
}

// contents lists the content stream objects of a page.
func (d *pdfDoc) contents(dict []byte) []int {
	v := dictValue(dict, "/Contents")
	if m := refRe.FindSubmatch(v); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		if o := d.objs[n]; o != nil && o.stream == nil {
			v = o.dict // an indirect array
		} else {
			return []int{n}
		}
	}
	var out []int
	if i := bytes.IndexByte(v, '['); i >= 0 {
		if j := bytes.IndexByte(v[i:], ']'); j >= 0 {
			for _, m := range regexp.MustCompile(`(\d+)\s+\d+\s+R`).FindAllSubmatch(v[i:i+j], -1) {
				n, _ := strconv.Atoi(string(m[1]))
				out = append(out, n)
			}
		}
	}
	return out
}

// cmap is a ToUnicode map: character codes of 1 to 4 bytes to text.
type cmap struct {
	width int // code length in bytes (from the codespace range)
	m     map[string]string
}

func parseCMap(b []byte) *cmap {
	c := &cmap{width: 1, m: map[string]string{}}
	if i := bytes.Index(b, []byte("begincodespacerange")); i >= 0 {
		if h := hexTokens(b[i:min(len(b), i+200)], 1); len(h) > 0 {
			c.width = max(1, len(h[0]))
		}
	}
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte("beginbfchar"))
		if i < 0 {
			break
		}
		i += off + len("beginbfchar")
		e := bytes.Index(b[i:], []byte("endbfchar"))
		if e < 0 {
			break
		}
		toks := hexTokens(b[i:i+e], -1)
		for k := 0; k+1 < len(toks); k += 2 {
			c.m[string(toks[k])] = utf16Text(toks[k+1])
		}
		off = i + e
	}
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte("beginbfrange"))
		if i < 0 {
			break
		}
		i += off + len("beginbfrange")
		e := bytes.Index(b[i:], []byte("endbfrange"))
		if e < 0 {
			break
		}
		body := b[i : i+e]
		for _, line := range bytes.Split(body, []byte("\n")) {
			toks := hexTokens(line, -1)
			if len(toks) < 3 || len(toks[0]) != len(toks[1]) || len(toks[0]) > 4 {
				continue
			}
			lo, hi := beUint(toks[0]), beUint(toks[1])
			if hi < lo || hi-lo > 65535 {
				continue
			}
			arr := bytes.Contains(line, []byte("["))
			for code := lo; code <= hi; code++ {
				key := make([]byte, len(toks[0]))
				putBE(key, code)
				if arr {
					if k := int(code-lo) + 2; k < len(toks) {
						c.m[string(key)] = utf16Text(toks[k])
					}
					continue
				}
				dst := append([]byte(nil), toks[2]...)
				if len(dst) >= 2 {
					v := uint32(dst[len(dst)-2])<<8 | uint32(dst[len(dst)-1])
					v += code - lo
					dst[len(dst)-2], dst[len(dst)-1] = byte(v>>8), byte(v)
				}
				c.m[string(key)] = utf16Text(dst)
			}
		}
		off = i + e
	}
	return c
}

func beUint(b []byte) uint32 {
	var v uint32
	for _, x := range b {
		v = v<<8 | uint32(x)
	}
	return v
}

func putBE(dst []byte, v uint32) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte(v)
		v >>= 8
	}
}

func utf16Text(b []byte) string {
	if len(b)%2 == 1 {
		return string(b)
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(u))
}

// hexTokens returns the <hex> strings in b (at most n; n < 0: all).
func hexTokens(b []byte, n int) [][]byte {
	var out [][]byte
	for i := 0; i < len(b) && (n < 0 || len(out) < n); i++ {
		if b[i] != '<' {
			continue
		}
		j := bytes.IndexByte(b[i:], '>')
		if j < 0 {
			break
		}
		h := bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
				return -1
			}
			return r
		}, b[i+1:i+j])
		if len(h)%2 == 1 {
			h = append(h, '0')
		}
		if v, err := hex.DecodeString(string(h)); err == nil {
			out = append(out, v)
		}
		i += j
	}
	return out
}

// contentText appends the text a content stream draws.
func contentText(b []byte, fonts map[string]*cmap, out *bytes.Buffer) {
	var font *cmap
	var operands [][]byte // string operands since the last operator
	var lastName string
	emit := func(s []byte) {
		if font == nil {
			for _, c := range s {
				if c >= 0x20 || c == '\t' {
					out.WriteRune(rune(c)) // Latin-1 / WinAnsi for what matters here
				}
			}
			return
		}
		for i := 0; i+font.width <= len(s); i += font.width {
			if t, ok := font.m[string(s[i:i+font.width])]; ok {
				out.WriteString(t)
			}
		}
	}
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '(':
			s, n := literalString(b[i:])
			operands = append(operands, s)
			i += n
		case c == '<' && i+1 < len(b) && b[i+1] != '<':
			j := bytes.IndexByte(b[i:], '>')
			if j < 0 {
				return
			}
			if h := hexTokens(b[i:i+j+1], 1); len(h) == 1 {
				operands = append(operands, h[0])
			}
			i += j + 1
		case c == '/':
			j := i + 1
			for j < len(b) && isNameChar(b[j]) {
				j++
			}
			lastName = string(b[i+1 : j])
			i = j
		case c == '%':
			for i < len(b) && b[i] != '\n' && b[i] != '\r' {
				i++
			}
		case c == '-' || c == '.' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(b) && (b[j] == '.' || b[j] >= '0' && b[j] <= '9') {
				j++
			}
			if v, err := strconv.ParseFloat(string(b[i:j]), 64); err == nil && v < -200 && len(operands) > 0 {
				operands = append(operands, []byte{0}) // a wide gap in a TJ array: a space
			}
			i = j
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '\'' || c == '"' || c == '*':
			j := i + 1
			for j < len(b) && (b[j] >= 'A' && b[j] <= 'Z' || b[j] >= 'a' && b[j] <= 'z' || b[j] == '*') {
				j++
			}
			op := string(b[i:j])
			switch op {
			case "Tf":
				font = fonts[lastName]
			case "Tj", "TJ", "'", "\"":
				if op == "'" || op == "\"" {
					out.WriteByte('\n')
				}
				for _, s := range operands {
					if len(s) == 1 && s[0] == 0 {
						out.WriteByte(' ')
						continue
					}
					emit(s)
				}
			case "Td", "TD", "T*", "Tm", "ET":
				out.WriteByte('\n')
			}
			operands = operands[:0]
			i = j
		default:
			i++
		}
	}
}

// literalString decodes a (string) at the start of b; it returns the bytes
// and how much of b it took.
func literalString(b []byte) ([]byte, int) {
	var out []byte
	depth := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '(':
			if depth > 0 {
				out = append(out, c)
			}
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return out, i + 1
			}
			out = append(out, c)
		case c == '\\' && i+1 < len(b):
			i++
			switch e := b[i]; e {
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'b', 'f':
			case '\r', '\n':
				if e == '\r' && i+1 < len(b) && b[i+1] == '\n' {
					i++
				}
			default:
				if e >= '0' && e <= '7' {
					v, k := 0, 0
					for k < 3 && i+k < len(b) && b[i+k] >= '0' && b[i+k] <= '7' {
						v = v*8 + int(b[i+k]-'0')
						k++
					}
					out = append(out, byte(v))
					i += k - 1
				} else {
					out = append(out, e)
				}
			}
		default:
			out = append(out, c)
		}
	}
	return out, len(b)
}
