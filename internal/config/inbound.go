package config

import (
	"path/filepath"
	"strings"

	"sealpost/internal/clamd"
)

// Inbound configures the content checks of inbound mail: dangerous
// attachments, antivirus and impersonation (docs/inbound-threats.md).
type Inbound struct {
	// Clamd is the clamd to scan with: "unix:/run/clamav/clamd.ctl",
	// an absolute socket path or "host:port"; empty: no antivirus.
	Clamd string `toml:"clamd"`
	// ClamdUnavailable is what happens to mail when clamd gives no
	// verdict: "tempfail" (451 4.7.1, the sender retries), "quarantine"
	// or "deliver".
	ClamdUnavailable string `toml:"clamd_unavailable"`
	// DangerousAttachments is what happens to mail with a dangerous
	// attachment: "quarantine" or "reject" (550 5.7.1).
	DangerousAttachments string `toml:"dangerous_attachments"`
	// ProtectedNames are display names (staff, the organisation) that
	// mail from outside may not use; names learned from outbound mail are
	// added to them.
	ProtectedNames []string `toml:"protected_names"`
	// Impersonation is what happens to suspected impersonation: "tag"
	// (an X-Impersonation-Warning header the mail host can file or show
	// by) or "quarantine".
	Impersonation string `toml:"impersonation"`
	// ReportAddresses receive DMARC aggregate (rua) and TLS reports
	// (RFC 8460 rua): reports in mail to them are kept and summed up in
	// the console; the mail is delivered as usual.
	ReportAddresses []string `toml:"report_addresses"`
}

// IsReportAddress says whether addr is one of ReportAddresses.
func (in *Inbound) IsReportAddress(addr string) bool {
	for _, a := range in.ReportAddresses {
		if strings.EqualFold(strings.TrimSpace(a), addr) {
			return true
		}
	}
	return false
}

// ReportsDir is where the reports addressed to the organisation are kept
// (one file per report; the console sums them up).
func (c *Config) ReportsDir() string { return filepath.Join(c.DataDir, "reports") }

func (c *Config) validateInbound() error {
	in := &c.Inbound
	if in.Clamd != "" {
		if _, err := clamd.Parse(in.Clamd); err != nil {
			return c.errf("inbound.clamd", "%v", err)
		}
	}
	for _, f := range []struct {
		key string
		v   *string
		def string
		ok  []string
	}{
		{"inbound.clamd_unavailable", &in.ClamdUnavailable, "tempfail", []string{"tempfail", "quarantine", "deliver"}},
		{"inbound.dangerous_attachments", &in.DangerousAttachments, "quarantine", []string{"quarantine", "reject"}},
		{"inbound.impersonation", &in.Impersonation, "tag", []string{"tag", "quarantine"}},
	} {
		*f.v = strings.ToLower(strings.TrimSpace(*f.v))
		if *f.v == "" {
			*f.v = f.def
		}
		found := false
		for _, o := range f.ok {
			found = found || *f.v == o
		}
		if !found {
			return c.errf(f.key, "%q is not one of %s", *f.v, strings.Join(f.ok, ", "))
		}
	}
	for i, a := range in.ReportAddresses {
		if at := strings.LastIndexByte(a, '@'); at <= 0 || !c.IsOrgDomain(strings.ToLower(strings.TrimSpace(a[at+1:]))) {
			return c.errf("inbound.report_addresses", "entry %d (%q) is not an address in org.domains", i+1, a)
		}
	}
	for i, n := range in.ProtectedNames {
		if strings.TrimSpace(n) == "" {
			return c.errf("inbound.protected_names", "entry %d is empty", i+1)
		}
	}
	return nil
}
