package dlp

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"net/mail"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"sealpost/internal/mime"
)

// Finding is what a scan reports for one detector at one place
// (INTERFACE.md: dlp scan --json).
type Finding struct {
	Detector   string `json:"detector"`
	Count      int    `json:"count"`
	Confidence string `json:"confidence"`
	Where      string `json:"where"`
}

// Result is the outcome of scanning one message or document.
type Result struct {
	Classification string    `json:"classification"`
	Findings       []Finding `json:"findings"`
	// Header is the top-level header of a scanned message, Subject its
	// decoded subject (for the policy; not part of the JSON).
	Header  mail.Header `json:"-"`
	Subject string      `json:"-"`
}

// Custom is a detector from configuration: case-insensitive keywords or
// phrases, and regular expressions (RE2).
type Custom struct {
	Name     string
	Keywords []string
	Patterns []string
}

// Limits bound what one scan may expand: nested containers, bytes of
// extracted content, the expansion ratio of compressed entries (zip bombs)
// and time. What a bound stops is reported as "unscannable".
type Limits struct {
	MaxDepth int
	MaxBytes int64
	MaxRatio int64
	Timeout  time.Duration
	// MaxPart bounds one container (archive, Office document, PDF) or HTML
	// part held in memory; text is streamed and needs no such bound.
	MaxPart int64
}

// DefaultLimits suit mail of up to 150 MB.
var DefaultLimits = Limits{MaxDepth: 6, MaxBytes: 512 << 20, MaxRatio: 200, Timeout: 30 * time.Second, MaxPart: 64 << 20}

func (l Limits) maxPart() int64 {
	if l.MaxPart <= 0 {
		return l.MaxBytes
	}
	return min(l.MaxPart, l.MaxBytes)
}

type custom struct {
	name     string
	keywords [][]byte
	patterns []*regexp.Regexp
}

// Engine scans messages and documents.
type Engine struct {
	custom []custom
	limits Limits
	labels map[string]string // sensitivity label name or id (lower case) → marking
	tables *ModulusTables    // Vocalink modulus tables for sort code and account pairs
}

// SetModulusTables replaces the built-in Vocalink tables (a newer published
// table, loaded with LoadModulusTables). Call it before the engine is used.
func (e *Engine) SetModulusTables(t *ModulusTables) { e.tables = t }

// Detectors names the built-in detectors, then the custom ones.
func (e *Engine) Detectors() []string {
	out := []string{NINO, NHS, Card, IBAN, SortCode, Passport, Licence, Postcode, VAT, PrivateKey, Unscannable}
	for _, c := range e.custom {
		out = append(out, c.name)
	}
	return out
}

// ModulusTables are the Vocalink tables the engine checks accounts with.
func (e *Engine) ModulusTables() *ModulusTables { return e.tables }

// SetLabels maps Microsoft sensitivity labels, by name or id, to markings.
// Call it before the engine is used.
func (e *Engine) SetLabels(m map[string]string) {
	e.labels = map[string]string{}
	for k, v := range m {
		e.labels[strings.ToLower(strings.TrimSpace(k))] = v
	}
}

// NewEngine compiles the custom detectors.
func NewEngine(cs []Custom, limits Limits) (*Engine, error) {
	e := &Engine{limits: limits, tables: BuiltinModulusTables()}
	for _, c := range cs {
		cc := custom{name: c.Name}
		for _, k := range c.Keywords {
			if k = strings.TrimSpace(k); k != "" {
				cc.keywords = append(cc.keywords, bytes.ToLower([]byte(k)))
			}
		}
		for _, p := range c.Patterns {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("custom detector %q: pattern %q: %v", c.Name, p, err)
			}
			cc.patterns = append(cc.patterns, re)
		}
		e.custom = append(e.custom, cc)
	}
	return e, nil
}

// scan is the state of one scan.
type scan struct {
	e        *Engine
	counts   map[[2]string]*Finding
	best     map[[2]string]Confidence
	expanded int64
	deadline time.Time
	lowerBuf []byte
	marking  string
	header   mail.Header
	subject  string
	// visited, when not nil, collects where every piece of content was
	// read (tests: the walk reached each attachment).
	visited map[string]bool
	// captureLeft is what remains of captureBudget for this scan.
	captureLeft *int64
	// visit, when not nil, is shown what the walk reads (WalkMessage).
	visit *Visitor
}

func (e *Engine) newScan() *scan {
	return &scan{e: e, counts: map[[2]string]*Finding{}, best: map[[2]string]Confidence{}, deadline: time.Now().Add(e.limits.Timeout)}
}

func (s *scan) add(det, where string, c Confidence) {
	k := [2]string{det, where}
	f := s.counts[k]
	if f == nil {
		f = &Finding{Detector: det, Where: where}
		s.counts[k] = f
	}
	f.Count++
	if c > s.best[k] {
		s.best[k] = c
	}
}

func (s *scan) unscannable(where, why string) {
	if s.visit != nil && s.visit.Unscannable != nil {
		s.visit.Unscannable(where, why)
	}
	s.add(Unscannable, where+" ("+why+")", High)
}

func (s *scan) result() *Result {
	r := &Result{Classification: s.marking, Findings: []Finding{}, Header: s.header, Subject: s.subject}
	for k, f := range s.counts {
		c := s.best[k]
		// Many medium matches of one kind in one place are as good as one
		// with context: a list of NHS numbers is a list of NHS numbers.
		if c == Medium && f.Count >= 3 {
			c = High
		}
		f.Confidence = c.String()
		r.Findings = append(r.Findings, *f)
	}
	sort.Slice(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Where != b.Where {
			return a.Where < b.Where
		}
		return a.Detector < b.Detector
	})
	return r
}

// text scans extracted text at where.
func (s *scan) text(b []byte, where string) {
	if s.visited != nil {
		s.visited[where] = true
	}
	s.expanded += int64(len(b))
	if s.visit != nil && s.visit.SkipDetectors {
		return
	}
	scanText(b, s.e.tables, func(m Match) { s.add(m.Detector, where, m.Confidence) })
	if len(s.e.custom) == 0 {
		return
	}
	s.lowerBuf = s.lowerBuf[:0]
	for _, c := range b {
		s.lowerBuf = append(s.lowerBuf, lower(c))
	}
	for _, cd := range s.e.custom {
		for _, k := range cd.keywords {
			for off := 0; ; {
				i := bytes.Index(s.lowerBuf[off:], k)
				if i < 0 {
					break
				}
				i += off
				end := i + len(k)
				if (i == 0 || !isAlnum(s.lowerBuf[i-1])) && (end == len(s.lowerBuf) || !isAlnum(s.lowerBuf[end])) {
					s.add(cd.name, where, High)
				}
				off = end
			}
		}
		for _, re := range cd.patterns {
			for range re.FindAllIndex(b, -1) {
				s.add(cd.name, where, High)
			}
		}
	}
}

var errLimit = errors.New("over a scanning limit")

func (s *scan) over() error {
	if s.expanded > s.e.limits.MaxBytes {
		return fmt.Errorf("%w: more than %d bytes of content", errLimit, s.e.limits.MaxBytes)
	}
	if time.Now().After(s.deadline) {
		return fmt.Errorf("%w: took longer than %s", errLimit, s.e.limits.Timeout)
	}
	return nil
}

// ScanMessage scans an RFC 5322 message: subject, marking headers, every
// text part and every attachment.
func (e *Engine) ScanMessage(r io.Reader) (*Result, error) {
	s := e.newScan()
	if err := s.message(r, "", 0); err != nil {
		return nil, err
	}
	return s.result(), nil
}

// ScanDocument scans one file (a document, an archive or plain text) named
// name.
func (e *Engine) ScanDocument(name string, data []byte) *Result {
	s := e.newScan()
	s.part(data, "", name, "file:"+path.Base(name), 0)
	return s.result()
}

// charsetReader decodes a MIME charset: the one in internal/mime.
func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	return mime.CharsetReader(charset, r)
}

func (s *scan) decodeCharset(data []byte, cs string) []byte {
	if cs == "" || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "us-ascii") {
		return data
	}
	if cr, err := charsetReader(cs, bytes.NewReader(data)); err == nil {
		if d, err := io.ReadAll(cr); err == nil {
			return d
		}
	}
	return data
}

// chunkSize is how much text is scanned at once.
const chunkSize = 1 << 20

// chunks scans text from r in pieces that end at a line break (or a space),
// so that memory does not grow with the size of a part. An identifier is
// never split across lines in text that a person reads.
var (
	peekReaders   = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8192) }}
	headerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
)

var chunkBufs = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

func (s *scan) chunks(r io.Reader, where, prefix string, depth int) {
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	carry := 0
	for {
		n, err := io.ReadFull(r, buf[carry:])
		n += carry
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if n > 0 {
				s.text(buf[:n], where)
				if hasEmbedded(buf[:n]) {
					s.sweep(buf[:n], where, prefix, depth, hasHiddenPart(buf[:n]))
				}
			}
			return
		}
		if err != nil {
			s.unscannable(where, "content cannot be decoded")
			return
		}
		cut := bytes.LastIndexByte(buf[:n], '\n')
		if cut < n/2 {
			if sp := bytes.LastIndexByte(buf[:n], ' '); sp > cut {
				cut = sp
			}
		}
		if cut <= 0 {
			cut = n - 1
		}
		s.text(buf[:cut+1], where)
		if hasEmbedded(buf[:cut+1]) {
			s.sweep(buf[:cut+1], where, prefix, depth, hasHiddenPart(buf[:cut+1]))
		}
		carry = copy(buf, buf[cut+1:n])
		if err := s.over(); err != nil {
			s.unscannable(where, err.Error())
			return
		}
	}
}

func isContainer(head []byte, mt, ext string) bool {
	if sniff(head) != "" {
		return true
	}
	switch mt {
	case "application/pdf", "application/zip", "application/gzip", "application/x-gzip", "application/x-tar",
		"application/x-7z-compressed", "application/vnd.rar", "application/x-rar-compressed", "application/x-bzip2",
		"application/x-xz", "application/zstd":
		return true
	}
	switch ext {
	case ".zip", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp", ".pdf", ".doc", ".xls", ".ppt",
		".gz", ".tgz", ".bz2", ".xz", ".zst", ".tar", ".7z", ".rar":
		return true
	}
	return false
}

// part scans decoded content: by what it is (its magic number) first, then
// by its type or name.
func (s *scan) part(data []byte, mt, name, where string, depth int) {
	if s.visited != nil {
		s.visited[where] = true
	}
	if depth > s.e.limits.MaxDepth {
		s.unscannable(where, "nested too deep")
		return
	}
	s.visitFile(data, mt, name, where, depth)
	ext := strings.ToLower(path.Ext(name))
	kind := sniff(data)
	if kind == "" {
		switch ext {
		case ".zip", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp":
			kind = "zip"
		case ".pdf":
			kind = "pdf"
		}
		if mt == "application/pdf" {
			kind = "pdf"
		}
	}
	switch kind {
	case "zip":
		s.zip(data, where, depth)
		return
	case "pdf":
		s.pdf(data, where)
		return
	case "ole":
		// OLE compound file: legacy Office, or an encrypted OOXML package.
		s.unscannable(where, "legacy or encrypted Office document")
		return
	case "gzip", "bzip2", "xz", "zstd":
		s.compressed(data, kind, name, where, depth)
		return
	case "tar":
		s.tarball(data, where, depth)
		return
	case "7z":
		s.sevenZip(data, where, depth)
		return
	case "rar":
		s.rar(data, where, depth)
		return
	}
	if enc := bomOf(data); enc != "" {
		// UTF-16/32 with a byte order mark and no charset ("Unicode text").
		data = fromBOM(data, enc)
		if mt == "text/html" || ext == ".html" || ext == ".htm" {
			data = htmlText(data)
		}
		s.text(data, where)
		return
	}
	switch {
	case mt == "text/html" || ext == ".html" || ext == ".htm":
		s.text(htmlText(data), where)
	case ext == ".eml" || mt == "message/rfc822" || mt == "message/global":
		s.message(bytes.NewReader(data), where, depth+1)
	case strings.HasPrefix(mt, "text/") || mt == "" && looksText(data) || ext == ".txt" || ext == ".csv" || looksText(data) || mostlyText(data):
		s.text(data, where)
		if hasEmbedded(data) {
			s.sweep(data, where, "", depth, hasHiddenPart(data))
		}
	}
	// Images and other binary formats carry no text we can read.
}

func looksText(b []byte) bool {
	b = b[:min(len(b), 4096)]
	bad := 0
	for _, c := range b {
		if c < 0x09 || c > 0x0d && c < 0x20 {
			bad++
		}
	}
	return len(b) > 0 && bad*100 < len(b)
}

// zip scans an archive: Office Open XML and OpenDocument files by their XML
// text, other entries as files of their own.
func (s *scan) zip(data []byte, where string, depth int) {
	if depth > s.e.limits.MaxDepth {
		s.unscannable(where, "nested too deep")
		return
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		s.unscannable(where, "corrupt archive")
		return
	}
	office := false
	for _, f := range zr.File {
		if f.Name == "[Content_Types].xml" || f.Name == "mimetype" {
			office = true
		}
	}
	for _, f := range zr.File {
		if err := s.over(); err != nil {
			s.unscannable(where, err.Error())
			return
		}
		if f.FileInfo().IsDir() {
			continue
		}
		if f.Flags&0x1 != 0 {
			s.unscannable(where+"/"+f.Name, "encrypted")
			continue
		}
		if f.CompressedSize64 > 0 && int64(f.UncompressedSize64/f.CompressedSize64) > s.e.limits.MaxRatio {
			s.unscannable(where+"/"+f.Name, "compression ratio too high")
			continue
		}
		if int64(f.UncompressedSize64)+s.expanded > s.e.limits.MaxBytes {
			s.unscannable(where+"/"+f.Name, "larger than the scanning limit")
			continue
		}
		if office && !officeText(f.Name) {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			s.unscannable(where+"/"+f.Name, "cannot be opened")
			continue
		}
		// Read at most the declared size (plus one byte to notice lies).
		b, err := io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
		rc.Close()
		if err != nil || uint64(len(b)) > f.UncompressedSize64 {
			s.unscannable(where+"/"+f.Name, "corrupt entry")
			continue
		}
		if office {
			s.text(xmlText(b), where)
			continue
		}
		s.part(b, "", f.Name, where+"/"+f.Name, depth+1)
	}
}

// officeText says whether an OOXML/ODF member holds document text.
func officeText(name string) bool {
	switch {
	case name == "word/document.xml", strings.HasPrefix(name, "word/header"), strings.HasPrefix(name, "word/footer"),
		name == "word/footnotes.xml", name == "word/endnotes.xml", name == "word/comments.xml",
		name == "xl/sharedStrings.xml", strings.HasPrefix(name, "xl/worksheets/sheet"),
		strings.HasPrefix(name, "ppt/slides/slide"), strings.HasPrefix(name, "ppt/notesSlides/"),
		name == "content.xml", name == "styles.xml":
		return strings.HasSuffix(name, ".xml")
	}
	return false
}

// xmlText returns the character data of an XML document, with a space
// between elements that end paragraphs, cells or rows, so that words of
// different cells do not run together but a number split over runs
// ("943 4" "76 5919") is joined.
func xmlText(b []byte) []byte {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = false
	var out []byte
	for {
		tok, err := d.RawToken()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.CharData:
			out = append(out, t...)
		case xml.EndElement:
			switch t.Name.Local {
			case "p", "tc", "tr", "c", "row", "si", "br", "tab", "table-cell", "h", "span":
				if t.Name.Local != "span" {
					out = append(out, '\n')
				}
			}
		case xml.StartElement:
			switch t.Name.Local {
			case "br", "tab", "s":
				out = append(out, ' ')
			}
		}
	}
}

var (
	tagRe      = regexp.MustCompile(`(?is)<(script|style)\b.*?</(script|style)\s*>|<!--.*?-->|<[^>]*>`)
	blockTagRe = regexp.MustCompile(`(?i)^<\s*/?\s*(br|p|div|td|th|tr|li|h[1-6]|table|ul|ol|blockquote|hr)\b`)
)

// htmlText turns HTML into text: scripts, styles and comments removed,
// block elements as line breaks, inline tags removed so that an identifier
// split by markup is found whole, entities decoded.
func htmlText(b []byte) []byte {
	out := tagRe.ReplaceAllFunc(b, func(m []byte) []byte {
		if blockTagRe.Match(m) {
			return []byte("\n")
		}
		return nil
	})
	return []byte(html.UnescapeString(string(out)))
}

// pdf scans the text of a PDF's pages.
func (s *scan) pdf(data []byte, where string) {
	text, err := pdfText(data, s.e.limits.MaxBytes-s.expanded)
	switch {
	case errors.Is(err, errPDFEncrypted):
		s.unscannable(where, "encrypted PDF")
		return
	case errors.Is(err, errLimit):
		s.text(text, where)
		s.unscannable(where, err.Error())
		return
	case err != nil:
		s.unscannable(where, "corrupt PDF")
		return
	}
	if len(bytes.TrimSpace(text)) == 0 && bytes.Contains(data, []byte("/Image")) {
		// Pages that are pictures (a scan): there is no text to read, and
		// no OCR here. Say so rather than pass it.
		s.unscannable(where, "PDF of scanned images, no text")
		return
	}
	s.text(text, where)
}

var markingRe = regexp.MustCompile(`\b(OFFICIAL(?:[- ]SENSITIVE)?)\b`)

// Marking returns the UK Government Security Classification marking of a
// message (OFFICIAL, OFFICIAL-SENSITIVE) from its subject or a protective
// marking header, "" if none.
func Marking(subject string, h mail.Header) string { return markingOf(subject, h, nil) }

func markingOf(subject string, h mail.Header, labels map[string]string) string {
	best := ""
	consider := func(s string) {
		// Markings are written in capitals (Government Security
		// Classifications, 2023); "the official response" is no marking.
		for _, m := range markingRe.FindAllString(s, -1) {
			m = strings.ReplaceAll(m, " ", "-")
			if m == "OFFICIAL-SENSITIVE" || best == "" {
				best = m
			}
		}
	}
	consider(subject)
	for _, k := range []string{"X-Protective-Marking", "X-Classification", "X-Security-Classification"} {
		consider(h.Get(k))
	}
	for _, l := range sensitivityLabels(h.Get("Msip_labels")) {
		if m, ok := labels[strings.ToLower(l.id)]; ok {
			consider(m)
		} else if m, ok := labels[strings.ToLower(l.name)]; ok {
			consider(m)
		} else {
			consider(strings.ToUpper(l.name))
		}
	}
	return best
}

type label struct{ id, name string }

// sensitivityLabels parses the msip_labels header that Microsoft 365 adds
// for a message's sensitivity label:
//
//	MSIP_Label_<id>_Enabled=true; MSIP_Label_<id>_Name=OFFICIAL-SENSITIVE; ...
//
// It returns the enabled labels.
func sensitivityLabels(v string) []label {
	if v == "" {
		return nil
	}
	names := map[string]string{}
	var enabled []string
	for _, kv := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || !strings.HasPrefix(k, "MSIP_Label_") {
			continue
		}
		rest := strings.TrimPrefix(k, "MSIP_Label_")
		i := strings.LastIndexByte(rest, '_')
		if i < 0 {
			continue
		}
		id, field := rest[:i], rest[i+1:]
		switch field {
		case "Enabled":
			if strings.EqualFold(strings.TrimSpace(val), "true") {
				enabled = append(enabled, id)
			}
		case "Name":
			names[id] = strings.TrimSpace(val)
		}
	}
	out := make([]label, 0, len(enabled))
	for _, id := range enabled {
		out = append(out, label{id: id, name: names[id]})
	}
	return out
}
