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
	s := &session{b: b, c: c, cfg: b.g.Config()}
	if c.Role == smtpd.RoleOutbound {
		return &authSession{s}
	}
	return s
}

// session is one SMTP connection's transaction state and rules.
type session struct {
	b   *backend
	c   *smtpd.ConnInfo
	cfg *config.Config // as at connect

	sendAs []string // the addresses the login may use (MAIL FROM, header From)
	from   string
	rcpts  []string
}

// authSession is an outbound session: it offers AUTH.
type authSession struct{ *session }

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

func (s *session) Mail(from string, _ smtpd.MailOptions) *smtpd.Reply {
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
	s.from, s.rcpts = from, s.rcpts[:0]
	return nil
}

func (s *session) Rcpt(to string) *smtpd.Reply {
	if s.c.Role == smtpd.RoleInbound && !s.cfg.IsOrgDomain(strings.ToLower(smtpd.DomainOf(to))) {
		s.reject("relay_denied")
		return smtpd.ReplyRelayDenied
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Reset() { s.from, s.rcpts = "", s.rcpts[:0] }

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
	hc := &pipeline.HeaderCapture{Max: 64 << 10}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	out := spool
	var insp *inspection
	var hf *pipeline.HeaderFilter
	if s.c.Role == smtpd.RoleOutbound && g.Config().DLP.Enabled {
		in := inspector{g}
		insp = in.Start()
		hf = &pipeline.HeaderFilter{W: spool, Rewrite: in.RewriteHeader, Max: 64 << 10}
		out = hf
	}
	abort := func() {
		w.Abort()
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
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			hc.Write(buf[:n])
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
	direction := "in"
	if s.c.Role == smtpd.RoleOutbound {
		direction = "out"
	}
	env := &queue.Envelope{ID: id, Direction: direction, MailFrom: s.from, Rcpts: append([]string(nil), s.rcpts...),
		RemoteIP: s.c.RemoteIP.String(), Helo: smtpd.SanitizeHelo(s.c.Helo), AuthUser: s.c.AuthUser,
		HeaderFrom: hi.From, Subject: hi.Subject, MessageID: hi.MessageID, SHA256: hex.EncodeToString(sum.Sum(nil))}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if insp != nil {
		rej, err := insp.Decide(ctx, env)
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
