package tlspolicy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mjl-/adns"
	"github.com/mjl-/mox/dane"
	mdns "github.com/mjl-/mox/dns"

	"sealpost/internal/dns"
)

// Check is what a TLS handshake proved under a HostPolicy.
type Check struct {
	Version, Cipher string
	PeerCertSHA256  string // hex, of the leaf
	// Chain: "dane-ee", "dane-ta", "webpki", or "unverified" with the
	// reason in Failure.
	Chain string
	// Verified: the certificate is authenticated (DANE or WebPKI).
	Verified bool
	TLSA     string // the record that matched, for DANE
	Failure  string // RFC 8460 §4.3 result type when not verified
	Detail   string
}

// Enforced reports whether a verification failure must end the session.
func (h HostPolicy) Enforced() bool {
	switch h.Mode {
	case ModeDANE:
		return !h.DANEUnusable
	case ModeMTASTS, ModeRequired:
		return true
	}
	return false
}

// TLSMandatory reports whether the host may not get mail in clear.
func (h HostPolicy) TLSMandatory() bool { return h.Mode.Verified() }

// Verify checks a handshake's state under h. It always returns the
// evidence; err is set when h enforces verification and it failed.
// WebPKI is checked for every mode, to be recorded (RFC 7435 senders still
// learn who they talked to).
func (h HostPolicy) Verify(cs tls.ConnectionState, roots *x509.CertPool, log *slog.Logger) (Check, error) {
	c := Check{Version: tls.VersionName(cs.Version), Cipher: tls.CipherSuiteName(cs.CipherSuite), Chain: "unverified"}
	if len(cs.PeerCertificates) == 0 {
		c.Failure, c.Detail = "validation-failure", "no certificate"
		return c, h.fail(c)
	}
	leaf := cs.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	c.PeerCertSHA256 = hex.EncodeToString(sum[:])
	if h.Mode == ModeDANE && len(h.TLSA) > 0 {
		host, err := mdns.ParseDomain(h.Host)
		if err != nil {
			c.Failure, c.Detail = "validation-failure", "MX host name: "+err.Error()
			return c, h.fail(c)
		}
		ok, rec, err := dane.Verify(log, toADNS(h.TLSA), cs, host, nil, nil)
		if ok {
			c.Verified, c.TLSA = true, fmt.Sprintf("%d %d %d", rec.Usage, rec.Selector, rec.MatchType)
			c.Chain = "dane-ee"
			if rec.Usage == adns.TLSAUsageDANETA {
				c.Chain = "dane-ta"
			}
			return c, nil
		}
		c.Failure, c.Detail = "tlsa-invalid", "no TLSA record matches the certificate"
		if err != nil {
			c.Detail += ": " + err.Error()
		}
		return c, h.fail(c)
	}
	inter := x509.NewCertPool()
	for _, ic := range cs.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	_, err := leaf.Verify(x509.VerifyOptions{DNSName: h.Host, Roots: roots, Intermediates: inter})
	if err == nil {
		c.Verified, c.Chain = true, "webpki"
		return c, nil
	}
	c.Failure, c.Detail = certFailure(err), err.Error()
	return c, h.fail(c)
}

func (h HostPolicy) fail(c Check) error {
	if !h.Enforced() {
		return nil
	}
	return fmt.Errorf("%s: %s (%s)", h.Mode, c.Detail, c.Failure)
}

// certFailure maps an x509 error to its RFC 8460 §4.3.2 result type.
func certFailure(err error) string {
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &hn):
		return "certificate-host-mismatch"
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return "certificate-expired"
	case errors.As(err, &ua):
		return "certificate-not-trusted"
	}
	return "validation-failure"
}

func toADNS(recs []dns.TLSA) []adns.TLSA {
	out := make([]adns.TLSA, len(recs))
	for i, r := range recs {
		out[i] = adns.TLSA{Usage: adns.TLSAUsage(r.Usage), Selector: adns.TLSASelector(r.Selector), MatchType: adns.TLSAMatchType(r.MatchingType), CertAssoc: r.CertAssoc}
	}
	return out
}
