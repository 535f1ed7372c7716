package smime

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fileSource serves the named testdata files for every address.
type fileSource []string

func (f fileSource) Name() string { return "test" }
func (f fileSource) Certificates(ctx context.Context, address string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, n := range f {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			return nil, err
		}
		c, err := ParseCertificates(b)
		if err != nil {
			return nil, err
		}
		out = append(out, c...)
	}
	return out, nil
}

func pool(t *testing.T, files ...string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	for _, f := range files {
		cs, err := fileSource{f}.Certificates(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			p.AddCert(c)
		}
	}
	return p
}

// mimekitChooser: the MimeKit PKI with its root as the only anchor, its
// intermediates known, CRLs from testdata only (offline).
func mimekitChooser(t *testing.T, now time.Time, crlDir string, files ...string) *Chooser {
	return &Chooser{
		Sources:       []CertSource{fileSource(files)},
		Roots:         pool(t, "mimekit/ca.crt"),
		Intermediates: pool(t, "mimekit/primary.crt", "mimekit/secondary.crt"),
		Revocation:    &CRLCache{Dir: crlDir, Offline: true},
		SubjectEmail:  true, RequireRevocation: true,
		Now: func() time.Time { return now },
	}
}

func crlDir(t *testing.T, names ...string) string {
	d := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata/mimekit", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestChooseMimeKit: the certificate decisions on the MimeKit PKI, each
// refusal with its reason.
func TestChooseMimeKit(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	allCRLs := crlDir(t, "root.crl", "primary.crl", "secondary.crl")
	test := func(addr, file string, ch *Chooser, want string) {
		t.Helper()
		if ch == nil {
			ch = mimekitChooser(t, now, allCRLs, "mimekit/"+file)
		}
		got := ch.Choose(context.Background(), addr)
		if want == "usable" {
			if got.Use == nil || !strings.Contains(got.Use.Reason, "not revoked") {
				t.Errorf("%s: want usable and not revoked, got %q", addr, got.Reason)
			}
			return
		}
		if got.Use != nil {
			t.Errorf("%s: want refused (%s), got usable: %s", addr, want, got.Reason)
			return
		}
		if !strings.Contains(got.Reason, want) {
			t.Errorf("%s: reason %q does not say %q", addr, got.Reason, want)
		}
	}
	test("rsa@mimekit.net", "rsa.crt", nil, "usable")
	test("RSA@MimeKit.NET", "rsa.crt", nil, "usable")
	// Explicit curve parameters (RFC 5480 §2.1.1 forbids them): refused.
	test("ec@mimekit.net", "ec.crt", nil, "invalid ECDSA parameters")
	test("revoked@mimekit.net", "revoked.crt", nil, "revoked: MimeKit UnitTests: listed in the CRL of MimeKit Secondary Intermediate CA")
	// The no-chain bundles come without their intermediates.
	for _, n := range []string{"nochain", "revokednochain"} {
		ch := mimekitChooser(t, now, allCRLs, "mimekit/"+n+".crt")
		ch.Intermediates = nil
		test(n+"@mimekit.net", "", ch, "no chain to a trust anchor")
	}
	// The tertiary intermediate is revoked by the root.
	ch := mimekitChooser(t, now, allCRLs, "mimekit/revokedsubca.crt", "mimekit/tertiary.crt")
	test("revokedsubca@mimekit.net", "", ch, "revoked: MimeKit Tertiary Intermediate CA")
	// No address at all (dNSName SANs only): not a candidate.
	test("domain-wide.mimekit.net", "dnsnames.crt", nil, "no S/MIME certificate for")
	// The address of another certificate is no match.
	test("someone@mimekit.net", "rsa.crt", nil, "no S/MIME certificate for")
	// Subject emailAddress only: refused unless configured.
	ch = mimekitChooser(t, now, allCRLs, "mimekit/rsa.crt")
	ch.SubjectEmail = false
	test("rsa@mimekit.net", "", ch, "no S/MIME certificate for")
	// Pinned past its end: expired.
	test("rsa@mimekit.net", "", mimekitChooser(t, time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC), allCRLs, "mimekit/rsa.crt"), "expired on 2034-12-16")
	// Without the secondary's CRL the leaf's status is unknown: refused
	// when required, usable (and said so) otherwise.
	noSecondary := crlDir(t, "root.crl", "primary.crl")
	test("rsa@mimekit.net", "", mimekitChooser(t, now, noSecondary, "mimekit/rsa.crt"), "revocation status unknown: MimeKit UnitTests: no CRL of MimeKit Secondary Intermediate CA (offline mode)")
	ch = mimekitChooser(t, now, noSecondary, "mimekit/rsa.crt")
	ch.RequireRevocation = false
	if got := ch.Choose(context.Background(), "rsa@mimekit.net"); got.Use == nil || !strings.Contains(got.Use.Reason, "revocation unknown") {
		t.Errorf("best-effort revocation: %q", got.Reason)
	}
	// A CRL signed by someone else than the issuer does not count.
	forged := t.TempDir()
	b, _ := os.ReadFile("testdata/mimekit/primary.crl")
	os.WriteFile(filepath.Join(forged, "p.crl"), b, 0o600)
	test("rsa@mimekit.net", "", mimekitChooser(t, now, forged, "mimekit/rsa.crt"), "revocation status unknown")
	// No anchors: nothing is usable.
	ch = mimekitChooser(t, now, allCRLs, "mimekit/rsa.crt")
	ch.Roots = nil
	test("rsa@mimekit.net", "", ch, "no trust anchors configured")
}

func readTestdata(name string) ([]byte, error) { return os.ReadFile(filepath.Join("testdata", name)) }

// TestChooseChecks: EKU, keyUsage, key size and SAN on certificates OpenSSL
// issued.
func TestChooseChecks(t *testing.T) {
	t.Parallel()
	ch := &Chooser{Sources: []CertSource{fileSource{"peer/tlsonly.crt", "peer/signonly-ec.crt", "peer/rsa1024.crt", "peer/good.crt"}},
		Roots: pool(t, "peer/ca2.crt")}
	test := func(addr, want string) {
		t.Helper()
		got := ch.Choose(context.Background(), addr)
		if want == "usable" {
			if got.Use == nil {
				t.Errorf("%s: %s", addr, got.Reason)
			}
			return
		}
		if got.Use != nil || !strings.Contains(got.Reason, want) {
			t.Errorf("%s: want %q, got %q", addr, want, got.Reason)
		}
	}
	test("tls@example.test", "extKeyUsage does not allow emailProtection")
	test("sign@example.test", "keyUsage lacks keyAgreement")
	test("weak@example.test", "RSA key of 1024 bits")
	test("good@example.test", "usable")
	test("alias@example.test", "usable")
	test("other@example.test", "no S/MIME certificate")
}

// TestCRLSignatureChecked: a CRL with the issuer's name but another key's
// signature does not vouch for anything.
func TestCRLSignatureChecked(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	dir := crlDir(t, "root.crl", "primary.crl", "impostor-secondary.crl")
	got := mimekitChooser(t, now, dir, "mimekit/rsa.crt").Choose(context.Background(), "rsa@mimekit.net")
	if got.Use != nil || !strings.Contains(got.Reason, "revocation status unknown") {
		t.Fatalf("impostor CRL: %s", got.Reason)
	}
}

// TestOCSP: with no CRL of the secondary CA, OCSP responses made by
// `openssl ocsp` answer: cached in the directory (offline), or fetched
// from a responder and then cached.
func TestOCSP(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	dir := crlDir(t, "root.crl", "primary.crl", "rsa.ocsp", "revoked.ocsp")
	if got := mimekitChooser(t, now, dir, "mimekit/rsa.crt").Choose(context.Background(), "rsa@mimekit.net"); got.Use == nil || !strings.Contains(got.Use.Reason, "not revoked") {
		t.Errorf("good by OCSP: %s", got.Reason)
	}
	if got := mimekitChooser(t, now, dir, "mimekit/revoked.crt").Choose(context.Background(), "revoked@mimekit.net"); got.Use != nil || !strings.Contains(got.Reason, "revoked per OCSP of MimeKit Secondary Intermediate CA") {
		t.Errorf("revoked by OCSP: %s", got.Reason)
	}
	// A response for another certificate says nothing about this one.
	dir = crlDir(t, "root.crl", "primary.crl", "revoked.ocsp")
	if got := mimekitChooser(t, now, dir, "mimekit/rsa.crt").Choose(context.Background(), "rsa@mimekit.net"); got.Use != nil || !strings.Contains(got.Reason, "unknown") {
		t.Errorf("other's response: %s", got.Reason)
	}

	raw, _ := os.ReadFile("testdata/mimekit/rsa.ocsp")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/ocsp-request" {
			http.Error(w, "bad request", 400)
			return
		}
		w.Write(raw)
	}))
	defer srv.Close()
	certs, _ := fileSource{"mimekit/rsa.crt", "mimekit/secondary.crt"}.Certificates(context.Background(), "")
	cache := &CRLCache{Dir: t.TempDir()}
	st, _, err := cache.fetchOCSP(context.Background(), srv.URL, certs[0], certs[1], now)
	if err != nil || st != Good {
		t.Fatalf("fetched: %v %v", st, err)
	}
	again := &CRLCache{Dir: cache.Dir, Offline: true}
	if st, _ := again.Status(context.Background(), certs[0], certs[1], now); st != Good {
		t.Errorf("the fetched response was not cached: %v", st)
	}
}

// TestOCSPStale: a "good" past its nextUpdate says nothing; a revocation
// stays one.
func TestOCSPStale(t *testing.T) {
	t.Parallel()
	certs, _ := fileSource{"mimekit/rsa.crt", "mimekit/revoked.crt", "mimekit/secondary.crt"}.Certificates(context.Background(), "")
	later := time.Date(2127, 1, 1, 0, 0, 0, 0, time.UTC)
	good, _ := os.ReadFile("testdata/mimekit/rsa.ocsp")
	revoked, _ := os.ReadFile("testdata/mimekit/revoked.ocsp")
	if st, _ := ocspStatus(good, certs[0], certs[2], later); st != Unknown {
		t.Errorf("stale good: %v", st)
	}
	if st, _ := ocspStatus(revoked, certs[1], certs[2], later); st != Revoked {
		t.Errorf("stale revoked: %v", st)
	}
}

// TestCRLStale: a CRL past its nextUpdate vouches for nobody, but its
// revocations stand.
func TestCRLStale(t *testing.T) {
	t.Parallel()
	certs, _ := fileSource{"mimekit/rsa.crt", "mimekit/revoked.crt", "mimekit/secondary.crt"}.Certificates(context.Background(), "")
	b, _ := os.ReadFile("testdata/mimekit/secondary.crl")
	crl, err := ParseCRL(b)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Date(2127, 1, 1, 0, 0, 0, 0, time.UTC)
	if st, _ := judge([]*x509.RevocationList{crl}, certs[0], certs[2], later); st != Unknown {
		t.Errorf("stale CRL: %v", st)
	}
	if st, _ := judge([]*x509.RevocationList{crl}, certs[1], certs[2], later); st != Revoked {
		t.Errorf("stale CRL revocation: %v", st)
	}
}
