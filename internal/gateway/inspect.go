package gateway

import (
	"context"
	"encoding/json"
	"net/mail"
	"strings"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/dlp"
	"sealpost/internal/pipeline"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
	"sealpost/internal/store"
)

// rules is the inspection setup of one configuration; SIGHUP swaps it.
type rules struct {
	cfg    *config.Config
	dlp    *dlp.Engine
	policy *policy.Engine
	// outbound is the outbound DLP + policy check; inbound and outbound
	// the check lists of the two listeners.
	outbound          *pipeline.Outbound
	inbound, outgoing *pipeline.Pipeline
}

// newRules builds the rules of cfg for g.
func (g *Gateway) newRules(cfg *config.Config) (*rules, error) {
	d, err := DLPEngine(cfg)
	if err != nil {
		return nil, &config.Error{File: cfg.File, Key: "dlp.custom", Msg: err.Error()}
	}
	p, err := PolicyEngine(cfg)
	if err != nil {
		return nil, err
	}
	rs := &rules{cfg: cfg, dlp: d, policy: p}
	rs.outbound = &pipeline.Outbound{DLP: d, Policy: p, Keywords: cfg.Policy.SenderKeywords, Log: g.Log,
		// The queue and the portal start after the rules: looked up per message.
		Known: func(domain string) bool { return g.Queue.Known(domain) },
		Answers: func(ctx context.Context, h mail.Header) (pipeline.Threads, error) {
			a, err := g.Portal.Answers(ctx, h)
			return a, err
		},
		TLS: func(ctx context.Context) func(string) string { return g.recipientTLS(ctx) },
		// Staff display names, for the inbound impersonation check.
		Saw: func(h mail.Header) { g.inbound.learnFrom(cfg, h) },
		// Recipients to encrypt without a usable key: the portal, and why.
		Keys: func(ctx context.Context, d *policy.Decision) error {
			return resolveKeys(ctx, g.Keyring, cfg, cfg.SMIME.Enabled, d)
		}}
	rs.outgoing = &pipeline.Pipeline{Log: g.Log}
	if cfg.DLP.Enabled {
		rs.outgoing.Data = append(rs.outgoing.Data, rs.outbound)
	}
	rs.inbound = &pipeline.Pipeline{Log: g.Log, Checks: inboundChecks(cfg), Data: inboundDataChecks(cfg)}
	if g.auth != nil {
		rs.inbound.Data = append(rs.inbound.Data, g.auth)
	}
	return rs, nil
}

// inboundChecks are the envelope checks of the MX listener (none yet:
// inbound authentication and threat checks register here).
func inboundChecks(cfg *config.Config) []pipeline.Check { return nil }

// inboundDataChecks are the message checks of the MX listener beside
// inbound authentication (appended by newRules when it is on).
func inboundDataChecks(cfg *config.Config) []pipeline.DataCheck { return nil }

// pipelineFor returns the check list of a listener's direction.
func (rs *rules) pipelineFor(direction string) *pipeline.Pipeline {
	if direction == "out" {
		return rs.outgoing
	}
	return rs.inbound
}

// rejection refuses a message for policy reasons.
type rejection struct {
	Text string // for the client, with the reference the operator can look up
	// Temporary asks the client to try again later (451 4.7.1, RFC 3463
	// "security or policy status") instead of refusing (550 5.7.1).
	Temporary bool
}

// apply turns the data stage's verdict into the envelope's plan, records
// the policy's decision and writes the sender's notice; a policy reject
// becomes the SMTP rejection. A verdict without a policy decision (the
// outbound policy did not run) leaves the envelope as it is.
func (g *Gateway) apply(ctx context.Context, env *queue.Envelope, v *pipeline.Verdict) (*rejection, error) {
	d := v.Decision
	if d == nil {
		return nil, nil
	}
	cfg := g.Config()
	most := d.Most()
	now := time.Now()
	rec := &store.Decision{MsgID: env.ID, CreatedAt: now, MailFrom: env.MailFrom, Subject: env.Subject,
		Classification: d.Classification, Outcome: most.String()}
	if most != policy.Deliver || len(d.Findings) > 0 {
		detail, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		rec.Detail = string(detail)
	}
	if most == policy.Reject {
		rec.State = "rejected"
		if err := g.Store.InsertDecisionNow(ctx, rec); err != nil {
			return nil, err
		}
		g.Log.Info("policy decision", "msgid", env.ID, "outcome", "reject", "rules", rulesOf(d))
		// A refusal the audit log cannot record is not given: the client
		// is told to try again (451) instead.
		if err := g.audit.recorder.Record(ctx, &store.AuditEvent{At: now, Actor: env.MailFrom, Action: "policy.reject", Object: env.ID, IP: env.RemoteIP,
			Addrs: append([]string(nil), env.Rcpts...), Detail: "rules=" + rulesOf(d) + " sha256=" + env.SHA256}); err != nil {
			return nil, err
		}
		return &rejection{Text: "Message refused by the organisation's mail policy; quote reference " + env.ID + " to your IT service desk"}, nil
	}
	env.Plan = map[string]queue.RcptPlan{}
	env.PolicyDetail = map[string]string{}
	for _, r := range d.Recipients {
		env.PolicyDetail[r.Address] = "policy=" + r.Action + " rules=" + strings.Join(r.Rules, ",")
	}
	for rc, p := range v.Plan {
		if status, action, then := p.Encode(); status != pipeline.StatusQueued || action != "" {
			env.Plan[rc] = queue.RcptPlan{Status: status, Action: action, Then: then}
		}
		if det, ok := env.PolicyDetail[strings.ToLower(rc)]; ok {
			env.PolicyDetail[rc] = det
		}
	}
	switch most {
	case policy.Hold:
		rec.State, rec.ExpiresAt = "held", now.Add(cfg.Policy.HoldTimeout.Duration)
	case policy.Quarantine:
		rec.State, rec.ExpiresAt = "quarantined", now.Add(cfg.Policy.QuarantineRetention.Duration)
	default:
		rec.State = "passed"
	}
	// Every decision is recorded, plain deliveries too: the dashboard,
	// /metrics and the usage report all count this table (report.Tally).
	env.Decision = rec
	if rec.State == "held" || rec.State == "quarantined" {
		n, err := g.composeNotice(cfg, rec, d, env)
		if err != nil {
			return nil, err
		}
		if n != nil {
			env.Notices = append(env.Notices, n)
		}
	}
	if most != policy.Deliver || len(d.Findings) > 0 {
		g.Log.Info("policy decision", "msgid", env.ID, "outcome", most.String(), "rules", rulesOf(d))
		if most.Stops() {
			// Committed with the message: no hold without its record.
			env.Audit = append(env.Audit, &store.AuditEvent{At: now, Actor: env.MailFrom, Action: "policy." + most.String(), Object: env.ID, Detail: rulesOf(d)})
		}
	}
	return nil, nil
}

func rulesOf(d *policy.Decision) string {
	seen := map[string]bool{}
	var out []string
	for _, r := range d.Recipients {
		for _, n := range r.Rules {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return strings.Join(out, ",")
}

// rewriteSubject removes the sender keywords from the Subject field of a
// header section; nil if there is nothing to change.
func rewriteSubject(h []byte, kws []string) []byte { return pipeline.RewriteSubject(h, kws) }
