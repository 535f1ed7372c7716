package smime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// RevocationStatus is what a CRL says of one certificate.
type RevocationStatus int

const (
	Good    RevocationStatus = iota // listed by no current CRL of its issuer
	Revoked                         // listed by a CRL its issuer signed
	Unknown                         // no current, verified CRL of its issuer
)

// maxCRLBytes bounds a fetched CRL; public CAs' largest are a few MB.
const maxCRLBytes = 16 << 20

// CRLCache answers revocation from CRLs (RFC 5280 §5, §6.3): those in Dir
// (placed there by the operator, or fetched earlier) and, unless Offline,
// those fetched over HTTP from a certificate's CRL distribution points and
// then kept in Dir. A CRL counts only when its issuer's signature verifies
// and it is current (nextUpdate in the future); a revoked entry counts
// even in a stale CRL, since revocation is permanent.
type CRLCache struct {
	Dir     string
	Offline bool
	Client  *http.Client // nil: a client with a 20 s timeout
	Log     *slog.Logger

	mu     sync.Mutex
	loaded bool
	crls   []*x509.RevocationList
}

// Status checks cert against the CRLs of issuer.
func (c *CRLCache) Status(ctx context.Context, cert, issuer *x509.Certificate, now time.Time) (RevocationStatus, string) {
	crls := c.forIssuer(issuer)
	st, detail := judge(crls, cert, issuer, now)
	if st != Unknown || c.Offline {
		if st == Unknown && c.Offline {
			detail += " (offline mode)"
		}
		return st, detail
	}
	for _, url := range cert.CRLDistributionPoints {
		if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
			continue
		}
		crl, err := c.fetch(ctx, url, issuer)
		if err != nil {
			detail = "fetching " + url + ": " + err.Error()
			continue
		}
		if st2, d2 := judge([]*x509.RevocationList{crl}, cert, issuer, now); st2 != Unknown {
			return st2, d2
		}
	}
	return Unknown, detail
}

func judge(crls []*x509.RevocationList, cert, issuer *x509.Certificate, now time.Time) (RevocationStatus, string) {
	current := false
	for _, crl := range crls {
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			continue
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(cert.SerialNumber) == 0 && !e.RevocationTime.After(now) {
				return Revoked, fmt.Sprintf("listed in the CRL of %s since %s", issuer.Subject.CommonName, e.RevocationTime.UTC().Format(time.DateOnly))
			}
		}
		if !crl.NextUpdate.IsZero() && crl.NextUpdate.After(now) {
			current = true
		}
	}
	if current {
		return Good, ""
	}
	if len(crls) == 0 {
		return Unknown, "no CRL of " + issuer.Subject.CommonName
	}
	return Unknown, "the CRL of " + issuer.Subject.CommonName + " is stale or unverified"
}

// forIssuer returns the cached CRLs whose issuer name is issuer's subject.
func (c *CRLCache) forIssuer(issuer *x509.Certificate) []*x509.RevocationList {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		c.loaded = true
		c.crls = c.loadDir()
	}
	var out []*x509.RevocationList
	for _, crl := range c.crls {
		if bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
			out = append(out, crl)
		}
	}
	return out
}

func (c *CRLCache) loadDir() []*x509.RevocationList {
	if c.Dir == "" {
		return nil
	}
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		c.log().Warn("smime: CRL directory unreadable", "dir", c.Dir, "err", err)
		return nil
	}
	var out []*x509.RevocationList
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.Dir, e.Name()))
		if err != nil {
			continue
		}
		if crl, err := ParseCRL(b); err == nil {
			out = append(out, crl)
		}
	}
	return out
}

// ParseCRL reads a PEM ("X509 CRL") or DER CRL.
func ParseCRL(b []byte) (*x509.RevocationList, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	return x509.ParseRevocationList(b)
}

func (c *CRLCache) fetch(ctx context.Context, url string, issuer *x509.Certificate) (*x509.RevocationList, error) {
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: 20 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCRLBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCRLBytes {
		return nil, fmt.Errorf("CRL larger than %d bytes", maxCRLBytes)
	}
	crl, err := ParseCRL(b)
	if err != nil {
		return nil, err
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("CRL signature: %w", err)
	}
	c.mu.Lock()
	c.crls = append(c.crls, crl)
	c.mu.Unlock()
	if c.Dir != "" {
		sum := sha256.Sum256([]byte(url))
		name := filepath.Join(c.Dir, hex.EncodeToString(sum[:8])+".crl")
		if err := os.MkdirAll(c.Dir, 0o700); err == nil {
			if err := os.WriteFile(name, crl.Raw, 0o600); err != nil {
				c.log().Warn("smime: caching CRL", "file", name, "err", err)
			}
		}
	}
	return crl, nil
}

func (c *CRLCache) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}
