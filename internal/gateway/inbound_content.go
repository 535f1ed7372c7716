package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"time"

	"sealpost/internal/attach"
	"sealpost/internal/clamd"
	"sealpost/internal/config"
	"sealpost/internal/dlp"
	"sealpost/internal/impersonation"
	"sealpost/internal/inscan"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
	"sealpost/internal/store"
)

// The hook of the inbound content checks (internal/inscan: dangerous
// attachments and antivirus; internal/impersonation) on the inbound
// listener. Each message streams into the checks while it is received;
// before the 250 the verdict becomes a deferral (451 4.7.1), a refusal
// (550 5.7.1), an inbound quarantine (every recipient waits for an
// administrator in the console, who releases it to the mail host or
// deletes it; the sender is never told, so forged senders get no
// backscatter) or delivery, tagged when impersonation is suspected.

// impersonationHeader tags suspected impersonation for the mail host
// (rules in Exchange Online or Gmail can file or flag by it). Incoming
// fields of that name are removed first: only ours is believed.
const impersonationHeader = "X-Impersonation-Warning"

// maxCorrespondents bounds the known domains look-alikes are compared with.
const maxCorrespondents = 5000

// inboundContent runs the inbound listener's content checks.
type inboundContent struct {
	g *Gateway
	// learned are staff display names seen on outbound mail.
	learned *impersonation.Names

	mu        sync.Mutex
	targets   *impersonation.Targets // look-alike targets, rebuilt every minute
	targetsAt time.Time
	targetsOf *config.Config
}

// lookalikeTargets returns the organisation's domains and its known
// correspondents, prepared once a minute rather than per message.
func (ic *inboundContent) lookalikeTargets(cfg *config.Config) *impersonation.Targets {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.targets == nil || ic.targetsOf != cfg || time.Since(ic.targetsAt) > time.Minute {
		ic.targets = impersonation.NewTargets(append(append([]string(nil), cfg.Org.Domains...), ic.g.Queue.KnownDomains(maxCorrespondents)...))
		ic.targetsAt, ic.targetsOf = time.Now(), cfg
	}
	return ic.targets
}

func newInboundContent(g *Gateway) *inboundContent {
	return &inboundContent{g: g, learned: impersonation.NewNames(nil, 0)}
}

// learnFrom protects the display name of an outbound message's From when
// its address is the organisation's.
func (ic *inboundContent) learnFrom(cfg *config.Config, h mail.Header) {
	if ic == nil || h == nil {
		return
	}
	a, err := (&mail.AddressParser{WordDecoder: &mime.WordDecoder{}}).Parse(h.Get("From"))
	if err != nil || a.Name == "" {
		return
	}
	if i := strings.LastIndexByte(a.Address, '@'); i > 0 && cfg.IsOrgDomain(strings.ToLower(a.Address[i+1:])) {
		ic.learned.Add(a.Name)
	}
}

func (ic *inboundContent) scanner(cfg *config.Config) (*inscan.Scanner, error) {
	limits := dlp.DefaultLimits
	limits.MaxPart = cfg.DLP.MaxAttachmentBytes
	ac, err := attach.New(limits)
	if err != nil {
		return nil, err
	}
	s := &inscan.Scanner{Attach: ac, AVUnavailable: cfg.Inbound.ClamdUnavailable, Dangerous: cfg.Inbound.DangerousAttachments, Log: ic.g.Log}
	if cfg.Inbound.Clamd != "" {
		if s.AV, err = clamd.Parse(cfg.Inbound.Clamd); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// impersonation checks a header section.
func (ic *inboundContent) impersonation(cfg *config.Config, h mail.Header) []impersonation.Finding {
	if h == nil {
		return nil
	}
	return impersonation.Check(impersonation.Input{
		From: h.Get("From"), ReplyTo: h.Get("Reply-To"), OrgDomains: cfg.Org.Domains,
		Targets: ic.lookalikeTargets(cfg),
		Names:   []*impersonation.Names{impersonation.NewNames(cfg.Inbound.ProtectedNames, 0), ic.learned},
		Known:   ic.g.Queue.Known,
	})
}

// dataInspection is an inspection that reads a message while it is
// received and decides before the 250: outbound DLP and policy, or the
// inbound content checks.
type dataInspection interface {
	Write(p []byte) (int, error)
	Decide(ctx context.Context, env *queue.Envelope) (*rejection, error)
	Abort()
}

// Start begins the checks of one message.
func (ic *inboundContent) Start() *inboundInspection {
	cfg := ic.g.Config()
	pr, pw := io.Pipe()
	is := &inboundInspection{ic: ic, cfg: cfg, pw: pw, done: make(chan struct{})}
	sc, err := ic.scanner(cfg)
	if err == nil && len(cfg.Inbound.ReportAddresses) > 0 {
		is.reports = &reportCollector{files: map[string][]byte{}}
		sc.OnFile = is.reports.file
	}
	if err != nil {
		is.err = err
		pr.Close()
		close(is.done)
		return is
	}
	go is.scan(sc, pr)
	return is
}

// RewriteHeader removes incoming impersonation tags and, with
// inbound.impersonation = "tag", adds ours.
func (ic *inboundContent) RewriteHeader(h []byte) []byte {
	cfg := ic.g.Config()
	out, removed := withoutField(h, impersonationHeader)
	var fs []impersonation.Finding
	if m, err := mail.ReadMessage(bytes.NewReader(append(append([]byte(nil), h...), '\r', '\n'))); err == nil {
		fs = ic.impersonation(cfg, m.Header)
	}
	if len(fs) == 0 || cfg.Inbound.Impersonation != "tag" {
		if removed {
			return out
		}
		return nil
	}
	var why []string
	for _, f := range fs {
		why = append(why, f.Kind+": "+f.Reason)
	}
	return append(out, []byte(impersonationHeader+": "+headerSafe(strings.Join(why, "; "))+"\r\n")...)
}

// withoutField drops every field named name from a header section.
func withoutField(h []byte, name string) ([]byte, bool) {
	lines := bytes.SplitAfter(h, []byte("\n"))
	var out []byte
	removed, skipping := false, false
	for _, l := range lines {
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			if !skipping {
				out = append(out, l...)
			}
			continue
		}
		skipping = len(l) > len(name) && bytes.EqualFold(l[:len(name)], []byte(name)) && (l[len(name)] == ':' || l[len(name)] == ' ')
		if skipping {
			removed = true
			continue
		}
		out = append(out, l...)
	}
	return out, removed
}

// headerSafe keeps a field value on one line of printable ASCII, within
// RFC 5322's 998 characters.
func headerSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r == '\t':
			b.WriteByte(' ')
		default:
			b.WriteByte('?')
		}
	}
	out := b.String()
	if len(out) > 900 {
		out = out[:900] + "..."
	}
	return out
}

type inboundInspection struct {
	ic      *inboundContent
	cfg     *config.Config
	pw      *io.PipeWriter
	done    chan struct{}
	verdict *inscan.Verdict
	err     error
	header  bytes.Buffer // the first 64 KiB, for the header checks
	reports *reportCollector
}

func (is *inboundInspection) scan(sc *inscan.Scanner, pr *io.PipeReader) {
	defer close(is.done)
	defer func() {
		if p := recover(); p != nil {
			// A checker bug must not let the message through unchecked.
			is.ic.g.Log.Error("inbound content check panicked; message deferred", "panic", fmt.Sprint(p))
			is.verdict, is.err = nil, fmt.Errorf("content check failure")
			pr.CloseWithError(is.err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	is.verdict = sc.Scan(ctx, pr)
	io.Copy(io.Discard, pr) // the walk may stop early; the writer must not block
	pr.Close()
}

func (is *inboundInspection) Write(p []byte) (int, error) {
	if n := 64<<10 - is.header.Len(); n > 0 {
		is.header.Write(p[:min(n, len(p))])
	}
	is.pw.Write(p) // fails only after a checker failure, which Decide reports
	return len(p), nil
}

func (is *inboundInspection) Abort() {
	is.pw.CloseWithError(io.ErrUnexpectedEOF)
	<-is.done
}

func (is *inboundInspection) Decide(ctx context.Context, env *queue.Envelope) (*rejection, error) {
	is.pw.Close()
	select {
	case <-is.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if is.err != nil {
		return nil, is.err // 451 4.3.0: the sender retries
	}
	v := is.verdict
	if is.reports != nil && newReportCollector(is.cfg, env) != nil {
		is.ic.g.saveReports(is.cfg, env.ID, is.reports)
	}
	var h mail.Header
	if m, err := mail.ReadMessage(bytes.NewReader(is.header.Bytes())); err == nil {
		h = m.Header
	}
	if fs := is.ic.impersonation(is.cfg, h); len(fs) > 0 {
		var why []string
		for _, f := range fs {
			why = append(why, f.Kind+": "+f.Reason)
		}
		v.Checks = append(v.Checks, inscan.Check{Name: "impersonation", Result: "suspect", Reason: strings.Join(why, "; ")})
		if is.cfg.Inbound.Impersonation == "quarantine" {
			v.Action = inscan.Most(v.Action, inscan.Quarantine)
		}
	} else {
		v.Checks = append(v.Checks, inscan.Check{Name: "impersonation", Result: "pass", Reason: "no impersonation found"})
	}
	return is.ic.g.applyInbound(ctx, is.cfg, env, v)
}

// applyInbound turns an inbound verdict into the SMTP answer and the
// envelope's plan.
func (g *Gateway) applyInbound(ctx context.Context, cfg *config.Config, env *queue.Envelope, v *inscan.Verdict) (*rejection, error) {
	var reasons []string
	for _, c := range v.Checks {
		if c.Result != "pass" && c.Result != "none" {
			reasons = append(reasons, c.Name+": "+c.Reason)
		}
	}
	if v.Action == inscan.Deliver {
		return nil, nil
	}
	g.Log.Info("inbound verdict", "msgid", env.ID, "verdict", v.Action, "checks", checkNames(v))
	if v.Action == inscan.Tempfail {
		return &rejection{Temporary: true, Text: "Message could not be checked for malware now; please try again later"}, nil
	}
	now := time.Now()
	pd := policy.Decision{Findings: []dlp.Finding{}}
	for _, r := range env.Rcpts {
		pd.Recipients = append(pd.Recipients, policy.RecipientDecision{Address: r, Action: v.Action, Then: "deliver", Rules: []string{"inbound"}, Reasons: reasons})
	}
	detail, err := json.Marshal(pd)
	if err != nil {
		return nil, err
	}
	rec := &store.Decision{MsgID: env.ID, CreatedAt: now, MailFrom: env.MailFrom, Subject: env.Subject, Outcome: v.Action, Detail: string(detail)}
	if v.Action == inscan.Reject {
		rec.State = "rejected"
		if err := g.Store.InsertDecisionNow(ctx, rec); err != nil {
			return nil, err
		}
		if err := g.audit.recorder.Record(ctx, &store.AuditEvent{At: now, Actor: env.MailFrom, Action: "inbound.reject", Object: env.ID, IP: env.RemoteIP,
			Addrs: append([]string(nil), env.Rcpts...), Detail: "checks=" + checkNames(v) + " sha256=" + env.SHA256}); err != nil {
			return nil, err
		}
		what := "an attachment type the organisation does not accept"
		if v.Virus != "" {
			what = "malware"
		}
		return &rejection{Text: "Message refused: it carries " + what + "; quote reference " + env.ID + " to the recipient's IT service desk"}, nil
	}
	// Quarantine: held for an administrator, no notice to the sender.
	rec.State, rec.ExpiresAt = "quarantined", now.Add(cfg.Policy.QuarantineRetention.Duration)
	env.Decision = rec
	env.Plan = map[string]queue.RcptPlan{}
	for _, r := range env.Rcpts {
		env.Plan[r] = queue.RcptPlan{Status: "quarantined", Then: "deliver"}
	}
	env.Audit = append(env.Audit, &store.AuditEvent{At: now, Actor: env.MailFrom, Action: "inbound.quarantine", Object: env.ID, Detail: "checks=" + checkNames(v)})
	return nil, nil
}

// checkNames lists the checks that did not pass.
func checkNames(v *inscan.Verdict) string {
	var out []string
	for _, c := range v.Checks {
		if c.Result != "pass" && c.Result != "none" {
			out = append(out, c.Name+"="+c.Result)
		}
	}
	return strings.Join(out, ",")
}
