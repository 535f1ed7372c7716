package dlp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"path"
	"strings"

	"sealpost/internal/mime"
)

// The MIME walk. Well-formed mail (the common case) is streamed: text parts
// are scanned in chunks and only containers are held in memory. An entity
// whose headers are not plain RFC 2045/2046 (a Content-Type that does not
// parse, duplicated or conflicting parameters or headers, an unknown
// transfer encoding, a multipart that does not split) is read whole, within
// the limits, and scanned every way a mail client might read it: under each
// candidate boundary, as a single part, and by a sweep that decodes every
// base64, uuencode and yEnc block in it. Findings of the readings are
// merged (the most any reading found); a structure that stays ambiguous is
// reported as unscannable, never as clean.

// maxReadings bounds how many boundaries an ambiguous multipart is read
// under (each reading may nest further ones).
const maxReadings = 4

// maxHeader bounds a header block (RFC 5322 has no limit; real mail stays
// far below this).
const maxHeader = 1 << 20

// message scans a message; prefix names where it sits ("" for the top).
func (s *scan) message(r io.Reader, prefix string, depth int) error {
	br := headerReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() { br.Reset(nil); headerReaders.Put(br) }()
	var hb []byte
	ended := false
	for len(hb) < maxHeader {
		line, err := br.ReadSlice('\n')
		hb = append(hb, line...)
		if len(bytes.TrimRight(line, "\r\n")) == 0 && len(line) > 0 {
			ended = true
			break
		}
		if err == io.EOF && len(line) == 0 {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			break
		}
	}
	h, off, odd := mime.ReadHeader(hb)
	if len(h) == 0 {
		if prefix == "" {
			return fmt.Errorf("not a message: no header")
		}
		s.unscannable(prefix, "malformed message")
		return nil
	}
	var body io.Reader = br
	if off < len(hb) {
		// The header reader stopped at a line that is no header: what
		// follows belongs to the body.
		body = io.MultiReader(bytes.NewReader(hb[off:]), br)
	}
	if len(hb) >= maxHeader {
		s.unscannable(prefix+"header", "header larger than the scanning limit")
	}
	at := func(w string) string {
		if prefix == "" {
			return w
		}
		return prefix + "/" + w
	}
	raw := h.Get("Subject")
	subj, err := mime.WordDecoder().DecodeHeader(raw)
	if err != nil {
		subj = raw
	}
	if prefix == "" {
		s.marking = markingOf(subj, mail.Header(h), s.e.labels)
		s.header, s.subject = mail.Header(h), subj
	}
	s.text([]byte(subj), at("subject"))
	if !ended && odd {
		// No blank line ended the header (a message with bare CR line
		// ends, or a body run into the header): what was read as header
		// may be the body. Read it as text too.
		s.text(hb, at("body"))
		s.sweep(hb, at("body"), prefix, depth, true)
	}
	s.entity(h, body, at("body"), prefix, depth, odd)
	return nil
}

// knownCTE are the transfer encodings of RFC 2045 section 6.1.
func knownCTE(v string) bool {
	switch v {
	case "", "7bit", "8bit", "binary", "base64", "quoted-printable":
		return true
	}
	return false
}

// at names a part: "attachment:NAME" under the prefix when it has a name.
func at(prefix, where, name string) string {
	if name == "" {
		return where
	}
	w := "attachment:" + path.Base(strings.ReplaceAll(name, "\\", "/"))
	if prefix != "" {
		w = prefix + "/" + w
	}
	return w
}

// entity scans one MIME entity (a message body or a part). odd says its
// header block was not well formed.
func (s *scan) entity(h textproto.MIMEHeader, body io.Reader, where, prefix string, depth int, odd bool) {
	if depth > s.e.limits.MaxDepth {
		s.unscannable(where, "nested too deep")
		return
	}
	if err := s.over(); err != nil {
		s.unscannable(where, err.Error())
		return
	}
	cts := h["Content-Type"]
	ct := mime.ParseContentType(strings.Join(cts, ""))
	if len(cts) == 1 {
		ct = mime.ParseContentType(cts[0])
	}
	cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	mt := ct.MediaType()
	suspicious := odd || foldedMIME(h) || len(cts) > 1 || ct.Odd || len(h["Content-Transfer-Encoding"]) > 1 || !knownCTE(cte) ||
		len(ct.Params["boundary"]) > 1 || mt != "" && !strings.Contains(mt, "/") ||
		strings.Contains(mt, "multipart") && !strings.HasPrefix(mt, "multipart/")
	if suspicious {
		s.robust(h, body, where, prefix, depth)
		return
	}
	if mt == "" {
		mt = "text/plain"
	}
	name := mime.PartName(h, ct)
	where = at(prefix, where, name)
	s.visitHeader(h, ct, where)
	if strings.HasPrefix(mt, "multipart/") {
		s.multipart(h, body, ct.Param("boundary"), where, prefix, depth)
		return
	}
	s.leaf(body, cte, mt, ct.Param("charset"), name, where, prefix, depth)
}

// capture keeps what is read through it, up to a bound, so that a
// multipart that turns out malformed can be read again the lenient way.
// The bound is drawn from the scan's capture budget, so nested multiparts
// do not each keep a copy of the same bytes: memory per message stays
// under captureBudget however large the message is. Beyond the bound a
// malformed multipart is unscannable (fail closed), never clean.
//
// When delim is set, capture also counts the delimiter lines it sees,
// streaming, so that parts Go's reader did not see (a delimiter after a
// bare CR, an inner multipart reusing the outer boundary) are noticed in
// a body too large to keep.
type capture struct {
	r      io.Reader
	buf    bytes.Buffer
	max    int
	over   bool
	budget *int64 // shared by every capture of one scan

	delim []byte
	tail  []byte // the last len(delim)-1 bytes read, for a delimiter split across reads
	count int
}

// captureBudget is what one scan may keep in memory for re-reading
// malformed multiparts.
const captureBudget = 8 << 20

func (s *scan) newCapture(r io.Reader, max int64, delim string) *capture {
	if s.captureLeft == nil {
		left := int64(captureBudget)
		s.captureLeft = &left
	}
	c := &capture{r: r, max: int(max), budget: s.captureLeft}
	if delim != "" {
		c.delim = []byte(delim)
	}
	return c
}

func (c *capture) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.delim != nil && n > 0 {
		c.countDelims(p[:n])
	}
	if !c.over {
		if c.buf.Len()+n > c.max || (c.budget != nil && int64(n) > *c.budget) {
			c.drop()
		} else {
			c.buf.Write(p[:n])
			if c.budget != nil {
				*c.budget -= int64(n)
			}
		}
	}
	return n, err
}

// drop gives up the copy and returns its bytes to the budget.
func (c *capture) drop() {
	if c.budget != nil {
		*c.budget += int64(c.buf.Len())
	}
	c.over, c.buf = true, bytes.Buffer{}
}

func (c *capture) countDelims(p []byte) {
	k := len(c.delim) - 1
	if len(c.tail) > 0 {
		// Matches that start in the previous read and end in this one.
		head := p
		if len(head) > k {
			head = head[:k]
		}
		j := append(append(make([]byte, 0, len(c.tail)+len(head)), c.tail...), head...)
		c.count += bytes.Count(j, c.delim)
	}
	c.count += bytes.Count(p, c.delim)
	// Keep the last k bytes: too few to hold a whole delimiter, so no
	// match is counted twice.
	if len(p) >= k {
		c.tail = append(c.tail[:0], p[len(p)-k:]...)
	} else {
		c.tail = append(c.tail, p...)
		if len(c.tail) > k {
			c.tail = c.tail[len(c.tail)-k:]
		}
	}
}

// multipart streams the parts of a well-formed multipart; if it turns out
// malformed, it is read again whole, every way.
func (s *scan) multipart(h textproto.MIMEHeader, body io.Reader, boundary, where, prefix string, depth int) {
	cp := s.newCapture(body, s.e.limits.maxPart(), "--"+boundary)
	defer cp.drop()
	mr := multipart.NewReader(cp, boundary)
	for i := 0; ; i++ {
		p, err := mr.NextRawPart()
		if err == io.EOF && i > 0 {
			// Parts that Go's reader did not see as parts (a delimiter
			// after a bare CR or white space, an inner multipart with the
			// outer boundary): the raw body has more delimiters than
			// parts were read. Read it again the lenient way.
			if cp.count != i+1 {
				if cp.over {
					s.unscannable(where, "malformed multipart")
					return
				}
				data := cp.buf.Bytes()
				s.isolated(func() { s.robustData(h, data, where, prefix, depth) })
			}
			return
		}
		if err != nil {
			if cp.over {
				s.unscannable(where, "malformed multipart")
				return
			}
			rest, rerr := io.ReadAll(io.LimitReader(body, s.e.limits.maxPart()-int64(cp.buf.Len())+1))
			if rerr != nil || int64(cp.buf.Len()+len(rest)) > s.e.limits.maxPart() || int64(len(rest)) > *s.captureLeft {
				s.unscannable(where, "malformed multipart")
				return
			}
			data := append(cp.buf.Bytes(), rest...)
			s.isolated(func() { s.robustData(h, data, where, prefix, depth) })
			return
		}
		s.entity(p.Header, p, where, prefix, depth+1, false)
		if i > 1000 {
			s.unscannable(where, "too many parts")
			return
		}
	}
}

// leaf scans a single-part entity's content.
func (s *scan) leaf(body io.Reader, cte, mt, charset, name, where, prefix string, depth int) {
	if s.visited != nil {
		s.visited[where] = true
	}
	var r io.Reader = body
	var raw *capture
	switch cte {
	case "base64":
		// The raw base64 is kept while the part may be a container: padding
		// in the middle ("...AA==UEsD...") ends the data for some clients
		// and not for others, so both readings are scanned.
		raw = &capture{r: body, max: int(s.e.limits.maxPart()*4/3 + 4096)} // containers are held whole anyway, up to the same bound
		r = &b64Reader{r: raw}
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	if mt == "message/rfc822" || mt == "message/global" {
		// message/global (RFC 6532) is a message with UTF-8 headers.
		s.message(r, where, depth+1)
		return
	}
	// Look at the start to tell containers (read whole, up to a bound, since
	// archives need random access) from text (streamed in chunks, so that a
	// large part costs no more memory than a chunk).
	br := peekReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() { br.Reset(nil); peekReaders.Put(br) }()
	head, err := br.Peek(8192)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		s.unscannable(where, "content cannot be decoded")
		return
	}
	ext := strings.ToLower(path.Ext(name))
	if raw != nil && !isContainer(head, mt, ext) {
		raw.over, raw.buf = true, bytes.Buffer{}
	}
	if isContainer(head, mt, ext) || mt == "text/html" || ext == ".html" || ext == ".htm" || ext == ".eml" || bomOf(head) != "" {
		data, err := io.ReadAll(io.LimitReader(br, s.e.limits.maxPart()+1))
		if err != nil {
			s.unscannable(where, "content cannot be decoded")
			return
		}
		if int64(len(data)) > s.e.limits.maxPart() {
			if isContainer(head, mt, ext) {
				s.unscannable(where, fmt.Sprintf("larger than the scanning limit of %d bytes", s.e.limits.maxPart()))
				return
			}
			// Very large HTML: scan it as text, tags and all.
			s.chunks(io.MultiReader(bytes.NewReader(data), br), where, prefix, depth)
			return
		}
		if strings.HasPrefix(mt, "text/") && bomOf(data) == "" {
			data = s.decodeCharset(data, charset)
		}
		s.part(data, mt, name, where, depth)
		if raw != nil && !raw.over {
			if k := midPadding(raw.buf.Bytes()); k > 0 {
				alt := decodeB64(raw.buf.Bytes()[:k])
				s.isolated(func() { s.part(alt, mt, name, where, depth) })
			}
		}
		return
	}
	if s.visit != nil {
		// Inbound checks see every part whole, binary ones too.
		data, err := io.ReadAll(io.LimitReader(br, s.e.limits.maxPart()+1))
		if int64(len(data)) > s.e.limits.maxPart() {
			s.unscannable(where, fmt.Sprintf("larger than the scanning limit of %d bytes", s.e.limits.maxPart()))
			return
		}
		s.visitFile(data, mt, name, where, depth)
		if err != nil {
			// A broken multipart: the caller reads it again the lenient
			// way, and that reading reports what stays ambiguous.
			return
		}
		br.Reset(bytes.NewReader(data))
	}
	if !(strings.HasPrefix(mt, "text/") || mt == "" || ext == ".txt" || ext == ".csv") && !looksText(head) {
		return // images and other binary formats carry no text we can read
	}
	var tr io.Reader = br
	if strings.HasPrefix(mt, "text/") && charset != "" && !strings.EqualFold(charset, "utf-8") && !strings.EqualFold(charset, "us-ascii") {
		if cr, err := charsetReader(charset, br); err == nil {
			tr = cr
		}
	}
	s.chunks(tr, where, prefix, depth)
}

// robust reads an entity whose header is not plain, whole, every way.
func (s *scan) robust(h textproto.MIMEHeader, body io.Reader, where, prefix string, depth int) {
	data, err := io.ReadAll(io.LimitReader(body, s.e.limits.maxPart()+1))
	if err != nil {
		s.unscannable(where, "content cannot be read")
		return
	}
	if int64(len(data)) > s.e.limits.maxPart() {
		s.unscannable(where, fmt.Sprintf("malformed MIME larger than the scanning limit of %d bytes", s.e.limits.maxPart()))
		return
	}
	s.robustData(h, data, where, prefix, depth)
}

func (s *scan) robustData(h textproto.MIMEHeader, data []byte, where, prefix string, depth int) {
	if s.visit != nil {
		// A visitor is told the header is ambiguous, with every reading.
		ct := mime.ParseContentType(strings.Join(h["Content-Type"], ";"))
		ct.Odd = true
		s.visitHeader(h, ct, at(prefix, where, mime.PartName(h, mime.ParseContentType(h.Get("Content-Type")))))
	}
	var types []string
	var boundaries []string
	for _, v := range h["Content-Type"] {
		ct := mime.ParseContentType(v)
		types = appendUniq(types, ct.Types...)
		for _, b := range ct.Params["boundary"] {
			boundaries = appendUniq(boundaries, b, strings.TrimSpace(b), strings.TrimRight(b, "\r\n\t "))
		}
	}
	var ctes []string
	for _, v := range h["Content-Transfer-Encoding"] {
		ctes = appendUniq(ctes, strings.ToLower(strings.Join(strings.Fields(v), "")))
	}
	if len(ctes) == 0 {
		ctes = []string{""}
	}
	multi := false
	for _, t := range types {
		if strings.Contains(t, "multipart") || strings.Contains(t, "part/") {
			multi = true
		}
	}
	var present []string
	for _, b := range boundaries {
		if b != "" && hasDelimiter(data, b) {
			present = appendUniq(present, b)
		}
	}
	if len(present) == 0 && (multi || len(boundaries) > 0) {
		present = delimitersIn(data)
		if len(present) == 0 {
			s.unscannable(where, "multipart without a usable boundary")
		}
	}
	if len(present) > 1 {
		s.unscannable(where, "ambiguous MIME boundary")
	}
	if len(present) > maxReadings {
		present = present[:maxReadings] // bound the work: readings nest
	}
	readable := false
	for _, t := range types {
		readable = readable || strings.Contains(t, "/")
	}
	if len(h["Content-Type"]) > 0 && !readable && len(present) == 0 {
		s.unscannable(where, "Content-Type cannot be read")
	}
	name := mime.PartName(h, mime.ParseContentType(h.Get("Content-Type")))
	named := at(prefix, where, name)
	for _, b := range present {
		s.isolated(func() { s.split(data, b, named, prefix, depth) })
	}
	// As a single part, under each type and transfer encoding it may have.
	if len(present) == 0 {
		for _, t := range types {
			if t == "" || strings.Contains(t, "multipart") {
				continue
			}
			for _, cte := range ctes {
				ct := mime.ParseContentType(h.Get("Content-Type"))
				s.isolated(func() {
					s.leaf(bytes.NewReader(data), cte, t, ct.Param("charset"), name, named, prefix, depth)
				})
			}
		}
		for _, cte := range ctes {
			if strings.Contains(cte, "base64") {
				s.isolated(func() { s.part(decodeB64(data), "", name, named, depth+1) })
			}
			if strings.Contains(cte, "uu") {
				if dec, _, ok := uudecode(data); ok {
					s.isolated(func() { s.part(dec, "", name, named, depth+1) })
				}
			}
		}
	}
	s.isolated(func() {
		s.text(data, named)
		s.sweep(data, named, prefix, depth, true)
	})
}

// hasDelimiter reports whether "--boundary" starts a line of data.
func hasDelimiter(data []byte, b string) bool {
	d := []byte("--" + b)
	for off := 0; ; {
		i := bytes.Index(data[off:], d)
		if i < 0 {
			return false
		}
		i += off
		if i == 0 || data[i-1] == '\n' || data[i-1] == '\r' {
			return true
		}
		off = i + 1
	}
}

// delimitersIn finds what looks like boundary lines in a body whose header
// gives none that occurs: "--token" followed by a header or a blank line.
func delimitersIn(data []byte) []string {
	var out []string
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimRight(line, "\r \t")
		if len(line) < 3 || line[0] != '-' || line[1] != '-' || bytes.ContainsAny(line, " \t") {
			continue
		}
		b := string(bytes.TrimSuffix(line[2:], []byte("--")))
		if b != "" && len(out) < 8 {
			out = appendUniq(out, b)
		}
	}
	// Keep only those that occur more than once (an opening and a closing).
	var keep []string
	for _, b := range out {
		if bytes.Count(data, []byte("--"+b)) >= 2 {
			keep = append(keep, b)
		}
	}
	return keep
}

// split reads data as a multipart with boundary b (RFC 2046 section 5.1.1),
// leniently: a delimiter line may end in white space or a bare CR, and the
// final delimiter may be missing.
func (s *scan) split(data []byte, b, where, prefix string, depth int) {
	d := []byte("--" + b)
	var starts, ends []int
	for off := 0; off < len(data); {
		i := bytes.Index(data[off:], d)
		if i < 0 {
			break
		}
		i += off
		off = i + len(d)
		if i > 0 && data[i-1] != '\n' && data[i-1] != '\r' {
			continue
		}
		rest := data[off:]
		j := 0
		for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
			j++
		}
		closing := bytes.HasPrefix(rest[j:], []byte("--"))
		if closing {
			j += 2
		}
		for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
			j++
		}
		switch {
		case j == len(rest):
		case rest[j] == '\n':
			j++
		case rest[j] == '\r' && j+1 < len(rest) && rest[j+1] == '\n':
			j += 2
		case rest[j] == '\r':
			j++ // a bare CR ends the delimiter line for some readers
		default:
			continue // "--boundaryX": a longer boundary, not this one
		}
		ends = append(ends, i)
		starts = append(starts, off+j)
		if closing {
			starts[len(starts)-1] = -1
		}
	}
	for k := range starts {
		if starts[k] < 0 {
			break
		}
		end := len(data)
		if k+1 < len(ends) {
			end = ends[k+1]
		}
		if end < starts[k] {
			continue
		}
		p := data[starts[k]:end]
		ph, off, odd := mime.ReadHeader(p)
		s.entity(ph, bytes.NewReader(p[off:]), where, prefix, depth+1, odd)
		if k > 1000 {
			s.unscannable(where, "too many parts")
			return
		}
	}
}

// isolated runs fn as one reading of ambiguous content and merges what it
// found: per detector and place, the most any reading found.
func (s *scan) isolated(fn func()) {
	counts, best := s.counts, s.best
	s.counts, s.best = map[[2]string]*Finding{}, map[[2]string]Confidence{}
	fn()
	nc, nb := s.counts, s.best
	s.counts, s.best = counts, best
	for k, f := range nc {
		if cur := s.counts[k]; cur == nil {
			s.counts[k] = f
			s.best[k] = nb[k]
		} else {
			cur.Count = max(cur.Count, f.Count)
			s.best[k] = max(s.best[k], nb[k])
		}
	}
}

// midPadding returns the end of the first padded quantum when base64 data
// goes on after it, 0 when padding (if any) ends the data.
func midPadding(raw []byte) int {
	i := bytes.IndexByte(raw, '=')
	if i < 0 {
		return 0
	}
	j := i
	for j < len(raw) && raw[j] == '=' {
		j++
	}
	for _, c := range raw[j:] {
		if b64val[c] != 0xff && c != '-' && c != '_' {
			return j
		}
	}
	return 0
}

// foldedMIME says whether a header value holds a MIME header of its own
// ("X-Foo: a\r\n Content-Transfer-Encoding: base64"): folded for one
// reader, a header line for another.
func foldedMIME(h textproto.MIMEHeader) bool {
	for _, vs := range h {
		for _, v := range vs {
			if len(v) > 12 && strings.Contains(strings.ToLower(v), "content-") {
				l := strings.ToLower(v)
				if strings.Contains(l, "content-type:") || strings.Contains(l, "content-transfer-encoding:") || strings.Contains(l, "content-disposition:") {
					return true
				}
			}
		}
	}
	return false
}

// appendUniq appends the values of vs not yet in dst.
func appendUniq(dst []string, vs ...string) []string {
	for _, v := range vs {
		found := false
		for _, d := range dst {
			found = found || d == v
		}
		if !found {
			dst = append(dst, v)
		}
	}
	return dst
}
