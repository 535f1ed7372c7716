// Package smtpd runs sealpost's two SMTP listeners.
//
// The inbound listener is the organisation's MX: anyone may send to it, but
// only for recipients in the organisation's domains (RFC 5321 §3.6.2: a
// server that relays for anyone is an open relay). The outbound listener is
// where the organisation's mail host (an Exchange Online or Google
// Workspace connector) and staff hand over mail for the outside world: it
// relays for clients in the connector networks, and for everyone else only
// after SMTP AUTH, which is offered only over TLS.
//
// Every session is bounded: sessions per address and in all, recipients per
// message, line length, message size, time per command and per session. The
// DATA stream is strict (CRLF only; see strictReader) and goes straight to
// the spool: a message is never held whole in memory. The 250 reply to DATA
// is sent only after the queue has made the message durable.
package smtpd

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sealpost/internal/auth"
	"sealpost/internal/config"
	"sealpost/internal/metrics"
	"sealpost/internal/queue"
	"sealpost/internal/store"
)

// Roles of a listener.
const (
	RoleInbound  = "inbound"
	RoleOutbound = "outbound"
)

// maxHops is the Received count past which a message is taken to be looping
// (RFC 5321 §6.3 suggests a limit of at least 100; Postfix uses 50).
const maxHops = 50

// Users authenticates SMTP AUTH users and says what each may send as.
type Users interface {
	GetUser(ctx context.Context, name string) (*store.User, error)
	UserAddresses(ctx context.Context, name string) ([]string, error)
}

// Server owns the listeners.
type Server struct {
	cfg       atomic.Pointer[config.Config]
	queue     *queue.Queue
	users     Users
	metrics   *metrics.Metrics
	log       *slog.Logger
	tls       *tls.Config
	authFail  *auth.Limiter
	inspector atomic.Pointer[Inspector]

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*conn]struct{}
	closing   bool
	wg        sync.WaitGroup
	limits    *connLimits
}

// New returns a server. tlsConfig may be nil (no STARTTLS, and so no AUTH).
func New(cfg *config.Config, q *queue.Queue, users Users, tlsConfig *tls.Config, m *metrics.Metrics, log *slog.Logger) *Server {
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
		tlsConfig.MinVersion = tls.VersionTLS12
	}
	s := &Server{queue: q, users: users, metrics: m, log: log, tls: tlsConfig, conns: map[*conn]struct{}{},
		authFail: auth.NewLimiter(5, 15*time.Minute, 15*time.Minute)}
	s.cfg.Store(cfg)
	s.limits = newConnLimits(cfg.SMTP.MaxSessions, cfg.SMTP.MaxSessionsPerIP)
	return s
}

// SetConfig replaces the configuration for new commands (SIGHUP). Listen
// addresses and limits applied at connection level keep their values until
// restart.
func (s *Server) SetConfig(cfg *config.Config) { s.cfg.Store(cfg) }

// Listen starts a listener for role on addr and serves it in the background.
func (s *Server) Listen(role, addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s SMTP listener on %s: %w", role, addr, err)
	}
	return s.Serve(role, l), nil
}

// Serve serves role on l in the background.
func (s *Server) Serve(role string, l net.Listener) net.Addr {
	cfg := s.cfg.Load()
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	ll := &limitListener{Listener: l, limits: s.limits, role: role, metrics: s.metrics, sessionTimeout: cfg.SMTP.SessionTimeout.Duration}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ll.Accept()
			if err != nil {
				s.mu.Lock()
				closing := s.closing
				s.mu.Unlock()
				if !closing {
					s.log.Error("SMTP listener stopped", "role", role, "err", err)
				}
				return
			}
			s.serveConn(role, nc)
		}
	}()
	return l.Addr()
}

func (s *Server) serveConn(role string, nc net.Conn) {
	cfg := s.cfg.Load()
	ip := netip.Addr{}
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
		ip = ip.Unmap()
	}
	s.metrics.Sessions.WithLabelValues(role).Inc()
	s.metrics.SessionsActive.WithLabelValues(role).Inc()
	c := &conn{srv: s, nc: nc, timeout: cfg.SMTP.CommandTimeout.Duration, dataWait: cfg.SMTP.DataTimeout.Duration, maxLine: cfg.SMTP.MaxLineLength, maxBytes: cfg.SMTP.MaxMessageBytes}
	c.sess = &session{s: s, role: role, conn: c, ip: ip, cfg: cfg}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Write([]byte("421 4.3.2 Shutting down; try again later\r\n"))
		nc.Close()
		s.metrics.SessionsActive.WithLabelValues(role).Dec()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("SMTP session failed", "role", role, "panic", fmt.Sprint(p))
				nc.Close()
			}
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
		c.br = bufio.NewReaderSize(nc, max(c.maxLine+2, maxCommandLine+2))
		c.bw = bufio.NewWriterSize(nc, 4096)
		c.serve()
	}()
}

// Shutdown stops accepting and waits for open sessions to end, up to ctx;
// then closes what remains. A message in DATA when its connection is cut
// was not answered 250, so the client keeps it.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	<-done
}

type session struct {
	s    *Server
	role string
	conn *conn
	ip   netip.Addr
	cfg  *config.Config

	authUser string
	sendAs   []string // the addresses authUser may use (MAIL FROM, header From)
	from     string
	hasFrom  bool
	rcpts    []string
	// requireTLS: MAIL FROM carried REQUIRETLS (RFC 8689 §4.1).
	requireTLS bool
	commands   int
	loggedOut  bool
}

func smtpErr(code int, enh [3]int, msg string) *Reply {
	return reply(code, fmt.Sprintf("%d.%d.%d", enh[0], enh[1], enh[2]), msg)
}

// copyBufs are the buffers DATA is copied through into the spool.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// maxTransactionCommands bounds MAIL/RCPT/RSET per session, so that one
// connection cannot keep the server busy for ever below the time limits.
const maxTransactionCommands = 10000

func (s *session) count() *Reply {
	s.commands++
	if s.commands > maxTransactionCommands {
		return smtpErr(421, [3]int{4, 7, 0}, "Too many commands in one session; please reconnect")
	}
	return nil
}

func (s *session) reject(reason string) { s.s.metrics.Rejected.WithLabelValues(s.role, reason).Inc() }

func (s *session) authenticate(user, pass string) *Reply {
	ipKey := "ip:" + s.ip.String()
	userKey := "user:" + strings.ToLower(user)
	if locked, _ := s.s.authFail.Locked(ipKey); locked {
		s.reject("auth_locked")
		return smtpErr(454, [3]int{4, 7, 0}, "Too many failed attempts; try again later")
	}
	if locked, _ := s.s.authFail.Locked(userKey); locked {
		s.reject("auth_locked")
		return smtpErr(454, [3]int{4, 7, 0}, "Too many failed attempts; try again later")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := s.s.users.GetUser(ctx, user)
	ok := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		auth.CheckUnknown(pass)
	case err != nil:
		s.s.log.Error("user lookup failed", "err", err)
		return smtpErr(454, [3]int{4, 7, 0}, "Temporary authentication failure")
	default:
		ok, err = auth.CheckPassword(u.PasswordHash, pass)
		if err != nil {
			s.s.log.Error("stored password hash unusable", "user", user, "err", err)
		}
		ok = ok && !u.Disabled && (u.Role == "sender" || u.Role == "admin")
	}
	if !ok {
		s.s.authFail.Fail(ipKey)
		s.s.authFail.Fail(userKey)
		s.reject("auth_failed")
		s.s.log.Info("SMTP AUTH failed", "ip", s.ip.String())
		return smtpErr(535, [3]int{5, 7, 8}, "Authentication credentials invalid")
	}
	addrs, err := s.s.users.UserAddresses(ctx, u.Name)
	if err != nil {
		s.s.log.Error("user addresses lookup failed", "err", err)
		return smtpErr(454, [3]int{4, 7, 0}, "Temporary authentication failure")
	}
	s.s.authFail.Succeed(ipKey)
	s.s.authFail.Succeed(userKey)
	s.authUser = u.Name
	s.sendAs = auth.SenderAddresses(u.Name, addrs, s.cfg.Org.Domains)
	return nil
}

// validAddress checks an address's syntax and RFC 5321 §4.5.3.1 lengths.
func validAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 254 || at > 64 {
		return false
	}
	for _, r := range a {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' {
			return false
		}
	}
	dom := a[at+1:]
	if strings.HasPrefix(dom, "[") {
		return false // address literals are not accepted
	}
	for _, l := range strings.Split(dom, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}

func (s *session) mail(from string, size int64) *Reply {
	if s.role == RoleOutbound && s.authUser == "" && !s.cfg.IsConnector(s.ip) {
		s.reject("auth_required")
		return smtpErr(530, [3]int{5, 7, 0}, "Authentication required")
	}
	if from != "" && !validAddress(from) {
		s.reject("bad_sender")
		return smtpErr(553, [3]int{5, 1, 7}, "Sender address is not valid")
	}
	if s.authUser != "" && !auth.MaySendAs(s.sendAs, from) {
		s.reject("sender_not_permitted")
		s.s.log.Info("MAIL FROM not permitted for the login", "ip", s.ip.String(), "user", s.authUser)
		return errSenderNotPermitted
	}
	if s.role == RoleOutbound && from != "" && !s.cfg.IsOrgDomain(strings.ToLower(domainOf(from))) {
		s.reject("foreign_sender")
		return smtpErr(550, [3]int{5, 7, 1}, "Sender domain is not served by this gateway")
	}
	if size > s.cfg.SMTP.MaxMessageBytes {
		s.reject("size")
		return smtpErr(552, [3]int{5, 3, 4}, fmt.Sprintf("Message too big; the limit is %d bytes", s.cfg.SMTP.MaxMessageBytes))
	}
	s.from, s.hasFrom, s.rcpts = from, true, s.rcpts[:0]
	return nil
}

func (s *session) rcpt(to string) *Reply {
	// RFC 5321 §4.5.1: "postmaster" without a domain must be accepted; it
	// is the organisation's postmaster at its mail host.
	if strings.EqualFold(to, "postmaster") && len(s.cfg.Org.Domains) > 0 {
		to = "postmaster@" + s.cfg.Org.Domains[0]
	}
	if r := routingForm(to); r != nil {
		s.reject("bad_recipient")
		return r
	}
	if !validAddress(to) {
		s.reject("bad_recipient")
		return smtpErr(553, [3]int{5, 1, 3}, "Recipient address is not valid")
	}
	if s.role == RoleInbound && !s.cfg.IsOrgDomain(strings.ToLower(domainOf(to))) {
		s.reject("relay_denied")
		return smtpErr(550, [3]int{5, 7, 1}, "Relaying denied")
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) reset() {
	s.from, s.hasFrom, s.rcpts, s.requireTLS = "", false, s.rcpts[:0], false
}

func (s *session) logout() {
	if !s.loggedOut {
		s.loggedOut = true
		s.s.metrics.SessionsActive.WithLabelValues(s.role).Dec()
	}
}

func (s *session) received(id string) string {
	proto := "ESMTP"
	tlsInfo := ""
	if tc, ok := s.conn.nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		proto = "ESMTPS"
		tlsInfo = fmt.Sprintf(" (using %s with cipher %s)", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	}
	if s.authUser != "" {
		proto += "A" // RFC 3848
	}
	helo := sanitizeHelo(s.conn.helo)
	forClause := ""
	if len(s.rcpts) == 1 {
		forClause = "\r\n\tfor <" + s.rcpts[0] + ">"
	}
	return fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s with %s id %s%s%s;\r\n\t%s\r\n",
		helo, s.ip, s.cfg.SMTP.Hostname, proto, id, tlsInfo, forClause, time.Now().Format(time.RFC1123Z))
}

func sanitizeHelo(h string) string {
	var b strings.Builder
	for _, r := range h {
		if r > ' ' && r < 0x7f && r != '(' && r != ')' && r != '\\' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return truncate(b.String(), 100)
}

func (s *session) data(r io.Reader) *Reply {
	q := s.s.queue
	id := queue.NewID()
	log := s.s.log.With("msgid", id, "role", s.role)
	w, err := q.Spool().Create(id)
	if err != nil {
		log.Error("cannot create spool file", "err", err)
		s.reject("storage")
		return smtpErr(452, [3]int{4, 3, 1}, "Insufficient system storage; try again later")
	}
	// The audit log keeps the SHA-256 of the bytes as accepted (with our
	// Received field and any header rewrite), never the bytes.
	sum := sha256.New()
	spool := io.MultiWriter(w, sum)
	if _, err := io.WriteString(spool, s.received(id)); err != nil {
		w.Abort()
		log.Error("spool write failed", "err", err)
		s.reject("storage")
		return smtpErr(452, [3]int{4, 3, 1}, "Insufficient system storage; try again later")
	}
	hc := &headerCapture{max: 64 << 10}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	out := spool
	var insp Inspection
	var hf *headerFilter
	if s.role == RoleOutbound {
		if in := s.s.getInspector(); in != nil {
			insp = in.Start()
			hf = &headerFilter{w: spool, rewrite: in.RewriteHeader, max: 64 << 10}
			out = hf
		}
	}
	abort := func() {
		w.Abort()
		if insp != nil {
			insp.Abort()
		}
	}
	storageErr := func(err error) *Reply {
		abort()
		log.Error("spool write failed", "err", err)
		s.reject("storage")
		return smtpErr(452, [3]int{4, 3, 1}, "Insufficient system storage; try again later")
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
			return s.dataError(log, rerr)
		}
	}
	if hf != nil {
		if err := hf.Close(); err != nil {
			return storageErr(err)
		}
	}
	hi := hc.info()
	if hi.Received >= maxHops {
		abort()
		s.reject("loop")
		return smtpErr(554, [3]int{5, 4, 6}, "Too many hops; the message is looping")
	}
	if r := s.checkHeaderFrom(hi); r != nil {
		abort()
		log.Info("header From not permitted for the login", "ip", s.ip.String(), "user", s.authUser)
		return r
	}
	direction := "in"
	if s.role == RoleOutbound {
		direction = "out"
	}
	env := &queue.Envelope{ID: id, Direction: direction, MailFrom: s.from, Rcpts: append([]string(nil), s.rcpts...),
		RemoteIP: s.ip.String(), Helo: sanitizeHelo(s.conn.helo), AuthUser: s.authUser,
		HeaderFrom: hi.From, Subject: hi.Subject, MessageID: hi.MessageID, SHA256: hex.EncodeToString(sum.Sum(nil)),
		TLSRequest: tlsRequest(s.requireTLS, hi.TLSRequiredNo)}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if insp != nil {
		rej, err := insp.Decide(ctx, env)
		if err != nil {
			w.Abort()
			log.Error("inspection failed", "err", err)
			s.reject("inspection")
			return smtpErr(451, [3]int{4, 3, 0}, "Temporary failure; try again later")
		}
		if rej != nil {
			w.Abort()
			s.reject("policy")
			log.Info("refused by policy", "ip", s.ip.String(), "rcpts", len(env.Rcpts))
			return smtpErr(550, [3]int{5, 7, 1}, rej.Text)
		}
	}
	if err := q.Accept(ctx, env, w); err != nil {
		if errors.Is(err, queue.ErrStorage) {
			log.Error("spool commit failed", "err", err)
			s.reject("storage")
			return smtpErr(452, [3]int{4, 3, 1}, "Insufficient system storage; try again later")
		}
		log.Error("queue commit failed", "err", err)
		s.reject("queue")
		return smtpErr(451, [3]int{4, 3, 0}, "Temporary failure; try again later")
	}
	s.s.metrics.AcceptLatency.WithLabelValues(s.role).Observe(time.Since(start).Seconds())
	s.s.metrics.Accepted.WithLabelValues(s.role).Inc()
	s.s.metrics.AcceptedBytes.WithLabelValues(s.role).Add(float64(w.Size()))
	log.Info("accepted", "ip", s.ip.String(), "rcpts", len(env.Rcpts), "size", w.Size(), "tls", s.isTLS(), "auth", s.authUser != "")
	return smtpErr(250, [3]int{2, 0, 0}, "OK queued as "+id)
}

func (s *session) isTLS() bool { return s.conn.tls }

func (s *session) dataError(log *slog.Logger, err error) *Reply {
	switch {
	case errors.Is(err, errBareLF), errors.Is(err, errBareCR):
		s.reject("bare_newline")
		log.Info("refused message with bare CR or LF", "ip", s.ip.String(), "kind", err.Error())
		return smtpErr(550, [3]int{5, 5, 2}, "Message refused: line endings must be CRLF (bare CR or LF found)")
	case errors.Is(err, errNUL):
		s.reject("nul")
		return smtpErr(550, [3]int{5, 6, 0}, "Message refused: it contains a NUL byte")
	case errors.Is(err, errTooBig):
		s.reject("size")
		return smtpErr(552, [3]int{5, 3, 4}, fmt.Sprintf("Message too big; the limit is %d bytes", s.cfg.SMTP.MaxMessageBytes))
	case errors.Is(err, errLongLine):
		s.reject("long_line")
		return smtpErr(500, [3]int{5, 5, 2}, fmt.Sprintf("Message refused: a line is longer than %d bytes", s.cfg.SMTP.MaxLineLength))
	default:
		// The connection broke or timed out: no reply will be read.
		s.reject("aborted")
		return smtpErr(451, [3]int{4, 4, 2}, "Connection problem while receiving data")
	}
}
