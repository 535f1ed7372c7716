package dlp

import (
	"io"
	"net/textproto"
	"strings"

	"sealpost/internal/mime"
)

// Visiting the walk. Inbound checks (dangerous attachments, antivirus)
// need what the DLP walk already reads, decoded and unpacked, every way a
// mail client might read it: each file, each part's header and each place
// the walk could not read. A Visitor receives them as the walk goes; the
// walk itself is unchanged, so the fail-closed readings of malformed MIME
// serve both.

// File is one piece of decoded content: a MIME leaf part, or a member of
// an archive or compressed stream.
type File struct {
	Where string // as in findings: "attachment:a.zip/b.exe"
	Name  string // the name it was given, "" for none
	Type  string // the declared media type (lower case), "" for archive members
	Data  []byte
	Depth int // 0 for a part of the message, more inside containers
}

// Header is what a MIME part's header says about its name and type, with
// every candidate reading (RFC 2231 and RFC 2047 forms, duplicates,
// comments).
type Header struct {
	Where string
	// Names are every filename a client may show: Content-Disposition
	// filename and Content-Type name, each candidate reading.
	Names []string
	// Types are the candidate media types.
	Types []string
	// Odd says the Content-Type or Content-Disposition is not plain RFC
	// 2045/2183: a comment, an escape, a duplicated or conflicting
	// parameter, a parameter in two forms.
	Odd bool
}

// Visitor receives the walk's content. Any of its functions may be nil.
type Visitor struct {
	File        func(File)
	Header      func(Header)
	Unscannable func(where, why string)
	// SkipDetectors leaves out the DLP detectors (identifiers, custom
	// keywords): an inbound check wants the walk, not the findings.
	SkipDetectors bool
}

// WalkMessage scans a message like ScanMessage and shows v what it reads.
// Every leaf part's decoded content reaches v.File (held in memory within
// Limits.MaxPart; a larger part is reported unscannable).
func (e *Engine) WalkMessage(r io.Reader, v Visitor) (*Result, error) {
	s := e.newScan()
	s.visit = &v
	if err := s.message(r, "", 0); err != nil {
		return nil, err
	}
	return s.result(), nil
}

// visitHeader tells the visitor about a part's header.
func (s *scan) visitHeader(h textproto.MIMEHeader, ct mime.ContentType, where string) {
	if s.visit == nil || s.visit.Header == nil {
		return
	}
	odd := ct.Odd
	if odd && len(h["Content-Type"]) == 1 {
		odd = mime.ParseContentType(withoutRepeats(h["Content-Type"][0])).Odd
	}
	vh := Header{Where: where, Types: ct.Types, Odd: odd}
	for _, d := range h["Content-Disposition"] {
		dc := mime.ParseContentType(d)
		if dc.Odd {
			dc = mime.ParseContentType(withoutRepeats(d))
		}
		vh.Odd = vh.Odd || dc.Odd
		vh.Names = appendUniq(vh.Names, decodedNames(dc.Params["filename"])...)
	}
	vh.Names = appendUniq(vh.Names, decodedNames(ct.Params["name"])...)
	s.visit.Header(vh)
}

func decodedNames(vs []string) []string {
	var out []string
	for _, n := range vs {
		if dec, err := mime.WordDecoder().DecodeHeader(n); err == nil {
			n = dec
		}
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func (s *scan) visitFile(data []byte, mt, name, where string, depth int) {
	if s.visit != nil && s.visit.File != nil {
		s.visit.File(File{Where: where, Name: name, Type: mt, Data: data, Depth: depth})
	}
}

// withoutRepeats drops parameters that repeat an earlier one exactly
// (Lotus Notes writes name="a.pdf"; name="a.pdf"): every client reads
// them the same way, so they are no ambiguity.
func withoutRepeats(v string) string {
	seen := map[string]bool{}
	var keep []string
	for _, p := range mime.SplitParams(v) {
		k := strings.ToLower(strings.TrimSpace(p))
		if seen[k] {
			continue
		}
		seen[k] = true
		keep = append(keep, p)
	}
	return strings.Join(keep, ";")
}
