package gateway

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/dns"
	"sealpost/internal/inbound"
	"sealpost/internal/mailauth/arc"
	"sealpost/internal/pipeline"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
	"sealpost/internal/smtpd"
	"sealpost/internal/store"
)

// inboundAuth authenticates messages on the inbound listener: it is a
// data check of the inbound pipeline (inspect.go) that reads the message
// as it streams; its verdict's header fields are kept by the queue with
// the message (Envelope.DataHeaders) and written above it by every
// reader; a quarantine is mapped onto the queue by quarantine.
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
	// The rules were built before; rebuilt, the inbound pipeline has the
	// authentication as its data check.
	rs, err := g.newRules(cfg)
	if err != nil {
		return err
	}
	g.rules.Store(rs)
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

// Name names the data check (pipeline.DataCheck).
func (a *inboundAuth) Name() string { return "inbound-auth" }

// Start begins the authentication of one message as it streams: the
// header section kept within a bound, the body only hashed, so memory
// does not grow with the message (internal/inbound's Stream).
func (a *inboundAuth) Start(in *pipeline.Input) pipeline.DataRun {
	cfg := a.g.Config()
	ev, err := a.evaluator(cfg)
	if err != nil {
		return &authRun{err: err}
	}
	c := inbound.Conn{IP: net.IP(in.RemoteIP.AsSlice()), HELO: in.Helo, MailFrom: in.MailFrom}
	run := &authRun{s: ev.Start(c, 0), a: a}
	if a.g.Keyring != nil && cfg.Encryption.Enabled {
		run.keep = &bytes.Buffer{} // for harvest; bounded by harvestMax
	}
	return run
}

// harvestMax bounds the copy kept for harvesting keys (harvest.go): mail
// that carries a key or a signature is small; a larger message is not
// looked at, so memory stays bounded while the message streams.
const harvestMax = 1 << 20

// authRun is inbound authentication on one message.
type authRun struct {
	s    *inbound.Stream
	err  error // the evaluator could not be built: the message is deferred
	a    *inboundAuth
	keep *bytes.Buffer // the message, for harvest, while under harvestMax; nil: not kept
}

func (r *authRun) Write(p []byte) (int, error) {
	if r.s != nil {
		r.s.Write(p)
	}
	if r.keep != nil {
		if r.keep.Len()+len(p) > harvestMax {
			r.keep = nil
		} else {
			r.keep.Write(p)
		}
	}
	return len(p), nil
}

func (r *authRun) Abort() {}

// Finish maps the inbound verdict onto the pipeline's: a refusal with its
// reply, a quarantine with the verdict's reasons (one a line), and the
// header fields (our ARC set and Authentication-Results) that the queue
// keeps with the message and writes above it (queue.OpenDelivered).
func (r *authRun) Finish(ctx context.Context, _ *pipeline.Input) pipeline.Verdict {
	if r.err != nil {
		return pipeline.Failed("inbound-auth", r.err.Error())
	}
	v := r.s.Finish(ctx)
	reasons := []string{v.Why}
	for _, c := range v.Checks {
		reasons = append(reasons, c.Method+"="+c.Result+": "+c.Why)
	}
	why := strings.Join(reasons, "\n")
	if v.Reply != nil {
		reply := smtpd.NewReply(v.Reply.Code, v.Reply.Enhanced, v.Reply.Text)
		if v.Action == inbound.Tempfail {
			return pipeline.Verdict{Outcome: pipeline.TempFail, Reply: reply, Check: "inbound-auth", Reason: why}
		}
		return pipeline.Refused("inbound-auth", why, reply)
	}
	if r.keep != nil {
		r.a.harvest(ctx, v, r.keep.Bytes())
	}
	out := pipeline.Verdict{Headers: splitFields(v.Prepend)}
	if v.Action == inbound.Quarantine {
		out.Outcome, out.Check, out.Reason = pipeline.Quarantine, "inbound-auth", why
	}
	return out
}

// splitFields turns CRLF-terminated header fields into pipeline.Headers
// (the value keeps its folding; Field writes it back as it was).
func splitFields(s string) []pipeline.Header {
	var out []pipeline.Header
	for s != "" {
		end := 0
		for {
			i := strings.Index(s[end:], "\r\n")
			if i < 0 {
				end = len(s)
				break
			}
			end += i + 2
			if end >= len(s) || (s[end] != ' ' && s[end] != '\t') {
				break
			}
		}
		raw := strings.TrimSuffix(s[:end], "\r\n")
		s = s[end:]
		name, val, _ := strings.Cut(raw, ":")
		out = append(out, pipeline.Header{Name: name, Value: strings.TrimPrefix(val, " ")})
	}
	return out
}

// quarantine holds every recipient's copy in the inbound quarantine, with
// the verdict as the reasons an admin sees. No notice goes to the sender:
// the From of a message that failed DMARC is likely forged (backscatter).
func (a *inboundAuth) quarantine(cfg *config.Config, env *queue.Envelope, why string) {
	now := time.Now()
	reasons := strings.Split(why, "\n")
	d := policy.Decision{}
	env.Plan = map[string]queue.RcptPlan{}
	for _, r := range env.Rcpts {
		env.Plan[r] = queue.RcptPlan{Status: "quarantined"}
		d.Recipients = append(d.Recipients, policy.RecipientDecision{Address: r, Action: "quarantine", Rules: []string{"inbound-dmarc"}, Reasons: reasons})
	}
	detail, _ := json.Marshal(d)
	env.Decision = &store.Decision{MsgID: env.ID, CreatedAt: now, MailFrom: env.MailFrom, Subject: env.Subject, Outcome: "quarantine",
		State: "quarantined", ExpiresAt: now.Add(cfg.Policy.QuarantineRetention.Duration), Detail: string(detail)}
	env.Audit = append(env.Audit, &store.AuditEvent{At: now, Actor: env.MailFrom, Action: "inbound.quarantine", Object: env.ID, IP: env.RemoteIP, Detail: reasons[0]})
	a.g.Log.Info("inbound message quarantined", "msgid", env.ID, "why", reasons[0])
}
