// Package dmarc evaluates DMARC for an incoming message per RFC 9989
// (DMARCbis): the DNS tree walk finds the policy and the organisational
// domain instead of a public suffix list, and np=, psd= and t= apply;
// pct= is ignored. Legacy (RFC 7489) discovery is a switch. It knows
// nothing of store, queue or gateway.
package dmarc

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	mdns "github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/publicsuffix"

	"sealpost/internal/dns"
)

// Policy is a DMARC disposition.
type Policy string

// Policies (RFC 9989 §5.3).
const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// Record is a parsed DMARC record; only the tags evaluation needs.
type Record struct {
	P, SP, NP     Policy
	ADKIM, ASPF   string // "r" or "s"
	PSD           string // "y", "n" or "u"
	Test          bool   // t=y
	HasExplicitSP bool
	HasExplicitNP bool
}

// Parse parses a DMARC TXT record (RFC 9989 §5.3). Unknown tags are
// ignored, as the RFC requires; v=DMARC1 must come first. A missing or
// unknown p= is "none" (§5.3: a record without a valid p= is treated as
// p=none when it is otherwise valid).
func Parse(txt string) (*Record, error) {
	parts := strings.Split(txt, ";")
	if strings.ReplaceAll(strings.TrimSpace(parts[0]), " ", "") != "v=DMARC1" {
		return nil, fmt.Errorf("not a DMARC record: %q", txt)
	}
	r := &Record{P: PolicyNone, ADKIM: "r", ASPF: "r", PSD: "u"}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.ToLower(strings.TrimSpace(v))
		pol := Policy(v)
		validPol := pol == PolicyNone || pol == PolicyQuarantine || pol == PolicyReject
		switch k {
		case "p":
			if validPol {
				r.P = pol
			}
		case "sp":
			if validPol {
				r.SP, r.HasExplicitSP = pol, true
			}
		case "np":
			if validPol {
				r.NP, r.HasExplicitNP = pol, true
			}
		case "adkim":
			if v == "s" {
				r.ADKIM = "s"
			}
		case "aspf":
			if v == "s" {
				r.ASPF = "s"
			}
		case "psd":
			if v == "y" || v == "n" {
				r.PSD = v
			}
		case "t":
			r.Test = v == "y"
		}
	}
	return r, nil
}

// Evaluator finds DMARC records and decides.
type Evaluator struct {
	Resolver dns.Resolver
	// Legacy selects RFC 7489 discovery: the public suffix list for the
	// organisational domain, and a lookup at the author domain then the
	// organisational domain only. np=, psd= and t= are then not used.
	Legacy bool
	Log    *slog.Logger
}

// found is one record seen on the tree walk.
type found struct {
	domain string
	rec    *Record
}

// lookup fetches _dmarc.<domain>. No record is (nil, nil); a DNS failure
// that is not a definite absence is returned, so the caller can tempfail
// instead of treating the domain as unprotected (fail closed).
func (e *Evaluator) lookup(ctx context.Context, domain string) (*Record, error) {
	txts, _, err := e.Resolver.LookupTXT(ctx, "_dmarc."+domain)
	if dns.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []*Record
	for _, t := range txts {
		if r, err := Parse(t); err == nil {
			recs = append(recs, r)
		}
	}
	// RFC 9989 §4.10: more than one DMARC record means none applies.
	if len(recs) != 1 {
		return nil, nil
	}
	return recs[0], nil
}

// walkNames returns the names the DNS tree walk queries (RFC 9989 §4.10):
// the domain itself, then, if it has more than seven labels, its last
// seven, then one label less each time down to the top-level domain.
func walkNames(domain string) []string {
	labels := strings.Split(domain, ".")
	names := []string{domain}
	n := len(labels)
	if n > 7 {
		n = 7
		names = append(names, strings.Join(labels[len(labels)-7:], "."))
	}
	for n--; n >= 1; n-- {
		names = append(names, strings.Join(labels[len(labels)-n:], "."))
	}
	return names
}

// walk queries up the tree. Policy discovery stops at the first record;
// organisational-domain discovery needs the whole walk (stopAtFirst false).
func (e *Evaluator) walk(ctx context.Context, domain string, stopAtFirst bool) ([]found, error) {
	var out []found
	for _, name := range walkNames(domain) {
		r, err := e.lookup(ctx, name)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, found{name, r})
			if stopAtFirst {
				break
			}
		}
	}
	return out, nil
}

// OrgDomain determines the organisational domain (RFC 9989 §4.10.2): on
// the walk from the domain upwards, a record with psd=n names its domain;
// one with psd=y makes the domain one label below it the answer; otherwise
// the record with the fewest labels names it; with no record the domain
// is its own organisational domain.
func (e *Evaluator) OrgDomain(ctx context.Context, domain string) (string, error) {
	domain = dns.Normalise(domain)
	if e.Legacy {
		d, err := mdns.ParseDomain(domain)
		if err != nil {
			return "", fmt.Errorf("dmarc: %v", err)
		}
		return publicsuffix.Lookup(ctx, e.logger(), d).ASCII, nil
	}
	fs, err := e.walk(ctx, domain, false)
	if err != nil {
		return "", err
	}
	org := domain
	for _, f := range fs {
		switch f.rec.PSD {
		case "n":
			return f.domain, nil
		case "y":
			return belowPSD(domain, f.domain), nil
		}
		org = f.domain
	}
	return org, nil
}

// belowPSD returns the domain one label below psd on the path to domain.
func belowPSD(domain, psd string) string {
	if domain == psd {
		return domain
	}
	rest := strings.TrimSuffix(domain, "."+psd)
	labels := strings.Split(rest, ".")
	return labels[len(labels)-1] + "." + psd
}

func (e *Evaluator) logger() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}
