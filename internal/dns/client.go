package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Servers are recursive resolvers as "host:port", asked in order.
	Servers []string
	// TrustAD: believe the resolver's AD bit (RFC 4035 §3.2.3). Only a
	// validating resolver reached over a trusted path (loopback, or a
	// network the operator controls) may be trusted; RFC 6698 §4.1 and
	// RFC 7672 §2.2 make DANE depend on it. Off, every answer is treated as
	// unauthenticated, whatever the resolver says.
	TrustAD bool
	// Timeout per query and server (default 5 s).
	Timeout time.Duration
	// MaxEntries bounds the cache (default 10000).
	MaxEntries int
}

// Client is a Resolver over recursive DNS servers. It sets DO and AD in
// queries (RFC 6840 §5.7), retries over TCP when an answer is truncated,
// follows CNAME chains within the answer, and caches answers, negative
// answers included (RFC 2308), for their TTL. Temporary failures are not
// cached beyond a few seconds, so an outage does not outlast itself.
type Client struct {
	cfg   ClientConfig
	udp   *mdns.Client
	tcp   *mdns.Client
	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
	now   func() time.Time
}

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	rrs     []mdns.RR
	auth    bool
	err     error
	expires time.Time
}

const (
	maxTTL      = time.Hour
	negTTLCap   = 5 * time.Minute
	tempFailTTL = 2 * time.Second
	maxCNAME    = 8
)

var _ Resolver = (*Client)(nil)

// NewClient returns a Client asking cfg.Servers.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 10000
	}
	return &Client{
		cfg:   cfg,
		udp:   &mdns.Client{Net: "udp", Timeout: cfg.Timeout, UDPSize: 1232},
		tcp:   &mdns.Client{Net: "tcp", Timeout: cfg.Timeout},
		cache: map[cacheKey]cacheEntry{},
		now:   time.Now,
	}
}

// FromConfig builds the Client for outbound.resolver: "" means the
// servers of /etc/resolv.conf; otherwise one "host:port".
func FromConfig(server string, trustAD bool) (*Client, error) {
	var servers []string
	if server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			return nil, fmt.Errorf("resolver %q: want host:port: %v", server, err)
		}
		servers = []string{server}
	} else {
		rc, err := mdns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("reading /etc/resolv.conf: %v", err)
		}
		for _, s := range rc.Servers {
			servers = append(servers, net.JoinHostPort(s, rc.Port))
		}
		if len(servers) == 0 {
			return nil, errors.New("/etc/resolv.conf names no nameserver")
		}
	}
	return NewClient(ClientConfig{Servers: servers, TrustAD: trustAD}), nil
}

// LookupTXT implements Resolver; each record's strings are joined (RFC 7208 §3.3).
func (c *Client) LookupTXT(ctx context.Context, name string) ([]string, Result, error) {
	rrs, res, err := c.lookup(ctx, name, mdns.TypeTXT)
	if err != nil {
		return nil, res, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*mdns.TXT).Txt, ""))
	}
	return out, res, nil
}

// LookupMX implements Resolver. Records come in answer order; callers sort.
func (c *Client) LookupMX(ctx context.Context, name string) ([]MX, Result, error) {
	rrs, res, err := c.lookup(ctx, name, mdns.TypeMX)
	if err != nil {
		return nil, res, err
	}
	out := make([]MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*mdns.MX)
		out = append(out, MX{Host: Normalise(mx.Mx), Pref: mx.Preference})
	}
	return out, res, nil
}

// LookupIP implements Resolver: A and AAAA. The result is authentic only
// when both answers are; it is "not found" only when both are.
func (c *Client) LookupIP(ctx context.Context, host string) ([]net.IP, Result, error) {
	var ips []net.IP
	res := Result{Authentic: true}
	var errs []error
	for _, t := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
		rrs, r, err := c.lookup(ctx, host, t)
		res.Authentic = res.Authentic && r.Authentic
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range rrs {
			switch v := rr.(type) {
			case *mdns.A:
				ips = append(ips, v.A)
			case *mdns.AAAA:
				ips = append(ips, v.AAAA)
			}
		}
	}
	if len(ips) > 0 {
		return ips, res, nil
	}
	for _, err := range errs {
		if !IsNotFound(err) {
			return nil, res, err
		}
	}
	return nil, res, errs[0]
}

// LookupTLSA implements Resolver for _port._proto.host (RFC 6698 §3).
func (c *Client) LookupTLSA(ctx context.Context, port int, proto, host string) ([]TLSA, Result, error) {
	name := "_" + strconv.Itoa(port) + "._" + proto + "." + Normalise(host)
	rrs, res, err := c.lookup(ctx, name, mdns.TypeTLSA)
	if err != nil {
		return nil, res, err
	}
	out := make([]TLSA, 0, len(rrs))
	for _, rr := range rrs {
		t := rr.(*mdns.TLSA)
		assoc, derr := decodeHex(t.Certificate)
		if derr != nil {
			return nil, res, &Error{Kind: ErrPermanent, Name: name, Type: "TLSA", Err: derr}
		}
		out = append(out, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, CertAssoc: assoc})
	}
	return out, res, nil
}

func decodeHex(s string) ([]byte, error) {
	if len(s)%2 != 0 {
		return nil, errors.New("odd-length certificate association data")
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("certificate association data: %v", err)
		}
		out[i] = byte(v)
	}
	return out, nil
}

// lookup answers one question from the cache or the servers.
func (c *Client) lookup(ctx context.Context, name string, qtype uint16) ([]mdns.RR, Result, error) {
	name = Normalise(name)
	key := cacheKey{name, qtype}
	now := c.now()
	c.mu.Lock()
	e, ok := c.cache[key]
	if ok && now.After(e.expires) {
		delete(c.cache, key)
		ok = false
	}
	c.mu.Unlock()
	if ok {
		return e.rrs, Result{Authentic: e.auth}, e.err
	}
	rrs, auth, ttl, err := c.resolve(ctx, name, qtype)
	if ctx.Err() == nil {
		c.store(key, cacheEntry{rrs: rrs, auth: auth, err: err, expires: now.Add(ttl)})
	}
	return rrs, Result{Authentic: auth}, err
}

func (c *Client) store(key cacheKey, e cacheEntry) {
	if !e.expires.After(c.now()) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cache) >= c.cfg.MaxEntries {
		now := c.now()
		for k, v := range c.cache {
			if now.After(v.expires) {
				delete(c.cache, k)
			}
		}
		// Still full: drop an arbitrary half rather than grow without bound.
		if len(c.cache) >= c.cfg.MaxEntries {
			n := 0
			for k := range c.cache {
				delete(c.cache, k)
				if n++; n >= c.cfg.MaxEntries/2 {
					break
				}
			}
		}
	}
	c.cache[key] = e
}

// resolve asks the servers in turn; a server that times out or fails is
// skipped, a definite answer (records, NXDOMAIN, NODATA) is final.
func (c *Client) resolve(ctx context.Context, name string, qtype uint16) ([]mdns.RR, bool, time.Duration, error) {
	typ := mdns.TypeToString[qtype]
	if len(c.cfg.Servers) == 0 {
		return nil, false, 0, &Error{Kind: ErrTemporary, Name: name, Type: typ, Err: errors.New("no resolver configured")}
	}
	var last error
	for _, server := range c.cfg.Servers {
		m, err := c.exchange(ctx, server, name, qtype)
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		auth := c.cfg.TrustAD && m.AuthenticatedData
		switch m.Rcode {
		case mdns.RcodeSuccess:
			rrs, ttl, chainErr := answers(m, name, qtype)
			if chainErr != nil {
				return nil, false, tempFailTTL, &Error{Kind: ErrPermanent, Name: name, Type: typ, Err: chainErr}
			}
			if len(rrs) == 0 {
				return nil, auth, negativeTTL(m), &Error{Kind: ErrNotFound, Name: name, Type: typ}
			}
			return rrs, auth, ttl, nil
		case mdns.RcodeNameError:
			return nil, auth, negativeTTL(m), &Error{Kind: ErrNotFound, Name: name, Type: typ, NXDom: true}
		case mdns.RcodeFormatError, mdns.RcodeNotImplemented:
			last = &Error{Kind: ErrPermanent, Name: name, Type: typ, Err: fmt.Errorf("server %s answered %s", server, mdns.RcodeToString[m.Rcode])}
		default: // SERVFAIL, REFUSED and the rest: try another server, else later.
			last = &Error{Kind: ErrTemporary, Name: name, Type: typ, Err: fmt.Errorf("server %s answered %s", server, mdns.RcodeToString[m.Rcode])}
		}
	}
	var de *Error
	if errors.As(last, &de) {
		return nil, false, tempFailTTL, last
	}
	return nil, false, tempFailTTL, &Error{Kind: ErrTemporary, Name: name, Type: typ, Err: last}
}

func (c *Client) exchange(ctx context.Context, server, name string, qtype uint16) (*mdns.Msg, error) {
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(name), qtype)
	q.RecursionDesired = true
	q.AuthenticatedData = true
	q.SetEdns0(1232, true)
	m, _, err := c.udp.ExchangeContext(ctx, q, server)
	if err == nil && m.Truncated {
		m, _, err = c.tcp.ExchangeContext(ctx, q, server)
	}
	if err != nil {
		return nil, err
	}
	if m.Id != q.Id {
		return nil, errors.New("answer does not match the query")
	}
	return m, nil
}

// answers picks the records of qtype owned by name or by the end of its
// CNAME chain in the answer section, and the smallest TTL among them.
func answers(m *mdns.Msg, name string, qtype uint16) ([]mdns.RR, time.Duration, error) {
	owner := name
	ttl := uint32(maxTTL / time.Second)
	for range maxCNAME {
		var out []mdns.RR
		var next string
		for _, rr := range m.Answer {
			h := rr.Header()
			if Normalise(h.Name) != owner {
				continue
			}
			if h.Rrtype == qtype {
				out = append(out, rr)
				ttl = min(ttl, h.Ttl)
			} else if cn, ok := rr.(*mdns.CNAME); ok && qtype != mdns.TypeCNAME {
				next = Normalise(cn.Target)
				ttl = min(ttl, h.Ttl)
			}
		}
		if len(out) > 0 || next == "" {
			return out, time.Duration(ttl) * time.Second, nil
		}
		owner = next
	}
	return nil, 0, errors.New("CNAME chain too long")
}

// negativeTTL is the SOA minimum of the authority section (RFC 2308 §5),
// capped; without one, a short default.
func negativeTTL(m *mdns.Msg) time.Duration {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*mdns.SOA); ok {
			return min(time.Duration(min(soa.Minttl, soa.Hdr.Ttl))*time.Second, negTTLCap)
		}
	}
	return 30 * time.Second
}
