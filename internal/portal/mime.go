package portal

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"os"
	"path"
	"strings"

	"golang.org/x/text/encoding/htmlindex"

	mimex "sealpost/internal/mime"
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
	// Stored: the decoded bytes are in a blob of their own.
	Stored bool `json:"stored,omitempty"`
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

// wordDecoder is the project's one RFC 2047 decoder (internal/mime).
var wordDecoder = *mimex.WordDecoder()

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
		// The Content-Type read as the DLP scan read it (internal/mime:
		// comments, RFC 2231, duplicated parameters), so that the parts
		// shown are the parts that were scanned.
		ct := mimex.ParseContentType(h.Get("Content-Type"))
		mt := ct.MediaType()
		params := map[string]string{}
		for k := range ct.Params {
			params[k] = ct.Param(k)
		}
		if mt == "" || !strings.Contains(mt, "/") {
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
		disp := mimex.ParseContentType(h.Get("Content-Disposition")).MediaType()
		// The name a mail client shows (internal/mime), made safe to show.
		l.name = cleanName(path.Base(strings.ReplaceAll(mimex.PartName(h, ct), "\\", "/")))
		if l.name == "." || l.name == "/" {
			l.name = ""
		}
		l.attach = disp == "attachment" || l.name != "" || !(strings.HasPrefix(mt, "text/plain") || strings.HasPrefix(mt, "text/html"))
		switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
		case "base64":
			l.decoded = newB64Reader(body)
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

// squeeze removes CR, LF, spaces and tabs from b in place and returns the
// new length. Base64 in mail is lines of 76 characters: each is moved with
// one copy.
func squeeze(b []byte) int {
	j := 0
	for i := 0; i < len(b); {
		nl := bytes.IndexByte(b[i:], '\n')
		end := len(b)
		if nl >= 0 {
			end = i + nl
		}
		seg := b[i:end]
		if len(seg) > 0 && seg[len(seg)-1] == '\r' {
			seg = seg[:len(seg)-1]
		}
		if bytes.IndexByte(seg, ' ') < 0 && bytes.IndexByte(seg, '\t') < 0 && bytes.IndexByte(seg, '\r') < 0 {
			j += copy(b[j:], seg)
		} else {
			for _, c := range seg {
				if c != '\r' && c != ' ' && c != '\t' {
					b[j] = c
					j++
				}
			}
		}
		i = end + 1
	}
	return j
}

// b64Reader decodes base64 in large blocks: whitespace is squeezed out in
// place and whole quanta are decoded at once, several times faster than
// encoding/base64's streaming decoder, which works 1 KiB at a time.
type b64Reader struct {
	r    io.Reader
	in   []byte // encoded bytes not yet decoded (fewer than 4 after a block)
	out  []byte // decoded bytes not yet read
	obuf []byte
	err  error
}

func newB64Reader(r io.Reader) *b64Reader {
	return &b64Reader{r: r, in: make([]byte, 0, 256<<10), obuf: make([]byte, 192<<10)}
}

func (b *b64Reader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		n, err := b.r.Read(b.in[len(b.in):cap(b.in)])
		b.in = b.in[:len(b.in)+squeeze(b.in[len(b.in):len(b.in)+n])]
		if err != nil {
			b.err = err
		}
		whole := len(b.in) / 4 * 4
		if b.err != nil {
			whole = len(b.in) // the end: decode what there is (padding included)
		}
		if whole == 0 {
			continue
		}
		dn, derr := base64.StdEncoding.Decode(b.obuf, b.in[:whole])
		if derr != nil {
			b.err = derr
			if dn == 0 {
				return 0, derr
			}
		}
		b.out = b.obuf[:dn]
		b.in = b.in[:copy(b.in, b.in[whole:])]
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// describe walks a message once and returns its parts; each attachment's
// decoded bytes go to save (so that a download is a decryption and nothing
// more), which returns how many bytes it stored. A file-system error from
// save stops the walk; any other (the attachment does not decode) leaves
// that attachment unstored.
func describe(r io.Reader, save func(index int, r io.Reader) (int64, error)) (*Parts, mail.Header, error) {
	p := &Parts{Text: -1, HTML: -1, Attachments: []Attachment{}}
	var saveErr error
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
			n, err := save(l.index, l.decoded)
			var pe *os.PathError
			switch {
			case errors.As(err, &pe):
				saveErr = err // the disk: the whole sealing fails and is retried
				return false
			case err != nil:
				// The attachment does not decode (bad base64): list it,
				// and let a download serve what decodes.
				p.Attachments = append(p.Attachments, Attachment{Index: l.index, Name: name, Type: l.media})
			default:
				p.Attachments = append(p.Attachments, Attachment{Index: l.index, Name: name, Type: l.media, Size: n, Stored: true})
			}
		}
		return true
	})
	if saveErr != nil {
		return nil, nil, saveErr
	}
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
