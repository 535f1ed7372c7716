package tlspolicy

import (
	"fmt"
	"strings"

	"sealpost/internal/dns"
)

// DomainList is the operator's require-TLS list (outbound.require_tls_domains):
// a domain on it gets mail only over TLS with a certificate that verifies for
// the MX host (WebPKI), whatever the domain publishes. Entries are
//
//	nhs.net      the domain itself
//	*.gov.uk     every domain below gov.uk (any depth), not gov.uk itself
//	!x.gov.uk    an exception: x.gov.uk is not on the list (also "!*.x.gov.uk")
//
// An exception wins over any entry, whatever the order.
type DomainList struct {
	include, exclude []string
}

// ParseDomainList checks the entries; an error names the entry that is wrong.
func ParseDomainList(entries []string) (DomainList, error) {
	var l DomainList
	for _, e := range entries {
		p := dns.Normalise(strings.TrimSpace(e))
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		name := strings.TrimPrefix(p, "*.")
		if name == "" || strings.ContainsAny(name, "*! \t/:@") || strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
			return DomainList{}, fmt.Errorf("%q is not a domain, *.domain or !exception", e)
		}
		if neg {
			l.exclude = append(l.exclude, p)
		} else {
			l.include = append(l.include, p)
		}
	}
	return l, nil
}

func matchPattern(p, domain string) bool {
	if suffix, ok := strings.CutPrefix(p, "*."); ok {
		return strings.HasSuffix(domain, "."+suffix)
	}
	return domain == p
}

// Match returns the entry that puts domain on the list, "" when none does.
func (l DomainList) Match(domain string) string {
	domain = dns.Normalise(domain)
	for _, p := range l.exclude {
		if matchPattern(p, domain) {
			return ""
		}
	}
	for _, p := range l.include {
		if matchPattern(p, domain) {
			return p
		}
	}
	return ""
}
