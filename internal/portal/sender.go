package portal

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"sealpost/internal/store"
	"sealpost/internal/web"
)

// The sender's view: what they sealed, who read it, and withdrawing it.
// Withdrawal asks once for confirmation: the button on the list opens a
// page that says what will happen (a GET, which changes nothing), and only
// that page's form (a POST with its CSRF token) withdraws.

func (s *Service) home(w http.ResponseWriter, r *http.Request) {
	addr := s.sessionAddress(r)
	if s.Passkeys != nil {
		w.Header().Set("Content-Security-Policy", scriptCSP)
	}
	if addr == "" {
		s.page(w, http.StatusOK, "portal_home.html", map[string]any{"Title": "Secure mail", "CSRF": web.CSRFToken(w, r), "Passkeys": s.Passkeys != nil})
		return
	}
	ctx := r.Context()
	inbox, _ := s.Store.InboxOf(ctx, addr, 200)
	var in []map[string]any
	for _, m := range inbox {
		in = append(in, map[string]any{"Who": displayName(m), "Subject": m.Subject, "Sent": fmtTime(m.SentAt), "Status": readerStatus(m), "Link": "/m/" + s.token(m.ID, addr)})
	}
	sent, _ := s.Store.SentBy(ctx, addr, 200)
	var out []map[string]any
	for _, m := range sent {
		rs, _ := s.Store.SealedRecipients(ctx, m.ID)
		var rv []map[string]any
		for _, rc := range rs {
			rv = append(rv, map[string]any{"Address": rc.Address, "Active": rc.State == "active", "Withdrawn": when(rc.RevokedAt), "Notified": when(rc.NotifiedAt), "Opened": when(rc.FirstOpened),
				"Last": when(rc.LastOpened), "IP": rc.LastIP, "Opens": rc.Opens, "Downloads": rc.Downloads, "Replies": rc.Replies})
		}
		out = append(out, map[string]any{"ID": m.ID, "Subject": m.Subject, "Sent": fmtTime(m.SentAt), "Expires": fmtTime(m.ExpiresAt),
			"ExpiresDate": m.ExpiresAt.UTC().Format("2006-01-02"), "Active": m.State == "active", "Status": senderStatus(m), "Recipients": rv})
	}
	keys, _ := s.Store.Passkeys(ctx, addr)
	s.page(w, http.StatusOK, "portal_home.html", map[string]any{"Title": "Secure mail", "Address": addr, "Inbox": in, "Sent": out, "CSRF": web.CSRFToken(w, r),
		"Notice": doneNotice(r.URL.Query().Get("done")), "Passkeys": s.Passkeys != nil, "PasskeyCount": len(keys)})
}

// readerStatus says, for a recipient's list, why a message cannot be read.
func readerStatus(m *store.Sealed) string {
	switch m.State {
	case "active":
		return ""
	case "expired":
		return "Its time ran out and it was deleted."
	default:
		return "The sender withdrew it; it can no longer be read."
	}
}

// senderStatus says, for the sender's list, how long the message lives.
func senderStatus(m *store.Sealed) string {
	switch m.State {
	case "active":
		return "It can be read until " + fmtTime(m.ExpiresAt) + "."
	case "expired":
		return "It expired on " + fmtTime(m.DestroyedAt) + " and was deleted: nobody can read it any more."
	default:
		return "You withdrew it on " + fmtTime(m.DestroyedAt) + " and it was deleted: nobody can read it any more."
	}
}

func doneNotice(done string) string {
	switch done {
	case "revoked":
		return "Access withdrawn. The recipient can no longer read it."
	case "destroyed":
		return "The message is withdrawn from everyone and deleted. Nobody can read it any more."
	case "expiry":
		return "The expiry date is changed."
	}
	return ""
}

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmtTime(t)
}

// ownMessage loads a sealed message of the signed-in sender; a POST must
// carry its CSRF token.
func (s *Service) ownMessage(w http.ResponseWriter, r *http.Request) (*store.Sealed, string, bool) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
		if !web.CSRFOK(r) {
			s.fail(w, http.StatusForbidden, "This page has expired", "Go back, reload the page and try again.")
			return nil, "", false
		}
	}
	addr := s.sessionAddress(r)
	if addr == "" {
		http.Redirect(w, r, "/portal", http.StatusSeeOther)
		return nil, "", false
	}
	m, err := s.Store.GetSealed(r.Context(), r.PathValue("id"))
	if err != nil || m.Sender != addr || m.ParentID != "" {
		s.fail(w, http.StatusNotFound, "Message not found", "Go back to your list of sent messages.")
		return nil, "", false
	}
	return m, addr, true
}

// withdrawPage asks the sender to confirm a withdrawal.
func (s *Service) withdrawPage(w http.ResponseWriter, r *http.Request) {
	m, _, ok := s.ownMessage(w, r)
	if !ok {
		return
	}
	who := strings.ToLower(r.URL.Query().Get("recipient"))
	if m.State != "active" {
		http.Redirect(w, r, "/portal", http.StatusSeeOther)
		return
	}
	if who != "" {
		rc, err := s.Store.SealedRecipient(r.Context(), m.ID, who)
		if err != nil || rc.State != "active" {
			s.fail(w, http.StatusNotFound, "That recipient cannot be withdrawn", "They may have been withdrawn already. Go back to your list of sent messages.")
			return
		}
	}
	s.page(w, http.StatusOK, "portal_withdraw.html", map[string]any{"Title": "Withdraw the message?", "Subject": m.Subject, "Sent": fmtTime(m.SentAt),
		"Recipient": who, "Action": "/portal/s/" + m.ID + "/revoke", "CSRF": web.CSRFToken(w, r)})
}

func (s *Service) revoke(w http.ResponseWriter, r *http.Request) {
	m, addr, ok := s.ownMessage(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	who := strings.ToLower(r.PostFormValue("recipient"))
	if r.PostFormValue("confirm") != "yes" {
		// Not from the confirmation page: ask there first.
		q := ""
		if who != "" {
			q = "?recipient=" + url.QueryEscape(who)
		}
		http.Redirect(w, r, "/portal/s/"+m.ID+"/withdraw"+q, http.StatusSeeOther)
		return
	}
	if who == "" {
		if err := s.Destroy(ctx, m.ID, "revoked", addr); err != nil {
			s.oops(w, err)
			return
		}
		http.Redirect(w, r, "/portal?done=destroyed", http.StatusSeeOther)
		return
	}
	destroyed, gone, err := s.Store.RevokeRecipient(ctx, m.ID, who, s.now())
	if err != nil {
		s.oops(w, err)
		return
	}
	for _, id := range gone {
		s.removeBlobs(id) // the recipient's conversation goes with their access
	}
	s.audit(ctx, addr, "portal.revoke", m.ID, clientIP(r), r.UserAgent(), who)
	if destroyed {
		s.Destroy(ctx, m.ID, "revoked", addr)
	}
	http.Redirect(w, r, "/portal?done=revoked", http.StatusSeeOther)
}
