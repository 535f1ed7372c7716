package config

import (
	"strings"
	"time"
)

// TLSRPT configures the TLS-RPT (RFC 8460) reports this gateway sends to
// the domains it delivers to. (What we publish for our own domains is
// dns.tls_rpt_rua.)
type TLSRPT struct {
	// Send: once a day, each policy domain that publishes a _smtp._tls
	// record gets a report of the day before.
	Send bool `toml:"send"`
	// Organization is the report's organization-name; empty: org.name.
	Organization string `toml:"organization"`
	// Contact is the report's contact-info; empty: postmaster@ the first
	// org domain.
	Contact string `toml:"contact"`
	// From is the report mail's From; empty: tlsrpt-noreply@ the first org
	// domain (an org domain, so that the report is DKIM-signed, §5.3).
	From string `toml:"from"`
	// MaxReports bounds the reports of one day (domains beyond it get none).
	MaxReports int `toml:"max_reports"`
	// MaxReportBytes bounds one report, compressed; a larger one is not sent.
	MaxReportBytes int `toml:"max_report_bytes"`
	// SuppressFor: a mailto: address a report bounced from gets none for
	// this long.
	SuppressFor Duration `toml:"suppress_for"`
}

func defaultTLSRPT() TLSRPT {
	return TLSRPT{MaxReports: 1000, MaxReportBytes: 1 << 20, SuppressFor: Duration{7 * 24 * time.Hour}}
}

func (c *Config) validateTLSRPT() error {
	t := &c.TLSRPT
	if t.MaxReports < 1 {
		return c.errf("tlsrpt.max_reports", "%d: want at least 1", t.MaxReports)
	}
	if t.MaxReportBytes < 1024 {
		return c.errf("tlsrpt.max_report_bytes", "%d: want at least 1024", t.MaxReportBytes)
	}
	if t.SuppressFor.Duration < 0 {
		return c.errf("tlsrpt.suppress_for", "must not be negative")
	}
	for k, v := range map[string]string{"tlsrpt.contact": t.Contact, "tlsrpt.from": t.From} {
		if v != "" && (strings.Count(v, "@") != 1 || strings.ContainsAny(v, " <>\r\n")) {
			return c.errf(k, "%q is not an email address", v)
		}
	}
	if t.From != "" && !c.IsOrgDomain(strings.ToLower(domainPart(t.From))) {
		return c.errf("tlsrpt.from", "%q: want an address in one of org.domains, so that reports are DKIM-signed", t.From)
	}
	return nil
}

func domainPart(addr string) string {
	_, d, _ := strings.Cut(addr, "@")
	return d
}

// TLSRPTFrom is the From of report mail.
func (c *Config) TLSRPTFrom() string {
	if c.TLSRPT.From != "" {
		return c.TLSRPT.From
	}
	return "tlsrpt-noreply@" + c.Org.Domains[0]
}

// TLSRPTContact is the reports' contact-info.
func (c *Config) TLSRPTContact() string {
	if c.TLSRPT.Contact != "" {
		return c.TLSRPT.Contact
	}
	return "postmaster@" + c.Org.Domains[0]
}

// TLSRPTOrganization is the reports' organization-name.
func (c *Config) TLSRPTOrganization() string {
	if c.TLSRPT.Organization != "" {
		return c.TLSRPT.Organization
	}
	return c.Org.Name
}
