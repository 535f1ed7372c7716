package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"

	"sealpost/internal/policy"
	"sealpost/internal/store"
)

// Viewing a quarantined message. An administrator deciding whether to
// release mail needs to see it, but the message is what was judged
// dangerous: it is shown only as text (no HTML, no images, no links to
// follow, attachments by name and size only), and each viewing is an
// audit event with the reason the administrator gave.

// maxView bounds what is read of a message for viewing.
const maxView = 2 << 20

// viewPart is one part of the message as shown.
type viewPart struct {
	Where string
	Type  string
	Text  string // "" for an attachment
	Size  int
	Name  string
}

// viewHeld shows a held or quarantined message's verdict, header and text.
func (s *Service) viewHeld(w http.ResponseWriter, r *http.Request, u *store.User, id, reason string) {
	ctx := r.Context()
	d, err := s.Store.GetDecision(ctx, id)
	if err != nil || (d.State != "quarantined" && d.State != "held") {
		s.fail(w, http.StatusNotFound, "No such message", "It was released or deleted already, or it never was held. Go back to the list.")
		return
	}
	m, err := s.Store.Message(ctx, id)
	if err != nil {
		s.fail(w, http.StatusNotFound, "No such message", "Go back to the list.")
		return
	}
	// The record comes first: a viewing that cannot be audited is not
	// given.
	if err := s.audit(r, "admin:"+u.Name, "quarantine.viewed", id, reason); err != nil {
		s.fail(w, http.StatusInternalServerError, "Not shown", "The viewing could not be recorded in the audit log, so the message is not shown. Try again later.")
		return
	}
	sm, err := s.Queue.OpenDelivered(m)
	if err != nil {
		s.oops(w, err)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(io.NewSectionReader(sm, 0, maxView), maxView))
	sm.Close()
	if err != nil {
		s.oops(w, err)
		return
	}
	var pd policy.Decision
	json.Unmarshal([]byte(d.Detail), &pd)
	var reasons []string
	for _, rd := range pd.Recipients {
		reasons = append(reasons, rd.Address+": "+strings.Join(rd.Reasons, "; "))
	}
	var findings []string
	for _, f := range pd.Findings {
		findings = append(findings, fmt.Sprintf("%s ×%d (%s) in %s", f.Detector, f.Count, f.Confidence, f.Where))
	}
	headers, parts := sanitiseMessage(raw)
	s.page(w, http.StatusOK, "console_held_view.html", map[string]any{"Title": "Quarantined message", "U": u, "CSRF": "",
		"D": d, "Reasons": reasons, "Findings": findings, "Headers": headers, "Parts": parts, "Truncated": len(raw) >= maxView})
}

var viewDecoder = mime.WordDecoder{}

// sanitiseMessage returns the header fields and the parts of a message as
// plain text.
func sanitiseMessage(raw []byte) ([][2]string, []viewPart) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, []viewPart{{Where: "message", Type: "unreadable", Text: cleanText(string(raw[:min(len(raw), 64<<10)]))}}
	}
	var headers [][2]string
	for _, l := range headerOrder(raw) {
		for _, v := range msg.Header[l] {
			dec, err := viewDecoder.DecodeHeader(v)
			if err != nil {
				dec = v
			}
			headers = append(headers, [2]string{l, cleanText(dec)})
		}
	}
	var parts []viewPart
	walkView(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), "", msg.Body, "body", 0, &parts)
	return headers, parts
}

// headerOrder lists the field names of the header in order, once each.
func headerOrder(raw []byte) []string {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(raw)
	}
	seen := map[string]bool{}
	var out []string
	for _, l := range strings.Split(string(raw[:end]), "\r\n") {
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			continue
		}
		if i := strings.IndexByte(l, ':'); i > 0 {
			k := http.CanonicalHeaderKey(strings.TrimSpace(l[:i]))
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

func walkView(ctype, cte, disp string, body io.Reader, where string, depth int, out *[]viewPart) {
	if depth > 8 || len(*out) > 200 {
		return
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" {
		mr := multipart.NewReader(body, params["boundary"])
		for i := 1; ; i++ {
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			walkView(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p.Header.Get("Content-Disposition"), p, fmt.Sprintf("%s/%d", where, i), depth+1, out)
		}
	}
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &stripSpace{r: body})
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	data, _ := io.ReadAll(io.LimitReader(r, maxView))
	name := params["name"]
	if _, dp, err := mime.ParseMediaType(disp); err == nil && dp["filename"] != "" {
		name = dp["filename"]
	}
	p := viewPart{Where: where, Type: mt, Size: len(data), Name: cleanText(name)}
	switch {
	case strings.HasPrefix(strings.ToLower(disp), "attachment"):
	case mt == "text/plain":
		p.Text = cleanText(string(data))
	case mt == "text/html":
		p.Text = cleanText(htmlToText(data))
	}
	*out = append(*out, p)
}

// stripSpace drops white space, which base64 in mail carries at line ends.
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

// htmlToText keeps the text of an HTML document (no scripts or styles),
// with the targets of links written out so that a look-alike link shows.
func htmlToText(b []byte) string {
	z := html.NewTokenizer(bytes.NewReader(b))
	var out strings.Builder
	skip := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return out.String()
		case html.StartTagToken, html.SelfClosingTagToken:
			name, attr := z.TagName()
			switch string(name) {
			case "script", "style", "head", "title":
				skip++
			case "br", "p", "div", "tr", "li", "h1", "h2", "h3":
				out.WriteString("\n")
			case "a":
				for attr {
					var k, v []byte
					k, v, attr = z.TagAttr()
					if string(k) == "href" {
						out.WriteString("[link: " + string(v) + "] ")
					}
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "head", "title":
				if skip > 0 {
					skip--
				}
			}
		case html.TextToken:
			if skip == 0 {
				out.Write(z.Text())
			}
		}
	}
}

// cleanText makes untrusted text safe to read: valid UTF-8, no control
// characters but newlines and tabs, and no bidirectional controls (which
// reorder what is shown).
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == '\r':
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r), r == '\u200b', r == '\u200d', r == '\ufeff':
			b.WriteString(fmt.Sprintf("[U+%04X]", r))
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > 256<<10 {
		for i := 256 << 10; i > 0; i-- {
			if utf8.RuneStart(out[i]) {
				return out[:i] + "\n[…cut]"
			}
		}
	}
	return out
}
