package pipeline

import (
	"bufio"
	"bytes"
	"io"
	"net/mail"
	"net/textproto"
	"strings"

	mimex "sealpost/internal/mime"
)

// HeaderCapture keeps the start of a message, up to the end of its header
// section or max bytes, for the fields the queue records (From domain for
// DKIM, Subject and Message-ID for tracing) and for loop detection.
type HeaderCapture struct {
	Max       int // bytes kept at most
	buf       []byte
	done      bool
	truncated bool // the header went on past max
}

func (h *HeaderCapture) Write(p []byte) {
	if h.done {
		return
	}
	start := len(h.buf)
	if start > 3 {
		start -= 3
	}
	room := h.Max - len(h.buf)
	if len(p) > room {
		p = p[:room]
	}
	h.buf = append(h.buf, p...)
	if i := bytes.Index(h.buf[start:], []byte("\r\n\r\n")); i >= 0 {
		h.buf = h.buf[:start+i+2]
		h.done = true
	} else if bytes.HasPrefix(h.buf, []byte("\r\n")) {
		h.buf = h.buf[:0] // no header at all
		h.done = true
	} else if len(h.buf) >= h.Max {
		h.done, h.truncated = true, true
	}
}

type HeaderInfo struct {
	From      string // the single From address, domain lower-cased; "" if not exactly one
	Subject   string
	MessageID string
	Received  int
	FromCount int
	// FromAll is every address of every From field; FromBad says a From
	// field did not parse; Complete that the whole header was read.
	FromAll  []string
	FromBad  bool
	Complete bool
}

func (h *HeaderCapture) Info() HeaderInfo {
	var hi HeaderInfo
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(bytes.Clone(h.buf), '\r', '\n'))))
	hdr, err := r.ReadMIMEHeader() // a partial header still yields what parsed
	hi.Received = len(hdr.Values("Received"))
	froms := hdr.Values("From")
	hi.FromCount = len(froms)
	hi.Complete = !h.truncated && err == nil
	for _, f := range froms {
		addrs, err := mail.ParseAddressList(f)
		if err != nil {
			hi.FromBad = true
			continue
		}
		for _, a := range addrs {
			hi.FromAll = append(hi.FromAll, a.Address)
		}
	}
	if len(froms) == 1 {
		if addrs, err := mail.ParseAddressList(froms[0]); err == nil && len(addrs) == 1 {
			a := addrs[0].Address
			if i := strings.LastIndexByte(a, '@'); i > 0 {
				hi.From = truncate(a[:i]+"@"+strings.ToLower(a[i+1:]), 254)
			}
		}
	}
	if s := hdr.Get("Subject"); s != "" {
		s = mimex.DecodeHeader(s)
		hi.Subject = truncate(s, 300)
	}
	hi.MessageID = truncate(strings.Trim(strings.TrimSpace(hdr.Get("Message-Id")), "<>"), 300)
	return hi
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// HeaderFilter holds back the header section of a message until it is
// complete, passes it through Rewrite, then streams the rest unchanged. A
// header longer than Max passes unchanged.
type HeaderFilter struct {
	W       io.Writer
	Rewrite func([]byte) []byte // nil result: keep the header as it is
	Max     int

	buf  []byte
	done bool
}

func (h *HeaderFilter) Write(p []byte) (int, error) {
	if h.done {
		return h.W.Write(p)
	}
	h.buf = append(h.buf, p...)
	if bytes.HasPrefix(h.buf, []byte("\r\n")) {
		return len(p), h.flush(0)
	}
	if i := bytes.Index(h.buf, []byte("\r\n\r\n")); i >= 0 {
		return len(p), h.flush(i + 2)
	}
	if len(h.buf) > h.Max {
		return len(p), h.flush(0)
	}
	return len(p), nil
}

// flush writes the held bytes; the first n of them are the header.
func (h *HeaderFilter) flush(n int) error {
	h.done = true
	head, rest := h.buf[:n], h.buf[n:]
	if n > 0 {
		if nh := h.Rewrite(head); nh != nil {
			head = nh
		}
	}
	if _, err := h.W.Write(head); err != nil {
		return err
	}
	_, err := h.W.Write(rest)
	h.buf = nil
	return err
}

// Close writes what is still held (a message that is all header).
func (h *HeaderFilter) Close() error {
	if h.done {
		return nil
	}
	n := len(h.buf)
	if !bytes.HasSuffix(h.buf, []byte("\r\n")) {
		n = 0
	}
	return h.flush(n)
}
