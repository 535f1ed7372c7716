package config

import (
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
}

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
	for i, n := range in.ProtectedNames {
		if strings.TrimSpace(n) == "" {
			return c.errf("inbound.protected_names", "entry %d is empty", i+1)
		}
	}
	return nil
}
