// Package attach finds dangerous attachments in inbound mail by what they
// are, not by what they are called.
//
// Attackers send staff programs to run: executables (PE, ELF, Mach-O),
// scripts, Windows shortcuts (.lnk), disk images (.iso, .img, .vhd) that
// carry executables past the "downloaded from the Internet" mark,
// OneNote notebooks with embedded files, HTML applications (.hta), Office
// documents with VBA macros, archives encrypted so that no scanner can
// look inside (the password is in the mail text), and HTML attachments
// that build the payload in the browser ("HTML smuggling": a script turns
// a string into a Blob or data: URI and downloads it). A name such as
// "invoice.pdf.exe" is a warning of its own.
//
// Content is recognised by its magic numbers and structure; a name or a
// declared type never makes content clean, though a dangerous name makes
// harmless-looking content dangerous. The MIME walk is the DLP walk
// (internal/dlp): it reads malformed MIME every way a client might and
// unpacks nested archives within its limits. A part whose type, boundary
// or filename cannot be read unambiguously, and anything the walk could
// not read (corrupt, encrypted, over a limit), is a finding: never clean.
package attach

import (
	"io"
	"path"
	"sort"
	"strings"
	"sync"

	"sealpost/internal/dlp"
)

// Kinds of finding.
const (
	Executable     = "executable"
	Script         = "script"
	Shortcut       = "shortcut"
	DiskImage      = "disk-image"
	OneNote        = "onenote"
	HTA            = "hta"
	Macro          = "macro"
	Encrypted      = "encrypted"
	HTMLSmuggling  = "html-smuggling"
	DoubleExt      = "double-extension"
	DangerousName  = "dangerous-name"
	AmbiguousMIME  = "ambiguous-mime"
	Unreadable     = "unreadable"
	EmbeddedObject = "embedded-object"
)

// Finding is one dangerous thing at one place.
type Finding struct {
	Kind   string `json:"kind"`
	Where  string `json:"where"`
	Reason string `json:"reason"`
}

// Checker checks messages; it is safe for concurrent use.
type Checker struct {
	engine *dlp.Engine
}

// New returns a Checker whose walk is bounded by limits (dlp.DefaultLimits
// suit mail of up to 150 MB).
func New(limits dlp.Limits) (*Checker, error) {
	e, err := dlp.NewEngine(nil, limits)
	if err != nil {
		return nil, err
	}
	return &Checker{engine: e}, nil
}

// Check reads a whole message and returns its findings, sorted by place;
// none means no dangerous attachment. An error means r is not a message
// at all (the caller treats it as a finding of its own).
func (c *Checker) Check(r io.Reader) ([]Finding, error) {
	s := c.Start(nil)
	if _, err := c.engine.WalkMessage(r, s.Visitor()); err != nil {
		return nil, err
	}
	return s.Findings(), nil
}

// Walk runs the MIME walk over r with s's visitor.
func (c *Checker) Walk(r io.Reader, s *Scan) error {
	_, err := c.engine.WalkMessage(r, s.Visitor())
	return err
}

// Scan collects the findings of one message. onFile, when not nil, is
// also shown every decoded file (the antivirus streams them).
type Scan struct {
	mu     sync.Mutex
	found  map[Finding]bool
	onFile func(dlp.File)
}

// Start begins the scan of one message.
func (c *Checker) Start(onFile func(dlp.File)) *Scan {
	return &Scan{found: map[Finding]bool{}, onFile: onFile}
}

func (s *Scan) add(kind, where, reason string) {
	s.mu.Lock()
	s.found[Finding{Kind: kind, Where: where, Reason: reason}] = true
	s.mu.Unlock()
}

// Findings returns what was found, sorted by place and kind.
func (s *Scan) Findings() []Finding {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Finding, 0, len(s.found))
	for f := range s.found {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Where != out[j].Where {
			return out[i].Where < out[j].Where
		}
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// Visitor is the dlp walk visitor that fills s.
func (s *Scan) Visitor() dlp.Visitor {
	return dlp.Visitor{
		File: func(f dlp.File) {
			s.file(f)
			if s.onFile != nil {
				s.onFile(f)
			}
		},
		Header:        s.header,
		Unscannable:   s.unscannable,
		SkipDetectors: true,
	}
}

func (s *Scan) header(h dlp.Header) {
	if h.Odd {
		s.add(AmbiguousMIME, h.Where, "Content-Type or Content-Disposition is not plain MIME (comment, escape, RFC 2231 form or duplicated parameter): clients may read it differently")
	}
	if len(h.Types) > 1 {
		s.add(AmbiguousMIME, h.Where, "media type can be read as "+strings.Join(h.Types, " or "))
	}
	if len(distinctFold(h.Names)) > 1 {
		s.add(AmbiguousMIME, h.Where, "the part has more than one filename: "+strings.Join(h.Names, " | "))
	}
	for _, n := range h.Names {
		s.name(n, h.Where)
	}
}

func distinctFold(vs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range vs {
		k := strings.ToLower(v)
		if !seen[k] {
			seen[k] = true
			out = append(out, v)
		}
	}
	return out
}

// unscannable turns what the walk could not read into findings. The only
// reasons that are not dangerous are the DLP's own: a PDF without text,
// and OLE files, which file() reads itself.
func (s *Scan) unscannable(where, why string) {
	switch {
	case why == "PDF of scanned images, no text", why == "legacy or encrypted Office document":
		return
	case strings.Contains(why, "encrypted"):
		s.add(Encrypted, where, "encrypted ("+why+"): no scanner can see inside")
	case strings.Contains(why, "boundary"), strings.Contains(why, "multipart"), strings.Contains(why, "Content-Type"), strings.Contains(why, "malformed"):
		s.add(AmbiguousMIME, where, why)
	default:
		s.add(Unreadable, where, why)
	}
}

func (s *Scan) file(f dlp.File) {
	if f.Name != "" {
		s.name(f.Name, f.Where)
	}
	if kind, why := Identify(f.Data, f.Type, f.Name); kind != "" {
		s.add(kind, f.Where, why)
	}
}

// name checks a filename a client may show.
func (s *Scan) name(name, where string) {
	if kind, why := checkName(name); kind != "" {
		s.add(kind, where, why)
	}
}

// ext is the lower-case extension of a name, without trailing dots or
// white space (Windows drops them: "a.exe." runs as "a.exe").
func ext(name string) string {
	name = strings.TrimRight(strings.ReplaceAll(name, "\\", "/"), ". \t")
	return strings.ToLower(path.Ext(path.Base(name)))
}
