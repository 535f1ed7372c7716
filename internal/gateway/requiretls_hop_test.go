package gateway

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

// TestRequireTLSSealpostToSealpost: REQUIRETLS travels two sealpost hops.
// A client gives gateway A a REQUIRETLS message; A's next hop is gateway
// B's inbound listener, verified against B's certificate; B keeps the
// request and hands the message to its mail host with REQUIRETLS again.
func TestRequireTLSSealpostToSealpost(t *testing.T) {
	ca := testutil.NewCA(t, "hop CA")
	leaf := ca.Leaf(t, "127.0.0.1")
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key"), filepath.Join(dir, "ca.pem")
	var chain []byte
	for _, der := range leaf.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{certFile: chain, keyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		caFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mailHostB, caSink := testutil.NewRequireTLSSink(t)
	b := start(t, func(c *config.Config) {
		c.Org.Domains = []string{"partner.example"}
		c.Org.MailHost = mailHostB.Addr
		c.Outbound.CAFile = caSink
		c.SMTP.Hostname = "gw.partner.example"
		c.SMTP.TLSCert, c.SMTP.TLSKey = certFile, keyFile
	})
	a := start(t, func(c *config.Config) {
		c.Outbound.Smarthost = b.gw.InboundAddr.String()
		c.Outbound.CAFile = caFile
	})
	pySend(t, a.gw.OutboundAddr.String(), "staff@example.gov.uk", "someone@partner.example",
		message("staff@example.gov.uk", "someone@partner.example", "two-hops", "hello"), "REQUIRETLS")
	m := mailHostB.Wait(t, 1, 20*time.Second)[0]
	if !m.TLS || !m.RequireTLS {
		t.Fatalf("second hop: TLS=%v REQUIRETLS=%v", m.TLS, m.RequireTLS)
	}
	var id string
	if err := b.gw.Store.DB.QueryRow(`SELECT id FROM messages WHERE direction='in' ORDER BY received_at DESC LIMIT 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if got := storedTLSRequest(t, b, id); got != store.TLSRequestRequire {
		t.Fatalf("gateway B kept %q", got)
	}
}
