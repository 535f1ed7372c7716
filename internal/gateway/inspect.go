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
	"time"
	"unicode/utf8"

	"sealpost/internal/config"
	"sealpost/internal/dlp"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
	"sealpost/internal/store"
)

// rules is the inspection setup of one configuration; SIGHUP swaps it.
type rules struct {
	cfg    *config.Config
	dlp    *dlp.Engine
	policy *policy.Engine
}

func newRules(cfg *config.Config) (*rules, error) {
	d, err := DLPEngine(cfg)
	if err != nil {
		return nil, &config.Error{File: cfg.File, Key: "dlp.custom", Msg: err.Error()}
	}
	p, err := PolicyEngine(cfg)
	if err != nil {
		return nil, err
	}
	return &rules{cfg: cfg, dlp: d, policy: p}, nil
}

// inspector inspects outbound messages before they are accepted: every
// message is scanned while it streams in (DLP), and the policy decides
// before the 250. It is what lets the gateway refuse a message with a 550
// at the end of DATA, hold it, or mark recipients for protection.
type inspector struct{ g *Gateway }

// rejection refuses a message for policy reasons.
type rejection struct {
	Text string // for the client, with the reference the operator can look up
}

// Start begins the inspection of one message. Its bytes, as the client
// sent them, are written to the inspection as they arrive.
func (in inspector) Start() *inspection {
	pr, pw := io.Pipe()
	is := &inspection{g: in.g, rules: in.g.rules.Load(), pw: pw, done: make(chan struct{})}
	go is.scan(pr)
	return is
}

// RewriteHeader may change the header section (up to and including the
// CRLF that ends its last field) before it is spooled; nil keeps it.
func (in inspector) RewriteHeader(h []byte) []byte {
	return rewriteSubject(h, in.g.rules.Load().cfg.Policy.SenderKeywords)
}

type inspection struct {
	g     *Gateway
	rules *rules
	pw    *io.PipeWriter
	done  chan struct{}
	res   *dlp.Result
	err   error
	size  int64 // bytes written: message.size for the policy
}

func (is *inspection) scan(pr *io.PipeReader) {
	defer close(is.done)
	defer func() {
		if p := recover(); p != nil {
			// A scanner bug must not take the gateway down, nor let the
			// message through uninspected.
			is.g.Log.Error("DLP scanner panicked; message treated as unscannable", "panic", fmt.Sprint(p))
			is.res, is.err = nil, fmt.Errorf("scanner failure")
			pr.CloseWithError(fmt.Errorf("scanner failure"))
		}
	}()
	is.res, is.err = is.rules.dlp.ScanMessage(pr)
	io.Copy(io.Discard, pr) // the scanner may stop early; the writer must not block
	pr.Close()
}

func (is *inspection) Write(p []byte) (int, error) {
	is.size += int64(len(p))
	is.pw.Write(p) // fails only after a scanner failure, which Decide reports
	return len(p), nil
}

// Abort ends an inspection whose message was not accepted.
func (is *inspection) Abort() {
	is.pw.CloseWithError(io.ErrUnexpectedEOF)
	<-is.done
}

// Decide ends the inspection once every byte is written: it fills in env's
// plan and notices, or returns a rejection.
func (is *inspection) Decide(ctx context.Context, env *queue.Envelope) (*rejection, error) {
	is.pw.Close()
	select {
	case <-is.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cfg := is.rules.cfg
	res := is.res
	if res == nil {
		// Not a message we could parse, or the scanner failed: say so.
		why := "malformed message"
		if is.err != nil && !strings.HasPrefix(is.err.Error(), "not a message") {
			why = is.err.Error()
		}
		res = &dlp.Result{Findings: []dlp.Finding{{Detector: dlp.Unscannable, Count: 1, Confidence: "high", Where: "body (" + why + ")"}}}
	}
	subject := res.Subject
	if subject == "" {
		subject = env.Subject
	}
	// An answer to a secure portal conversation (a verified thread token
	// in In-Reply-To/References): the policy sees it as message.portal_thread
	// and recipient.portal_thread. Not knowing is a temporary failure, never
	// "not an answer".
	answered, err := is.g.Portal.Answers(ctx, res.Header)
	if err != nil {
		return nil, fmt.Errorf("checking for portal conversations: %w", err)
	}
	in := &policy.Input{
		MailFrom: env.MailFrom, HeaderFrom: env.HeaderFrom, AuthUser: env.AuthUser, Subject: subject,
		Keyword: hasKeyword(subject, cfg.Policy.SenderKeywords), Size: is.size, Visible: visible(res.Header),
		Classification: res.Classification, Findings: res.Findings, Recipients: env.Rcpts, Known: is.g.Queue.Known,
		PortalThread: answered.Any(), ThreadParty: func(rcpt string) bool { return answered.Thread(rcpt) != "" },
		TLS: is.g.recipientTLS(ctx),
	}
	d := is.rules.policy.Decide(in)
	if err := resolveKeys(ctx, is.g.Keyring, cfg, cfg.SMIME.Enabled, d); err != nil {
		return nil, err
	}
	return is.g.apply(ctx, env, d)
}

// apply turns a decision into the envelope's plan, records it and writes
// the sender's notice; a reject becomes the SMTP rejection.
func (g *Gateway) apply(ctx context.Context, env *queue.Envelope, d *policy.Decision) (*rejection, error) {
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
		a, _ := policy.ParseAction(r.Action)
		if most == policy.Quarantine && a == policy.Hold {
			a = policy.Quarantine // one message, one reviewer: the operator
		}
		split := ""
		if r.Split {
			split = queue.ActionSplit
		}
		switch a {
		case policy.Hold:
			env.Plan[r.Address] = queue.RcptPlan{Status: "held", Then: r.Then, Action: split}
		case policy.Quarantine:
			env.Plan[r.Address] = queue.RcptPlan{Status: "quarantined", Then: r.Then, Action: split}
		case policy.RequireTLS:
			env.Plan[r.Address] = queue.RcptPlan{Status: "queued", Action: queue.ActionRequireTLS + split}
		case policy.Portal:
			env.Plan[r.Address] = queue.RcptPlan{Status: "queued", Action: queue.ActionPortal}
		case policy.EncryptSMIME:
			env.Plan[r.Address] = queue.RcptPlan{Status: "queued", Action: queue.ActionSMIME}
		case policy.Encrypt, policy.EncryptPGP:
			// Each recipient gets a copy of their own (encrypt.Transport).
			env.Plan[r.Address] = queue.RcptPlan{Status: "queued", Action: a.String()}
		default:
			if split != "" {
				env.Plan[r.Address] = queue.RcptPlan{Status: "queued", Action: split}
			}
		}
	}
	// The policy lower-cases addresses; the plan must use the envelope's.
	for _, rc := range env.Rcpts {
		if p, ok := env.Plan[strings.ToLower(rc)]; ok {
			env.Plan[rc] = p
		}
		if p, ok := env.PolicyDetail[strings.ToLower(rc)]; ok {
			env.PolicyDetail[rc] = p
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

// visible returns the addresses in To and Cc.
func visible(h mail.Header) []string {
	if h == nil {
		return nil
	}
	var out []string
	for _, k := range []string{"To", "Cc"} {
		v := h.Get(k)
		if v == "" {
			continue
		}
		if list, err := (&mail.AddressParser{WordDecoder: &mime.WordDecoder{}}).ParseList(v); err == nil {
			for _, a := range list {
				out = append(out, a.Address)
			}
			continue
		}
		// Not a valid list: count what looks like addresses.
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '<' || r == '>' }) {
			if strings.Contains(f, "@") {
				out = append(out, f)
			}
		}
	}
	return out
}

// hasKeyword reports whether subject contains one of the sender keywords.
func hasKeyword(subject string, kws []string) bool {
	_, changed := stripKeywords(subject, kws)
	return changed
}

// stripKeywords removes the keywords (case-insensitive) from s.
func stripKeywords(s string, kws []string) (string, bool) {
	changed := false
	for _, k := range kws {
		if k == "" {
			continue
		}
		for i := 0; i+len(k) <= len(s); {
			if strings.EqualFold(s[i:i+len(k)], k) {
				s = s[:i] + s[i+len(k):]
				changed = true
				continue
			}
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
		}
	}
	if changed {
		s = strings.Join(strings.Fields(s), " ")
	}
	return s, changed
}

var subjectDecoder = mime.WordDecoder{}

// rewriteSubject removes the sender keywords from the Subject field of a
// header section; nil if there is nothing to change.
func rewriteSubject(h []byte, kws []string) []byte {
	if len(kws) == 0 {
		return nil
	}
	lines := bytes.SplitAfter(h, []byte("\r\n"))
	for i := 0; i < len(lines); i++ {
		if len(lines[i]) < 8 || !bytes.EqualFold(lines[i][:8], []byte("subject:")) {
			continue
		}
		end := i + 1
		for end < len(lines) && len(lines[end]) > 0 && (lines[end][0] == ' ' || lines[end][0] == '\t') {
			end++
		}
		raw := string(bytes.Join(lines[i:end], nil))
		raw = strings.ReplaceAll(strings.TrimSuffix(raw[8:], "\r\n"), "\r\n", "")
		dec, err := subjectDecoder.DecodeHeader(strings.TrimSpace(raw))
		if err != nil {
			dec = strings.TrimSpace(raw)
		}
		clean, changed := stripKeywords(dec, kws)
		if !changed {
			return nil
		}
		enc := clean
		for _, r := range clean {
			if r >= 0x80 || r < 0x20 {
				enc = mime.QEncoding.Encode("utf-8", clean)
				break
			}
		}
		var out bytes.Buffer
		for _, l := range lines[:i] {
			out.Write(l)
		}
		out.WriteString("Subject: " + enc + "\r\n")
		for _, l := range lines[end:] {
			out.Write(l)
		}
		return out.Bytes()
	}
	return nil
}
