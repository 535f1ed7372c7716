// Package tlspolicy decides, per recipient domain and MX host, how outbound
// SMTP must protect a session, and checks a finished TLS handshake against
// that decision. It knows nothing of the queue or the store: it asks a
// dns.Resolver, an HTTPS client and a Cache.
//
// The order (RFC 7672 §1.3, RFC 8461 §2), first match wins per MX host:
//
//  1. DANE (RFC 7672): the MX RRset and the host's TLSA RRset at
//     _25._tcp.HOST are DNSSEC-authentic (the resolver's AD bit, trusted
//     only with outbound.dnssec_trust). Usable records are DANE-TA(2) and
//     DANE-EE(3) (RFC 7672 §3.1.3: PKIX usages 0/1 are not for SMTP), with
//     selectors 0/1 and matching types 0/1/2 (RFC 6698 §2.1). STARTTLS is
//     then mandatory and the certificate must match a record; DANE-EE
//     ignores names and dates (RFC 7672 §3.1.1), DANE-TA checks the MX
//     host name (§3.2.2). A TLSA lookup that fails (SERVFAIL, timeout) may
//     be an attack on the DNSSEC proof: the host is not contacted (4.7.5)
//     unless its address records are provably insecure (answered, by a
//     validating resolver, without the AD bit: an unsigned zone has no
//     TLSA to hide; RFC 7672 §2.2.2). Authenticated TLSA records that are
//     all unusable leave TLS mandatory but unauthenticated (§2.2).
//  2. MTA-STS (RFC 8461) in enforce mode: only MX hosts the policy lists are
//     contacted (§4.1, before connecting), STARTTLS is mandatory and the
//     certificate must verify (WebPKI) for the MX host name (§4.2).
//     In testing mode mail goes as it would without the policy, and
//     failures are recorded for the TLS report (§5).
//  3. The operator's require-TLS list: WebPKI-verified TLS or defer.
//  4. Opportunistic STARTTLS (RFC 7435): any certificate, clear text when
//     STARTTLS is not offered or fails.
//
// A local rule (policy action require-tls, REQUIRETLS) may raise step 4 to
// verified TLS; nothing lowers steps 1-3.
package tlspolicy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/mjl-/mox/mtasts"

	"sealpost/internal/dns"
)

// Mode is how a session is protected; the values are recipient.tls's.
type Mode string

const (
	ModeDANE          Mode = "dane"
	ModeMTASTS        Mode = "mta-sts"
	ModeRequired      Mode = "required"
	ModeOpportunistic Mode = "opportunistic"
)

// Verified reports whether the mode authenticates the receiver.
func (m Mode) Verified() bool { return m != ModeOpportunistic && m != "" }

// Result is the policy of a recipient domain: what TLS-RPT (RFC 8460 §4.4)
// calls the policy domain, type and identifier, and the hosts in the order
// to try them.
type Result struct {
	Domain string
	// Mode is the weakest mode among the hosts that may be contacted: what
	// the domain is guaranteed to get (dane only when every host has DANE).
	Mode Mode
	Why  string
	// MTA-STS policy in force (enforce or testing), "" when none.
	STSID, STSMode, STSText string
	ListEntry               string // the require_tls_domains entry that matched
	// Failure is an RFC 8460 §4.3 result type met while finding the policy
	// (sts-policy-fetch-error, sts-policy-invalid, dnssec-invalid, ...).
	Failure string
	Hosts   []HostPolicy
	// Fail is set when no host may be tried: the reply text for every
	// recipient, and whether it is permanent.
	Fail          string
	FailPermanent bool
	MXAuthentic   bool
}

// HostPolicy is the decision for one MX host.
type HostPolicy struct {
	Host    string // name without trailing dot
	Pref    uint16
	Mode    Mode
	Why     string
	Allowed bool // false: MTA-STS enforce does not list it; never connect
	// TLSA are the usable DANE records (Mode dane); DANEUnusable: records
	// exist but none is usable.
	TLSA         []dns.TLSA
	DANEUnusable bool
	// Defer, when set, is the temporary failure to report instead of
	// connecting (a TLSA lookup that failed).
	Defer   string
	Failure string // RFC 8460 result type behind Defer or !Allowed
	// Testing: an MTA-STS testing policy applies; failures are reported,
	// not enforced.
	Testing bool
	Domain  string // the policy domain
	STSID   string
}

// Key names the policy that verifies a session, for the connection pool: a
// session verified under one domain's policy is never reused for another's.
func (h HostPolicy) Key() string {
	switch {
	case h.Mode == ModeDANE:
		sum := sha256.New()
		for _, r := range h.TLSA {
			fmt.Fprintf(sum, "%d %d %d %x\n", r.Usage, r.Selector, r.MatchingType, r.CertAssoc)
		}
		return fmt.Sprintf("dane|%s|%x", h.Domain, sum.Sum(nil)[:8])
	case h.Mode == ModeMTASTS:
		return "mta-sts|" + h.Domain + "|" + h.STSID
	case h.Mode == ModeRequired:
		return "required|" + h.Domain
	case h.Testing:
		return "testing|" + h.Domain + "|" + h.STSID
	}
	return "opportunistic"
}

// Evaluator finds the policy for a domain.
type Evaluator struct {
	Resolver   dns.Resolver
	STS        *STS // nil: MTA-STS is not used
	RequireTLS DomainList
	// List, when set, is asked instead of RequireTLS on every Plan, so a
	// configuration reload takes effect without a new Evaluator.
	List func() DomainList
	Log  *slog.Logger
}

// Plan looks up the MX hosts of domain and decides the policy for each.
// localRequire is a local rule's demand for verified TLS (it only raises).
func (e *Evaluator) Plan(ctx context.Context, domain string, localRequire bool) *Result {
	domain = dns.Normalise(domain)
	r := &Result{Domain: domain}
	hosts, herr := e.mxHosts(ctx, r)
	var sts STSResult
	if e.STS != nil && !r.FailPermanent {
		sts = e.STS.Lookup(ctx, domain)
		r.Failure = sts.Failure
		if sts.Policy != nil {
			r.STSID, r.STSMode, r.STSText = sts.ID, string(sts.Policy.Mode), sts.Text
		}
	}
	list := e.RequireTLS
	if e.List != nil {
		list = e.List()
	}
	r.ListEntry = list.Match(domain)
	if herr {
		// No host to decide for: say what the domain's policy would be.
		switch {
		case r.STSMode == string(mtasts.ModeEnforce):
			r.Mode = ModeMTASTS
		case r.ListEntry != "":
			r.Mode = ModeRequired
		default:
			r.Mode = ModeOpportunistic
		}
		r.Why = "no MX host to try: " + r.Fail
		return r
	}
	for _, mx := range hosts {
		r.Hosts = append(r.Hosts, e.host(ctx, r, mx, sts, localRequire))
	}
	e.summarise(r, sts)
	return r
}

// mxHosts fills r.Fail for a domain without usable MX; true means stop.
func (e *Evaluator) mxHosts(ctx context.Context, r *Result) ([]dns.MX, bool) {
	mxs, res, err := e.Resolver.LookupMX(ctx, r.Domain)
	r.MXAuthentic = res.Authentic
	switch {
	case dns.IsNotFound(err) && !dns.IsNXDomain(err):
		// No MX: the domain itself is the host (RFC 5321 §5.1).
		return []dns.MX{{Host: r.Domain}}, false
	case dns.IsNXDomain(err):
		r.Fail, r.FailPermanent = "550 5.1.2 "+r.Domain+" does not exist", true
		return nil, true
	case err != nil:
		r.Fail = "451 4.4.3 DNS lookup of MX for " + r.Domain + " failed: " + err.Error()
		return nil, true
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		r.Fail, r.FailPermanent = "556 5.1.10 "+r.Domain+" accepts no mail (null MX, RFC 7505)", true
		return nil, true
	}
	for i := range mxs {
		mxs[i].Host = dns.Normalise(mxs[i].Host)
	}
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	slices.SortStableFunc(mxs, func(a, b dns.MX) int { return int(a.Pref) - int(b.Pref) })
	return mxs, false
}

func (e *Evaluator) host(ctx context.Context, r *Result, mx dns.MX, sts STSResult, localRequire bool) HostPolicy {
	h := HostPolicy{Host: mx.Host, Pref: mx.Pref, Allowed: true, Domain: r.Domain, STSID: sts.ID}
	// RFC 7672 §2.2.1: DANE applies to an MX host only when the MX RRset
	// itself is authentic (for the implicit MX, the domain's own lookup).
	if r.MXAuthentic {
		if done := e.dane(ctx, &h); done {
			if h.DANEUnusable && (localRequire || r.ListEntry != "") {
				// Unusable records leave TLS unauthenticated; a rule that
				// asks for verified TLS gets WebPKI instead (it only raises).
				h.Mode = ModeRequired
				h.Why += "; verified by WebPKI as the require-TLS list or a local rule asks"
			}
			return h
		}
	}
	if p := sts.Policy; p != nil {
		listed := stsMatches(p, mx.Host)
		if p.Mode == mtasts.ModeEnforce {
			h.Mode, h.Why = ModeMTASTS, "MTA-STS policy id "+sts.ID+" mode enforce"
			if !listed {
				h.Allowed, h.Failure = false, "validation-failure"
				h.Why = "MTA-STS policy id " + sts.ID + " does not list " + mx.Host + " (RFC 8461 §4.1)"
			}
			return h
		}
		h.Testing = true
		if !listed {
			h.Failure = "validation-failure"
		}
	}
	switch {
	case r.ListEntry != "":
		h.Mode, h.Why = ModeRequired, "outbound.require_tls_domains entry "+r.ListEntry
	case localRequire:
		h.Mode, h.Why = ModeRequired, "a local rule requires verified TLS"
	default:
		h.Mode, h.Why = ModeOpportunistic, "no DANE, MTA-STS or require-TLS entry"
	}
	if h.Testing {
		h.Why += "; MTA-STS policy id " + sts.ID + " in testing mode (failures reported, not enforced)"
	}
	return h
}

// dane decides DANE for h; true when DANE (or a deferral) settles the host.
func (e *Evaluator) dane(ctx context.Context, h *HostPolicy) bool {
	recs, res, err := e.Resolver.LookupTLSA(ctx, 25, "tcp", h.Host)
	switch {
	case dns.IsNotFound(err):
		return false
	case err != nil:
		// RFC 7672 §2.2.2: a failed TLSA lookup is safe to ignore only
		// when the host's zone is provably unsigned.
		_, ipres, ipErr := e.Resolver.LookupIP(ctx, h.Host)
		if ipErr == nil && !ipres.Authentic {
			h.Why = "TLSA lookup failed (" + err.Error() + ") but the host's address records are insecure"
			return false
		}
		h.Mode, h.Failure = ModeDANE, "dnssec-invalid"
		h.Defer = "451 4.7.5 TLSA lookup for " + h.Host + " failed and its zone is signed: not contacted (RFC 7672 §2.2)"
		h.Why = "TLSA lookup failed: " + err.Error()
		return true
	case !res.Authentic:
		// Unsigned TLSA records prove nothing (RFC 7672 §2.2).
		return false
	}
	h.Mode = ModeDANE
	for _, rec := range recs {
		if usable(rec) {
			h.TLSA = append(h.TLSA, rec)
		}
	}
	if len(h.TLSA) == 0 {
		h.DANEUnusable = true
		h.Why = "DANE: authentic TLSA records, none usable: TLS mandatory, not authenticated (RFC 7672 §2.2)"
		return true
	}
	h.Why = "DANE: authentic TLSA " + TLSAString(h.TLSA)
	return true
}

// usable: RFC 7672 §3.1.3 usages 2 and 3, RFC 6698 §2.1 selectors and
// matching types, and a digest of the matching type's length.
func usable(r dns.TLSA) bool {
	if r.Usage != 2 && r.Usage != 3 || r.Selector > 1 {
		return false
	}
	switch r.MatchingType {
	case 0:
		return len(r.CertAssoc) > 0
	case 1:
		return len(r.CertAssoc) == 32
	case 2:
		return len(r.CertAssoc) == 64
	}
	return false
}

// TLSAString renders records in zone-file form, digests shortened.
func TLSAString(recs []dns.TLSA) string {
	var parts []string
	for _, r := range recs {
		h := hex.EncodeToString(r.CertAssoc)
		if len(h) > 16 {
			h = h[:16] + "…"
		}
		parts = append(parts, fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, h))
	}
	return strings.Join(parts, ", ")
}

func (e *Evaluator) summarise(r *Result, sts STSResult) {
	rank := map[Mode]int{ModeOpportunistic: 0, ModeRequired: 1, ModeMTASTS: 2, ModeDANE: 3}
	first := true
	for _, h := range r.Hosts {
		if !h.Allowed || h.Defer != "" {
			continue
		}
		if first || rank[h.Mode] < rank[r.Mode] {
			r.Mode, r.Why = h.Mode, h.Why
			first = false
		}
	}
	if first {
		// No host may be contacted: the policy is the one that forbade it.
		r.Mode = ModeOpportunistic
		if len(r.Hosts) > 0 {
			r.Mode, r.Why = r.Hosts[0].Mode, r.Hosts[0].Why
		}
		switch {
		case len(r.Hosts) > 0 && r.Hosts[0].Defer != "":
			r.Fail = r.Hosts[0].Defer
		default:
			r.Fail = "451 4.7.5 no MX host of " + r.Domain + " is listed in its MTA-STS policy id " + sts.ID + " (RFC 8461 §4.1)"
		}
	}
	if sts.Note != "" {
		r.Why += "; " + sts.Note
	}
}
