package smime

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"sealpost/internal/cms"
)

// CertSource yields the certificates that may belong to an address. A
// source need not filter: the Chooser checks every candidate.
type CertSource interface {
	// Name is the source as the audit log records it ("store", "dir", ...).
	Name() string
	Certificates(ctx context.Context, address string) ([]*x509.Certificate, error)
}

// DirSource reads every PEM or DER certificate in a directory (for tests
// and for operators without a key store); it re-reads on each call.
type DirSource struct{ Dir string }

// Name implements CertSource.
func (d DirSource) Name() string { return "dir" }

// Certificates implements CertSource: all certificates in the directory.
func (d DirSource) Certificates(ctx context.Context, address string) ([]*x509.Certificate, error) {
	entries, err := os.ReadDir(d.Dir)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.Dir, e.Name()))
		if err != nil {
			return nil, err
		}
		certs, err := ParseCertificates(b)
		if err != nil {
			continue // not a certificate file (a CRL, a key, a README)
		}
		out = append(out, certs...)
	}
	return out, nil
}

// ParseCertificates reads PEM certificates, or one DER certificate.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) > 0 {
		return out, nil
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, errors.New("neither PEM nor DER certificates")
	}
	return []*x509.Certificate{c}, nil
}

// Fingerprint is the SHA-256 of the certificate's DER, in hex.
func Fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// Chooser picks the certificate to encrypt to.
type Chooser struct {
	Sources []CertSource
	// Roots are the trust anchors (smime.trust_anchors). Without them no
	// certificate is usable: S/MIME never trusts the system's web roots.
	Roots *x509.CertPool
	// Intermediates help build chains; CA certificates that a source
	// returns are added per call.
	Intermediates *x509.CertPool
	// Revocation checks the chain; nil means revocation is not checked
	// (smime.revocation = "off").
	Revocation *CRLCache
	// RequireRevocation refuses a certificate whose status no CRL gives
	// (smime.revocation = "require"); otherwise it is used with
	// "revocation unknown" in the decision.
	RequireRevocation bool
	// SubjectEmail also matches the subject's PKCS #9 emailAddress, for
	// certificates without any rfc822Name (older CAs; RFC 8550 §3).
	SubjectEmail bool
	Now          func() time.Time
}

// Candidate is one certificate considered for an address.
type Candidate struct {
	Cert        *x509.Certificate
	Source      string
	Fingerprint string
	Reason      string // why usable, or why refused
}

// Choice is the answer for one address.
type Choice struct {
	Address string
	// Use is the chosen certificate; nil when none is usable.
	Use *Candidate
	// Refused lists the candidates that matched the address but failed a
	// check, each with its reason.
	Refused []Candidate
	// Reason sums up the choice for the decision record.
	Reason string
}

// Choose checks every candidate for address and picks the usable one that
// expires last. Errors of a source are reasons, never a usable certificate.
func (ch *Chooser) Choose(ctx context.Context, address string) Choice {
	now := time.Now()
	if ch.Now != nil {
		now = ch.Now()
	}
	res := Choice{Address: address}
	var usable []Candidate
	var sourceErrs []string
	for _, src := range ch.Sources {
		certs, err := src.Certificates(ctx, address)
		if err != nil {
			sourceErrs = append(sourceErrs, src.Name()+": "+err.Error())
			continue
		}
		inter := x509.NewCertPool()
		if ch.Intermediates != nil {
			inter = ch.Intermediates.Clone()
		}
		for _, c := range certs {
			if c.IsCA {
				inter.AddCert(c)
			}
		}
		for _, c := range certs {
			if c.IsCA || !ch.matches(c, address) {
				continue
			}
			cand := Candidate{Cert: c, Source: src.Name(), Fingerprint: Fingerprint(c)}
			cand.Reason = ch.check(ctx, c, inter, now)
			if strings.HasPrefix(cand.Reason, "usable") {
				usable = append(usable, cand)
			} else {
				res.Refused = append(res.Refused, cand)
			}
		}
	}
	if len(usable) > 0 {
		sort.SliceStable(usable, func(i, j int) bool { return usable[i].Cert.NotAfter.After(usable[j].Cert.NotAfter) })
		res.Use = &usable[0]
		res.Reason = "certificate " + usable[0].Fingerprint + " from " + usable[0].Source + ": " + usable[0].Reason
		return res
	}
	var why []string
	for _, r := range res.Refused {
		why = append(why, r.Fingerprint[:16]+" ("+r.Source+"): "+r.Reason)
	}
	why = append(why, sourceErrs...)
	if len(why) == 0 {
		res.Reason = "no S/MIME certificate for " + address
	} else {
		res.Reason = "no usable S/MIME certificate for " + address + ": " + strings.Join(why, "; ")
	}
	return res
}

// matches: RFC 8550 §3, the address in subjectAltName rfc822Name. The
// domain compares case-insensitively (RFC 5321 §2.4); the local part is
// compared case-insensitively too, as every mail host here treats it.
func (ch *Chooser) matches(c *x509.Certificate, address string) bool {
	for _, e := range c.EmailAddresses {
		if strings.EqualFold(e, address) {
			return true
		}
	}
	if ch.SubjectEmail && len(c.EmailAddresses) == 0 {
		for _, n := range c.Subject.Names {
			// PKCS #9 emailAddress, 1.2.840.113549.1.9.1
			if n.Type.Equal([]int{1, 2, 840, 113549, 1, 9, 1}) {
				if s, ok := n.Value.(string); ok && strings.EqualFold(s, address) {
					return true
				}
			}
		}
	}
	return false
}

// check runs the checks of the package doc in order and returns
// "usable..." or the first failure.
func (ch *Chooser) check(ctx context.Context, c *x509.Certificate, inter *x509.CertPool, now time.Time) string {
	if err := cms.Supported(c); err != nil {
		return "refused: " + err.Error()
	}
	if c.KeyUsage != 0 {
		// RFC 8550 §4.4.2: keyEncipherment for key transport, keyAgreement
		// for ECDH.
		need, name := x509.KeyUsageKeyEncipherment, "keyEncipherment"
		if c.PublicKeyAlgorithm == x509.ECDSA {
			need, name = x509.KeyUsageKeyAgreement, "keyAgreement"
		}
		if c.KeyUsage&need == 0 {
			return "refused: keyUsage lacks " + name
		}
	}
	if now.After(c.NotAfter) {
		return "refused: expired on " + c.NotAfter.UTC().Format(time.DateOnly)
	}
	if now.Before(c.NotBefore) {
		return "refused: not valid before " + c.NotBefore.UTC().Format(time.DateOnly)
	}
	if ch.Roots == nil {
		return "refused: no trust anchors configured (smime.trust_anchors)"
	}
	chains, err := c.Verify(x509.VerifyOptions{Roots: ch.Roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
	if err != nil {
		var ua x509.UnknownAuthorityError
		var inv x509.CertificateInvalidError
		switch {
		case errors.As(err, &ua):
			return "refused: no chain to a trust anchor"
		case errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage:
			return "refused: extKeyUsage does not allow emailProtection"
		case errors.As(err, &inv) && inv.Reason == x509.Expired:
			return "refused: a certificate of the chain is expired or not yet valid"
		}
		return "refused: chain does not verify: " + err.Error()
	}
	if ch.Revocation == nil {
		return "usable (chain to anchor; revocation not checked)"
	}
	// The certificate is usable when one chain has no revoked member; a
	// revoked leaf fails every chain.
	var revoked, unknown string
	for _, chain := range chains {
		r, u := ch.chainStatus(ctx, chain, now)
		if r == "" && u == "" {
			return "usable (chain to anchor; not revoked)"
		}
		if r != "" && revoked == "" {
			revoked = r
		}
		if r == "" && unknown == "" {
			unknown = u
		}
	}
	if unknown == "" {
		return "refused: revoked: " + revoked
	}
	if ch.RequireRevocation {
		return "refused: revocation status unknown: " + unknown
	}
	return "usable (chain to anchor; revocation unknown: " + unknown + ")"
}

// chainStatus checks each certificate of a chain but the anchor against
// its issuer's CRL.
func (ch *Chooser) chainStatus(ctx context.Context, chain []*x509.Certificate, now time.Time) (revoked, unknown string) {
	for i := 0; i+1 < len(chain); i++ {
		st, detail := ch.Revocation.Status(ctx, chain[i], chain[i+1], now)
		switch st {
		case Revoked:
			return chain[i].Subject.CommonName + ": " + detail, ""
		case Unknown:
			if unknown == "" {
				unknown = chain[i].Subject.CommonName + ": " + detail
			}
		}
	}
	return "", unknown
}

// Algorithms is what the audit records for a recipient.
func Algorithms(c cms.Cipher, r cms.Recipient) string {
	return fmt.Sprintf("%s,%s", c, r.Algorithm())
}
