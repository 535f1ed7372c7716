package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"sort"
	"strings"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/ops"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
	"sealpost/internal/store"
	"sealpost/internal/web"
)

// Held mail. A message the policy holds waits for its sender: the sender
// gets a notice with a link signed for that message (an HMAC under a key
// derived from the installation key, so links cannot be forged or guessed);
// the page behind the link shows why the message was held and two buttons.
// Opening the link changes nothing (mail scanners follow links); only the
// form's POST, with a CSRF token, confirms or cancels. A hold nobody
// resolves expires after policy.hold_timeout: the message is dropped and the
// sender told. Quarantined mail waits for the operator
// (sealpost quarantine ...) and is deleted after policy.quarantine_retention.

// holdToken is the signature in a hold link.
func (g *Gateway) holdToken(id string) string {
	m := hmac.New(sha256.New, g.linkKey)
	m.Write([]byte("hold\x00" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

func (g *Gateway) holdLink(cfg *config.Config, id, do string) string {
	return fmt.Sprintf("%s/hold/%s?t=%s&do=%s", cfg.Web.PublicURL, id, g.holdToken(id), do)
}

// noticeAddress is where notices about a message go: its sender, if the
// sender is one of the organisation's.
func noticeAddress(cfg *config.Config, env *queue.Envelope) string {
	for _, a := range []string{env.MailFrom, env.HeaderFrom} {
		if d := domainOf(a); d != "" && cfg.IsOrgDomain(strings.ToLower(d)) {
			return a
		}
	}
	return ""
}

// composeNotice writes the notice to the sender of a held or quarantined
// message; nil when the sender is not the organisation's.
func (g *Gateway) composeNotice(cfg *config.Config, rec *store.Decision, d *policy.Decision, env *queue.Envelope) (*queue.Pending, error) {
	to := noticeAddress(cfg, env)
	if to == "" {
		return nil, nil
	}
	var b strings.Builder
	var subject string
	waiting, others := splitWaiting(d)
	if rec.State == "held" {
		subject = "Held for your confirmation: " + rec.Subject
		fmt.Fprintf(&b, "Your message has not been sent yet. Please check it.\n\n")
	} else {
		subject = "Kept for review: " + rec.Subject
		fmt.Fprintf(&b, "Your message has not been sent. It is kept for review by IT.\n\n")
	}
	fmt.Fprintf(&b, "  Subject:    %s\n  Sent:       %s\n  Reference:  %s\n\n", rec.Subject, rec.CreatedAt.UTC().Format("2 Jan 2006 15:04 MST"), rec.MsgID)
	b.WriteString("Why:\n")
	for _, r := range waiting {
		fmt.Fprintf(&b, "  %s\n", r.Address)
		for _, why := range r.Reasons {
			fmt.Fprintf(&b, "    - %s\n", why)
		}
	}
	if len(d.Findings) > 0 {
		b.WriteString("\nWhat the gateway found:\n")
		for _, f := range d.Findings {
			fmt.Fprintf(&b, "  - %s: %d (%s confidence) in %s\n", f.Detector, f.Count, f.Confidence, f.Where)
		}
	}
	if len(others) > 0 {
		fmt.Fprintf(&b, "\nThe other recipients (%s) got the message as usual.\n", strings.Join(others, ", "))
	}
	if rec.State == "held" {
		fmt.Fprintf(&b, "\nIf the message and its recipients are right, send it:\n  %s\n", g.holdLink(cfg, rec.MsgID, "confirm"))
		fmt.Fprintf(&b, "\nIf not, cancel it:\n  %s\n", g.holdLink(cfg, rec.MsgID, "cancel"))
		fmt.Fprintf(&b, "\nIf you do nothing, it is not sent and is deleted on %s.\n", rec.ExpiresAt.UTC().Format("2 Jan 2006 at 15:04 MST"))
	} else {
		fmt.Fprintf(&b, "\nYou need not do anything: IT will release or delete it. Quote the reference if you ask about it.\n")
	}
	return g.compose(cfg, to, subject, b.String())
}

func splitWaiting(d *policy.Decision) (waiting []policy.RecipientDecision, others []string) {
	for _, r := range d.Recipients {
		if r.Action == "hold" || r.Action == "quarantine" {
			waiting = append(waiting, r)
		} else {
			others = append(others, r.Address)
		}
	}
	return waiting, others
}

// compose spools a plain-text notice from the organisation's postmaster to
// an address of the organisation. It is sent with the null sender, so that
// nothing answers it with a bounce (RFC 3834).
func (g *Gateway) compose(cfg *config.Config, to, subject, text string) (*queue.Pending, error) {
	domain := cfg.Org.Domains[0]
	return g.Queue.Compose("notice", "", []string{to}, subject, func(w io.Writer) error {
		id := queue.NewID()
		h := fmt.Sprintf("From: %s <postmaster@%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\n"+
			"Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
			mime.QEncoding.Encode("utf-8", cfg.Org.Name), domain, to, mime.QEncoding.Encode("utf-8", subject),
			time.Now().Format(time.RFC1123Z), id, cfg.SMTP.Hostname)
		if _, err := io.WriteString(w, h); err != nil {
			return err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := io.WriteString(qp, strings.ReplaceAll(text, "\n", "\r\n")); err != nil {
			return err
		}
		return qp.Close()
	})
}

// holdView builds the page model of a held message.
func (g *Gateway) holdView(rec *store.Decision) *web.HoldView {
	v := &web.HoldView{ID: rec.MsgID, Subject: rec.Subject, State: rec.State, Created: rec.CreatedAt, Expires: rec.ExpiresAt, Token: g.holdToken(rec.MsgID)}
	var d policy.Decision
	if json.Unmarshal([]byte(rec.Detail), &d) == nil {
		for _, f := range d.Findings {
			v.Findings = append(v.Findings, fmt.Sprintf("%s: %d (%s confidence) in %s", f.Detector, f.Count, f.Confidence, f.Where))
		}
		waiting, _ := splitWaiting(&d)
		for _, r := range waiting {
			hr := web.HoldRecipient{Address: r.Address, Reasons: r.Reasons}
			switch r.Then {
			case "require-tls":
				hr.Then = "over an encrypted connection only (verified TLS)"
			case "portal":
				hr.Then = "through the secure portal"
			}
			v.Recipients = append(v.Recipients, hr)
		}
	}
	sort.Slice(v.Recipients, func(i, j int) bool { return v.Recipients[i].Address < v.Recipients[j].Address })
	return v
}

// holds implements web.Holds.
type holds struct{ g *Gateway }

func (h holds) load(ctx context.Context, id, token string) (*store.Decision, error) {
	if len(id) != 26 || !hmac.Equal([]byte(token), []byte(h.g.holdToken(id))) {
		return nil, web.ErrBadLink
	}
	rec, err := h.g.Store.GetDecision(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, web.ErrBadLink
	}
	return rec, err
}

func (h holds) Hold(ctx context.Context, id, token string) (*web.HoldView, error) {
	rec, err := h.load(ctx, id, token)
	if err != nil {
		return nil, err
	}
	return h.g.holdView(rec), nil
}

func (h holds) Resolve(ctx context.Context, id, token string, confirm bool) (*web.HoldView, error) {
	rec, err := h.load(ctx, id, token)
	if err != nil {
		return nil, err
	}
	if rec.State == "held" {
		// ops records the sender's answer (audit, metric) and frees the
		// spool bytes of a cancelled message; a second click finds the
		// hold resolved and shows the outcome. An answer carried out but
		// not recorded (ops logs that as an error for the operator) is
		// shown as done: the page must not say that nothing happened.
		res, err := h.g.Ops.ResolveHold(ctx, id, confirm)
		var notRecorded *ops.AuditError
		if err != nil && !errors.Is(err, ops.ErrResolved) && !errors.As(err, &notRecorded) {
			return nil, err
		}
		if res != nil && confirm {
			// The sender checked these addresses: they are contacts now
			// (policy: first-contact), whichever way the message goes.
			if err := h.g.Queue.MarkContacted(ctx, res.Recipients); err != nil {
				h.g.Log.Error("recording the confirmed recipients' domains failed", "msgid", id, "err", err)
			}
		}
		if rec, err = h.g.Store.GetDecision(ctx, id); err != nil {
			return nil, err
		}
	}
	return h.g.holdView(rec), nil
}

// expireHolds drops held messages whose time is up (telling their senders)
// and quarantined ones past retention. It runs every minute.
func (g *Gateway) expireHolds(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		ids, err := g.Store.ExpiredDecisions(ctx, time.Now(), 100)
		if err != nil && ctx.Err() == nil {
			g.Log.Error("looking for expired holds failed", "err", err)
		}
		for _, id := range ids {
			g.expire(ctx, id)
		}
		g.Portal.Sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *Gateway) expire(ctx context.Context, id string) {
	rec, err := g.Store.GetDecision(ctx, id)
	if err != nil {
		return
	}
	cfg := g.Config()
	how := "not confirmed within " + config.DurationWords(cfg.Policy.HoldTimeout.Duration)
	if rec.State == "quarantined" {
		how = "not released within " + config.DurationWords(cfg.Policy.QuarantineRetention.Duration)
	}
	res, _, err := g.Ops.Expire(ctx, id, how)
	if err != nil {
		if !errors.Is(err, ops.ErrResolved) {
			g.Log.Error("expiring held message failed", "msgid", id, "err", err)
		}
		var ae *ops.AuditError
		if !errors.As(err, &ae) {
			return
		}
	}
	rcpts := res.Recipients
	g.Log.Info("held message expired", "msgid", id, "state", rec.State)
	if rec.State != "held" {
		return
	}
	to := noticeAddress(cfg, &queue.Envelope{MailFrom: rec.MailFrom})
	if to == "" {
		return
	}
	text := fmt.Sprintf("Your message was not sent: it was held for your confirmation and nobody confirmed it within %s.\n\n  Subject:    %s\n  Reference:  %s\n  Not sent to: %s\n\nIf it should still go, send it again.\n",
		config.DurationWords(cfg.Policy.HoldTimeout.Duration), rec.Subject, rec.MsgID, strings.Join(rcpts, ", "))
	p, err := g.compose(cfg, to, "Not sent: "+rec.Subject, text)
	if err == nil {
		err = g.Queue.Submit(ctx, p)
	}
	if err != nil {
		g.Log.Error("cannot send the expiry notice", "msgid", id, "err", err)
	}
}
