package web

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"sealpost/internal/queue"
)

// MailReader turns a captured message into what a mail client shows.
type MailReader interface {
	// View decodes the message: headers, text and sanitised HTML (each cut
	// at limit bytes), attachments.
	View(r io.Reader, limit int64) (*MailView, error)
	// Attachment writes the decoded attachment at index to the writer
	// start returns; an error wrapping ErrNoAttachment if there is none.
	Attachment(r io.Reader, index int, start func(MailAttachment) io.Writer) error
}

// ErrNoAttachment: the message has no attachment at that index.
var ErrNoAttachment = errors.New("no such attachment")

// MailView is a message as a mail client shows it.
type MailView struct {
	From, To, Cc, Subject, Date string
	Text                        string // the first text/plain body, decoded to UTF-8
	HTML                        string // the first text/html body, decoded and sanitised
	HasHTML                     bool
	TextCut                     bool // a body was longer than the limit
	Attachments                 []MailAttachment
}

// MailAttachment is one attachment of a MailView.
type MailAttachment struct {
	Index   int // position in the depth-first walk of the MIME tree
	Name    string
	Type    string
	Size    int64 // decoded bytes
	Damaged bool  // its transfer encoding does not decode cleanly
}

// textSegment is a run of plain text, or a link in it.
type textSegment struct {
	Text string
	URL  string // http(s) only; "" for text
}

// urlRe finds web addresses in plain text, as mail clients linkify them.
var urlRe = regexp.MustCompile(`https?://[^\s<>"]+`)

// linkify splits text into plain runs and http(s) links. Punctuation that
// ends a sentence is not part of the link.
func linkify(text string) []textSegment {
	var out []textSegment
	last := 0
	for _, m := range urlRe.FindAllStringIndex(text, -1) {
		end := m[1]
		for end > m[0] && strings.ContainsRune(".,;:!?)'", rune(text[end-1])) {
			end--
		}
		if end-m[0] <= len("https://") {
			continue
		}
		if m[0] > last {
			out = append(out, textSegment{Text: text[last:m[0]]})
		}
		out = append(out, textSegment{Text: text[m[0]:end], URL: text[m[0]:end]})
		last = end
	}
	if last < len(text) {
		out = append(out, textSegment{Text: text[last:]})
	}
	return out
}

// The dev outbox shows mail the gateway made or passed through; in dev mode
// that includes whatever anyone sent to its listeners, so message HTML is
// untrusted. It is sanitised (the portal's policy), then served on its own
// URL under a CSP sandbox without allow-scripts (a unique origin: no
// cookies, no script, no forms), and framed by an iframe with the same
// sandbox. allow-popups and allow-popups-to-escape-sandbox let a link open
// in a new top-level tab (base target=_blank) that is not itself sandboxed,
// so the hold and portal pages it leads to work.
const (
	frameSandbox = "allow-popups allow-popups-to-escape-sandbox"
	bodyCSP      = "sandbox " + frameSandbox + "; default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:; font-src 'none'; form-action 'none'; frame-ancestors 'self'; base-uri 'none'"
	// showCSP is the page CSP of secureHeaders plus frames from this origin.
	showCSP = "default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

func (s *Server) outboxList(w http.ResponseWriter, r *http.Request) {
	entries, err := s.Outbox.List(r.Context(), 200)
	if err != nil {
		s.Log.Error("listing dev outbox failed", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "The outbox cannot be read", "The gateway could not read its store. Check the gateway's log, then reload this page.")
		return
	}
	s.render(w, http.StatusOK, "outbox.html", map[string]any{"Org": s.OrgName, "Entries": entries})
}

func (s *Server) outboxEntry(w http.ResponseWriter, r *http.Request) (*queue.OutboxEntry, bool) {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil {
		s.errorPage(w, http.StatusNotFound, "Message not found", "That message is not in the dev outbox. Go back to the outbox list.")
		return nil, false
	}
	e, err := s.Outbox.Get(r.Context(), seq)
	if err != nil {
		s.errorPage(w, http.StatusNotFound, "Message not found", "That message is not in the dev outbox. Go back to the outbox list.")
		return nil, false
	}
	return e, true
}

// openEntry opens the captured message of the request, answering the
// request itself when it cannot.
func (s *Server) openEntry(w http.ResponseWriter, r *http.Request) (*queue.OutboxEntry, io.Reader, func(), bool) {
	e, ok := s.outboxEntry(w, r)
	if !ok {
		return nil, nil, nil, false
	}
	rd, c, err := s.Outbox.Open(e)
	if err != nil {
		s.Log.Error("opening dev outbox message failed", "seq", e.Seq, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "The message cannot be read", "Its file is missing or damaged. Check the gateway's log.")
		return nil, nil, nil, false
	}
	return e, rd, func() { c.Close() }, true
}

const maxShown = 256 << 10

func (s *Server) outboxShow(w http.ResponseWriter, r *http.Request) {
	e, rd, done, ok := s.openEntry(w, r)
	if !ok {
		return
	}
	defer done()
	if s.Mail == nil {
		http.Redirect(w, r, "/dev/outbox/"+strconv.FormatInt(e.Seq, 10)+"/source", http.StatusSeeOther)
		return
	}
	v, err := s.Mail.View(rd, maxShown)
	if err != nil {
		// Not a message a mail client could show: say so, and offer the source.
		s.render(w, http.StatusOK, "outbox_show.html", map[string]any{"Org": s.OrgName, "Title": "Captured message", "E": e, "Unreadable": err.Error()})
		return
	}
	title := v.Subject
	if title == "" {
		title = "Captured message"
	}
	w.Header().Set("Content-Security-Policy", showCSP)
	s.render(w, http.StatusOK, "outbox_show.html", map[string]any{"Org": s.OrgName, "Title": title, "E": e, "V": v, "Text": linkify(v.Text), "Sandbox": frameSandbox})
}

// outboxBody serves the sanitised HTML body for the sandboxed frame.
func (s *Server) outboxBody(w http.ResponseWriter, r *http.Request) {
	_, rd, done, ok := s.openEntry(w, r)
	if !ok {
		return
	}
	defer done()
	if s.Mail == nil {
		http.NotFound(w, r)
		return
	}
	v, err := s.Mail.View(rd, maxShown)
	if err != nil || !v.HasHTML {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", bodyCSP)
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, `<!doctype html><meta charset="utf-8"><base target="_blank">`)
	io.WriteString(w, v.HTML)
}

func (s *Server) outboxAttachment(w http.ResponseWriter, r *http.Request) {
	_, rd, done, ok := s.openEntry(w, r)
	if !ok {
		return
	}
	defer done()
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || s.Mail == nil {
		s.errorPage(w, http.StatusNotFound, "No such attachment", "Go back to the message and choose an attachment from its list.")
		return
	}
	started := false
	err = s.Mail.Attachment(rd, n, func(a MailAttachment) io.Writer {
		started = true
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Name}))
		h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
		return w
	})
	switch {
	case errors.Is(err, ErrNoAttachment):
		s.errorPage(w, http.StatusNotFound, "No such attachment", "Go back to the message and choose an attachment from its list.")
	case err != nil && !started:
		s.errorPage(w, http.StatusUnprocessableEntity, "The message cannot be read", "Its MIME structure does not parse. Look at its source instead.")
	case err != nil:
		// Headers are out; the download ends short, which the browser shows.
		s.Log.Warn("dev outbox attachment does not decode cleanly", "err", err)
	}
}

func (s *Server) outboxSource(w http.ResponseWriter, r *http.Request) {
	e, rd, done, ok := s.openEntry(w, r)
	if !ok {
		return
	}
	defer done()
	b, _ := io.ReadAll(io.LimitReader(rd, maxShown))
	s.render(w, http.StatusOK, "outbox_source.html", map[string]any{"Org": s.OrgName, "E": e, "Text": strings.ToValidUTF8(string(b), "\uFFFD"), "Cut": e.Size > maxShown})
}

func (s *Server) outboxRaw(w http.ResponseWriter, r *http.Request) {
	e, rd, done, ok := s.openEntry(w, r)
	if !ok {
		return
	}
	defer done()
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Disposition", `attachment; filename="`+e.MsgID+`.eml"`)
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	io.Copy(w, rd)
}
