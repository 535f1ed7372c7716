package keyring

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

func openKeyring(t *testing.T) *Keyring {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Keyring{Store: st}
}

// newCert makes an OpenPGP v4 certificate for address (binary); revoked
// and lifetime change it.
func newCert(t *testing.T, address string, revoked bool, created time.Time, lifetime uint32) []byte {
	t.Helper()
	cfg := &packet.Config{Time: func() time.Time { return created }, KeyLifetimeSecs: lifetime, Algorithm: packet.PubKeyAlgoEdDSA}
	e, err := openpgp.NewEntity("Test", "", address, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if revoked {
		if err := e.Revoke(packet.KeyCompromised, "test", cfg); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func armour(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, "PGP PUBLIC KEY BLOCK", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestParseCorpus(t *testing.T) {
	t.Parallel()
	read := func(p string) []byte {
		b, err := os.ReadFile("../../testdata/openpgp/" + p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// RFC 9216 §2 and §3: Alice (Ed25519/Cv25519) and Bob (RSA-3072).
	for _, c := range []struct{ file, fpr, addr, alg string }{
		{"certificates/alice.pgp", "EB85BB5FA33A75E15E944E63F231550C4F47E38E", "alice@openpgp.example", "ECDH-Curve25519"},
		{"certificates/bob.pgp", "D1A66E1A23B182C9980F788CFBFCC82A015E7330", "bob@openpgp.example", "RSA-3072"},
	} {
		ks, err := Parse(read(c.file))
		if err != nil || len(ks) != 1 {
			t.Fatalf("%s: %v %d", c.file, err, len(ks))
		}
		k := ks[0]
		if k.Fingerprint != c.fpr || k.Algorithm != c.alg || len(k.Addresses) != 1 || k.Addresses[0] != c.addr || k.Kind != KindPGP || k.Version != 4 {
			t.Errorf("%s: %+v", c.file, k)
		}
		if why := k.Unusable(c.addr, time.Now()); why != "" {
			t.Errorf("%s: unusable: %s", c.file, why)
		}
		if why := k.Unusable("someone@openpgp.example", time.Now()); !strings.Contains(why, "no valid user ID") {
			t.Errorf("%s for another address: %q", c.file, why)
		}
	}
	if _, err := Parse(read("certificates/alice-secret.pgp")); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Errorf("secret key accepted: %v", err)
	}
	// The suite's revocation vectors: every reason is revoked; the
	// unrevoked twin is not (it has no encryption key, which is why it is
	// unusable).
	for _, f := range []string{"compromised", "key_retired", "no_subpacket", "superseded", "uid_retired", "private"} {
		ks, err := Parse(read("revoked-key/revoked-key-cert-revoked-" + f + ".pgp"))
		if err != nil {
			t.Fatal(err)
		}
		if why := ks[0].Unusable("juliet@example.org", time.Now()); why != "revoked" && !strings.Contains(why, "user ID") {
			t.Errorf("revoked (%s): %q", f, why)
		}
	}
	ks, _ := Parse(read("revoked-key/revoked-key-cert-not-revoked.pgp"))
	if why := ks[0].Unusable("juliet@example.org", time.Now()); why == "revoked" || !strings.Contains(why, "encryption") {
		t.Errorf("not revoked: %q", why)
	}
	if _, err := Parse([]byte("hello")); err == nil {
		t.Error("garbage accepted")
	}
}

func TestRevokedAndExpiredNeverUsed(t *testing.T) {
	t.Parallel()
	kr := openKeyring(t)
	ctx := context.Background()
	addr := "r@partner.example"
	if _, err := kr.Add(ctx, newCert(t, addr, true, time.Now().Add(-time.Hour), 0), false); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Add(ctx, armour(t, newCert(t, addr, false, time.Now().Add(-48*time.Hour), 3600)), false); err != nil {
		t.Fatal(err)
	}
	ans, err := kr.Lookup(ctx, addr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Keys) != 0 || !strings.Contains(ans.Why, "not usable: revoked") || !strings.Contains(ans.Why, "not usable: expired 20") {
		t.Fatalf("answer %+v", ans)
	}
	good, err := kr.Add(ctx, newCert(t, addr, false, time.Now().Add(-time.Hour), 0), false)
	if err != nil {
		t.Fatal(err)
	}
	ans, _ = kr.Lookup(ctx, strings.ToUpper(addr), Options{})
	if len(ans.Keys) != 1 || ans.Keys[0].Fingerprint != good[0].Fingerprint || ans.Source != SourceOperator || len(ans.Ladder[0].Passed) != 2 {
		t.Fatalf("answer %+v", ans)
	}
	if err := kr.Remove(ctx, strings.ToLower(good[0].Fingerprint)); err != nil {
		t.Fatal(err)
	}
	if err := kr.Remove(ctx, good[0].Fingerprint); err != store.ErrNotFound {
		t.Fatalf("second remove: %v", err)
	}
	if ks, _ := kr.List(ctx); len(ks) != 2 {
		t.Fatalf("%d keys left", len(ks))
	}
}

func TestX509(t *testing.T) {
	t.Parallel()
	kr := openKeyring(t)
	ctx := context.Background()
	mk := func(emails []string, notAfter time.Time, der bool) []byte {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x", ExtraNames: []pkix.AttributeTypeAndValue{{Type: []int{1, 2, 840, 113549, 1, 9, 1}, Value: "subject@partner.example"}}},
			EmailAddresses: emails, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
		b, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		if der {
			return b
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b})
	}
	if _, err := kr.Add(ctx, mk([]string{"S@Partner.example"}, time.Now().Add(time.Hour), false), false); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Add(ctx, mk([]string{"s@partner.example"}, time.Now().Add(-time.Minute), true), false); err != nil {
		t.Fatal(err)
	}
	// The subject's emailAddress attribute is not an address (SAN only).
	if _, err := kr.Add(ctx, mk(nil, time.Now().Add(time.Hour), true), false); err == nil {
		t.Fatal("a certificate without SAN rfc822Name accepted")
	}
	ans, _ := kr.Lookup(ctx, "s@partner.example", Options{Kind: KindX509})
	if len(ans.Keys) != 1 || ans.Keys[0].Kind != KindX509 || ans.Keys[0].Algorithm != "ECDSA" || len(ans.Ladder[0].Passed) != 1 || !strings.Contains(ans.Ladder[0].Passed[0].Why, "expired") {
		t.Fatalf("answer %+v", ans)
	}
	if ans, _ := kr.Lookup(ctx, "s@partner.example", Options{Kind: KindPGP}); len(ans.Keys) != 0 {
		t.Fatal("x509 key returned for kind pgp")
	}
}

// wkdServer is a loopback HTTPS server that answers for every host name
// of example.test, with a certificate for them from a CA the client trusts.
type wkdServer struct {
	mu       sync.Mutex
	answers  map[string][]byte // host+path -> body; missing: 404
	requests atomic.Int32
	client   *http.Client
	handler  http.Handler // when set, answers instead of answers
}

func newWKDServer(t *testing.T) *wkdServer {
	t.Helper()
	w := &wkdServer{answers: map[string][]byte{}}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: []string{"example.test", "openpgpkey.example.test", "other.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, _ := x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, caKey)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.requests.Add(1)
		w.mu.Lock()
		if w.handler != nil {
			h := w.handler
			w.mu.Unlock()
			h.ServeHTTP(rw, r)
			return
		}
		b, ok := w.answers[r.Host+r.URL.Path+"?"+r.URL.RawQuery]
		w.mu.Unlock()
		if !ok {
			http.NotFound(rw, r)
			return
		}
		rw.Write(b)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	addr := srv.Listener.Addr().String()
	w.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	return w
}

func (w *wkdServer) set(url string, body []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	u := strings.TrimPrefix(url, "https://")
	w.answers[u] = body
}

func TestWKDHash(t *testing.T) {
	t.Parallel()
	// draft-koch-openpgp-webkey-service §3.1's example: "Joe.Doe" ->
	// iy9q119eutrkn8s1mk4r39qejnbu3n5q.
	if got := WKDHash("Joe.Doe"); got != "iy9q119eutrkn8s1mk4r39qejnbu3n5q" {
		t.Fatalf("WKDHash(Joe.Doe) = %s", got)
	}
	adv, dir, _ := WKDURLs("Joe.Doe@Example.ORG")
	if adv != "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe" ||
		dir != "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe" {
		t.Fatalf("%s %s", adv, dir)
	}
}

func TestWKDLadder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newWKDServer(t)
	now := time.Now()
	clock := func() time.Time { return now }
	kr := openKeyring(t)
	kr.WKD, kr.Now = &WKD{Client: srv.client}, clock

	test := func(addr string, serve func(adv, dir string), wantSource, wantMethod, wantDetail string) {
		t.Helper()
		adv, dir, _ := WKDURLs(addr)
		serve(adv, dir)
		ans, err := kr.Lookup(ctx, addr, Options{})
		if err != nil {
			t.Fatal(err)
		}
		st := ans.Ladder[1]
		if ans.Source != wantSource {
			t.Fatalf("%s: source %q, want %q; ladder %+v", addr, ans.Source, wantSource, ans.Ladder)
		}
		if wantMethod != "" && (len(st.WKD) == 0 || st.WKD[len(st.WKD)-1].Method != wantMethod || st.WKD[len(st.WKD)-1].Result != "found") {
			t.Fatalf("%s: attempts %+v, want found by %s", addr, st.WKD, wantMethod)
		}
		// The advanced method is always asked first, and the direct one
		// only when it has no key.
		if len(st.WKD) > 0 && st.WKD[0].Method != "advanced" || wantMethod == "advanced" && len(st.WKD) != 1 {
			t.Fatalf("%s: attempts %+v: want the advanced method first, and alone when it answers", addr, st.WKD)
		}
		if wantDetail != "" && !strings.Contains(ans.Why, wantDetail) {
			t.Fatalf("%s: why %q, want %q", addr, ans.Why, wantDetail)
		}
	}
	past := now.Add(-time.Hour)
	test("adv@example.test", func(adv, dir string) { srv.set(adv, newCert(t, "adv@example.test", false, past, 0)) }, SourceWKD, "advanced", "")
	test("dir@example.test", func(adv, dir string) { srv.set(dir, newCert(t, "dir@example.test", false, past, 0)) }, SourceWKD, "direct", "")
	test("both@example.test", func(adv, dir string) {
		srv.set(adv, newCert(t, "both@example.test", false, past, 0))
		srv.set(dir, []byte("not asked"))
	}, SourceWKD, "advanced", "")
	test("armoured@example.test", func(adv, dir string) {
		srv.set(adv, armour(t, newCert(t, "armoured@example.test", false, past, 0)))
		srv.set(dir, armour(t, newCert(t, "armoured@example.test", false, past, 0)))
	}, "", "", "refused: armoured answer")
	test("wrong@example.test", func(adv, dir string) {
		srv.set(adv, newCert(t, "other@example.test", false, past, 0))
		srv.set(dir, newCert(t, "wrong@example.test.evil", false, past, 0))
	}, "", "", "no user ID is exactly wrong@example.test")
	test("revoked@example.test", func(adv, dir string) { srv.set(adv, newCert(t, "revoked@example.test", true, past, 0)) }, "", "", "revoked")
	test("nobody@example.test", func(adv, dir string) {}, "", "", "wkd: none")

	// Cached: no request while fresh; fetched again when stale, and a key
	// the domain no longer publishes is dropped.
	before := srv.requests.Load()
	if ans, _ := kr.Lookup(ctx, "adv@example.test", Options{}); ans.Source != SourceWKD || srv.requests.Load() != before || !strings.Contains(ans.Ladder[1].Detail, "cached") {
		t.Fatalf("cached lookup asked the server (%d -> %d) or failed: %+v", before, srv.requests.Load(), ans.Ladder[1])
	}
	adv, _, _ := WKDURLs("adv@example.test")
	srv.set(adv, nil)
	srv.mu.Lock()
	delete(srv.answers, strings.TrimPrefix(adv, "https://"))
	srv.mu.Unlock()
	now = now.Add(25 * time.Hour)
	if ans, _ := kr.Lookup(ctx, "adv@example.test", Options{}); ans.Source != "" || srv.requests.Load() == before {
		t.Fatalf("stale key used: %+v", ans)
	}
	if rows, _ := kr.Store.KeysFor(ctx, "adv@example.test"); len(rows) != 0 {
		t.Fatalf("withdrawn key kept: %d rows", len(rows))
	}

	// The operator's key wins, and the WKD is not asked.
	if _, err := kr.Add(ctx, newCert(t, "dir@example.test", false, past, 0), false); err != nil {
		t.Fatal(err)
	}
	before = srv.requests.Load()
	ans, _ := kr.Lookup(ctx, "dir@example.test", Options{})
	if ans.Source != SourceOperator || ans.Ladder[1].Result != "skipped" || srv.requests.Load() != before {
		t.Fatalf("operator key: %+v", ans)
	}
}

func TestWKDUnreachableFallsThrough(t *testing.T) {
	t.Parallel()
	kr := openKeyring(t)
	kr.WKD = &WKD{Client: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}
	}}}, Timeout: time.Second}
	ans, err := kr.Lookup(context.Background(), "x@example.test", Options{})
	if err != nil || len(ans.Keys) != 0 || ans.Ladder[1].Result != "error" || !strings.Contains(ans.Why, "wkd: error") {
		t.Fatalf("%v %+v", err, ans)
	}
}

func TestHarvest(t *testing.T) {
	t.Parallel()
	kr := openKeyring(t)
	ctx := context.Background()
	cert := newCert(t, "h@partner.example", false, time.Now().Add(-time.Hour), 0)
	if _, err := kr.Harvest(ctx, "h@partner.example", cert, false); err == nil {
		t.Fatal("harvested from mail that failed DMARC")
	}
	if _, err := kr.Harvest(ctx, "someone-else@partner.example", cert, true); err == nil {
		t.Fatal("harvested a key for another address")
	}
	if _, err := kr.Harvest(ctx, "h@partner.example", cert, true); err != nil {
		t.Fatal(err)
	}
	ans, _ := kr.Lookup(ctx, "h@partner.example", Options{})
	if ans.Source != SourceHarvested || ans.Keys[0].Trust != "dmarc-pass" || ans.Ladder[1].Result != "skipped" {
		t.Fatalf("%+v", ans)
	}
	// The operator adds the same key: it is the operator's now, and a
	// later harvest does not take it over.
	kr.Add(ctx, cert, false)
	kr.Harvest(ctx, "h@partner.example", cert, true)
	if ans, _ := kr.Lookup(ctx, "h@partner.example", Options{}); ans.Source != SourceOperator {
		t.Fatalf("%+v", ans)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"certificates/alice.pgp", "certificates/bob.pgp", "revoked-key/revoked-key-cert-revoked-compromised.pgp"} {
		b, err := os.ReadFile("../../testdata/openpgp/" + p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := Parse(data)
		if err != nil {
			return
		}
		for _, k := range keys {
			// What parsed re-parses to the same fingerprint (the store
			// keeps Raw and reads it back).
			again, err := Parse(k.Raw)
			if err != nil || len(again) != 1 || again[0].Fingerprint != k.Fingerprint {
				t.Fatalf("key %s does not re-parse: %v", k.Fingerprint, err)
			}
			k.Unusable("a@b.example", time.Now())
		}
	})
}

// TestRevokedUserIDNotUsed: GnuPG revokes one of a key's two user IDs; the
// key still encrypts for the other address, never for the revoked one.
func TestRevokedUserIDNotUsed(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("gpg"); err != nil {
		testutil.Missing(t, "gpg is not installed (scripts/install-test-deps.sh)")
	}
	home := t.TempDir()
	gpg := func(args ...string) []byte {
		cmd := exec.Command("gpg", append([]string{"--batch", "--passphrase", "", "--pinentry-mode", "loopback"}, args...)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
		return out
	}
	gpg("--quick-gen-key", "Kept <kept@partner.example>", "future-default", "default", "never")
	gpg("--quick-add-uid", "kept@partner.example", "Gone <gone@partner.example>")
	gpg("--quick-revoke-uid", "kept@partner.example", "Gone <gone@partner.example>")
	cmd := exec.Command("gpg", "--batch", "--export", "kept@partner.example")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	cert, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := Parse(cert)
	if err != nil || len(ks) != 1 {
		t.Fatal(err)
	}
	// GnuPG dates each new signature a second after the last, so the
	// revocation may lie a second or two ahead of the clock: judge a
	// minute later.
	at := time.Now().Add(time.Minute)
	if why := ks[0].Unusable("kept@partner.example", at); why != "" {
		t.Fatalf("kept: %s", why)
	}
	if why := ks[0].Unusable("gone@partner.example", at); !strings.Contains(why, "no valid user ID") {
		t.Fatalf("revoked user ID: %q", why)
	}
}

// TestWKDServedAndFetched: staff keys served by WKDHandler are found by
// this package's own client over HTTPS by both methods; keys that are not
// staff's, or of other domains, are not served.
func TestWKDServedAndFetched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kr := openKeyring(t)
	past := time.Now().Add(-time.Hour)
	if _, err := kr.Add(ctx, newCert(t, "Staff.Member@example.test", false, past, 0), true); err != nil {
		t.Fatal(err)
	}
	kr.Add(ctx, newCert(t, "partner@example.test", false, past, 0), false)
	kr.Add(ctx, newCert(t, "revoked@example.test", true, past, 0), true)
	mux := http.NewServeMux()
	(&WKDHandler{Keyring: kr, IsOrgDomain: func(d string) bool { return d == "example.test" }}).Mount(mux)
	srv := newWKDServer(t)
	srv.mu.Lock()
	srv.handler = mux
	srv.mu.Unlock()
	client := openKeyring(t)
	client.WKD = &WKD{Client: srv.client}
	for _, c := range []struct {
		addr, method string
	}{{"staff.member@example.test", "advanced"}, {"partner@example.test", ""}, {"revoked@example.test", ""}} {
		ans, err := client.Lookup(ctx, c.addr, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if c.method == "" {
			if len(ans.Keys) != 0 {
				t.Errorf("%s: served %+v", c.addr, ans.Keys)
			}
			continue
		}
		if ans.Source != SourceWKD || ans.Ladder[1].WKD[0].Method != c.method {
			t.Errorf("%s: %+v", c.addr, ans.Ladder)
		}
	}
	// The direct method, by the Host header.
	_, dir, _ := WKDURLs("staff.member@example.test")
	resp, err := srv.client.Get(dir)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("direct: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, err = srv.client.Get("https://other.test/.well-known/openpgpkey/hu/" + WKDHash("staff.member"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("another domain: %d", resp.StatusCode)
	}
}

// TestWKDSSRFGuard: the production client (NewWKDClient, no allow-list)
// refuses a directory host that resolves to a loopback address:
// both methods are "unreachable", the rung is an error, no key is used.
func TestWKDSSRFGuard(t *testing.T) {
	t.Parallel()
	kr := openKeyring(t)
	var asked []string
	lookup := func(_ context.Context, host string) ([]net.IP, error) {
		asked = append(asked, host)
		// Loopback only, so that even a broken guard reaches nothing
		// beyond this machine (private ranges: netguard's TestClassify).
		if strings.HasPrefix(host, "openpgpkey.") {
			return []net.IP{net.ParseIP("127.0.0.2")}, nil
		}
		return []net.IP{net.ParseIP("::ffff:127.0.0.1")}, nil
	}
	kr.WKD = &WKD{Client: NewWKDClient(lookup, time.Second, nil), Timeout: time.Second}
	ans, err := kr.Lookup(context.Background(), "x@inside.example", Options{})
	if err != nil || len(ans.Keys) != 0 || ans.Ladder[1].Result != "error" || len(ans.Ladder[1].WKD) != 2 {
		t.Fatalf("%v %+v", err, ans)
	}
	for i, a := range ans.Ladder[1].WKD {
		if !strings.HasPrefix(a.Result, "unreachable: ") || !strings.Contains(a.Result, "loopback") {
			t.Errorf("attempt %d: %q, want unreachable (loopback)", i, a.Result)
		}
	}
	if strings.Join(asked, ",") != "openpgpkey.inside.example,inside.example" {
		t.Errorf("resolver asked %v, want the WKD hosts through the given lookup", asked)
	}
}
