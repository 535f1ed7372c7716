package portal

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/store"
)

// notify mails a recipient that a sealed message waits for them. It names
// the sender and, unless hidden, the subject; it carries one link (or only
// a reference) and nothing of the content, asks for no password, and looks
// like nothing but what it is.
func (s *Service) notify(ctx context.Context, m *store.Sealed, address string) error {
	cfg := s.Config()
	who := m.Sender
	if m.SenderName != "" {
		who = m.SenderName + " (" + m.Sender + ")"
	}
	subj := fmt.Sprintf("Secure message from %s at %s", displayName(m), cfg.Org.Name)
	v := noticeView{Org: cfg.Org.Name, Colour: cfg.Portal.BrandColour, Who: who, Expires: fmtTime(m.ExpiresAt), Base: cfg.Web.PublicURL}
	if !m.HideSubject {
		v.Subject = m.Subject
	}
	if cfg.Portal.LinkInNotice && !noLink(cfg.Portal.NoLinkDomains, address) {
		v.Link = cfg.Web.PublicURL + "/m/" + s.token(m.ID, address)
	} else {
		v.Reference = s.reference(m.ID, address)
	}
	_, logo := s.Brand()
	v.Logo = logo != nil
	return s.Submit(ctx, s.noticeFrom(cfg), []string{address}, subj, func(w io.Writer) error {
		return writeAlternative(w, cfg, s.noticeFrom(cfg), address, subj, noticeText(v), noticeHTML(v), logo)
	})
}

// notifyAnswer mails a recipient that a new message waits in their
// conversation about root: one mail per new message, with the link (or
// reference) of the conversation and nothing of the content.
func (s *Service) notifyAnswer(ctx context.Context, root, answer *store.Sealed, address string) error {
	cfg := s.Config()
	who := answer.Sender
	if answer.SenderName != "" {
		who = answer.SenderName + " (" + answer.Sender + ")"
	}
	subj := fmt.Sprintf("New secure message from %s at %s", displayName(answer), cfg.Org.Name)
	v := noticeView{Org: cfg.Org.Name, Colour: cfg.Portal.BrandColour, Who: who, Expires: fmtTime(root.ExpiresAt), Base: cfg.Web.PublicURL, Answer: true}
	if !root.HideSubject {
		v.Subject = root.Subject
	}
	if cfg.Portal.LinkInNotice && !noLink(cfg.Portal.NoLinkDomains, address) {
		v.Link = cfg.Web.PublicURL + "/m/" + s.token(root.ID, address)
	} else {
		v.Reference = s.reference(root.ID, address)
	}
	_, logo := s.Brand()
	v.Logo = logo != nil
	return s.Submit(ctx, s.noticeFrom(cfg), []string{address}, subj, func(w io.Writer) error {
		return writeAlternative(w, cfg, s.noticeFrom(cfg), address, subj, noticeText(v), noticeHTML(v), logo)
	})
}

func displayName(m *store.Sealed) string {
	if m.SenderName != "" {
		return m.SenderName
	}
	return m.Sender
}

type noticeView struct {
	Org, Colour, Who, Subject, Expires, Link, Reference, Base string
	Logo                                                      bool
	Answer                                                    bool // a new message in a conversation
}

func noticeText(v noticeView) string {
	var b strings.Builder
	if v.Answer {
		fmt.Fprintf(&b, "%s has answered you in your secure conversation with %s.\n\n", v.Who, v.Org)
	} else {
		fmt.Fprintf(&b, "%s has sent you a secure message through %s's secure mail service.\n\n", v.Who, v.Org)
	}
	if v.Subject != "" {
		fmt.Fprintf(&b, "Subject: %s\n\n", v.Subject)
	}
	if v.Link != "" {
		fmt.Fprintf(&b, "To read it, open this link:\n\n  %s\n\n", v.Link)
	} else {
		fmt.Fprintf(&b, "To read it, go to %s/r and enter this reference:\n\n  %s\n\n", v.Base, v.Reference)
	}
	fmt.Fprintf(&b, "We will send a one-time code to this email address to check it is you. You do not need a password or an account.\n\n")
	fmt.Fprintf(&b, "The %s can be read until %s.\n\n", map[bool]string{false: "message", true: "conversation"}[v.Answer], v.Expires)
	fmt.Fprintf(&b, "If you were not expecting it, you can ignore this email. %s will never ask for your password by email.\n", v.Org)
	return b.String()
}

var noticeTmpl = template.Must(template.New("n").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Secure message</title></head>
<body style="margin:0;padding:0;background:#f3f2f1;font-family:Arial,sans-serif;color:#0b0c0c">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td style="padding:24px">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="max-width:600px;background:#ffffff">
<tr><td style="background:{{.Colour}};color:#ffffff;padding:16px 24px;font-size:18px;font-weight:bold">{{if .Logo}}<img src="cid:logo@brand" alt="" height="32" style="vertical-align:middle;margin-right:12px">{{end}}{{.Org}}</td></tr>
<tr><td style="padding:24px;font-size:16px;line-height:1.5">
<p style="margin:0 0 16px">{{if .Answer}}{{.Who}} has answered you in your secure conversation with {{.Org}}.{{else}}{{.Who}} has sent you a secure message through {{.Org}}'s secure mail service.{{end}}</p>
{{if .Subject}}<p style="margin:0 0 16px"><strong>Subject:</strong> {{.Subject}}</p>{{end}}
{{if .Link}}<p style="margin:0 0 16px"><a href="{{.Link}}" style="color:{{.Colour}};font-weight:bold">Read the secure message</a></p>
{{else}}<p style="margin:0 0 16px">To read it, go to {{.Base}}/r and enter this reference:</p>
<p style="margin:0 0 16px;font-size:22px;font-weight:bold;letter-spacing:2px">{{.Reference}}</p>{{end}}
<p style="margin:0 0 16px">We will send a one-time code to this email address to check it is you. You do not need a password or an account.</p>
<p style="margin:0 0 16px">The {{if .Answer}}conversation{{else}}message{{end}} can be read until {{.Expires}}.</p>
<p style="margin:0;color:#505a5f;font-size:14px">If you were not expecting it, you can ignore this email. {{.Org}} will never ask for your password by email.</p>
</td></tr></table></td></tr></table></body></html>
`))

func noticeHTML(v noticeView) string {
	var b strings.Builder
	noticeTmpl.Execute(&b, v)
	return b.String()
}

// sendCode mails a one-time code. The mail holds the code and nothing else
// of value: no link, no content.
func (s *Service) sendCode(ctx context.Context, address, code string) error {
	cfg := s.Config()
	subj := "Your one-time code for " + cfg.Org.Name + " secure mail"
	spaced := code[:4] + " " + code[4:]
	text := fmt.Sprintf("Your one-time code is:\n\n  %s\n\nEnter it on the page where you asked for it. It works for %s and only once.\n\nIf you did not ask for a code, you can ignore this email: nobody can read your messages without it.\n",
		spaced, config.DurationWords(cfg.Portal.CodeValidity.Duration))
	return s.Submit(ctx, s.noticeFrom(cfg), []string{address}, subj, func(w io.Writer) error {
		return writePlain(w, cfg, s.noticeFrom(cfg), address, subj, text)
	})
}

func header(cfg *config.Config, from, to, subject, ctype string) string {
	return fmt.Sprintf("From: %s <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n%s",
		mime.QEncoding.Encode("utf-8", cfg.Org.Name), from, to, mime.QEncoding.Encode("utf-8", subject),
		time.Now().Format(time.RFC1123Z), randomID(), cfg.SMTP.Hostname, ctype)
}

func writePlain(w io.Writer, cfg *config.Config, from, to, subject, text string) error {
	if _, err := io.WriteString(w, header(cfg, from, to, subject, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")); err != nil {
		return err
	}
	return writeQP(w, text)
}

func writeQP(w io.Writer, text string) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qp, strings.ReplaceAll(text, "\n", "\r\n")); err != nil {
		return err
	}
	return qp.Close()
}

func writeAlternative(w io.Writer, cfg *config.Config, from, to, subject, text, html string, logo []byte) error {
	boundary := "alt-" + randomID()
	related := "rel-" + randomID()
	if logo != nil {
		// multipart/related: the HTML part and the logo it shows (cid:),
		// so that no image is fetched from anywhere.
		if _, err := io.WriteString(w, header(cfg, from, to, subject, "Content-Type: multipart/related; type=\"multipart/alternative\"; boundary=\""+related+"\"\r\n\r\n")); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "--"+related+"\r\nContent-Type: multipart/alternative; boundary=\""+boundary+"\"\r\n\r\n"); err != nil {
			return err
		}
	} else if _, err := io.WriteString(w, header(cfg, from, to, subject, "Content-Type: multipart/alternative; boundary=\""+boundary+"\"\r\n\r\n")); err != nil {
		return err
	}
	for _, p := range []struct{ ct, body string }{{"text/plain", text}, {"text/html", html}} {
		if _, err := io.WriteString(w, "--"+boundary+"\r\nContent-Type: "+p.ct+"; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"); err != nil {
			return err
		}
		if err := writeQP(w, p.body); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(w, "--"+boundary+"--\r\n"); err != nil {
		return err
	}
	if logo == nil {
		return nil
	}
	if _, err := io.WriteString(w, "\r\n--"+related+"\r\nContent-Type: image/png\r\nContent-ID: <logo@brand>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"); err != nil {
		return err
	}
	if err := writeBase64(w, bytes.NewReader(logo)); err != nil {
		return err
	}
	_, err := io.WriteString(w, "--"+related+"--\r\n")
	return err
}

func noLink(domains []string, address string) bool {
	d := address[strings.LastIndexByte(address, '@')+1:]
	for _, x := range domains {
		if strings.EqualFold(strings.TrimSpace(x), d) {
			return true
		}
	}
	return false
}
