package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"sealpost/internal/auth"
	"sealpost/internal/config"
	"sealpost/internal/inbound"
	"sealpost/internal/pipeline"
	"sealpost/internal/queue"
	"sealpost/internal/smtpd"
	"sealpost/internal/store"
)

// The gateway's SMTP backend: smtpd speaks the protocol and asks this
// backend at each step; the backend applies the listener's rules (no open
// relay, AUTH or connector for outbound, the login's addresses), runs the
// message through inspection and makes it durable in the queue before it
// answers 250. The path of one message: ARCHITECTURE.md.

// maxHops is the Received count past which a message is taken to be looping
// (RFC 5321 §6.3 suggests a limit of at least 100; Postfix uses 50).
const maxHops = 50

// backend is the gateway's smtpd.Backend.
type backend struct {
	g        *Gateway
	authFail *auth.Limiter
}

func newBackend(g *Gateway) *backend {
	return &backend{g: g, authFail: auth.NewLimiter(5, 15*time.Minute, 15*time.Minute)}
}

// smtpOptions are the protocol settings smtpd takes from the configuration.
func smtpOptions(cfg *config.Config) smtpd.Options {
	o := smtpd.Options{Hostname: cfg.SMTP.Hostname, Banner: cfg.SMTP.Banner,
		MaxMessageBytes: cfg.SMTP.MaxMessageBytes, MaxLineLength: cfg.SMTP.MaxLineLength, MaxRecipients: cfg.SMTP.MaxRecipients,
		MaxSessions: cfg.SMTP.MaxSessions, MaxSessionsPerIP: cfg.SMTP.MaxSessionsPerIP,
		CommandTimeout: cfg.SMTP.CommandTimeout.Duration, DataTimeout: cfg.SMTP.DataTimeout.Duration,
		SessionTimeout: cfg.SMTP.SessionTimeout.Duration}
	if len(cfg.Org.Domains) > 0 {
		o.PostmasterDomain = cfg.Org.Domains[0] // the org's postmaster, at its mail host
	}
	return o
}

func (b *backend) NewSession(c *smtpd.ConnInfo) smtpd.Session {
	s := &session{b: b, c: c, cfg: b.g.Config(), direction: "in"}
	if c.Role == smtpd.RoleOutbound {
		s.direction = "out"
	}
	// The connection stage: a verdict that stops the client answers its
	// first MAIL (smtpd sends the greeting).
	if p := b.g.rules.Load().pipelineFor(s.direction); len(p.Checks) > 0 {
		v := p.Run(context.Background(), pipeline.StageConnection, s.input())
		if v.Stops() {
			s.refused = v.SMTPReply()
		}
		s.headers = append(s.headers, v.Headers...)
		s.connHeaders = len(s.headers)
	}
	if c.Role == smtpd.RoleOutbound {
		return &authSession{s}
	}
	return s
}

// session is one SMTP connection's transaction state and rules.
type session struct {
	b         *backend
	c         *smtpd.ConnInfo
	cfg       *config.Config // as at connect
	direction string         // "in" or "out"

	refused     *smtpd.Reply      // the connection stage stopped the client
	headers     []pipeline.Header // added by the envelope stages
	connHeaders int               // how many of headers the connection stage added

	sendAs []string // the addresses the login may use (MAIL FROM, header From)
	from   string
	rcpts  []string
	// requireTLS: MAIL FROM carried REQUIRETLS (RFC 8689 §4.1).
	requireTLS bool
}

// authSession is an outbound session: it offers AUTH.
type authSession struct{ *session }

// input is what the envelope stages' checks see.
func (s *session) input() *pipeline.Input {
	return &pipeline.Input{Direction: s.direction, RemoteIP: s.c.RemoteIP, Helo: s.c.Helo, AuthUser: s.c.AuthUser, MailFrom: s.from}
}

// runStage runs the checks of an envelope stage (none: nothing is
// allocated); a verdict that stops answers the command.
func (s *session) runStage(stage pipeline.Stage, rcpt string) *smtpd.Reply {
	p := s.b.g.rules.Load().pipelineFor(s.direction)
	if len(p.Checks) == 0 {
		return nil
	}
	in := s.input()
	in.Rcpt = rcpt
	v := p.Run(context.Background(), stage, in)
	if v.Stops() {
		s.reject("check")
		s.b.g.Log.Info("refused by a check", "stage", stage.String(), "check", v.Check, "reason", v.Reason, "ip", s.c.RemoteIP.String())
		return v.SMTPReply()
	}
	s.headers = append(s.headers, v.Headers...)
	return nil
}

func (s *session) reject(reason string) {
	s.b.g.Metrics.Rejected.WithLabelValues(s.c.Role, reason).Inc()
}

func (s *authSession) Auth(user, pass string) *smtpd.Reply {
	lim, log := s.b.authFail, s.b.g.Log
	ipKey := "ip:" + s.c.RemoteIP.String()
	userKey := "user:" + strings.ToLower(user)
	if locked, _ := lim.Locked(ipKey); locked {
		s.reject("auth_locked")
		return smtpd.ReplyAuthLocked
	}
	if locked, _ := lim.Locked(userKey); locked {
		s.reject("auth_locked")
		return smtpd.ReplyAuthLocked
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := s.b.g.Store.GetUser(ctx, user)
	ok := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		auth.CheckUnknown(pass)
	case err != nil:
		log.Error("user lookup failed", "err", err)
		return smtpd.ReplyAuthTemp
	default:
		ok, err = auth.CheckPassword(u.PasswordHash, pass)
		if err != nil {
			log.Error("stored password hash unusable", "user", user, "err", err)
		}
		ok = ok && !u.Disabled && (u.Role == "sender" || u.Role == "admin")
	}
	if !ok {
		lim.Fail(ipKey)
		lim.Fail(userKey)
		s.reject("auth_failed")
		log.Info("SMTP AUTH failed", "ip", s.c.RemoteIP.String())
		return smtpd.ReplyAuthInvalid
	}
	addrs, err := s.b.g.Store.UserAddresses(ctx, u.Name)
	if err != nil {
		log.Error("user addresses lookup failed", "err", err)
		return smtpd.ReplyAuthTemp
	}
	lim.Succeed(ipKey)
	lim.Succeed(userKey)
	s.sendAs = auth.SenderAddresses(u.Name, addrs, s.cfg.Org.Domains)
	return nil
}

func (s *session) Mail(from string, opts smtpd.MailOptions) *smtpd.Reply {
	if s.refused != nil {
		return s.refused
	}
	outbound := s.c.Role == smtpd.RoleOutbound
	if outbound && s.c.AuthUser == "" && !s.cfg.IsConnector(s.c.RemoteIP) {
		s.reject("auth_required")
		return smtpd.ReplyAuthRequired
	}
	if s.c.AuthUser != "" && !auth.MaySendAs(s.sendAs, from) {
		s.reject("sender_not_permitted")
		s.b.g.Log.Info("MAIL FROM not permitted for the login", "ip", s.c.RemoteIP.String(), "user", s.c.AuthUser)
		return smtpd.ReplySenderNotPermitted
	}
	if outbound && from != "" && !s.cfg.IsOrgDomain(strings.ToLower(smtpd.DomainOf(from))) {
		s.reject("foreign_sender")
		return smtpd.ReplyForeignSender
	}
	s.from, s.rcpts, s.requireTLS = from, s.rcpts[:0], opts.RequireTLS
	if r := s.runStage(pipeline.StageSender, ""); r != nil {
		s.from, s.requireTLS = "", false
		return r
	}
	return nil
}

func (s *session) Rcpt(to string) *smtpd.Reply {
	if s.c.Role == smtpd.RoleInbound && !s.cfg.IsOrgDomain(strings.ToLower(smtpd.DomainOf(to))) {
		s.reject("relay_denied")
		return smtpd.ReplyRelayDenied
	}
	if r := s.runStage(pipeline.StageRecipient, to); r != nil {
		return r
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

// Reset ends the transaction; the connection stage's headers stay.
func (s *session) Reset() {
	s.from, s.rcpts, s.requireTLS = "", s.rcpts[:0], false
	s.headers = s.headers[:s.connHeaders]
}

func (s *session) Logout() {}

// copyBufs are the buffers DATA is copied through into the spool.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// checkHeaderFrom applies the login's addresses to the header From (RFC
// 5322 §3.6.2: the author, what recipients see and what DMARC and the DKIM
// signature vouch for): in an AUTH session every address in every From
// field must be one the user may send as. A header that cannot be read
// whole, or has no From, is refused too: what cannot be checked is not
// passed. Connector mail is not checked here; the connector's own mail
// system decided who its users are.
func (s *session) checkHeaderFrom(hi pipeline.HeaderInfo) *smtpd.Reply {
	if s.c.AuthUser == "" {
		return nil
	}
	if !hi.Complete || hi.FromBad || len(hi.FromAll) == 0 {
		s.reject("header_from_unreadable")
		return smtpd.NewReply(550, "5.7.1", "Header From missing or unreadable; it must name an address permitted for this login")
	}
	for _, a := range hi.FromAll {
		if !auth.MaySendAs(s.sendAs, a) {
			s.reject("sender_not_permitted")
			return smtpd.NewReply(550, "5.7.1", "Header From address not permitted for this login")
		}
	}
	return nil
}

// Data streams the message into the spool (with our Received field first)
// while the header is captured and, outbound, the inspection reads along;
// then the checks of the whole message, the policy's plan, and the
// queue's durable commit. Only after that commit is the answer 250.
func (s *session) Data(r io.Reader) *smtpd.Reply {
	g := s.b.g
	q := g.Queue
	id := queue.NewID()
	log := g.Log.With("msgid", id, "role", s.c.Role)
	w, err := q.Spool().Create(id)
	if err != nil {
		log.Error("cannot create spool file", "err", err)
		s.reject("storage")
		return smtpd.ReplyStorage
	}
	// The audit log keeps the SHA-256 of the bytes as accepted (with our
	// Received field and any header rewrite), never the bytes.
	sum := sha256.New()
	spool := io.MultiWriter(w, sum)
	if _, err := io.WriteString(spool, smtpd.Received(s.c, s.cfg.SMTP.Hostname, id, s.rcpts, time.Now())); err != nil {
		w.Abort()
		log.Error("spool write failed", "err", err)
		s.reject("storage")
		return smtpd.ReplyStorage
	}
	direction := "in"
	if s.c.Role == smtpd.RoleOutbound {
		direction = "out"
	}
	rs := g.rules.Load()
	hc := &pipeline.HeaderCapture{Max: 64 << 10}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	out := spool
	// The data checks of the listener (none: the relay path allocates
	// nothing for them).
	var in *pipeline.Input
	var msg *pipeline.Message
	if p := rs.pipelineFor(direction); len(p.Data) > 0 {
		in = &pipeline.Input{Direction: direction, RemoteIP: s.c.RemoteIP, Helo: s.c.Helo, AuthUser: s.c.AuthUser,
			MailFrom: s.from, Rcpts: s.rcpts, ID: id}
		msg = p.StartData(in)
	}
	var hf *pipeline.HeaderFilter
	// The inbound content checks (attachments, antivirus, impersonation:
	// inbound_content.go) read the message as it arrives, beside the
	// listener's pipeline checks.
	var insp dataInspection
	if direction == "out" && rs.cfg.DLP.Enabled {
		hf = &pipeline.HeaderFilter{W: spool, Rewrite: rs.outbound.RewriteHeader, Max: 64 << 10}
		out = hf
	} else if direction == "in" && (g.inbound != nil || g.auth != nil) {
		var rewrite func([]byte) []byte
		if g.inbound != nil {
			insp = g.inbound.Start()
			rewrite = g.inbound.RewriteHeader
		}
		if g.auth != nil {
			rewrite = stripForged(rewrite, s.cfg.SMTP.Hostname)
		}
		hf = &pipeline.HeaderFilter{W: spool, Rewrite: rewrite, Max: 64 << 10}
		out = hf
	}
	abort := func() {
		w.Abort()
		if msg != nil {
			msg.Abort()
		}
		if insp != nil {
			insp.Abort()
		}
	}
	storageErr := func(err error) *smtpd.Reply {
		abort()
		log.Error("spool write failed", "err", err)
		s.reject("storage")
		return smtpd.ReplyStorage
	}
	// Fields the envelope stages added go on top, below our Received
	// (RFC 5321 §4.4: trace fields are prepended in order).
	for _, h := range s.headers {
		f, ok := h.Field()
		if !ok {
			abort()
			log.Error("a check added a malformed header field; message refused for now", "field", h.Name)
			return smtpd.ReplyTempFail
		}
		if _, err := io.WriteString(spool, f); err != nil {
			return storageErr(err)
		}
	}
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			hc.Write(buf[:n])
			if msg != nil {
				msg.Write(buf[:n])
			}
			if insp != nil {
				insp.Write(buf[:n])
			}
			if _, err := out.Write(buf[:n]); err != nil {
				return storageErr(err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			abort()
			return nil // smtpd answers the refused or broken data
		}
	}
	if hf != nil {
		if err := hf.Close(); err != nil {
			return storageErr(err)
		}
	}
	hi := hc.Info()
	if hi.Received >= maxHops {
		abort()
		s.reject("loop")
		return smtpd.ReplyLoop
	}
	if r := s.checkHeaderFrom(hi); r != nil {
		abort()
		log.Info("header From not permitted for the login", "ip", s.c.RemoteIP.String(), "user", s.c.AuthUser)
		return r
	}
	env := &queue.Envelope{ID: id, Direction: direction, MailFrom: s.from, Rcpts: append([]string(nil), s.rcpts...),
		RemoteIP: s.c.RemoteIP.String(), Helo: smtpd.SanitizeHelo(s.c.Helo), AuthUser: s.c.AuthUser,
		HeaderFrom: hi.From, Subject: hi.Subject, MessageID: hi.MessageID, SHA256: hex.EncodeToString(sum.Sum(nil)),
		TLSRequest: tlsRequest(s.requireTLS, hi.TLSRequiredNo)}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if msg != nil {
		in.Rcpts, in.Header = env.Rcpts, hi
		v := msg.Finish(ctx, in)
		if v.Outcome == pipeline.TempFail {
			w.Abort()
			s.reject("check")
			log.Warn("check failed", "check", v.Check, "reason", v.Reason, "ip", s.c.RemoteIP.String())
			return v.SMTPReply()
		}
		// The data checks decide once the spool holds the header section:
		// the fields they add are kept with the message in the queue and
		// written above it by every reader (queue.OpenDelivered).
		var dh strings.Builder
		for _, h := range v.Headers {
			f, ok := h.Field()
			if !ok {
				w.Abort()
				log.Error("a data check added a malformed header field; message refused for now", "check", v.Check, "field", h.Name)
				s.reject("check")
				return smtpd.ReplyTempFail
			}
			dh.WriteString(f)
		}
		env.DataHeaders = dh.String()
		if v.Outcome == pipeline.Quarantine && g.auth != nil && v.Check == "inbound-auth" {
			g.auth.quarantine(s.cfg, env, v.Reason)
		}
		// The policy's decision is recorded even when it refuses: apply
		// turns its reject into the 550 with the operator's reference.
		rej, err := g.apply(ctx, env, &v)
		if err != nil {
			w.Abort()
			log.Error("inspection failed", "err", err)
			s.reject("inspection")
			return smtpd.ReplyTempFail
		}
		if rej != nil {
			w.Abort()
			s.reject("policy")
			log.Info("refused by policy", "ip", s.c.RemoteIP.String(), "rcpts", len(env.Rcpts))
			return smtpd.NewReply(550, "5.7.1", rej.Text)
		}
		if v.Stops() {
			w.Abort()
			s.reject("check")
			log.Info("refused by a check", "check", v.Check, "reason", v.Reason, "ip", s.c.RemoteIP.String())
			return v.SMTPReply()
		}
	}
	if insp != nil {
		rej, err := insp.Decide(ctx, env)
		if err != nil {
			w.Abort()
			log.Error("inspection failed", "err", err)
			s.reject("inspection")
			return smtpd.ReplyTempFail
		}
		if rej != nil && rej.Temporary {
			w.Abort()
			s.reject("inspection")
			log.Info("deferred by inspection", "ip", s.c.RemoteIP.String(), "rcpts", len(env.Rcpts))
			return smtpd.NewReply(451, "4.7.1", rej.Text)
		}
		if rej != nil {
			w.Abort()
			s.reject("policy")
			log.Info("refused by policy", "ip", s.c.RemoteIP.String(), "rcpts", len(env.Rcpts))
			return smtpd.NewReply(550, "5.7.1", rej.Text)
		}
	}
	if err := q.Accept(ctx, env, w); err != nil {
		if errors.Is(err, queue.ErrStorage) {
			log.Error("spool commit failed", "err", err)
			s.reject("storage")
			return smtpd.ReplyStorage
		}
		log.Error("queue commit failed", "err", err)
		s.reject("queue")
		return smtpd.ReplyTempFail
	}
	m := g.Metrics
	m.AcceptLatency.WithLabelValues(s.c.Role).Observe(time.Since(start).Seconds())
	m.Accepted.WithLabelValues(s.c.Role).Inc()
	m.AcceptedBytes.WithLabelValues(s.c.Role).Add(float64(w.Size()))
	log.Info("accepted", "ip", s.c.RemoteIP.String(), "rcpts", len(env.Rcpts), "size", w.Size(), "tls", s.c.TLS != nil, "auth", s.c.AuthUser != "")
	return smtpd.Accepted(id)
}

// tlsRequest is what the queue keeps of the sender's TLS request. RFC 8689
// §5: with REQUIRETLS on MAIL FROM, a "TLS-Required: No" header field is
// ignored.
func tlsRequest(requireTLS, tlsRequiredNo bool) string {
	switch {
	case requireTLS:
		return store.TLSRequestRequire
	case tlsRequiredNo:
		return store.TLSRequestOptional
	}
	return ""
}

// stripForged wraps a header rewrite (nil: none) so that incoming
// Authentication-Results fields claiming our authserv-id are removed
// from the spooled copy first (RFC 8601 §5), as the authentication also
// ignores them.
func stripForged(rewrite func([]byte) []byte, authServID string) func([]byte) []byte {
	return func(h []byte) []byte {
		stripped, n := inbound.StripForgedResults(h, authServID)
		if rewrite != nil {
			if r := rewrite(stripped); r != nil {
				return r
			}
		}
		if n == 0 {
			return nil
		}
		return stripped
	}
}
