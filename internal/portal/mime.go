package portal

import (
	"bufio"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"path"
	"strings"

	"golang.org/x/text/encoding/htmlindex"
)

// Parts describes what a sealed message holds, worked out once at sealing:
// its readable bodies and its attachments, by their position in a
// depth-first walk of the MIME tree.
type Parts struct {
	Text        int          `json:"text"` // index of the text/plain body, -1 if none
	HTML        int          `json:"html"` // index of the text/html body, -1 if none
	Attachments []Attachment `json:"attachments"`
}

// Attachment is one attachment of a sealed message.
type Attachment struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	Type  string `json:"type"`
	Size  int64  `json:"size"`
}

// leaf is one non-multipart entity met on the walk.
type leaf struct {
	index   int
	header  textproto.MIMEHeader
	media   string
	params  map[string]string
	name    string
	attach  bool
	decoded io.Reader
}

var wordDecoder = mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return r, nil
	}
	return enc.NewDecoder().Reader(r), nil
}}

// walk visits the leaves of a message in order; visit may read the leaf's
// decoded body and returns false to stop.
func walk(r io.Reader, visit func(l *leaf) bool) (mail.Header, error) {
	m, err := mail.ReadMessage(bufio.NewReader(r))
	if err != nil {
		return nil, err
	}
	n := 0
	var entity func(h textproto.MIMEHeader, body io.Reader, depth int) bool
	entity = func(h textproto.MIMEHeader, body io.Reader, depth int) bool {
		mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
		if err != nil || mt == "" {
			mt, params = "text/plain", map[string]string{}
		}
		if strings.HasPrefix(mt, "multipart/") && depth < 20 {
			mr := multipart.NewReader(body, params["boundary"])
			for i := 0; i < 1000; i++ {
				p, err := mr.NextRawPart()
				if err != nil {
					return true
				}
				if !entity(p.Header, p, depth+1) {
					return false
				}
			}
			return true
		}
		l := &leaf{index: n, header: h, media: mt, params: params}
		n++
		disp, dp, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
		l.name = dp["filename"]
		if l.name == "" {
			l.name = params["name"]
		}
		if dec, err := wordDecoder.DecodeHeader(l.name); err == nil {
			l.name = dec
		}
		l.name = path.Base(strings.ReplaceAll(l.name, "\\", "/"))
		if l.name == "." || l.name == "/" {
			l.name = ""
		}
		l.attach = disp == "attachment" || l.name != "" || !(strings.HasPrefix(mt, "text/plain") || strings.HasPrefix(mt, "text/html"))
		switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
		case "base64":
			l.decoded = base64.NewDecoder(base64.StdEncoding, &stripSpace{r: body})
		case "quoted-printable":
			l.decoded = quotedprintable.NewReader(body)
		default:
			l.decoded = body
		}
		return visit(l)
	}
	entity(textproto.MIMEHeader(m.Header), m.Body, 0)
	return m.Header, nil
}

type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			p[j] = c
			j++
		}
	}
	return j, err
}

// describe walks a message once and returns its parts.
func describe(r io.Reader) (*Parts, mail.Header, error) {
	p := &Parts{Text: -1, HTML: -1, Attachments: []Attachment{}}
	h, err := walk(r, func(l *leaf) bool {
		switch {
		case !l.attach && l.media == "text/plain" && p.Text < 0:
			p.Text = l.index
		case !l.attach && l.media == "text/html" && p.HTML < 0:
			p.HTML = l.index
		case l.attach || l.media == "text/plain" || l.media == "text/html":
			name := l.name
			if name == "" {
				name = "attachment-" + itoa(l.index) + extFor(l.media)
			}
			n, _ := io.Copy(io.Discard, l.decoded)
			p.Attachments = append(p.Attachments, Attachment{Index: l.index, Name: name, Type: l.media, Size: n})
		}
		return true
	})
	return p, h, err
}

func extFor(mt string) string {
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// decodeText turns a text body into UTF-8.
func decodeText(l *leaf, limit int64) (string, bool) {
	var r io.Reader = io.LimitReader(l.decoded, limit+1)
	if cs := l.params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		if enc, err := htmlindex.Get(cs); err == nil {
			r = enc.NewDecoder().Reader(r)
		}
	}
	b, _ := io.ReadAll(r)
	cut := int64(len(b)) > limit
	if cut {
		b = b[:limit]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), cut
}
