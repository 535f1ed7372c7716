package portal

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/microcosm-cc/bluemonday"

	"sealpost/internal/store"
	"sealpost/internal/web"
)

// Routes mounts the portal on mux.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /m/{token}", s.messagePage)
	mux.HandleFunc("POST /m/{token}/code", s.askCode)
	mux.HandleFunc("POST /m/{token}/verify", s.checkCode)
	mux.HandleFunc("GET /m/{token}/body", s.htmlBody)
	mux.HandleFunc("GET /m/{token}/a/{n}", s.download)
	mux.HandleFunc("POST /m/{token}/reply", s.reply)
	mux.HandleFunc("GET /m/{token}/sent", s.replySent)
	mux.HandleFunc("GET /m/{token}/t/{id}/a/{n}", s.download)
	mux.HandleFunc("GET /r", s.referencePage)
	mux.HandleFunc("POST /r", s.referencePost)
	mux.HandleFunc("GET /portal", s.home)
	mux.HandleFunc("POST /portal/code", s.homeCode)
	mux.HandleFunc("POST /portal/verify", s.homeVerify)
	mux.HandleFunc("POST /portal/logout", s.logout)
	mux.HandleFunc("GET /portal/s/{id}/withdraw", s.withdrawPage)
	mux.HandleFunc("POST /portal/s/{id}/revoke", s.revoke)
	mux.HandleFunc("POST /portal/s/{id}/expiry", s.expiry)
	s.passkeyRoutes(mux)
}

// scriptCSP is the policy of pages that offer passkeys: the one script is
// the portal's own file.
const scriptCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// clientIP is the client's address for limits and the audit: the peer,
// or what a trusted proxy says (see web.ClientOf).
func clientIP(r *http.Request) string { return web.ClientIP(r) }

func (s *Service) page(w http.ResponseWriter, status int, name string, data map[string]any) {
	data["Org"] = s.Config().Org.Name
	if err := web.Render(w, status, name, data); err != nil {
		s.Log.Error("rendering portal page failed", "page", name, "err", err)
	}
}

func (s *Service) fail(w http.ResponseWriter, status int, title, advice string) {
	web.ErrorPage(w, s.Config().Org.Name, status, title, advice)
}

func (s *Service) oops(w http.ResponseWriter, err error) {
	s.Log.Error("portal request failed", "err", err)
	s.fail(w, http.StatusServiceUnavailable, "Something went wrong on our side", "Nothing was lost. Try again in a few minutes; if it keeps happening, tell the person who sent you the message.")
}

// target is the message and recipient a link token names.
type target struct {
	m     *store.Sealed
	r     *store.SealedRecipient
	token string
}

// lookup resolves the token of the request, answering the request itself
// when it cannot.
func (s *Service) lookup(w http.ResponseWriter, r *http.Request) (*target, bool) {
	tok := r.PathValue("token")
	if len(tok) != 32 {
		s.badLink(w)
		return nil, false
	}
	rc, err := s.Store.SealedRecipientByToken(r.Context(), tokenHash(tok))
	if errors.Is(err, store.ErrNotFound) {
		s.badLink(w)
		return nil, false
	}
	if err != nil {
		s.oops(w, err)
		return nil, false
	}
	m, err := s.Store.GetSealed(r.Context(), rc.SealedID)
	if err != nil {
		s.oops(w, err)
		return nil, false
	}
	if m.ParentID != "" {
		// Messages in a conversation are read through its first one.
		s.badLink(w)
		return nil, false
	}
	// The token must be the one the gateway made for this pair (the hash
	// matched; this guards against a changed row). Compared in constant
	// time like every secret.
	if subtle.ConstantTimeCompare([]byte(s.token(m.ID, rc.Address)), []byte(tok)) != 1 {
		s.badLink(w)
		return nil, false
	}
	return &target{m: m, r: rc, token: tok}, true
}

func (s *Service) badLink(w http.ResponseWriter) {
	s.fail(w, http.StatusNotFound, "This link is not valid", "Copy the whole link from the email into the address bar. If the email gave you a reference instead, enter it on the secure mail page.")
}

// gone answers for a revoked or expired message.
func (s *Service) gone(w http.ResponseWriter, t *target) bool {
	switch {
	case t.m.State == "expired":
		s.page(w, http.StatusGone, "portal_gone.html", map[string]any{"Title": "This message has expired", "Why": "It could be read until " + fmtTime(t.m.ExpiresAt) + ". It has now been deleted.", "Who": displayName(t.m)})
	case t.m.State != "active" || t.r.State != "active" || t.m.WrappedKey == nil:
		s.page(w, http.StatusGone, "portal_gone.html", map[string]any{"Title": "This message has been withdrawn", "Why": "The sender withdrew it, so it can no longer be read.", "Who": displayName(t.m)})
	default:
		return false
	}
	return true
}

// reader resolves the token of a request that needs the recipient signed
// in, answering the request itself when it cannot go on.
func (s *Service) reader(w http.ResponseWriter, r *http.Request) (*target, bool) {
	t, ok := s.lookup(w, r)
	if !ok || s.gone(w, t) {
		return nil, false
	}
	if !s.signedIn(r, t) {
		s.fail(w, http.StatusForbidden, "Sign in first", "Open the link from your email again.")
		return nil, false
	}
	return t, true
}

// signedIn reports whether the request's session is the recipient's.
func (s *Service) signedIn(r *http.Request, t *target) bool {
	a := s.sessionAddress(r)
	return a != "" && a == t.r.Address
}

func (s *Service) messagePage(w http.ResponseWriter, r *http.Request) {
	t, ok := s.lookup(w, r)
	if !ok || s.gone(w, t) {
		return
	}
	if !s.signedIn(r, t) {
		if s.Passkeys != nil {
			w.Header().Set("Content-Security-Policy", scriptCSP)
		}
		s.page(w, http.StatusOK, "portal_landing.html", map[string]any{"Title": "Secure message", "Who": displayName(t.m), "Sender": otherThan(t.m.Sender, displayName(t.m)),
			"To": masked(t.r.Address), "Action": "/m/" + t.token + "/code", "CSRF": web.CSRFToken(w, r), "Passkeys": s.Passkeys != nil})
		return
	}
	s.showMessage(w, r, t, "")
}

func (s *Service) showMessage(w http.ResponseWriter, r *http.Request, t *target, notice string) {
	ctx := r.Context()
	var parts Parts
	json.Unmarshal([]byte(t.m.Parts), &parts)
	text := ""
	cut := false
	if parts.Text >= 0 && parts.HTML < 0 {
		var err error
		text, cut, err = s.bodyText(t.m, parts.Text)
		if err != nil {
			s.oops(w, err)
			return
		}
	}
	thread, err := s.conversation(ctx, t)
	if err != nil {
		s.oops(w, err)
		return
	}
	form := s.replyForm(t)
	if notice == "" {
		// Recorded before the message is shown: a view the audit log
		// cannot record is refused.
		if err := s.audit(ctx, t.r.Address, "portal.view", t.m.ID, clientIP(r), r.UserAgent(), ""); err != nil {
			s.oops(w, err)
			return
		}
		s.Store.RecordAccess(ctx, t.m.ID, t.r.Address, "view", clientIP(r), s.now())
	}
	images := r.URL.Query().Get("images") == "1"
	csp := "default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	if s.Passkeys != nil {
		csp = scriptCSP
	}
	w.Header().Set("Content-Security-Policy", csp)
	s.page(w, http.StatusOK, "portal_message.html", map[string]any{
		"Passkeys": s.Passkeys != nil,
		"Title":    "Secure message", "M": t.m, "Who": displayName(t.m), "Sender": otherThan(t.m.Sender, displayName(t.m)), "To": t.r.Address,
		"Sent": fmtTime(t.m.SentAt), "Expires": fmtTime(t.m.ExpiresAt), "Text": text, "Cut": cut, "HTML": parts.HTML >= 0, "Images": images,
		"Attachments": listed(parts.Attachments), "Base": "/m/" + t.token, "CSRF": web.CSRFToken(w, r), "Thread": thread, "Notice": notice, "Form": form,
		"MaxReply": s.Config().Portal.MaxReplyBytes >> 20,
	})
}

// bodyText decrypts the text body at index.
func (s *Service) bodyText(m *store.Sealed, index int) (string, bool, error) {
	ra, size, done, err := s.open(m)
	if err != nil {
		return "", false, err
	}
	defer done()
	var text string
	var cut bool
	walk(io.NewSectionReader(ra, 0, size), func(l *leaf) bool {
		if l.index == index {
			text, cut = decodeText(l, 2<<20)
			return false
		}
		return true
	})
	return text, cut, nil
}

// formTarget checks a form POST on a message link and resolves the link,
// answering the request itself when it cannot go on.
func (s *Service) formTarget(w http.ResponseWriter, r *http.Request) (*target, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Go back, reload the page and press the button again.")
		return nil, false
	}
	t, ok := s.lookup(w, r)
	if !ok || s.gone(w, t) {
		return nil, false
	}
	return t, true
}

func (s *Service) askCode(w http.ResponseWriter, r *http.Request) {
	t, ok := s.formTarget(w, r)
	if !ok {
		return
	}
	s.codeFlow(w, r, t.r.Address, "/m/"+t.token+"/verify")
}

func (s *Service) codeFlow(w http.ResponseWriter, r *http.Request, address, verify string) {
	until, err := s.requestCode(r.Context(), address, clientIP(r), r.UserAgent())
	switch {
	case errors.Is(err, errLocked):
		s.fail(w, http.StatusTooManyRequests, "Too many wrong codes", "For your security, no code can be used for this address until "+fmtTime(until)+". Try again after that.")
	case errors.Is(err, errTooMany):
		s.fail(w, http.StatusTooManyRequests, "Too many codes asked for", "Wait a while before asking for another code. The last one we sent still works until it expires.")
	case err != nil:
		s.oops(w, err)
	default:
		s.codePage(w, r, address, verify, "")
	}
}

func (s *Service) codePage(w http.ResponseWriter, r *http.Request, address, verify, problem string) {
	status := http.StatusOK
	if problem != "" {
		status = http.StatusUnprocessableEntity
	}
	s.page(w, status, "portal_code.html", map[string]any{"Title": "Enter your code", "To": masked(address), "Action": verify,
		"CSRF": web.CSRFToken(w, r), "Problem": problem, "Minutes": int(s.Config().Portal.CodeValidity.Minutes()),
		"RememberDays": int(s.Config().Portal.Remember.Hours() / 24)})
}

func (s *Service) checkCode(w http.ResponseWriter, r *http.Request) {
	t, ok := s.formTarget(w, r)
	if !ok {
		return
	}
	if s.verify(w, r, t.r.Address, "/m/"+t.token+"/verify") {
		http.Redirect(w, r, "/m/"+t.token, http.StatusSeeOther)
	}
}

// verify checks the posted code for address and starts a session; on
// failure it answers the request.
func (s *Service) verify(w http.ResponseWriter, r *http.Request, address, action string) bool {
	left, until, err := s.verifyCode(r.Context(), address, r.PostFormValue("code"), clientIP(r), r.UserAgent())
	switch {
	case err == nil:
		if err := s.startSession(r.Context(), w, r, address, r.PostFormValue("remember") == "1"); err != nil {
			s.oops(w, err)
			return false
		}
		return true
	case errors.Is(err, errBadCode):
		s.codePage(w, r, address, action, fmt.Sprintf("That code is not right. You can try %d more %s.", left, plural(left, "time", "times")))
	case errors.Is(err, errNoCode):
		s.fail(w, http.StatusUnprocessableEntity, "That code has expired", "Codes work for a short time and only once. Go back to the link in your email and ask for a new code.")
	case errors.Is(err, errLocked):
		s.fail(w, http.StatusTooManyRequests, "Too many wrong codes", "For your security, no code can be used for this address until "+fmtTime(until)+". Then ask for a new code.")
	case errors.Is(err, errTooMany):
		s.fail(w, http.StatusTooManyRequests, "Too many attempts", "Wait a few minutes, then try again.")
	default:
		s.oops(w, err)
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// strictPolicy sanitises message HTML: formatting and links survive;
// scripts, forms, frames, event handlers, styles that load anything and
// every URL scheme but http(s), mailto and cid do not.
var strictPolicy = func() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowElements("center", "font", "span", "div", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "hr", "br")
	p.AllowAttrs("align", "valign", "width", "height", "bgcolor", "color", "colspan", "rowspan", "border", "cellpadding", "cellspacing").Globally()
	p.AllowURLSchemes("http", "https", "mailto", "cid")
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	return p
}()

// htmlBody serves the sanitised HTML body for the sandboxed frame, under a
// policy of its own: no scripts at all, no plugins, no forms, no fetches;
// remote images only when the reader asked for them.
func (s *Service) htmlBody(w http.ResponseWriter, r *http.Request) {
	t, ok := s.reader(w, r)
	if !ok {
		return
	}
	var parts Parts
	json.Unmarshal([]byte(t.m.Parts), &parts)
	ra, size, done, err := s.open(t.m)
	if err != nil {
		s.oops(w, err)
		return
	}
	defer done()
	var html string
	walk(io.NewSectionReader(ra, 0, size), func(l *leaf) bool {
		if l.index == parts.HTML {
			html, _ = decodeText(l, 4<<20)
			return false
		}
		return true
	})
	img := "data: cid:"
	if r.URL.Query().Get("images") == "1" {
		img = "data: cid: https:"
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src "+img+"; font-src 'none'; form-action 'none'; frame-ancestors 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, "<!doctype html><meta charset=\"utf-8\"><base target=\"_blank\">")
	io.WriteString(w, strictPolicy.Sanitize(html))
}

func (s *Service) download(w http.ResponseWriter, r *http.Request) {
	t, ok := s.reader(w, r)
	if !ok {
		return
	}
	m := t.m
	if id := r.PathValue("id"); id != "" {
		// An attachment of a message in the conversation: only of one the
		// reader may see.
		var err error
		if m, err = s.inConversation(r.Context(), t, id); err != nil {
			s.fail(w, http.StatusNotFound, "No such attachment", "Go back to the message and choose an attachment from its list.")
			return
		}
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	var parts Parts
	json.Unmarshal([]byte(m.Parts), &parts)
	var att *Attachment
	for i := range parts.Attachments {
		if parts.Attachments[i].Index == n {
			att = &parts.Attachments[i]
		}
	}
	if err != nil || att == nil {
		s.fail(w, http.StatusNotFound, "No such attachment", "Go back to the message and choose an attachment from its list.")
		return
	}
	h := w.Header()
	if att.Stored {
		ra, size, done, err := s.openAttachment(m, n)
		if err != nil {
			s.oops(w, err)
			return
		}
		defer done()
		// Recorded before the bytes go out: a download the audit log
		// cannot record is refused.
		if err := s.audit(r.Context(), t.r.Address, "portal.download", t.m.ID, clientIP(r), r.UserAgent(), downloadDetail(t.m, m, att)); err != nil {
			s.oops(w, err)
			return
		}
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", contentDisposition(att.Name))
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
		// Decrypt and write at the same time: one goroutine decrypts the
		// next buffers while this one writes the last to the socket.
		pipelinedCopy(w, ra, size)
		s.Store.RecordAccess(r.Context(), t.m.ID, t.r.Address, "download", clientIP(r), s.now())
		return
	}
	ra, size, done, err := s.open(m)
	if err != nil {
		s.oops(w, err)
		return
	}
	defer done()
	if err := s.audit(r.Context(), t.r.Address, "portal.download", t.m.ID, clientIP(r), r.UserAgent(), downloadDetail(t.m, m, att)); err != nil {
		s.oops(w, err)
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", contentDisposition(att.Name))
	// No Content-Length: an attachment that was not stored decoded (it
	// does not decode cleanly) has no known size; the response is chunked.
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	walk(io.NewSectionReader(ra, 0, size), func(l *leaf) bool {
		if l.index == n {
			// Large writes: the decoder yields what it has, and one
			// syscall per few hundred bytes costs more than the crypto.
			bw := bufio.NewWriterSize(w, 256<<10)
			io.Copy(bw, l.decoded)
			bw.Flush()
			return false
		}
		return true
	})
	s.Store.RecordAccess(r.Context(), t.m.ID, t.r.Address, "download", clientIP(r), s.now())
}

// downloadDetail names the attachment in the audit log (and the message of
// the conversation it came with).
func downloadDetail(root, m *store.Sealed, att *Attachment) string {
	if m.ID != root.ID {
		return cleanName(att.Name) + " (from message " + m.ID + " of the conversation)"
	}
	return cleanName(att.Name)
}

func (s *Service) referencePage(w http.ResponseWriter, r *http.Request) {
	s.page(w, http.StatusOK, "portal_reference.html", map[string]any{"Title": "Read a secure message", "CSRF": web.CSRFToken(w, r)})
}

func (s *Service) referencePost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Go back, reload the page and enter the reference again.")
		return
	}
	if !s.Limiter.Allow("ref:"+clientIP(r), s.now()) {
		s.fail(w, http.StatusTooManyRequests, "Too many attempts", "Wait a few minutes, then try again.")
		return
	}
	ref := strings.ToUpper(strings.Join(strings.Fields(r.PostFormValue("reference")), ""))
	if len(ref) == 10 {
		ref = ref[:5] + "-" + ref[5:]
	}
	rc, err := s.Store.SealedRecipientByReference(r.Context(), ref)
	if err != nil {
		s.page(w, http.StatusNotFound, "portal_reference.html", map[string]any{"Title": "Read a secure message", "CSRF": web.CSRFToken(w, r),
			"Problem": "We have no message with that reference. Check it against the email: it has ten letters and digits."})
		return
	}
	http.Redirect(w, r, "/m/"+s.token(rc.SealedID, rc.Address), http.StatusSeeOther)
}

func (s *Service) homeCode(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Go back, reload the page and try again.")
		return
	}
	addr := strings.ToLower(strings.TrimSpace(r.PostFormValue("address")))
	if !strings.Contains(addr, "@") || len(addr) > 254 {
		s.page(w, http.StatusUnprocessableEntity, "portal_home.html", map[string]any{"Title": "Secure mail", "CSRF": web.CSRFToken(w, r), "Problem": "Enter your email address, like name@example.org."})
		return
	}
	// A code goes out only to an address the portal knows (a sender or a
	// recipient of a sealed message); the page says the same either way,
	// so it tells nobody which addresses those are.
	if s.knownAddress(r.Context(), addr) {
		s.codeFlow(w, r, addr, "/portal/verify?a="+addr)
		return
	}
	s.codePage(w, r, addr, "/portal/verify?a="+addr, "")
}

func (s *Service) knownAddress(ctx context.Context, addr string) bool {
	if in, _ := s.Store.InboxOf(ctx, addr, 1); len(in) > 0 {
		return true
	}
	sent, _ := s.Store.SentBy(ctx, addr, 1)
	return len(sent) > 0
}

func (s *Service) homeVerify(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Go back, reload the page and try again.")
		return
	}
	addr := strings.ToLower(r.URL.Query().Get("a"))
	if s.verify(w, r, addr, "/portal/verify?a="+addr) {
		http.Redirect(w, r, "/portal", http.StatusSeeOther)
	}
}

func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Go back, reload the page and try again.")
		return
	}
	s.endSession(w, r)
	http.Redirect(w, r, "/portal", http.StatusSeeOther)
}

func (s *Service) expiry(w http.ResponseWriter, r *http.Request) {
	m, addr, ok := s.ownMessage(w, r)
	if !ok {
		return
	}
	cfg := s.Config()
	at, err := time.Parse("2006-01-02", r.PostFormValue("date"))
	if err != nil || m.State != "active" {
		s.fail(w, http.StatusUnprocessableEntity, "That date is not valid", "Give a date like 2026-12-31, then save again.")
		return
	}
	at = at.Add(24*time.Hour - time.Second)
	if at.Before(s.now()) || at.After(m.CreatedAt.Add(cfg.Portal.MaxExpiry.Duration)) {
		s.fail(w, http.StatusUnprocessableEntity, "That date is not allowed", fmt.Sprintf("Choose a date from today to %s.", m.CreatedAt.Add(cfg.Portal.MaxExpiry.Duration).UTC().Format("2 January 2006")))
		return
	}
	if err := s.Store.SetSealedExpiry(r.Context(), m.ID, at); err != nil {
		s.oops(w, err)
		return
	}
	s.audit(r.Context(), addr, "portal.expiry", m.ID, clientIP(r), r.UserAgent(), at.UTC().Format(time.RFC3339))
	http.Redirect(w, r, "/portal?done=expiry", http.StatusSeeOther)
}

// pipelinedCopy writes size bytes of r to w, reading (decrypting) ahead in
// a second goroutine with a few 256 KiB buffers in flight.
func pipelinedCopy(w io.Writer, r io.ReaderAt, size int64) error {
	const n, bufSize = 4, 256 << 10
	full := make(chan []byte, n)
	free := make(chan []byte, n)
	for i := 0; i < n; i++ {
		free <- make([]byte, bufSize)
	}
	done := make(chan struct{})
	defer close(done)
	var readErr error
	go func() {
		defer close(full)
		for off := int64(0); off < size; {
			var b []byte
			select {
			case b = <-free:
			case <-done:
				return
			}
			k, err := r.ReadAt(b[:min(int64(bufSize), size-off)], off)
			if k > 0 {
				full <- b[:k]
				off += int64(k)
			}
			if err != nil && err != io.EOF {
				readErr = err
				return
			}
			if err == io.EOF && k == 0 {
				return
			}
		}
	}()
	for b := range full {
		if _, err := w.Write(b); err != nil {
			return err // the deferred close stops the reader
		}
		free <- b[:cap(b)]
	}
	return readErr
}
