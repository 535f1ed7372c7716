package tlspolicy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mjl-/mox/mtasts"

	"sealpost/internal/dns"
	"sealpost/internal/netguard"
)

// CachedPolicy is an MTA-STS policy as kept between deliveries and restarts
// (RFC 8461 §5.1): the raw text, re-parsed on load so that the cache holds
// nothing the parser has not accepted.
type CachedPolicy struct {
	Domain    string
	ID        string // the TXT record's id= when the policy was fetched
	Text      string
	FetchedAt time.Time
	Expires   time.Time // FetchedAt + max_age
	RefreshAt time.Time // a random time before Expires
}

// Cache keeps fetched policies; the gateway's is a store table, tests use
// MemCache. Get returns nil, nil when there is none.
type Cache interface {
	Get(ctx context.Context, domain string) (*CachedPolicy, error)
	Put(ctx context.Context, p CachedPolicy) error
	Delete(ctx context.Context, domain string) error
	// Due lists the domains whose RefreshAt has passed.
	Due(ctx context.Context, now time.Time) ([]string, error)
}

// STSResult is what MTA-STS says for one domain now.
type STSResult struct {
	Policy *mtasts.Policy // nil: no policy applies (none published, mode none, or unusable)
	ID     string
	Text   string
	Cached bool // from the cache, not fetched for this lookup
	// Failure is the RFC 8460 §4.3 result type of a problem met on the way
	// (sts-policy-fetch-error, sts-policy-invalid), for the TLS report; the
	// lookup then falls back to a cached policy or to none.
	Failure string
	Note    string // what happened, for people
}

// STS finds MTA-STS policies (RFC 8461): the TXT record at _mta-sts.DOMAIN,
// then the policy over verified HTTPS, cached until max_age.
type STS struct {
	Resolver dns.Resolver
	HTTP     *http.Client // see NewHTTPClient
	Cache    Cache
	Log      *slog.Logger
	Now      func() time.Time // nil: time.Now

	// memo keeps cached policy texts parsed: every delivery reads the
	// cache, and parsing is most of a Plan's cost. Bounded by memoMax.
	mu   sync.Mutex
	memo map[string]*mtasts.Policy
}

const memoMax = 1000

// parse parses a cached policy text once; the result is never modified.
func (s *STS) parse(text string) (*mtasts.Policy, error) {
	s.mu.Lock()
	p, ok := s.memo[text]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := mtasts.ParsePolicy(text)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.memo == nil || len(s.memo) >= memoMax {
		s.memo = map[string]*mtasts.Policy{}
	}
	s.memo[text] = p
	s.mu.Unlock()
	return p, nil
}

// maxPolicySize bounds a policy body; RFC 8461 §3.2 policies are a few lines.
const maxPolicySize = 64 << 10

// maxAgeCap is the largest max_age RFC 8461 §3.2 allows (about one year).
const maxAgeCap = 31557600

// NewHTTPClient returns the client for policy fetches: certificates verified
// against roots (nil: the system's), no redirects (RFC 8461 §3.3), a timeout.
// dial, when set, replaces the network dialer (tests point it at loopback).
func NewHTTPClient(roots *x509.CertPool, dial func(ctx context.Context, network, addr string) (net.Conn, error), timeout time.Duration) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialContext:           dial,
		Proxy:                 nil, // a proxy would see which domains we mail
		ResponseHeaderTimeout: timeout,
		DisableKeepAlives:     true,
	}
	if dial == nil {
		tr.DialContext = (&net.Dialer{Timeout: timeout}).DialContext
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ResolverDial is a dialer for NewHTTPClient that finds the policy host's
// addresses with res (outbound.resolver, the one the rest of the policy
// asks) rather than the system's, and connects only to public ones: a
// policy host that resolves to a loopback, private, link-local or
// unspecified address is refused (netguard), which Lookup reports as
// sts-policy-fetch-error.
func ResolverDial(res dns.Resolver, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return GuardedDial(res, timeout, nil)
}

// GuardedDial is ResolverDial with allow admitting addresses the guard
// refuses (tests: netguard.AllowLoopback).
func GuardedDial(res dns.Resolver, timeout time.Duration, allow func(netip.Addr) bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return netguard.Dialer{Lookup: LookupFunc(res), Timeout: timeout, Allow: allow}.DialContext
}

// LookupFunc is res's address lookup in the form netguard.Dialer takes.
func LookupFunc(res dns.Resolver) func(ctx context.Context, host string) ([]net.IP, error) {
	return func(ctx context.Context, host string) ([]net.IP, error) {
		ips, _, err := res.LookupIP(ctx, host)
		return ips, err
	}
}

func (s *STS) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// record looks up the STSv1 TXT record; "" with nil error means none.
func (s *STS) record(ctx context.Context, domain string) (string, error) {
	txts, _, err := s.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if dns.IsNotFound(err) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	var ids []string
	for _, txt := range txts {
		rec, isSTS, err := mtasts.ParseRecord(txt)
		if !isSTS {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%w: %v", mtasts.ErrRecordSyntax, err)
		}
		ids = append(ids, rec.ID)
	}
	switch len(ids) {
	case 0:
		return "", nil
	case 1:
		return ids[0], nil
	}
	// RFC 8461 §3.1: more than one record is as if there were none.
	return "", mtasts.ErrMultipleRecords
}

// fetch gets and parses the policy over HTTPS (RFC 8461 §3.3).
func (s *STS) fetch(ctx context.Context, domain string) (*mtasts.Policy, string, error) {
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", mtasts.ErrPolicyFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%w: HTTP status %d from %s", mtasts.ErrPolicyFetch, resp.StatusCode, url)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, "", fmt.Errorf("%w: content type %q, RFC 8461 §3.2 wants text/plain", mtasts.ErrPolicySyntax, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicySize+1))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", mtasts.ErrPolicyFetch, err)
	}
	if len(body) > maxPolicySize {
		return nil, "", fmt.Errorf("%w: policy over %d bytes", mtasts.ErrPolicySyntax, maxPolicySize)
	}
	p, err := mtasts.ParsePolicy(string(body))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", mtasts.ErrPolicySyntax, err)
	}
	return p, string(body), nil
}

func failureOf(err error) string {
	if errors.Is(err, mtasts.ErrPolicySyntax) || errors.Is(err, mtasts.ErrRecordSyntax) || errors.Is(err, mtasts.ErrMultipleRecords) {
		return "sts-policy-invalid"
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return "sts-webpki-invalid"
	}
	return "sts-policy-fetch-error"
}

// fromCache parses a cached policy that has not expired; nil otherwise.
func (s *STS) fromCache(c *CachedPolicy) *mtasts.Policy {
	if c == nil || !s.now().Before(c.Expires) {
		return nil
	}
	p, err := s.parse(c.Text)
	if err != nil {
		return nil
	}
	return p
}

// Lookup returns the MTA-STS policy that applies to domain now (RFC 8461
// §5.1): the cached one while the TXT id is unchanged, else a fresh fetch,
// falling back to a cached unexpired policy when the record or the fetch
// fails. A policy that cannot be parsed is treated as none and reported,
// never as "no MX".
func (s *STS) Lookup(ctx context.Context, domain string) STSResult {
	domain = dns.Normalise(domain)
	cached, cerr := s.Cache.Get(ctx, domain)
	if cerr != nil {
		s.Log.Warn("MTA-STS cache unreadable; fetching", "domain", domain, "err", cerr)
		cached = nil
	}
	cp := s.fromCache(cached)
	useCached := func(r STSResult) STSResult {
		if cp != nil {
			r.Policy, r.ID, r.Text, r.Cached = cp, cached.ID, cached.Text, true
			r.Note += "; using the cached policy id " + cached.ID
		}
		return r.applies()
	}
	id, err := s.record(ctx, domain)
	if err != nil {
		r := STSResult{Note: "MTA-STS record: " + err.Error()}
		if !dns.IsTemporary(err) {
			r.Failure = "sts-policy-invalid"
		}
		return useCached(r)
	}
	if id == "" {
		// RFC 8461 §5.1: without a record a cached unexpired policy still holds.
		return useCached(STSResult{Note: "no MTA-STS record"})
	}
	if cp != nil && cached.ID == id {
		return STSResult{Policy: cp, ID: id, Text: cached.Text, Cached: true, Note: "cached policy id " + id}.applies()
	}
	p, text, err := s.fetch(ctx, domain)
	if err != nil {
		s.Log.Info("MTA-STS policy fetch failed", "domain", domain, "err", err)
		return useCached(STSResult{Failure: failureOf(err), Note: "policy fetch: " + err.Error()})
	}
	s.store(ctx, domain, id, p, text)
	return STSResult{Policy: p, ID: id, Text: text, Note: "fetched policy id " + id}.applies()
}

// applies drops a mode-none policy: it withdraws MTA-STS (RFC 8461 §5).
func (r STSResult) applies() STSResult {
	if r.Policy != nil && r.Policy.Mode == mtasts.ModeNone {
		r.Policy = nil
		r.Note += " (mode none)"
	}
	return r
}

func (s *STS) store(ctx context.Context, domain, id string, p *mtasts.Policy, text string) {
	age := min(max(p.MaxAgeSeconds, 0), maxAgeCap)
	now := s.now()
	ttl := time.Duration(age) * time.Second
	// Refresh at a random point between half and three quarters of the
	// lifetime, so that many gateways do not all ask at once and a failed
	// refresh leaves time to retry before expiry (RFC 8461 §10.2).
	jitter := time.Duration(0)
	if ttl > 0 {
		jitter = time.Duration(rand.Int64N(int64(ttl/4) + 1))
	}
	c := CachedPolicy{Domain: domain, ID: id, Text: text, FetchedAt: now, Expires: now.Add(ttl), RefreshAt: now.Add(ttl/2 + jitter)}
	if err := s.Cache.Put(ctx, c); err != nil {
		s.Log.Warn("MTA-STS policy not cached", "domain", domain, "err", err)
	}
}

// Refresh fetches the policies whose refresh time has come, keeping the
// cached one when the new fetch fails (it stays valid until it expires).
func (s *STS) Refresh(ctx context.Context) {
	domains, err := s.Cache.Due(ctx, s.now())
	if err != nil {
		s.Log.Warn("MTA-STS cache unreadable", "err", err)
		return
	}
	for _, d := range domains {
		id, err := s.record(ctx, d)
		if err != nil || id == "" {
			continue
		}
		if p, text, err := s.fetch(ctx, d); err == nil {
			s.store(ctx, d, id, p, text)
		} else {
			s.Log.Info("MTA-STS refresh failed; cached policy kept", "domain", d, "err", err)
		}
	}
}

// Run refreshes due policies every interval until ctx ends.
func (s *STS) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Refresh(ctx)
		}
	}
}

// MemCache is a Cache in memory, for tests and `tls check` without a store.
type MemCache struct {
	mu sync.Mutex
	m  map[string]CachedPolicy
}

// Get implements Cache.
func (c *MemCache) Get(_ context.Context, domain string) (*CachedPolicy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[domain]
	if !ok {
		return nil, nil
	}
	return &p, nil
}

// Put implements Cache.
func (c *MemCache) Put(_ context.Context, p CachedPolicy) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]CachedPolicy{}
	}
	c.m[p.Domain] = p
	return nil
}

// Delete implements Cache.
func (c *MemCache) Delete(_ context.Context, domain string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, domain)
	return nil
}

// Due implements Cache.
func (c *MemCache) Due(_ context.Context, now time.Time) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for d, p := range c.m {
		if !now.Before(p.RefreshAt) {
			out = append(out, d)
		}
	}
	return out, nil
}

// stsMatches reports whether host is one of the policy's mx patterns
// (RFC 8461 §4.1: "*." stands for exactly one label).
func stsMatches(p *mtasts.Policy, host string) bool {
	host = dns.Normalise(host)
	for _, mx := range p.MX {
		name := mx.Domain.ASCII
		if mx.Wildcard {
			if _, rest, ok := strings.Cut(host, "."); ok && rest == name {
				return true
			}
		} else if host == name {
			return true
		}
	}
	return false
}
