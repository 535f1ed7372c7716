// Package moxdns adapts sealpost's dns.Resolver to the resolver interface
// of mox's protocol packages (spf, dkim), so that those packages ask our
// one resolver (outbound.resolver, its cache, the mock in tests) and never
// the system's. Errors are translated so that mox tells "no such record"
// from "try later" exactly as our resolver classified them: SPF's void
// lookup limit (RFC 7208 §4.6.4) and temperror depend on the difference.
package moxdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/mjl-/adns"
	mdns "github.com/mjl-/mox/dns"

	"sealpost/internal/dns"
)

// PTRResolver is implemented by resolvers that can answer reverse (PTR)
// lookups. SPF's ptr mechanism and %{p} macro need them (RFC 7208 §5.5,
// §7.3); with a resolver that cannot, the reverse lookup is answered "no
// such record", so ptr never matches (the outcome RFC 7208 §5.5 advises
// publishers to expect: "ptr" SHOULD NOT be used).
type PTRResolver interface {
	LookupPTR(ctx context.Context, ip string) ([]string, dns.Result, error)
}

// Adapt returns r as a mox resolver.
func Adapt(r dns.Resolver) mdns.Resolver { return resolver{r} }

type resolver struct{ r dns.Resolver }

var _ mdns.Resolver = resolver{}

func res(r dns.Result) adns.Result { return adns.Result{Authentic: r.Authentic} }

// convert turns our classified error into the net.DNSError mox inspects
// (mox's dns.IsNotFound). Anything not classified as "not found" is
// temporary unless it is explicitly permanent: failing open on an
// unknown error would turn a broken resolver into "no policy".
func convert(err error, name string) error {
	if err == nil {
		return nil
	}
	de := &net.DNSError{Err: err.Error(), Name: name}
	switch {
	case dns.IsNotFound(err):
		de.IsNotFound = true
	case errors.Is(err, dns.ErrPermanent):
	case errors.Is(err, context.DeadlineExceeded):
		de.IsTimeout, de.IsTemporary = true, true
	default:
		de.IsTemporary = true
	}
	return de
}

func notFound(name, typ string) error {
	return &net.DNSError{Err: "no " + typ + " record", Name: name, IsNotFound: true}
}

func trim(name string) string { return strings.TrimSuffix(name, ".") }

func (a resolver) LookupTXT(ctx context.Context, name string) ([]string, adns.Result, error) {
	txt, r, err := a.r.LookupTXT(ctx, trim(name))
	return txt, res(r), convert(err, name)
}

func (a resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, adns.Result, error) {
	mx, r, err := a.r.LookupMX(ctx, trim(name))
	if err != nil {
		return nil, res(r), convert(err, name)
	}
	out := make([]*net.MX, 0, len(mx))
	for _, m := range mx {
		out = append(out, &net.MX{Host: m.Host + ".", Pref: m.Pref})
	}
	return out, res(r), nil
}

// LookupIP answers network "ip", "ip4" or "ip6". Our resolver returns both
// families at once; an empty family is NODATA ("not found"), as a DNS
// server would answer an A or AAAA query.
func (a resolver) LookupIP(ctx context.Context, network, host string) ([]net.IP, adns.Result, error) {
	ips, r, err := a.r.LookupIP(ctx, trim(host))
	if err != nil {
		return nil, res(r), convert(err, host)
	}
	var out []net.IP
	for _, ip := range ips {
		is4 := ip.To4() != nil
		if network == "ip" || network == "ip4" && is4 || network == "ip6" && !is4 {
			out = append(out, ip)
		}
	}
	if len(out) == 0 {
		return nil, res(r), notFound(host, network)
	}
	return out, res(r), nil
}

func (a resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, adns.Result, error) {
	ips, r, err := a.LookupIP(ctx, "ip", host)
	out := make([]net.IPAddr, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.IPAddr{IP: ip})
	}
	return out, r, err
}

func (a resolver) LookupHost(ctx context.Context, host string) ([]string, adns.Result, error) {
	ips, r, err := a.LookupIP(ctx, "ip", host)
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out, r, err
}

func (a resolver) LookupAddr(ctx context.Context, addr string) ([]string, adns.Result, error) {
	p, ok := a.r.(PTRResolver)
	if !ok {
		return nil, adns.Result{}, notFound(addr, "PTR")
	}
	names, r, err := p.LookupPTR(ctx, addr)
	if err != nil {
		return nil, res(r), convert(err, addr)
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, trim(n)+".")
	}
	return out, res(r), nil
}

func (a resolver) LookupTLSA(ctx context.Context, port int, protocol, host string) ([]adns.TLSA, adns.Result, error) {
	ts, r, err := a.r.LookupTLSA(ctx, port, protocol, trim(host))
	if err != nil {
		return nil, res(r), convert(err, host)
	}
	out := make([]adns.TLSA, 0, len(ts))
	for _, t := range ts {
		out = append(out, adns.TLSA{Usage: adns.TLSAUsage(t.Usage), Selector: adns.TLSASelector(t.Selector),
			MatchType: adns.TLSAMatchType(t.MatchingType), CertAssoc: t.CertAssoc})
	}
	return out, res(r), nil
}

// The lookups below are not used by spf or dkim; they answer plainly
// rather than reach the system resolver behind our back.
var errUnsupported = errors.New("moxdns: lookup type not supported by sealpost's resolver")

func (a resolver) LookupPort(context.Context, string, string) (int, error) { return 0, errUnsupported }

func (a resolver) LookupCNAME(_ context.Context, host string) (string, adns.Result, error) {
	return "", adns.Result{}, notFound(host, "CNAME")
}

func (a resolver) LookupNS(_ context.Context, name string) ([]*net.NS, adns.Result, error) {
	return nil, adns.Result{}, fmt.Errorf("NS %s: %w", name, errUnsupported)
}

func (a resolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, adns.Result, error) {
	return "", nil, adns.Result{}, fmt.Errorf("SRV %s: %w", name, errUnsupported)
}
