package gateway

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"net"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/dns"
	"sealpost/internal/inbound"
	"sealpost/internal/mailauth/arc"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
	"sealpost/internal/smtpd"
	"sealpost/internal/store"
)

// inboundAuth authenticates messages on the inbound listener: the SMTP
// backend (accept.go) holds an inbound message in memory until check has
// run internal/inbound's Evaluate, then spools the verdict's header fields
// above it; check maps the verdict onto the queue (refusal, quarantine in
// today's hold mechanism).
type inboundAuth struct {
	g        *Gateway
	resolver dns.Resolver // one, so that its cache serves every message
}

// setupInbound wires inbound authentication when inbound.authenticate is
// on. The resolver is outbound.resolver's (RFC 7208 and RFC 9989 lookups
// go where every other lookup goes).
func (g *Gateway) setupInbound(cfg *config.Config) error {
	if !cfg.Inbound.Authenticate || cfg.SMTP.InboundListen == "" {
		g.Log.Warn("inbound.authenticate = false: inbound mail is passed on without SPF, DKIM or DMARC checks")
		return nil
	}
	res, err := dns.FromConfig(cfg.Outbound.Resolver, false)
	if err != nil {
		return &config.Error{File: cfg.File, Key: "outbound.resolver", Msg: err.Error()}
	}
	if _, k := sealKey(g); cfg.Inbound.ARCSeal && k == nil {
		return &config.Error{File: cfg.File, Key: "inbound.arc_seal", Msg: "no RSA DKIM key to seal with (dkim.algorithm)"}
	}
	g.auth = &inboundAuth{g: g, resolver: res}
	return nil
}

// sealKey is the RSA DKIM key and its selector, if there is one.
func sealKey(g *Gateway) (string, crypto.Signer) {
	var sels []string
	var keys []crypto.Signer
	for _, k := range g.Signer.Keys() {
		sels = append(sels, k.Selector)
		keys = append(keys, k.Signer)
	}
	sel, key, _ := inbound.SealKey(sels, keys)
	return sel, key
}

// evaluator builds the evaluator of the current configuration (cheap; the
// resolver and its cache are kept).
func (a *inboundAuth) evaluator(cfg *config.Config) (*inbound.Evaluator, error) {
	ic := inbound.Config{Resolver: a.resolver, AuthServID: cfg.SMTP.Hostname, OrgDomains: cfg.Org.Domains,
		DMARCMode: cfg.Inbound.DMARCMode, RejectAction: inbound.Action(cfg.Inbound.DMARCRejectAction), Log: a.g.Log}
	if cfg.Inbound.ARCSeal {
		sel, key := sealKey(a.g)
		if key == nil {
			return nil, errors.New("no RSA DKIM key for the ARC seal")
		}
		ic.Seal = &arc.Sealer{Domain: cfg.Org.Domains[0], Selector: sel, Key: key, AuthServID: cfg.SMTP.Hostname}
	}
	return inbound.New(ic)
}

// inboundResult is check's answer: a refusal, or the bytes to spool
// (Prepend, then Message: the input without forged Authentication-Results)
// and, for a quarantine, how to amend the envelope before the commit.
type inboundResult struct {
	refuse  *smtpd.Reply
	prepend []byte
	message []byte
	apply   func(env *queue.Envelope)
}

func (a *inboundAuth) check(ctx context.Context, c *smtpd.ConnInfo, mailFrom string, msg []byte) (*inboundResult, error) {
	cfg := a.g.Config()
	ev, err := a.evaluator(cfg)
	if err != nil {
		return nil, err
	}
	v := ev.Evaluate(ctx, inbound.Conn{IP: net.IP(c.RemoteIP.AsSlice()), HELO: c.Helo, MailFrom: mailFrom, TLS: c.TLS != nil}, msg)
	if v.Reply != nil {
		return &inboundResult{refuse: smtpd.NewReply(v.Reply.Code, v.Reply.Enhanced, v.Reply.Text)}, nil
	}
	res := &inboundResult{prepend: []byte(v.Prepend), message: v.Message}
	if v.Action == inbound.Quarantine {
		res.apply = func(env *queue.Envelope) { a.quarantine(cfg, env, v) }
	}
	return res, nil
}

// quarantine holds every recipient's copy in the inbound quarantine, with
// the verdict as the reasons an admin sees. No notice goes to the sender:
// the From of a message that failed DMARC is likely forged (backscatter).
func (a *inboundAuth) quarantine(cfg *config.Config, env *queue.Envelope, v *inbound.Verdict) {
	now := time.Now()
	reasons := []string{v.Why}
	for _, c := range v.Checks {
		reasons = append(reasons, c.Method+"="+c.Result+": "+c.Why)
	}
	d := policy.Decision{}
	env.Plan = map[string]queue.RcptPlan{}
	for _, r := range env.Rcpts {
		env.Plan[r] = queue.RcptPlan{Status: "quarantined"}
		d.Recipients = append(d.Recipients, policy.RecipientDecision{Address: r, Action: "quarantine", Rules: []string{"inbound-dmarc"}, Reasons: reasons})
	}
	detail, _ := json.Marshal(d)
	env.Decision = &store.Decision{MsgID: env.ID, CreatedAt: now, MailFrom: env.MailFrom, Subject: env.Subject, Outcome: "quarantine",
		State: "quarantined", ExpiresAt: now.Add(cfg.Policy.QuarantineRetention.Duration), Detail: string(detail)}
	env.Audit = append(env.Audit, &store.AuditEvent{At: now, Actor: env.MailFrom, Action: "inbound.quarantine", Object: env.ID, IP: env.RemoteIP, Detail: v.Why})
	a.g.Log.Info("inbound message quarantined", "msgid", env.ID, "why", v.Why)
}
