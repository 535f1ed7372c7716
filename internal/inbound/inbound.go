// Package inbound authenticates mail arriving from the Internet: SPF
// (RFC 7208), DKIM (RFC 6376, RFC 8463), ARC (RFC 8617) and DMARC (RFC
// 9989, or RFC 7489 by switch), and decides what becomes of the message:
// accept, tag, quarantine, reject or tempfail, with the SMTP reply, the
// header fields to prepend (Authentication-Results, RFC 8601, and our ARC
// set) and each result with why. It is a protocol package: it imports
// neither store, queue, gateway nor config; its caller maps the verdict
// onto the queue.
package inbound

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"sealpost/internal/dns"
	"sealpost/internal/mailauth/arc"
	"sealpost/internal/mailauth/dkim"
	"sealpost/internal/mailauth/dmarc"
	"sealpost/internal/mailauth/spf"
)

// Action is what becomes of the message.
type Action string

// Actions, from mildest to strictest.
const (
	Accept     Action = "accept"     // deliver
	Tag        Action = "tag"        // deliver; the results say it failed (DMARC p=none)
	Quarantine Action = "quarantine" // hold in the inbound quarantine
	Reject     Action = "reject"     // 550 5.7.1
	Tempfail   Action = "tempfail"   // 451: a result could not be had now
)

// DMARC modes (inbound.dmarc_mode).
const (
	ModeRFC9989 = "rfc9989"
	ModeRFC7489 = "rfc7489"
)

// Conn is what the SMTP session knows of the client.
type Conn struct {
	IP       net.IP `json:"ip"`
	HELO     string `json:"helo"`
	MailFrom string `json:"mail_from"` // empty for the null reverse path
	TLS      bool   `json:"tls"`
	SMTPUTF8 bool   `json:"smtputf8,omitempty"`
}

// Reply is an SMTP reply for reject and tempfail.
type Reply struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Text     string `json:"text"`
}

func (r *Reply) String() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text) }

// Check is one result and why, for the verdict's explanation.
type Check struct {
	Method string `json:"name"` // spf, dkim, dmarc, arc, org-domain, arc-seal, authentication-results
	Result string `json:"result"`
	Why    string `json:"reason"`
}

// Verdict is the outcome for one message.
type Verdict struct {
	Action Action `json:"action"`
	Reply  *Reply `json:"reply,omitempty"`
	// Prepend are the header fields to put above the message (our ARC set
	// and Authentication-Results), CRLF-terminated; empty on reject.
	Prepend string `json:"prepend,omitempty"`
	// Message is the message as it is to be queued below Prepend: the
	// input with Authentication-Results fields claiming our authserv-id
	// removed (RFC 8601 §5).
	Message []byte `json:"-"`
	// Removed counts the forged Authentication-Results fields dropped.
	Removed int     `json:"removed_forged_ar,omitempty"`
	Why     string  `json:"why"`
	Checks  []Check `json:"checks"`

	From  string        `json:"header_from,omitempty"` // RFC5322.From domain
	SPF   spf.Result    `json:"spf"`
	DKIM  []dkim.Result `json:"dkim"`
	ARC   arcResult     `json:"arc"`
	DMARC dmarc.Result  `json:"dmarc"`
	Own   bool          `json:"own_domain,omitempty"` // From names one of the org's domains
}

type arcResult struct {
	Status   arc.Status `json:"status"`
	Instance int        `json:"instance,omitempty"`
	Reason   string     `json:"reason,omitempty"`
}

// Config configures an Evaluator.
type Config struct {
	Resolver dns.Resolver
	// AuthServID names us in Authentication-Results (smtp.hostname).
	AuthServID string
	// OrgDomains are the organisation's domains: mail claiming them in
	// From that arrives from outside and fails DMARC is treated as
	// p=reject whatever (if anything) they publish.
	OrgDomains []string
	// DMARCMode is ModeRFC9989 (default) or ModeRFC7489.
	DMARCMode string
	// RejectAction is what p=reject does: Reject (default) or Quarantine.
	RejectAction Action
	// Seal, when set, adds our ARC set to every message passed on.
	Seal *arc.Sealer
	Log  *slog.Logger
}

// Evaluator evaluates inbound messages. It is safe for concurrent use.
type Evaluator struct {
	cfg   Config
	spf   *spf.Verifier
	dkim  *dkim.Verifier
	dmarc *dmarc.Evaluator
	own   map[string]bool
}

// New checks cfg and returns an Evaluator.
func New(cfg Config) (*Evaluator, error) {
	if cfg.Resolver == nil {
		return nil, errors.New("inbound: no resolver")
	}
	if cfg.AuthServID == "" || strings.ContainsAny(cfg.AuthServID, " ;()\"\r\n") {
		return nil, fmt.Errorf("inbound: authserv-id %q is not a host name", cfg.AuthServID)
	}
	switch cfg.DMARCMode {
	case "":
		cfg.DMARCMode = ModeRFC9989
	case ModeRFC9989, ModeRFC7489:
	default:
		return nil, fmt.Errorf("inbound: dmarc mode %q: want %s or %s", cfg.DMARCMode, ModeRFC9989, ModeRFC7489)
	}
	switch cfg.RejectAction {
	case "":
		cfg.RejectAction = Reject
	case Reject, Quarantine:
	default:
		return nil, fmt.Errorf("inbound: reject action %q: want reject or quarantine", cfg.RejectAction)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	e := &Evaluator{cfg: cfg, own: map[string]bool{},
		spf:   &spf.Verifier{Resolver: cfg.Resolver, Hostname: cfg.AuthServID, Log: cfg.Log},
		dkim:  &dkim.Verifier{Resolver: cfg.Resolver, Log: cfg.Log},
		dmarc: &dmarc.Evaluator{Resolver: cfg.Resolver, Legacy: cfg.DMARCMode == ModeRFC7489, Log: cfg.Log}}
	for _, d := range cfg.OrgDomains {
		e.own[dns.Normalise(d)] = true
	}
	return e, nil
}

// SealKey picks the key to seal with from the DKIM keys: the first RSA
// one, since RFC 8617 §4.1.3 allows only rsa-sha256 and Exchange Online,
// Google and dkimpy refuse Ed25519 seals.
func SealKey(selectors []string, keys []crypto.Signer) (string, crypto.Signer, bool) {
	for i, k := range keys {
		if _, ok := k.(*rsa.PrivateKey); ok {
			return selectors[i], k, true
		}
	}
	return "", nil, false
}

// ownDomain: the domain is one of the org's or below one.
func (e *Evaluator) ownDomain(d string) bool {
	for ; d != ""; d = parent(d) {
		if e.own[d] {
			return true
		}
	}
	return false
}

func parent(d string) string {
	_, rest, _ := strings.Cut(d, ".")
	return rest
}

// Evaluate authenticates msg (CRLF line ends, as received) from c, held
// whole in memory (the inbound test command): it runs the same path as a
// message streamed in (Start), and sets the verdict's Message.
func (e *Evaluator) Evaluate(ctx context.Context, c Conn, msg []byte) *Verdict {
	s := e.Start(c, len(msg)+1)
	s.Write(msg)
	v := s.Finish(ctx)
	v.Message, _ = StripForgedResults(msg, e.cfg.AuthServID)
	return v
}

// timeNow is when an evaluation starts, for the log.
func timeNow() time.Time { return time.Now() }

// evaluate authenticates a message by its header section and the hashes
// of its body.
func (e *Evaluator) evaluate(ctx context.Context, c Conn, header []byte, dkimBody dkim.BodyHashes, arcBody arc.BodyHashes) *Verdict {
	start := time.Now()
	v := &Verdict{}
	header, v.Removed = StripForgedResults(header, e.cfg.AuthServID)
	msg := header
	if v.Removed > 0 {
		v.Checks = append(v.Checks, Check{"authentication-results", "removed", fmt.Sprintf("%d incoming Authentication-Results field(s) claimed our authserv-id %s (RFC 8601 §5)", v.Removed, e.cfg.AuthServID)})
	}
	seal := func(results string) (string, error) {
		return e.cfg.Seal.SealHeader(header, arcBody, arc.Result{Status: v.ARC.Status, Instance: v.ARC.Instance}, results)
	}

	v.SPF = e.spf.Verify(ctx, c.IP, c.HELO, c.MailFrom)
	v.Checks = append(v.Checks, Check{"spf", string(v.SPF.Status), v.SPF.Reason})
	v.DKIM = e.dkim.VerifyHeader(ctx, header, c.SMTPUTF8, dkimBody)
	for _, d := range v.DKIM {
		v.Checks = append(v.Checks, Check{"dkim", string(d.Status), d.Reason})
	}
	chain := arc.VerifyHeader(ctx, e.cfg.Resolver, header, arcBody)
	v.ARC = arcResult{Status: chain.Status, Instance: chain.Instance, Reason: chain.Reason}
	v.Checks = append(v.Checks, Check{"arc", string(chain.Status), arcWhy(chain)})

	from, err := headerFromDomain(msg)
	if err != nil {
		// RFC 9989 §4.4: DMARC needs exactly one author domain; without
		// one the message cannot be authenticated, so it is refused rather
		// than delivered as if it had no policy (fail closed).
		v.DMARC = dmarc.Result{Status: "permerror", Reason: err.Error()}
		v.Checks = append(v.Checks, Check{"dmarc", "permerror", err.Error()})
		return e.finish(v, seal, Reject, &Reply{550, "5.7.1", "Message refused: " + err.Error()}, err.Error(), start)
	}
	v.From = from
	in := dmarc.Input{From: from, DKIMDomains: dkim.PassedDomains(v.DKIM)}
	if v.SPF.Status == spf.Pass {
		in.SPFDomain = v.SPF.Domain
	}
	v.DMARC = e.dmarc.Evaluate(ctx, in)
	v.Checks = append(v.Checks, Check{"dmarc", v.DMARC.Status, dmarcWhy(v.DMARC)})
	v.Own = e.ownDomain(from)

	switch st := v.DMARC.Status; {
	case st == "temperror":
		why := "DMARC for " + from + " could not be evaluated now: " + v.DMARC.Reason
		return e.finish(v, seal, Tempfail, &Reply{451, "4.7.0", "Temporary failure checking the sender's DMARC policy; try again later"}, why, start)
	case st == "pass":
		return e.finish(v, seal, Accept, nil, "DMARC pass for "+from, start)
	case v.Own && e.ownAuthenticated(v):
		return e.finish(v, seal, Accept, nil, "From names the organisation's domain "+from+" and SPF or DKIM passed for one of its domains (no DMARC record decides)", start)
	case v.Own:
		// Mail claiming one of our own domains arrives from outside and
		// is not authenticated for it: p=reject, whatever is published.
		why := fmt.Sprintf("From names the organisation's own domain %s but the message arrived from outside without passing DMARC (%s); treated as p=reject", from, v.DMARC.Status)
		v.Checks = append(v.Checks, Check{"org-domain", "fail", why})
		return e.rejectOr(v, seal, why, start)
	case st == "none":
		return e.finish(v, seal, Accept, nil, "no DMARC policy for "+from, start)
	}
	// fail
	why := fmt.Sprintf("DMARC fail for %s: policy %s (published at %s): %s", from, v.DMARC.Policy, v.DMARC.RecordDomain, v.DMARC.Reason)
	switch v.DMARC.Policy {
	case dmarc.PolicyReject:
		return e.rejectOr(v, seal, why, start)
	case dmarc.PolicyQuarantine:
		return e.finish(v, seal, Quarantine, nil, why, start)
	default:
		return e.finish(v, seal, Tag, nil, why, start)
	}
}

// ownAuthenticated: with no DMARC record of the org's to decide, mail
// claiming an org domain is authentic when SPF or a DKIM signature passed
// for one of the org's domains (all of them are one organisation, so
// relaxed alignment across them holds).
func (e *Evaluator) ownAuthenticated(v *Verdict) bool {
	if v.DMARC.Status != "none" {
		return false
	}
	if v.SPF.Status == spf.Pass && e.ownDomain(dns.Normalise(v.SPF.Domain)) {
		return true
	}
	for _, d := range dkim.PassedDomains(v.DKIM) {
		if e.ownDomain(dns.Normalise(d)) {
			return true
		}
	}
	return false
}

func (e *Evaluator) rejectOr(v *Verdict, seal sealFunc, why string, start time.Time) *Verdict {
	if e.cfg.RejectAction == Quarantine {
		return e.finish(v, seal, Quarantine, nil, why+" (inbound.dmarc_reject_action = quarantine)", start)
	}
	return e.finish(v, seal, Reject, &Reply{550, "5.7.1", "Message refused: the sender's domain " + v.From + " does not authorise it (DMARC)"}, why, start)
}

// finish sets the outcome and, for a message passed on, writes the
// Authentication-Results and seals it.
// sealFunc seals the message with our results (the resinfo of our
// Authentication-Results) and returns the ARC set.
type sealFunc func(results string) (string, error)

func (e *Evaluator) finish(v *Verdict, seal sealFunc, a Action, r *Reply, why string, start time.Time) *Verdict {
	v.Action, v.Reply, v.Why = a, r, why
	if a == Reject || a == Tempfail {
		v.Prepend = ""
		e.log(v, start)
		return v
	}
	results := e.resinfo(v)
	ar := foldAR(e.cfg.AuthServID, results)
	prep := ""
	if e.cfg.Seal != nil && seal != nil {
		set, err := seal(strings.Join(results, "; "))
		switch {
		case errors.Is(err, arc.ErrChainFailed):
			v.Checks = append(v.Checks, Check{"arc-seal", "skipped", "the chain was already sealed cv=fail; RFC 8617 §5.1 forbids extending it"})
		case err != nil:
			// The message is still delivered, with our results; only the
			// seal is missing, and the verdict says so.
			v.Checks = append(v.Checks, Check{"arc-seal", "error", err.Error()})
			e.cfg.Log.Warn("ARC seal failed", "err", err)
		default:
			prep = set
			v.Checks = append(v.Checks, Check{"arc-seal", "sealed", fmt.Sprintf("sealed as instance %d by %s", v.ARC.Instance+1, e.cfg.Seal.Domain)})
		}
	}
	v.Prepend = prep + ar
	e.log(v, start)
	return v
}

func (e *Evaluator) log(v *Verdict, start time.Time) {
	e.cfg.Log.Info("inbound verdict", "action", string(v.Action), "from_domain", v.From, "spf", string(v.SPF.Status),
		"dmarc", v.DMARC.Status, "arc", string(v.ARC.Status), "took", time.Since(start))
}

func arcWhy(r arc.Result) string {
	switch r.Status {
	case arc.None:
		return "no ARC chain"
	case arc.Pass:
		return fmt.Sprintf("chain of %d set(s) validates", r.Instance)
	}
	return r.Reason
}

func dmarcWhy(r dmarc.Result) string {
	switch r.Status {
	case "pass":
		var by []string
		if r.SPFAligned {
			by = append(by, "SPF")
		}
		if r.DKIMAligned {
			by = append(by, "DKIM")
		}
		return fmt.Sprintf("%s aligned with the organisational domain %s (record at %s)", strings.Join(by, " and "), r.OrgDomain, r.RecordDomain)
	}
	return r.Reason
}

// CRLF returns msg with every line ended by CRLF, for messages read from
// files (SMTP delivers CRLF already).
func CRLF(msg []byte) []byte {
	if !bytes.Contains(msg, []byte("\n")) || bytes.Count(msg, []byte("\r\n")) == bytes.Count(msg, []byte("\n")) {
		return msg
	}
	return bytes.ReplaceAll(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}
