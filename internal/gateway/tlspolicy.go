package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/dns"
	"sealpost/internal/store"
	"sealpost/internal/tlspolicy"
)

// storeSTSCache keeps MTA-STS policies in the store's mtasts_policies
// table, with a short-lived copy in memory: every message asks for its
// domain's policy twice (recipient.tls at accept, the plan at delivery),
// and a database read each time cost about 15 % of the relay's CPU
// (bench/tlsrelay). What this process stores or drops updates the copy at
// once; a change made by another process (`sealpost tls refresh`, another
// node) is seen within memTTL.
type storeSTSCache struct {
	s *store.Store

	mu  sync.Mutex
	mem map[string]stsMemEntry
}

type stsMemEntry struct {
	p  *tlspolicy.CachedPolicy // nil: none cached
	at time.Time
}

const memTTL = time.Minute

func newStoreSTSCache(s *store.Store) *storeSTSCache {
	return &storeSTSCache{s: s, mem: map[string]stsMemEntry{}}
}

func (c *storeSTSCache) Get(ctx context.Context, domain string) (*tlspolicy.CachedPolicy, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.mem[domain]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < memTTL {
		if e.p == nil {
			return nil, nil
		}
		cp := *e.p
		return &cp, nil
	}
	p, err := c.s.MTASTSGet(ctx, domain)
	if err != nil {
		return nil, err // not remembered: the next message asks the store again
	}
	var cp *tlspolicy.CachedPolicy
	if p != nil {
		cp = &tlspolicy.CachedPolicy{Domain: p.Domain, ID: p.ID, Text: p.Policy, FetchedAt: p.FetchedAt, Expires: p.Expires, RefreshAt: p.RefreshAt}
	}
	c.remember(domain, cp, now)
	if cp == nil {
		return nil, nil
	}
	out := *cp
	return &out, nil
}

func (c *storeSTSCache) remember(domain string, p *tlspolicy.CachedPolicy, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.mem) > 10000 {
		clear(c.mem) // bounded: a flood of domains costs store reads, not memory
	}
	c.mem[domain] = stsMemEntry{p: p, at: now}
}

func (c *storeSTSCache) forget(domain string) {
	c.mu.Lock()
	delete(c.mem, domain)
	c.mu.Unlock()
}

func (c *storeSTSCache) Put(ctx context.Context, p tlspolicy.CachedPolicy) error {
	// Written first, forgotten after: a Get in between reads the new row.
	err := c.s.MTASTSPut(ctx, store.MTASTSPolicy{Domain: p.Domain, ID: p.ID, Policy: p.Text, FetchedAt: p.FetchedAt, Expires: p.Expires, RefreshAt: p.RefreshAt})
	c.forget(p.Domain)
	return err
}

func (c *storeSTSCache) Delete(ctx context.Context, domain string) error {
	err := c.s.MTASTSDelete(ctx, domain)
	c.forget(domain)
	return err
}

func (c *storeSTSCache) Due(ctx context.Context, now time.Time) ([]string, error) {
	return c.s.MTASTSDue(ctx, now)
}

// NewTLSPolicy builds the outbound TLS policy from the configuration:
// res answers the DNS (its AD bit believed only with outbound.dnssec_trust,
// see dns.FromConfig), st caches MTA-STS policies (nil: in memory).
func NewTLSPolicy(cfg *config.Config, res dns.Resolver, st *store.Store, roots *x509.CertPool, log *slog.Logger) (*tlspolicy.Evaluator, error) {
	list, err := tlspolicy.ParseDomainList(cfg.Outbound.RequireTLSDomains)
	if err != nil {
		return nil, cfg.KeyError("outbound.require_tls_domains", err.Error())
	}
	e := &tlspolicy.Evaluator{Resolver: res, RequireTLS: list, Log: log}
	if cfg.Outbound.MTASTS {
		var cache tlspolicy.Cache = &tlspolicy.MemCache{}
		if st != nil {
			cache = newStoreSTSCache(st)
		}
		// Policy fetches verify against the system's roots only: outbound.ca_file
		// is for the operator's own next hops, not for other domains' web servers.
		e.STS = &tlspolicy.STS{Resolver: res, HTTP: tlspolicy.NewHTTPClient(nil, tlspolicy.ResolverDial(res, 30*time.Second), 30*time.Second), Cache: cache, Log: log}
	}
	return e, nil
}

// policyResolver is the DNS for the outbound TLS policy: the given one in
// tests, else outbound.resolver.
func policyResolver(cfg *config.Config, res dns.Resolver) (dns.Resolver, error) {
	if res != nil {
		return res, nil
	}
	c, err := dns.FromConfig(cfg.Outbound.Resolver, cfg.Outbound.DNSSECTrust)
	if err != nil {
		return nil, cfg.KeyError("outbound.resolver", err.Error())
	}
	return c, nil
}

// recipientTLS gives the policy recipient.tls: the mode the outbound TLS
// policy would use for a domain now, each domain asked once per message.
// Without a policy (smarthost, dev outbox) every domain is opportunistic:
// the gateway cannot vouch for a hop it does not make.
func (g *Gateway) recipientTLS(ctx context.Context) func(domain string) string {
	if g.tlsPolicy == nil {
		return nil
	}
	seen := map[string]string{}
	return func(domain string) string {
		if m, ok := seen[domain]; ok {
			return m
		}
		// A slow DNS answer must not hold the SMTP session: what is not
		// known in time is opportunistic, the mode that claims nothing.
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		r := g.tlsPolicy.Plan(lctx, domain, false)
		m := string(r.Mode)
		if r.Fail != "" || m == "" {
			m = string(tlspolicy.ModeOpportunistic)
		}
		seen[domain] = m
		return m
	}
}

// tlsCheck is the console's TLS page: the policy for domain now, after
// dropping its cached MTA-STS policy when refresh is set.
func (g *Gateway) tlsCheck(ctx context.Context, domain string, refresh bool) (*tlspolicy.CheckReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if refresh {
		if g.tlsPolicy.STS == nil {
			return nil, errors.New("outbound.mta_sts is false: there is no MTA-STS cache to refresh")
		}
		if err := g.tlsPolicy.STS.Cache.Delete(ctx, domain); err != nil {
			return nil, fmt.Errorf("the cached policy could not be dropped: %v", err)
		}
	}
	rep := g.tlsPolicy.Plan(ctx, domain, false).Report()
	return &rep, nil
}
