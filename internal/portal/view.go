package portal

import (
	"io"
	"strings"

	"sealpost/internal/web"
)

// MailReader is web.MailReader over the portal's MIME walk and HTML
// policy: the dev outbox shows a message as the portal would.
type MailReader struct{}

// View implements web.MailReader.
func (MailReader) View(r io.Reader, limit int64) (*web.MailView, error) { return ViewMessage(r, limit) }

// Attachment implements web.MailReader.
func (MailReader) Attachment(r io.Reader, index int, start func(web.MailAttachment) io.Writer) error {
	return WriteAttachment(r, index, start)
}

// ViewMessage reads a whole message as a mail client shows it, for the dev
// outbox: its headers decoded, the first text body decoded to UTF-8 (cut at
// limit bytes), the first HTML body decoded and sanitised by the portal's
// policy, and its attachments with their decoded sizes. It uses the same
// walk as sealing, so the dev outbox shows what the portal would.
func ViewMessage(r io.Reader, limit int64) (*web.MailView, error) {
	v := &web.MailView{Attachments: []web.MailAttachment{}}
	haveText, haveHTML := false, false
	h, err := walk(r, func(l *leaf) bool {
		switch {
		case !l.attach && l.media == "text/plain" && !haveText:
			haveText = true
			v.Text, v.TextCut = decodeText(l, limit)
		case !l.attach && l.media == "text/html" && !haveHTML:
			haveHTML = true
			html, cut := decodeText(l, limit)
			v.HTML = SanitizeHTML(html)
			v.HasHTML = true
			v.TextCut = v.TextCut || cut
		default:
			name := l.name
			if name == "" {
				name = "attachment-" + itoa(l.index) + extFor(l.media)
			}
			n, err := io.Copy(io.Discard, l.decoded)
			v.Attachments = append(v.Attachments, web.MailAttachment{Index: l.index, Name: name, Type: l.media, Size: n, Damaged: err != nil})
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	dec := func(k string) string {
		s, err := wordDecoder.DecodeHeader(h.Get(k))
		if err != nil {
			return h.Get(k)
		}
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	v.From, v.To, v.Cc, v.Subject, v.Date = dec("From"), dec("To"), dec("Cc"), dec("Subject"), dec("Date")
	return v, nil
}

// WriteAttachment writes the decoded bytes of the attachment at index (as
// ViewMessage listed it) to w, after calling start with its description.
func WriteAttachment(r io.Reader, index int, start func(web.MailAttachment) io.Writer) error {
	found := false
	var werr error
	_, err := walk(r, func(l *leaf) bool {
		if l.index != index {
			return true
		}
		if !l.attach && (l.media == "text/plain" || l.media == "text/html") {
			return false // a body, not an attachment: the text view shows it
		}
		found = true
		name := l.name
		if name == "" {
			name = "attachment-" + itoa(l.index) + extFor(l.media)
		}
		_, werr = io.Copy(start(web.MailAttachment{Index: l.index, Name: name, Type: l.media}), l.decoded)
		return false
	})
	switch {
	case err != nil:
		return err
	case !found:
		return web.ErrNoAttachment
	}
	return werr
}

// SanitizeHTML is the portal's HTML policy (strictPolicy): what any
// surface that shows message HTML must pass it through.
func SanitizeHTML(html string) string { return strictPolicy.Sanitize(html) }
