package smime

import (
	"bytes"
	"context"
	"crypto"
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

	"golang.org/x/crypto/ocsp"
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

// CRLCache answers revocation from CRLs (RFC 5280 §5, §6.3) and, when no
// CRL answers, OCSP responses (RFC 6960): first those in Dir (CRLs, and
// *.ocsp files, placed there by the operator or fetched earlier); then,
// unless Offline, OCSP from the certificate's responders and CRLs from its
// distribution points over HTTP, which are kept in Dir. A CRL or response
// counts only when its issuer's signature verifies and it is current
// (nextUpdate in the future); a revoked entry counts even when stale,
// since revocation is permanent.
type CRLCache struct {
	Dir     string
	Offline bool
	Client  *http.Client // nil: a client with a 20 s timeout
	Log     *slog.Logger

	mu     sync.Mutex
	loaded bool
	crls   []*x509.RevocationList
	ocsp   [][]byte // raw OCSP responses: *.ocsp in Dir, and fetched ones
}

// Status checks cert against the CRLs of issuer.
func (c *CRLCache) Status(ctx context.Context, cert, issuer *x509.Certificate, now time.Time) (RevocationStatus, string) {
	crls := c.forIssuer(issuer)
	st, detail := judge(crls, cert, issuer, now)
	if st != Unknown {
		return st, detail
	}
	if st2, d2 := c.cachedOCSP(cert, issuer, now); st2 != Unknown {
		return st2, d2
	}
	if c.Offline {
		return st, detail + " (offline mode)"
	}
	for _, url := range cert.OCSPServer {
		if st2, d2, err := c.fetchOCSP(ctx, url, cert, issuer, now); err != nil {
			detail += "; OCSP " + url + ": " + err.Error()
		} else if st2 != Unknown {
			return st2, d2
		}
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
		if strings.HasSuffix(e.Name(), ".ocsp") {
			c.ocsp = append(c.ocsp, b)
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

// ocspStatus reads one OCSP response (RFC 6960) for cert: its signature
// must verify to issuer (directly or through a delegated responder
// certificate issuer signed); Good only while current, Revoked always.
func ocspStatus(raw []byte, cert, issuer *x509.Certificate, now time.Time) (RevocationStatus, string) {
	resp, err := ocsp.ParseResponseForCert(raw, cert, issuer)
	if err != nil {
		return Unknown, ""
	}
	switch resp.Status {
	case ocsp.Revoked:
		return Revoked, fmt.Sprintf("revoked per OCSP of %s since %s", issuer.Subject.CommonName, resp.RevokedAt.UTC().Format(time.DateOnly))
	case ocsp.Good:
		if !resp.NextUpdate.IsZero() && resp.NextUpdate.After(now) && !resp.ThisUpdate.After(now) {
			return Good, ""
		}
	}
	return Unknown, ""
}

func (c *CRLCache) cachedOCSP(cert, issuer *x509.Certificate, now time.Time) (RevocationStatus, string) {
	c.mu.Lock()
	raws := append([][]byte(nil), c.ocsp...)
	c.mu.Unlock()
	for _, raw := range raws {
		if st, d := ocspStatus(raw, cert, issuer, now); st != Unknown {
			return st, d
		}
	}
	return Unknown, ""
}

// maxOCSPBytes bounds an OCSP response.
const maxOCSPBytes = 1 << 20

func (c *CRLCache) fetchOCSP(ctx context.Context, url string, cert, issuer *x509.Certificate, now time.Time) (RevocationStatus, string, error) {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return Unknown, "", fmt.Errorf("not an HTTP URL")
	}
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		return Unknown, "", err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return Unknown, "", err
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request") // RFC 6960 App. A.1
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: 20 * time.Second}
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return Unknown, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Unknown, "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxOCSPBytes+1))
	if err != nil {
		return Unknown, "", err
	}
	if len(raw) > maxOCSPBytes {
		return Unknown, "", fmt.Errorf("response larger than %d bytes", maxOCSPBytes)
	}
	if _, err := ocsp.ParseResponseForCert(raw, cert, issuer); err != nil {
		return Unknown, "", err
	}
	st, d := ocspStatus(raw, cert, issuer, now)
	c.mu.Lock()
	c.ocsp = append(c.ocsp, raw)
	c.mu.Unlock()
	if c.Dir != "" {
		sum := sha256.Sum256(cert.Raw)
		name := filepath.Join(c.Dir, hex.EncodeToString(sum[:8])+".ocsp")
		if err := os.MkdirAll(c.Dir, 0o700); err == nil {
			if err := os.WriteFile(name, raw, 0o600); err != nil {
				c.log().Warn("smime: caching OCSP response", "file", name, "err", err)
			}
		}
	}
	return st, d, nil
}

func (c *CRLCache) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}
