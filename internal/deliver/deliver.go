// Package deliver hands queued messages to the next hop over SMTP.
//
// The algorithm for one delivery (one message, one next hop, some of its
// recipients):
//
//  1. Choose the hosts. The organisation's mail host and a configured
//     smarthost are single fixed hosts. Otherwise the recipient domain's MX
//     records, lowest preference first, equal preferences shuffled
//     (RFC 5321 §5.1); no MX records means the domain itself is the host
//     (implicit MX); a single "." MX (RFC 7505 null MX) means the domain
//     accepts no mail, a permanent failure.
//  2. Take an idle connection to the host from the pool, or connect, read
//     the greeting, send EHLO and, when offered, STARTTLS (opportunistic:
//     any certificate is accepted, since without DANE or MTA-STS nothing
//     tells us which one to expect; "required" refuses a host without TLS).
//     A host that cannot be reached or refuses the session is skipped for
//     the next one (RFC 5321 §4.5.4.1).
//  3. MAIL FROM, RCPT TO per recipient, DATA with the DKIM signature
//     prepended to the spooled message. Replies are kept per recipient.
//  4. After a clean transaction the connection goes back to the pool for the
//     next message to the same host; after any error it is closed.
package deliver

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"sealpost/internal/mailauth"
	"sealpost/internal/queue"
	"sealpost/internal/tlspolicy"
)

// Resolver is the DNS the transport needs; *net.Resolver satisfies it, tests
// use a fake.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// TLS modes.
const (
	TLSOpportunistic = "opportunistic"
	TLSRequired      = "required"
	TLSNone          = "none"
	// TLSVerified requires STARTTLS and a certificate that verifies for
	// the host name (policy action require-tls). It is never set as a
	// transport's mode but asked for per delivery.
	TLSVerified = "verified"
)

// Transport delivers over SMTP. FixedHost, when set, is used for every
// delivery (mail host, smarthost); otherwise MX records are looked up.
type Transport struct {
	Hello          string
	FixedHost      string
	Port           string // port for MX hosts, "25"
	TLSMode        string
	Resolver       Resolver
	Signer         *mailauth.Signer
	SignDomain     func(headerFrom string) string // the d= domain, "" for no signature
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	Log            *slog.Logger
	Pool           *Pool
	// RootCAs verify certificates for TLSVerified deliveries; nil: the
	// system's roots.
	RootCAs *x509.CertPool
	// Policy, when set, decides TLS per MX host (DANE, MTA-STS, the
	// require-TLS list; see internal/tlspolicy) for deliveries without a
	// FixedHost, and its resolver finds the MX hosts and their addresses.
	Policy *tlspolicy.Evaluator
	// DialContext replaces the network dialer (tests map names to loopback).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// hostError is a failure to get a usable session with one host.
type hostError struct {
	text      string
	permanent bool
	tlsFailed bool // the host offered STARTTLS and the handshake failed
	// info is the policy evidence of the failed session (what the
	// handshake showed), nil when there was none.
	info *queue.TLSInfo
}

func (t *Transport) hosts(ctx context.Context, domain string) ([]string, *hostError) {
	if t.FixedHost != "" {
		return []string{t.FixedHost}, nil
	}
	mxs, err := t.Resolver.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	if err != nil && errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		if len(mxs) == 0 {
			// No MX: implicit MX is the domain itself (RFC 5321 §5.1), which
			// the dial will resolve; NXDOMAIN fails there.
			return []string{net.JoinHostPort(domain, t.Port)}, nil
		}
	} else if err != nil {
		return nil, &hostError{text: "451 4.4.3 DNS lookup of MX for " + domain + " failed: " + err.Error()}
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, &hostError{text: "556 5.1.10 " + domain + " accepts no mail (null MX, RFC 7505)", permanent: true}
	}
	if len(mxs) == 0 {
		return []string{net.JoinHostPort(domain, t.Port)}, nil
	}
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	out := make([]string, 0, len(mxs))
	for _, mx := range mxs {
		out = append(out, net.JoinHostPort(strings.TrimSuffix(mx.Host, "."), t.Port))
	}
	return out, nil
}

// Deliver implements queue.Transport.
func (t *Transport) Deliver(ctx context.Context, d *queue.Delivery) queue.Attempt {
	att := queue.Attempt{Rcpts: make([]queue.RcptResult, len(d.Rcpts))}
	failAll := func(text string, permanent bool) queue.Attempt {
		for i := range att.Rcpts {
			att.Rcpts[i] = queue.RcptResult{Text: text, Permanent: permanent}
		}
		return att
	}
	if t.Policy != nil && t.FixedHost == "" {
		return t.deliverPlanned(ctx, d)
	}
	hosts, herr := t.hosts(ctx, d.Domain)
	if herr != nil {
		return failAll(herr.text, herr.permanent)
	}
	sig := t.Signature(ctx, d)
	last := &hostError{text: "451 4.4.0 no host could be reached"}
	for _, host := range hosts {
		if ctx.Err() != nil {
			return failAll("451 4.4.2 delivery interrupted", false)
		}
		res, herr := t.tryHost(ctx, host, nil, d, sig)
		if herr == nil {
			return res
		}
		last = herr
		t.Log.Info("next hop unusable", "msgid", d.Msg.ID, "host", host, "err", herr.text)
		if herr.permanent {
			break
		}
	}
	att.Relay = hosts[len(hosts)-1]
	return failAll(last.text, last.permanent)
}

// smtpText turns a client error into the reply text kept for the
// recipient, and whether it is permanent (a 5xx reply).
// Signature returns the DKIM-Signature header lines for d, or "" when the
// message is not to be signed or cannot be (it is then sent unsigned).
func (t *Transport) Signature(ctx context.Context, d *queue.Delivery) string {
	if t.Signer == nil || t.SignDomain == nil {
		return ""
	}
	dom := t.SignDomain(d.Msg.HeaderFrom)
	if dom == "" {
		return ""
	}
	localpart := d.Msg.HeaderFrom[:strings.LastIndexByte(d.Msg.HeaderFrom, '@')]
	sig, err := t.Signer.Sign(ctx, localpart, dom, d.Body)
	if err != nil {
		t.Log.Warn("DKIM signing failed; sending unsigned", "msgid", d.Msg.ID, "err", err)
		return ""
	}
	return sig
}

// smtpText turns a client error into the reply text kept for the
// recipient, and whether it is permanent (a 5xx reply).
func smtpText(err error) (text string, permanent bool) {
	var re *replyError
	if errors.As(err, &re) {
		return shortErr(re), re.code >= 500
	}
	return "451 4.4.2 " + shortErr(err), false
}

func isReply(err error) bool {
	var re *replyError
	return errors.As(err, &re)
}

// tryHost runs one transaction with host. A hostError means the host could
// not be used at all (try the next one); otherwise the attempt is final for
// this delivery.
func (t *Transport) tryHost(ctx context.Context, host string, hp *tlspolicy.HostPolicy, d *queue.Delivery, sig string) (queue.Attempt, *hostError) {
	mode := t.TLSMode
	if d.RequireTLS {
		mode = TLSVerified
	}
	key := host + "|" + mode
	if hp != nil {
		// The pool is keyed by the policy that verified the session
		// (issue 14): never reuse a session across policies or domains.
		mode = policyMode(hp)
		key = host + "|" + hp.Host + "|" + hp.Key()
	}
	for {
		pc, fresh, herr := t.conn(ctx, host, key, mode, hp)
		if herr != nil {
			return queue.Attempt{}, herr
		}
		att, reusable, stale := t.transaction(pc, d, sig, fresh)
		if stale && !fresh {
			// An idle session the server had closed (it restarted, or timed
			// us out): drop it and take the next, until the pool is empty
			// and a new connection is made.
			pc.c.conn.Close()
			continue
		}
		att.Relay, att.TLS, att.TLSInfo = host, pc.tls, pc.tlsInfo
		if reusable {
			t.Pool.put(key, pc)
		} else {
			pc.c.conn.Close()
		}
		return att, nil
	}
}

func (t *Transport) transaction(pc *pooledConn, d *queue.Delivery, sig string, fresh bool) (att queue.Attempt, reusable, stale bool) {
	att.Rcpts = make([]queue.RcptResult, len(d.Rcpts))
	replies, err := pc.c.send(d.Msg.MailFrom, d.Rcpts, sig, io.NewSectionReader(d.Body, 0, d.Size), d.Size+int64(len(sig)))
	if err != nil {
		if !isReply(err) && !fresh && replies == nil {
			// The first write on an idle pooled session failed: the server
			// had closed it. Try once more on a new one.
			return att, false, true
		}
		text, perm := smtpText(err)
		for i := range att.Rcpts {
			if replies != nil && replies[i].err != nil {
				t, p := smtpText(replies[i].err)
				att.Rcpts[i] = queue.RcptResult{Text: t, Permanent: p}
				continue
			}
			att.Rcpts[i] = queue.RcptResult{Text: text, Permanent: perm}
		}
		return att, isReply(err), false
	}
	for i, r := range replies {
		if r.ok {
			att.Rcpts[i] = queue.RcptResult{OK: true, Text: "250 accepted"}
		} else {
			text, perm := smtpText(r.err)
			att.Rcpts[i] = queue.RcptResult{Text: text, Permanent: perm}
		}
	}
	return att, true, false
}

type pooledConn struct {
	c       *client
	tls     string
	tlsInfo *queue.TLSInfo
	idleAt  time.Time
}

// conn returns a pooled or new session with host; fresh is true for a new one.
func (t *Transport) conn(ctx context.Context, host, key, mode string, hp *tlspolicy.HostPolicy) (*pooledConn, bool, *hostError) {
	if pc := t.Pool.get(key); pc != nil {
		return pc, false, nil
	}
	pc, herr := t.dial(ctx, host, mode, hp)
	if herr != nil && herr.tlsFailed && mode == TLSOpportunistic {
		// Opportunistic TLS (RFC 7435): a host that offers STARTTLS but
		// cannot complete it still gets the mail, in clear, as it would
		// have without the offer. Required TLS never falls back.
		t.Log.Info("STARTTLS failed; delivering without TLS", "host", host, "err", herr.text)
		failed := herr.info
		var clear *pooledConn
		clear, herr = t.dial(ctx, host, TLSNone, hp)
		if clear != nil && failed != nil {
			// Keep what the failed handshake showed, for the TLS report.
			info := *failed
			info.Version, info.Cipher = "", ""
			clear.tlsInfo = &info
		}
		pc = clear
	}
	return pc, true, herr
}

func (t *Transport) dial(ctx context.Context, host, tlsMode string, hp *tlspolicy.HostPolicy) (*pooledConn, *hostError) {
	dial := (&net.Dialer{Timeout: t.ConnectTimeout}).DialContext
	if t.DialContext != nil {
		dial = t.DialContext
	}
	dctx, cancel := ctx, context.CancelFunc(func() {})
	if t.ConnectTimeout > 0 {
		dctx, cancel = context.WithTimeout(ctx, t.ConnectTimeout)
	}
	conn, err := dial(dctx, "tcp", host)
	cancel()
	if err != nil {
		return nil, &hostError{text: "451 4.4.1 cannot connect to " + host + ": " + shortErr(err)}
	}
	if hp != nil {
		return t.dialPolicy(conn, host, tlsMode, hp)
	}
	hostname, _, _ := net.SplitHostPort(host)
	c := newClient(conn, t.CommandTimeout)
	if err := c.greet(t.Hello); err != nil {
		conn.Close()
		text, _ := smtpText(err)
		return nil, &hostError{text: text}
	}
	pc := &pooledConn{c: c}
	if tlsMode != TLSNone {
		if c.has("STARTTLS") {
			cfg := &tls.Config{ServerName: hostname, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
			if tlsMode == TLSVerified {
				cfg = &tls.Config{ServerName: hostname, RootCAs: t.RootCAs, MinVersion: tls.VersionTLS12}
			}
			st, err := c.startTLS(cfg, t.Hello)
			if err != nil {
				conn.Close()
				return nil, &hostError{text: "451 4.7.5 STARTTLS with " + host + " failed: " + shortErr(err), tlsFailed: true}
			}
			pc.tls = tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
			pc.tlsInfo = t.tlsEvidence(st, hostname, tlsMode == TLSVerified)
		} else if tlsMode == TLSRequired || tlsMode == TLSVerified {
			c.quit()
			return nil, &hostError{text: "451 4.7.4 " + host + " does not offer STARTTLS and TLS is required"}
		}
	}
	return pc, nil
}

// tlsEvidence is what the audit log keeps of a session's TLS: version,
// cipher, the leaf certificate's SHA-256, and whether the certificate
// verifies for the host. Opportunistic TLS accepts any certificate (RFC
// 7435), so there it is checked only to be recorded.
func (t *Transport) tlsEvidence(st tls.ConnectionState, hostname string, verified bool) *queue.TLSInfo {
	info := &queue.TLSInfo{Version: tls.VersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite), Verified: verified}
	if len(st.PeerCertificates) == 0 {
		return info
	}
	leaf := st.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	info.PeerCertSHA256 = hex.EncodeToString(sum[:])
	if !verified {
		inter := x509.NewCertPool()
		for _, c := range st.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: hostname, Roots: t.RootCAs, Intermediates: inter})
		info.Verified = err == nil
	}
	return info
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Pool keeps idle SMTP sessions per host for reuse.
type Pool struct {
	mu      sync.Mutex
	idle    map[string][]*pooledConn
	maxIdle int
	timeout time.Duration
	stop    chan struct{}
}

// NewPool returns a pool keeping at most maxIdle sessions per host, each for
// at most idleTimeout. Close it to quit the idle sessions.
func NewPool(maxIdle int, idleTimeout time.Duration) *Pool {
	p := &Pool{idle: map[string][]*pooledConn{}, maxIdle: maxIdle, timeout: idleTimeout, stop: make(chan struct{})}
	go p.janitor()
	return p
}

func (p *Pool) get(host string) *pooledConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[host]
	for len(l) > 0 {
		pc := l[len(l)-1]
		l = l[:len(l)-1]
		p.idle[host] = l
		if time.Since(pc.idleAt) < p.timeout {
			return pc
		}
		go pc.c.conn.Close()
	}
	return nil
}

func (p *Pool) put(host string, pc *pooledConn) {
	pc.idleAt = time.Now()
	p.mu.Lock()
	if len(p.idle[host]) < p.maxIdle {
		p.idle[host] = append(p.idle[host], pc)
		pc = nil
	}
	p.mu.Unlock()
	if pc != nil {
		pc.quit()
	}
}

func (pc *pooledConn) quit() { pc.c.quit() }

func (p *Pool) janitor() {
	t := time.NewTicker(p.timeout / 2)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		var old []*pooledConn
		p.mu.Lock()
		for h, l := range p.idle {
			keep := l[:0]
			for _, pc := range l {
				if time.Since(pc.idleAt) >= p.timeout {
					old = append(old, pc)
				} else {
					keep = append(keep, pc)
				}
			}
			p.idle[h] = keep
		}
		p.mu.Unlock()
		for _, pc := range old {
			pc.quit()
		}
	}
}

// Close quits every idle session.
func (p *Pool) Close() {
	close(p.stop)
	p.mu.Lock()
	all := p.idle
	p.idle = map[string][]*pooledConn{}
	p.mu.Unlock()
	for _, l := range all {
		for _, pc := range l {
			pc.quit()
		}
	}
}
