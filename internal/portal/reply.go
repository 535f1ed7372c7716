package portal

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"sealpost/internal/store"
	"sealpost/internal/web"
)

// A reply is sent once. The reply form carries a token of its own: random,
// with the time it was issued, bound to the message and the address by an
// HMAC under the portal's token key (so issuing one writes nothing). The
// POST checks it and consumes it atomically in the store (its hash is
// inserted; a second insert finds it) before anything is sent, then
// answers 303 to a page that says the reply was sent. Pressing the button
// twice, reloading that page or going back and sending the same form again
// finds the token used and shows the same page: nothing is sent again. A
// token older than the longest session is refused, so used tokens can be
// forgotten after that.

// formMaxAge is how old a reply form may be.
func (s *Service) formMaxAge() time.Duration {
	return s.Config().Portal.Remember.Duration + 24*time.Hour
}

// replyForm issues the token of a new reply form for t.
func (s *Service) replyForm(t *target) string {
	r, ts := randomID()[:16], strconv.FormatInt(s.now().Unix(), 36)
	return r + "." + ts + "." + idEncoding.EncodeToString(s.mac("form", r, ts, t.m.ID, t.r.Address)[:15])
}

// formOK reports whether tok is a reply form issued for t and not too old.
func (s *Service) formOK(t *target, tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[0]) != 16 || len(parts[2]) != 24 {
		return false
	}
	want := idEncoding.EncodeToString(s.mac("form", parts[0], parts[1], t.m.ID, t.r.Address)[:15])
	if !hmac.Equal([]byte(parts[2]), []byte(want)) {
		return false
	}
	sec, err := strconv.ParseInt(parts[1], 36, 64)
	if err != nil {
		return false
	}
	issued := time.Unix(sec, 0)
	return !issued.After(s.now().Add(5*time.Minute)) && s.now().Sub(issued) <= s.formMaxAge()
}

func (s *Service) reply(w http.ResponseWriter, r *http.Request) {
	cfg := s.Config()
	r.Body = http.MaxBytesReader(w, r.Body, cfg.Portal.MaxReplyBytes+64<<10)
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		s.fail(w, http.StatusRequestEntityTooLarge, "The reply is too large", fmt.Sprintf("A reply with its attachments can be at most %d MB. Remove an attachment and send again.", cfg.Portal.MaxReplyBytes>>20))
		return
	}
	defer r.MultipartForm.RemoveAll()
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Go back, reload the page and send your reply again.")
		return
	}
	t, ok := s.reader(w, r)
	if !ok {
		return
	}
	sent := "/m/" + t.token + "/sent"
	form := r.PostFormValue("form")
	if !s.formOK(t, form) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Go back, reload the page and send your reply again.")
		return
	}
	text := strings.TrimSpace(r.PostFormValue("text"))
	files := r.MultipartForm.File["files"]
	if text == "" && len(files) == 0 {
		s.showMessage(w, r, t, "Write something or attach a file before sending.")
		return
	}
	ctx := r.Context()
	switch err := s.Store.UsePortalForm(ctx, tokenHash(form), t.m.ID, t.r.Address, s.now()); {
	case errors.Is(err, store.ErrFormUsed):
		// The same form again (a double click, a reload, the back
		// button): it was sent already.
		http.Redirect(w, r, sent, http.StatusSeeOther)
		return
	case err != nil:
		s.oops(w, err)
		return
	}
	var rfs []replyFile
	for _, fh := range files {
		f, err := fh.Open()
		if err != nil {
			s.Store.ReleasePortalForm(ctx, tokenHash(form))
			s.oops(w, err)
			return
		}
		rfs = append(rfs, replyFile{name: fh.Filename, r: f})
		defer f.Close()
	}
	if err := s.sendReply(ctx, t, text, rfs); err != nil {
		// Nothing went out: the same form may be sent again.
		s.Store.ReleasePortalForm(ctx, tokenHash(form))
		s.oops(w, err)
		return
	}
	s.Store.RecordAccess(ctx, t.m.ID, t.r.Address, "reply", clientIP(r), s.now())
	s.audit(ctx, t.r.Address, "portal.reply", t.m.ID, clientIP(r), r.UserAgent(), fmt.Sprintf("%d attachments", len(rfs)))
	http.Redirect(w, r, sent, http.StatusSeeOther)
}

// replySent is the page after a reply: the conversation, with a notice.
func (s *Service) replySent(w http.ResponseWriter, r *http.Request) {
	t, ok := s.reader(w, r)
	if !ok {
		return
	}
	s.showMessage(w, r, t, "Your reply was sent securely to "+displayName(t.m)+".")
}

type replyFile struct {
	name string
	r    io.Reader
}

// sendReply seals the reply into the thread and delivers it to the sender
// through the organisation's mail host. Nothing goes to the recipient's
// own mailbox.
//
// The mail is a person's answer, so it has no Auto-Submitted field (RFC
// 3834 §5): it comes from "NAME via ORG" at the no-reply address (the
// gateway may not sign for the recipient's own domain), Reply-To is the
// recipient, and it is threaded to the message it answers. Its Message-ID
// carries the conversation's thread token, so that the staff's answer finds
// its way back into the conversation.
func (s *Service) sendReply(ctx context.Context, t *target, text string, files []replyFile) error {
	cfg := s.Config()
	var msg bytes.Buffer
	boundary := "reply-" + randomID()
	subject := t.m.Subject
	if !strings.HasPrefix(strings.ToLower(subject), "re:") {
		subject = "Re: " + subject
	}
	name := cleanName(t.r.Name)
	if name == "" {
		name = t.r.Address
	}
	from := (&mail.Address{Name: name + " via " + cfg.Org.Name, Address: s.noticeFrom(cfg)}).String()
	replyTo := (&mail.Address{Name: cleanName(t.r.Name), Address: t.r.Address}).String()
	messageID := s.threadMessageID(t.m.ID, t.r.Address, cfg.SMTP.Hostname)
	inReplyTo, refs := s.replyThreading(ctx, t.m, t.r.Address)
	fmt.Fprintf(&msg, "From: %s\r\nReply-To: %s\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n",
		from, replyTo, t.m.Sender, mime.QEncoding.Encode("utf-8", subject), s.now().Format(time.RFC1123Z), messageID)
	if inReplyTo != "" {
		fmt.Fprintf(&msg, "In-Reply-To: <%s>\r\nReferences: <%s>\r\n", inReplyTo, strings.Join(refs, ">\r\n <"))
	}
	fmt.Fprintf(&msg, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n", boundary)
	fmt.Fprintf(&msg, "X-Portal-Reply-From: <%s>\r\n\r\n", t.r.Address)
	fmt.Fprintf(&msg, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary)
	intro := fmt.Sprintf("%s replied securely through the portal to your message of %s. Answer this mail as usual: your answer reaches them securely, in the portal.\n\n", t.r.Address, fmtTime(t.m.SentAt))
	writeQP(&msg, intro+text+"\n")
	msg.WriteString("\r\n")
	for _, f := range files {
		fmt.Fprintf(&msg, "--%s\r\nContent-Type: application/octet-stream\r\nContent-Disposition: %s\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			boundary, contentDisposition(strings.ReplaceAll(f.name, "/", "_")))
		if err := writeBase64(&msg, f.r); err != nil {
			return err
		}
	}
	fmt.Fprintf(&msg, "--%s--\r\n", boundary)
	data := msg.Bytes()
	if err := s.sealReply(ctx, t, data, subject, messageID); err != nil {
		return err
	}
	return s.Submit(ctx, s.noticeFrom(cfg), []string{t.m.Sender}, subject, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func writeBase64(w io.Writer, r io.Reader) error {
	buf := make([]byte, 57*64)
	line := make([]byte, 0, 80)
	for {
		n, err := io.ReadFull(r, buf)
		for i := 0; i < n; i += 57 {
			chunk := buf[i:min(n, i+57)]
			line = line[:0]
			line = base64.StdEncoding.AppendEncode(line, chunk)
			line = append(line, '\r', '\n')
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// sealReply keeps the reply in the thread, sealed like the message.
func (s *Service) sealReply(ctx context.Context, t *target, data []byte, subject, messageID string) error {
	_, err := s.sealFrom(ctx, bytes.NewReader(data), int64(len(data)), sealMeta{
		msgID: "reply:" + randomID(), parentID: t.m.ID, sender: t.r.Address, subject: subject, expires: t.m.ExpiresAt,
		messageID: messageID, sentAt: s.now(), reply: true})
	return err
}
