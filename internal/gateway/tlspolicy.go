package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/dns"
	"sealpost/internal/store"
	"sealpost/internal/tlspolicy"
)

// storeSTSCache keeps MTA-STS policies in the store's mtasts_policies table.
type storeSTSCache struct{ s *store.Store }

func (c storeSTSCache) Get(ctx context.Context, domain string) (*tlspolicy.CachedPolicy, error) {
	p, err := c.s.MTASTSGet(ctx, domain)
	if p == nil || err != nil {
		return nil, err
	}
	return &tlspolicy.CachedPolicy{Domain: p.Domain, ID: p.ID, Text: p.Policy, FetchedAt: p.FetchedAt, Expires: p.Expires, RefreshAt: p.RefreshAt}, nil
}

func (c storeSTSCache) Put(ctx context.Context, p tlspolicy.CachedPolicy) error {
	return c.s.MTASTSPut(ctx, store.MTASTSPolicy{Domain: p.Domain, ID: p.ID, Policy: p.Text, FetchedAt: p.FetchedAt, Expires: p.Expires, RefreshAt: p.RefreshAt})
}

func (c storeSTSCache) Delete(ctx context.Context, domain string) error {
	return c.s.MTASTSDelete(ctx, domain)
}

func (c storeSTSCache) Due(ctx context.Context, now time.Time) ([]string, error) {
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
			cache = storeSTSCache{st}
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
