package dmarc

import (
	"context"
	"fmt"

	"sealpost/internal/dns"
)

// Input is what SPF and DKIM established for one message.
type Input struct {
	From        string   // RFC5322.From domain
	SPFDomain   string   // RFC5321.MailFrom domain (or HELO), if SPF passed for it
	DKIMDomains []string // d= of every DKIM signature that verified
}

// Result is the DMARC outcome (RFC 9989 §4.7, §5.3).
type Result struct {
	// Status: "pass", "fail", "none" (no policy), "temperror" (DNS
	// failure: the caller tempfails rather than treating the mail as
	// unprotected).
	Status string
	// Policy is the disposition to apply on fail, after t=y lowering;
	// Published is what the record says, before t=.
	Policy, Published Policy
	RecordDomain      string // where the record was found
	OrgDomain         string
	SPFAligned        bool
	DKIMAligned       bool
	Reason            string
}

// Evaluate discovers the policy for in.From and checks alignment.
func (e *Evaluator) Evaluate(ctx context.Context, in Input) Result {
	from := dns.Normalise(in.From)
	rec, recDomain, err := e.discover(ctx, from)
	if err != nil {
		return Result{Status: "temperror", Reason: err.Error()}
	}
	if rec == nil {
		return Result{Status: "none", Reason: "no DMARC record for " + from}
	}
	org, err := e.OrgDomain(ctx, from)
	if err != nil {
		return Result{Status: "temperror", Reason: err.Error()}
	}
	res := Result{RecordDomain: recDomain, OrgDomain: org}
	res.Published = rec.P
	if recDomain != from {
		// A subdomain's mail: sp=, and np= for a name that does not exist
		// (RFC 9989 §5.3; np= falls back to sp=, then p=).
		if rec.HasExplicitSP {
			res.Published = rec.SP
		}
		if !e.Legacy && rec.HasExplicitNP {
			nx, err := e.nonExistent(ctx, from)
			if err != nil {
				return Result{Status: "temperror", Reason: err.Error()}
			}
			if nx {
				res.Published = rec.NP
			}
		}
	}
	res.Policy = res.Published
	if rec.Test && !e.Legacy {
		// t=y: apply one step less strict (RFC 9989 §5.3, "t" tag).
		switch res.Policy {
		case PolicyReject:
			res.Policy = PolicyQuarantine
		case PolicyQuarantine:
			res.Policy = PolicyNone
		}
	}
	aligned := func(d, mode string) (bool, error) {
		d = dns.Normalise(d)
		if d == "" {
			return false, nil
		}
		if d == from {
			return true, nil
		}
		if mode == "s" {
			return false, nil
		}
		od, err := e.OrgDomain(ctx, d)
		return od == org, err
	}
	if res.SPFAligned, err = aligned(in.SPFDomain, rec.ASPF); err != nil {
		return Result{Status: "temperror", Reason: err.Error()}
	}
	for _, d := range in.DKIMDomains {
		ok, err := aligned(d, rec.ADKIM)
		if err != nil {
			return Result{Status: "temperror", Reason: err.Error()}
		}
		res.DKIMAligned = res.DKIMAligned || ok
	}
	if res.SPFAligned || res.DKIMAligned {
		res.Status = "pass"
		return res
	}
	res.Status = "fail"
	res.Reason = fmt.Sprintf("neither SPF (%q) nor DKIM (%v) aligns with %s", in.SPFDomain, in.DKIMDomains, from)
	return res
}

// discover finds the policy record: RFC 9989's tree walk stops at the
// first record from the author domain up; RFC 7489 asks the author domain
// and then its organisational domain.
func (e *Evaluator) discover(ctx context.Context, from string) (*Record, string, error) {
	if e.Legacy {
		r, err := e.lookup(ctx, from)
		if err != nil || r != nil {
			return r, from, err
		}
		org, err := e.OrgDomain(ctx, from)
		if err != nil || org == from {
			return nil, "", err
		}
		r, err = e.lookup(ctx, org)
		return r, org, err
	}
	fs, err := e.walk(ctx, from, true)
	if err != nil || len(fs) == 0 {
		return nil, "", err
	}
	return fs[0].rec, fs[0].domain, nil
}

// nonExistent: RFC 9989 §3.2.11 "non-existent domain": NXDOMAIN for A,
// AAAA and MX alike.
func (e *Evaluator) nonExistent(ctx context.Context, d string) (bool, error) {
	_, _, err := e.Resolver.LookupIP(ctx, d)
	if !dns.IsNXDomain(err) {
		if err != nil && !dns.IsNotFound(err) {
			return false, err
		}
		return false, nil
	}
	_, _, err = e.Resolver.LookupMX(ctx, d)
	if err != nil && !dns.IsNotFound(err) {
		return false, err
	}
	return dns.IsNXDomain(err), nil
}
