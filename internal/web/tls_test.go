package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sealpost/internal/metrics"
)

func writeCert(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	c, k := filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	os.WriteFile(c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return c, k
}

// TestTicketKeysRotate: a session resumes while its ticket key is the
// current or the previous one, and not after two rotations; a certificate
// loaded later is what new handshakes get.
func TestTicketKeysRotate(t *testing.T) {
	dir := t.TempDir()
	certs := &Certificates{}
	c1, k1 := writeCert(t, dir, "one.test")
	if err := certs.Load(c1, k1); err != nil {
		t.Fatal(err)
	}
	tick := make(chan time.Time)
	s := &Server{Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler), Certs: certs, ticketTick: tick}
	addr, err := s.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	rotate := func() {
		tick <- time.Now()
		time.Sleep(50 * time.Millisecond) // for SetSessionTicketKeys after the tick is taken
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(8)}}}
	get := func() *tls.ConnectionState {
		t.Helper()
		resp, err := client.Get("https://" + addr.String() + "/static/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.TLS
	}
	if st := get(); st.DidResume || st.PeerCertificates[0].Subject.CommonName != "one.test" {
		t.Fatalf("first handshake: resumed %v, %s", st.DidResume, st.PeerCertificates[0].Subject.CommonName)
	}
	if st := get(); !st.DidResume {
		t.Fatal("no resumption with the current ticket key")
	}
	rotate()
	if st := get(); !st.DidResume {
		t.Fatal("a ticket of the previous key did not resume: the previous key was not kept")
	}
	rotate()
	rotate()
	if st := get(); st.DidResume {
		t.Fatal("a ticket two rotations old was accepted: the keys do not rotate")
	}
	c2, k2 := writeCert(t, dir, "two.test")
	if err := certs.Load(c2, k2); err != nil {
		t.Fatal(err)
	}
	client.Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = nil
	if st := get(); st.PeerCertificates[0].Subject.CommonName != "two.test" {
		t.Fatalf("after Load: %s", st.PeerCertificates[0].Subject.CommonName)
	}
	if err := certs.Load(filepath.Join(dir, "missing.crt"), k2); err == nil {
		t.Fatal("a missing certificate loaded")
	}
	if st := get(); st.PeerCertificates[0].Subject.CommonName != "two.test" {
		t.Fatal("a failed Load replaced the certificate")
	}
}
