package config

import (
	"errors"
	"strings"
	"testing"
)

// TestRequireTLSAndTLSRPTKeys: the new keys' defaults, and errors that name
// the key and its line.
func TestRequireTLSAndTLSRPTKeys(t *testing.T) {
	c, err := Parse("sp.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Outbound.TLSRequiredNo != "ignore" || c.TLSRPT.Send || c.TLSRPT.MaxReports != 1000 || c.TLSRPTFrom() != "tlsrpt-noreply@example.gov.uk" ||
		c.TLSRPTContact() != "postmaster@example.gov.uk" || c.TLSRPTOrganization() != "Example Council" {
		t.Fatalf("defaults: %+v %+v", c.Outbound, c.TLSRPT)
	}
	test := func(extra, key string, line int, msgPart string) {
		t.Helper()
		_, err := Parse("sp.toml", []byte(minimal+extra))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != key || ce.Line != line || !strings.Contains(ce.Error(), msgPart) {
			t.Errorf("%q: %v, want key %s line %d with %q", extra, err, key, line, msgPart)
		}
	}
	base := strings.Count(minimal, "\n")
	test("\n[tlsrpt]\nfrom = \"reports@elsewhere.example\"\n", "tlsrpt.from", base+3, "org.domains")
	test("\n[tlsrpt]\nmax_reports = 0\n", "tlsrpt.max_reports", base+3, "at least 1")
	test("\n[tlsrpt]\ncontact = \"not an address\"\n", "tlsrpt.contact", base+3, "not an email address")
	_, err = Parse("sp.toml", []byte(strings.Replace(minimal, "smarthost = \"\"", "smarthost = \"\"\ntls_required_no = \"sometimes\"", 1)))
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "outbound.tls_required_no" || !strings.Contains(ce.Error(), "ignore or honour") {
		t.Errorf("tls_required_no: %v", err)
	}
}
