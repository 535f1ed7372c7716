package smtpd

import (
	"net"
	"sync"
	"time"

	"sealpost/internal/metrics"
)

// connLimits counts open sessions in all and per client address.
type connLimits struct {
	mu       sync.Mutex
	total    int
	perIP    map[string]int
	maxTotal int
	maxPerIP int
}

func newConnLimits(maxTotal, maxPerIP int) *connLimits {
	return &connLimits{perIP: map[string]int{}, maxTotal: maxTotal, maxPerIP: maxPerIP}
}

func (l *connLimits) acquire(ip string) (ok bool, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal {
		return false, "busy"
	}
	if l.perIP[ip] >= l.maxPerIP {
		return false, "per_ip"
	}
	l.total++
	l.perIP[ip]++
	return true, ""
}

func (l *connLimits) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// limitListener refuses connections over the limits with a 421 reply
// (RFC 5321 §3.8) and gives each accepted one an absolute deadline.
type limitListener struct {
	net.Listener
	limits         *connLimits
	role           string
	metrics        *metrics.Metrics
	sessionTimeout time.Duration
}

func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		if ok, reason := ll.limits.acquire(ip); !ok {
			ll.metrics.SessionsRefused.WithLabelValues(ll.role, reason).Inc()
			go func() {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("421 4.7.0 Too many connections; try again later\r\n"))
				c.Close()
			}()
			continue
		}
		return &limitConn{Conn: c, release: func() { ll.limits.release(ip) }, end: time.Now().Add(ll.sessionTimeout)}, nil
	}
}

// limitConn releases its slot once on Close and never lets a read or write
// deadline run past the session's end.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
	end     time.Time
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func (c *limitConn) cap(t time.Time) time.Time {
	if t.IsZero() || t.After(c.end) {
		return c.end
	}
	return t
}

func (c *limitConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.cap(t)) }
func (c *limitConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.cap(t)) }
func (c *limitConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.cap(t)) }
