package queue

import (
	"strconv"
	"strings"
	"time"

	"sealpost/internal/store"
)

// A message's life in the audit log: what was accepted from whom
// (message.received), what was decided for each recipient (in the
// reception when it is the same for all, else a message.decision each),
// every delivery attempt and the TLS it used (delivery.attempt), the DSNs
// sent (dsn.queued) and the messages the gateway wrote itself
// (message.generated). Addresses yes; subjects and bodies never: data
// minimisation (UK GDPR Art. 5(1)(c)).

func sender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

// kv joins key=value pairs, dropping empty values; a value with a space is
// quoted.
func kv(pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		v := pairs[i+1]
		if v == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(pairs[i])
		b.WriteByte('=')
		if strings.ContainsAny(v, " \"") {
			v = strconv.Quote(v)
		}
		b.WriteString(v)
	}
	return b.String()
}

// acceptEvents are the events committed with an accepted message.
func acceptEvents(env *Envelope, msg *store.Message, rcpts []store.Recipient) []*store.AuditEvent {
	via := "mx"
	switch {
	case env.AuthUser != "":
		via = "auth"
	case env.Direction == "out":
		via = "connector"
	}
	decisions := make([]string, len(rcpts))
	uniform := true
	for i, r := range rcpts {
		decisions[i] = kv("route", r.Route, "status", r.Status, "action", strings.TrimPrefix(r.Action, ","), "then", r.Then)
		if p := env.PolicyDetail[r.Rcpt]; p != "" {
			decisions[i] += " " + p
		}
		uniform = uniform && decisions[i] == decisions[0]
	}
	out := make([]*store.AuditEvent, 0, 2+len(rcpts)+len(env.Audit)+len(env.Notices))
	received := &store.AuditEvent{At: msg.ReceivedAt, Actor: sender(env.MailFrom), Action: "message.received", Object: msg.ID, IP: env.RemoteIP,
		Addrs:  append([]string(nil), env.Rcpts...),
		Detail: kv("direction", env.Direction, "size", strconv.FormatInt(msg.Size, 10), "sha256", env.SHA256, "via", via, "user", env.AuthUser, "helo", env.Helo)}
	out = append(out, received)
	if uniform && len(rcpts) > 0 {
		// The same decision for every recipient (the common case) is
		// recorded once, in the reception: an event less per message.
		received.Detail += " " + decisions[0]
	} else {
		for i, r := range rcpts {
			out = append(out, &store.AuditEvent{At: msg.ReceivedAt, Actor: "gateway", Action: "message.decision", Object: msg.ID, Addrs: []string{r.Rcpt}, Detail: decisions[i]})
		}
	}
	out = append(out, env.Audit...)
	for _, n := range env.Notices {
		out = append(out, generatedEvent(n, msg.ID))
	}
	return out
}

// generatedEvent records a message the gateway wrote (a notice, a DSN).
func generatedEvent(p *Pending, about string) *store.AuditEvent {
	addrs := make([]string, 0, len(p.rcpts))
	for _, r := range p.rcpts {
		addrs = append(addrs, r.Rcpt)
	}
	return &store.AuditEvent{At: p.msg.ReceivedAt, Actor: "gateway", Action: "message.generated", Object: p.msg.ID, Addrs: addrs,
		Detail: kv("direction", p.msg.Direction, "size", strconv.FormatInt(p.msg.Size, 10), "about", about)}
}

// attemptEvent records one recipient's delivery attempt.
func attemptEvent(j job, att Attempt, res store.Result, r RcptResult, attempt int, now time.Time) *store.AuditEvent {
	result := res.Status
	switch {
	case res.Status == "queued":
		result = "deferred"
	case res.Status == "failed" && !r.Permanent:
		result = "expired"
	}
	pairs := []string{"result", result, "attempt", strconv.Itoa(attempt), "route", j.route, "relay", att.Relay}
	if t := att.TLSInfo; t != nil {
		verified := "no"
		if t.Verified {
			verified = "yes"
		}
		if t.Version == "" {
			pairs = append(pairs, "tls", "none")
		} else {
			pairs = append(pairs, "tls", t.Version, "cipher", t.Cipher, "verified", verified, "cert_sha256", t.PeerCertSHA256)
		}
		pairs = append(pairs, policyPairs(t)...)
	} else if att.TLS != "" {
		pairs = append(pairs, "tls", att.TLS)
	} else if j.route != RoutePortal {
		pairs = append(pairs, "tls", "none")
	}
	pairs = append(pairs, "reply", r.Text)
	return &store.AuditEvent{At: now, Actor: "gateway", Action: "delivery.attempt", Object: j.msg.ID, Addrs: []string{res.Rcpt}, Detail: kv(pairs...)}
}

// policyPairs records the outbound TLS policy of an attempt: the mode and
// why, and what the handshake proved (issue 14's per-attempt evidence).
func policyPairs(t *TLSInfo) []string {
	var out []string
	for _, p := range [][2]string{{"tls_mode", t.Mode}, {"tls_why", t.Why}, {"mx", t.Host}, {"policy_domain", t.PolicyDomain},
		{"sts_id", t.PolicyID}, {"sts_mode", t.PolicyMode}, {"chain", t.Chain}, {"tlsa", t.TLSA}, {"tls_failure", t.Failure}} {
		if p[1] != "" {
			out = append(out, p[0], p[1])
		}
	}
	return out
}

// tlsSummary is one line for a DSN: the policy's mode and why, and what the
// last handshake proved; "" when no policy was evaluated.
func tlsSummary(t *TLSInfo) string {
	if t == nil || t.Mode == "" {
		return ""
	}
	s := t.Mode
	if t.Why != "" {
		s += " (" + t.Why + ")"
	}
	if t.Version != "" {
		s += "; " + t.Version + " " + t.Cipher
	}
	if t.Chain != "" {
		s += "; certificate " + t.Chain
	}
	if t.Failure != "" {
		s += "; problem: " + t.Failure
	}
	return s
}
