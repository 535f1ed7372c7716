// Package spf checks the SMTP client's authorisation to use a domain
// (RFC 7208) with mox's spf package, asking sealpost's resolver. It gives
// the result, the identity checked and why, in our own types, so callers
// do not depend on mox. It knows nothing of store, queue or gateway.
package spf

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/mjl-/adns"
	mdns "github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/smtp"
	mspf "github.com/mjl-/mox/spf"

	"sealpost/internal/dns"
	"sealpost/internal/mailauth/moxdns"
)

// Status is an SPF result (RFC 7208 §2.6).
type Status string

// Results of check_host (RFC 7208 §2.6).
const (
	None      Status = "none"
	Neutral   Status = "neutral"
	Pass      Status = "pass"
	Fail      Status = "fail"
	Softfail  Status = "softfail"
	Temperror Status = "temperror"
	Permerror Status = "permerror"
)

// Result is the outcome of one check.
type Result struct {
	Status Status `json:"status"`
	// Identity is "mailfrom", or "helo" when MAIL FROM was empty (the
	// null reverse path, RFC 7208 §2.4).
	Identity string `json:"identity,omitempty"`
	// Domain is the domain checked (for DMARC alignment, RFC 9989 §4.6).
	Domain string `json:"domain,omitempty"`
	// Sender is the <sender> of check_host: MAIL FROM, or postmaster@HELO.
	Sender string `json:"sender,omitempty"`
	// Mechanism is the directive that matched ("-all", "ip4:192.0.2.0/24").
	Mechanism   string `json:"mechanism,omitempty"`
	Explanation string `json:"explanation,omitempty"` // exp= text on fail
	Reason      string `json:"reason"`
}

// Verifier checks SPF.
type Verifier struct {
	Resolver dns.Resolver
	// Hostname is ours, for the %{r} macro (RFC 7208 §7.3).
	Hostname string
	Log      *slog.Logger
}

// Verify runs check_host for the client at ip: for MAIL FROM's domain, or
// for HELO's when MAIL FROM is empty (RFC 7208 §2.4). A MAIL FROM or HELO
// that is not a valid domain is "none" (RFC 7208 §4.3).
func (v *Verifier) Verify(ctx context.Context, ip net.IP, helo, mailFrom string) Result {
	args := mspf.Args{RemoteIP: ip}
	if h, err := mdns.ParseDomain(dns.Normalise(v.Hostname)); err == nil {
		args.LocalHostname = h
	}
	helo = strings.TrimSuffix(helo, ".")
	if strings.HasPrefix(helo, "[") && strings.HasSuffix(helo, "]") {
		lit := strings.TrimPrefix(strings.Trim(helo, "[]"), "IPv6:")
		args.HelloDomain = mdns.IPDomain{IP: net.ParseIP(lit)}
	} else if d, err := mdns.ParseDomain(helo); err == nil && helo != "" {
		args.HelloDomain = mdns.IPDomain{Domain: d}
	}
	if mailFrom != "" {
		i := strings.LastIndexByte(mailFrom, '@')
		if i < 0 {
			return Result{Status: None, Identity: "mailfrom", Sender: mailFrom, Reason: "MAIL FROM has no domain"}
		}
		lp, dom := mailFrom[:i], mailFrom[i+1:]
		d, err := mdns.ParseDomain(dom)
		if err != nil || !strings.Contains(dom, ".") || hasEmptyLabel(dom) {
			// RFC 7208 §4.3: a malformed or non-FQDN domain is "none".
			return Result{Status: None, Identity: "mailfrom", Sender: mailFrom, Reason: fmt.Sprintf("MAIL FROM domain %q is not a valid domain name", dom)}
		}
		if lp == "" {
			lp = "postmaster" // RFC 7208 §4.3
		}
		args.MailFromLocalpart, args.MailFromDomain = smtp.Localpart(lp), d
	} else if args.HelloDomain.IsDomain() && !strings.Contains(helo, ".") {
		return Result{Status: None, Identity: "helo", Reason: fmt.Sprintf("HELO %q is not a fully qualified domain name", helo)}
	}
	lr := &limitResolver{Resolver: v.Resolver}
	fam := "ip6"
	if ip.To4() != nil {
		fam = "ip4"
	}
	rcv, dom, expl, _, err := mspf.Verify(ctx, v.logger(), family{moxdns.Adapt(lr), fam}, args)
	if lr.tripped {
		// RFC 7208 §4.6.4: exceeding the lookup limit is permerror.
		return Result{Status: Permerror, Identity: string(rcv.Identity), Domain: dom.ASCII, Sender: rcv.EnvelopeFrom,
			Reason: fmt.Sprintf("more than %d SPF records fetched (include/redirect chain too long or looping, RFC 7208 §4.6.4)", maxTXT-2)}
	}
	r := Result{Status: Status(rcv.Result), Identity: string(rcv.Identity), Domain: dom.ASCII, Sender: rcv.EnvelopeFrom,
		Mechanism: rcv.Mechanism, Explanation: expl}
	if r.Status == "" {
		r.Status = None
	}
	switch {
	case err != nil:
		r.Reason = err.Error()
	case r.Mechanism != "":
		r.Reason = fmt.Sprintf("%s for %s: matched %q", r.Status, ip, r.Mechanism)
	default:
		r.Reason = rcv.Comment
	}
	return r
}

func hasEmptyLabel(d string) bool {
	for _, l := range strings.Split(d, ".") {
		if l == "" {
			return true
		}
	}
	return false
}

func (v *Verifier) logger() *slog.Logger {
	if v.Log != nil {
		return v.Log
	}
	return slog.New(slog.DiscardHandler)
}

// maxTXT bounds the TXT queries of one check_host: the first record, ten
// include/redirect terms (RFC 7208 §4.6.4) and one exp= (§6.2). mox
// v0.0.17 does not count redirect= against the limit, so a record that
// redirects to itself recursed until the stack overflowed, killing the
// process; this bound stops that in the resolver, below mox.
const maxTXT = 12

// limitResolver counts TXT queries and refuses those beyond maxTXT.
type limitResolver struct {
	dns.Resolver
	txt     int
	tripped bool
}

func (l *limitResolver) LookupTXT(ctx context.Context, name string) ([]string, dns.Result, error) {
	l.txt++
	if l.txt > maxTXT {
		l.tripped = true
		return nil, dns.Result{}, &dns.Error{Kind: dns.ErrPermanent, Name: name, Type: "TXT", Err: fmt.Errorf("SPF lookup limit")}
	}
	return l.Resolver.LookupTXT(ctx, name)
}

// LookupPTR passes reverse lookups on when the resolver has them.
func (l *limitResolver) LookupPTR(ctx context.Context, ip string) ([]string, dns.Result, error) {
	if p, ok := l.Resolver.(moxdns.PTRResolver); ok {
		return p.LookupPTR(ctx, ip)
	}
	return nil, dns.Result{}, &dns.Error{Kind: dns.ErrNotFound, Name: ip, Type: "PTR"}
}

// family answers the address queries of a, mx and ptr (mox asks for "ip",
// both families) with the client's family only: RFC 7208 §5.3 and §5.4
// compare an IPv4 client with A records and an IPv6 client with AAAA
// records, and an empty answer is a void lookup (§4.6.4). Asked for both,
// mox matched an A record against an IPv6 client under a "/0" prefix (the
// suite's a-cidr6-0-nxdomain). exists asks "ip4" (§5.7) and is left alone.
type family struct {
	mdns.Resolver
	fam string
}

func (f family) LookupIP(ctx context.Context, network, host string) ([]net.IP, adns.Result, error) {
	if network == "ip" {
		network = f.fam
	}
	return f.Resolver.LookupIP(ctx, network, host)
}
