// Package smtpd runs sealpost's SMTP listeners: the protocol, and nothing
// of what the gateway decides about a message.
//
// smtpd owns the wire (RFC 5321): command syntax, the command sequence,
// pipelining (RFC 2920), STARTTLS (RFC 3207), the AUTH exchange (RFC
// 4954), the strict DATA stream (CRLF only; see dataReader) and the limits
// of a session (sessions per address and in all, recipients per message,
// line length, message size, time per command and per session). What a
// sender may do, where a recipient may go and what becomes of the message
// is the Backend's: it gives a Session per connection, and each of the
// Session's methods answers with a *Reply. smtpd imports neither the
// queue, the store nor the configuration (a test checks): its settings
// come as Options.
//
// The DATA stream goes to Session.Data as it arrives: a message is never
// held whole in memory, and the backend answers 250 only once the message
// is durable.
package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"sealpost/internal/metrics"
)

// Roles of a listener: the labels of its metrics and what the backend is
// told in ConnInfo.
const (
	RoleInbound  = "inbound"
	RoleOutbound = "outbound"
)

// Options are the protocol settings of a Server. MaxSessions and
// MaxSessionsPerIP apply from New; the rest may change with SetOptions.
type Options struct {
	Hostname string // in the greeting, EHLO and Received
	Banner   string // added to the greeting ("" for none)

	MaxMessageBytes  int64
	MaxLineLength    int
	MaxRecipients    int
	MaxSessions      int
	MaxSessionsPerIP int
	CommandTimeout   time.Duration // per command (RFC 5321 §4.5.3.2.7: 5 minutes)
	DataTimeout      time.Duration // per read during DATA (§4.5.3.2.5: 3 minutes)
	SessionTimeout   time.Duration // for the whole connection

	// PostmasterDomain completes a bare "postmaster" recipient (RFC 5321
	// §4.5.1: it must be accepted); "" leaves it as it is (and refused as
	// not an address).
	PostmasterDomain string
}

// ConnInfo is what smtpd knows of a connection. smtpd updates Helo, TLS
// and AuthUser as the session goes on; the backend reads them in its
// Session's calls (the same goroutine), never elsewhere.
type ConnInfo struct {
	Role     string
	RemoteIP netip.Addr
	Helo     string               // as the client sent it; see SanitizeHelo
	TLS      *tls.ConnectionState // nil before STARTTLS
	AuthUser string               // after a successful AUTH
}

// MailOptions are the MAIL FROM parameters smtpd accepted (RFC 5321
// §4.1.1.11: only those of advertised extensions).
type MailOptions struct {
	Size     int64 // SIZE (RFC 1870); 0 when not given
	Body     string
	SMTPUTF8 bool
}

// Backend gives a Session for every connection.
type Backend interface {
	NewSession(c *ConnInfo) Session
}

// Session is the backend's side of one SMTP connection. A method returns
// nil to accept (smtpd sends its named 250) or a Reply to send instead;
// smtpd never changes a backend's answer.
type Session interface {
	// Mail starts a transaction (MAIL FROM; "" is the null path).
	Mail(from string, opts MailOptions) *Reply
	// Rcpt adds a recipient whose syntax smtpd has checked.
	Rcpt(to string) *Reply
	// Data reads the message (dot-unstuffed, strict CRLF) and answers the
	// end of data: 250 only once the message is durable. A read error means
	// the data was refused or the connection broke: Data discards what it
	// has and returns nil, and smtpd answers.
	Data(r io.Reader) *Reply
	// Reset ends the transaction (RSET, EHLO, STARTTLS, after DATA).
	Reset()
	// Logout ends the session; called once.
	Logout()
}

// AuthSession is a Session that offers SMTP AUTH (RFC 4954). smtpd offers
// it over TLS only, and only on sessions that implement it.
type AuthSession interface {
	Session
	// Auth checks a user name and password; nil means authenticated.
	Auth(user, pass string) *Reply
}

// Server owns the listeners.
type Server struct {
	opts    atomic.Pointer[Options]
	backend Backend
	metrics *metrics.Metrics
	log     *slog.Logger
	tls     *tls.Config

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*conn]struct{}
	closing   bool
	wg        sync.WaitGroup
	limits    *connLimits
}

// New returns a server. tlsConfig may be nil (no STARTTLS, and so no AUTH).
func New(opts Options, b Backend, tlsConfig *tls.Config, m *metrics.Metrics, log *slog.Logger) *Server {
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
		tlsConfig.MinVersion = tls.VersionTLS12
	}
	s := &Server{backend: b, metrics: m, log: log, tls: tlsConfig, conns: map[*conn]struct{}{}}
	s.opts.Store(&opts)
	s.limits = newConnLimits(opts.MaxSessions, opts.MaxSessionsPerIP)
	return s
}

// SetOptions replaces the options for new commands (SIGHUP). Listen
// addresses and limits applied at connection level keep their values until
// restart.
func (s *Server) SetOptions(o Options) { s.opts.Store(&o) }

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
	opts := s.opts.Load()
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	ll := &limitListener{Listener: l, limits: s.limits, role: role, metrics: s.metrics, sessionTimeout: opts.SessionTimeout}
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
	ip := netip.Addr{}
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
		ip = ip.Unmap()
	}
	s.metrics.Sessions.WithLabelValues(role).Inc()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Write([]byte("421 4.3.2 Shutting down; try again later\r\n"))
		nc.Close()
		return
	}
	s.metrics.SessionsActive.WithLabelValues(role).Inc()
	c := s.newConn(role, nc, &ConnInfo{Role: role, RemoteIP: ip})
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer s.metrics.SessionsActive.WithLabelValues(role).Dec()
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("SMTP session failed", "role", role, "panic", fmt.Sprint(p))
				nc.Close()
			}
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
		c.sess = s.backend.NewSession(c.info)
		c.serve()
	}()
}

// newConn sets up the protocol state of one connection.
func (s *Server) newConn(role string, nc net.Conn, info *ConnInfo) *conn {
	o := s.opts.Load()
	c := &conn{srv: s, nc: nc, role: role, info: info, opts: o}
	c.br = bufio.NewReaderSize(nc, max(o.MaxLineLength+2, maxCommandLine+2))
	c.bw = bufio.NewWriterSize(nc, 4096)
	return c
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

// Received returns the Received field (RFC 5321 §4.4) for a message with
// id accepted on c for rcpts, as the first line of what is spooled.
func Received(c *ConnInfo, hostname, id string, rcpts []string, now time.Time) string {
	proto := "ESMTP"
	tlsInfo := ""
	if c.TLS != nil {
		proto = "ESMTPS"
		tlsInfo = fmt.Sprintf(" (using %s with cipher %s)", tls.VersionName(c.TLS.Version), tls.CipherSuiteName(c.TLS.CipherSuite))
	}
	if c.AuthUser != "" {
		proto += "A" // RFC 3848
	}
	forClause := ""
	if len(rcpts) == 1 {
		forClause = "\r\n\tfor <" + rcpts[0] + ">"
	}
	return fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s with %s id %s%s%s;\r\n\t%s\r\n",
		SanitizeHelo(c.Helo), c.RemoteIP, hostname, proto, id, tlsInfo, forClause, now.Format(time.RFC1123Z))
}
