package gateway

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/dns"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
	"sealpost/internal/tlspolicy"
)

// TestRecipientTLSSendsPersonalDataByDANE: with no smarthost, MX delivery
// runs under the outbound TLS policy. A domain whose MX host has DNSSEC-
// authentic DANE records is recipient.tls "dane", so the built-in policy
// sends personal data there by mail (require-tls) instead of to the portal;
// the attempt's audit event says how TLS was verified. A domain without
// DANE, MTA-STS or a list entry still gets the portal.
func TestRecipientTLSSendsPersonalDataByDANE(t *testing.T) {
	t.Parallel()
	ca := testutil.NewCA(t, "test CA")
	cert := ca.Leaf(t, "mx.nhs.example")
	mx := testutil.NewSinkTLS(t, &cert)
	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	res := dns.MockResolver{
		MX:        map[string][]dns.MX{"nhs.example": {{Host: "mx.nhs.example", Pref: 10}}, "plain.example": {{Host: "mx.plain.example", Pref: 10}}},
		IP:        map[string][]net.IP{"mx.nhs.example": {net.IPv4(127, 0, 0, 1)}, "mx.plain.example": {net.IPv4(127, 0, 0, 1)}},
		TLSA:      map[string][]dns.TLSA{"_25._tcp.mx.nhs.example": {{Usage: 3, Selector: 1, MatchingType: 1, CertAssoc: spki[:]}}},
		Authentic: map[string]bool{"nhs.example": true, "mx.nhs.example": true, "_25._tcp.mx.nhs.example": true},
	}
	sink := testutil.NewSink(t)
	cfg := mxDeliveryConfig(t, sink.Addr)
	cfg.Outbound.MTASTS = false
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gw, err := StartWith(cfg, log, &testutil.Resolver{}, StartOptions{PolicyDNS: res,
		MXDial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, mx.Addr)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
	})
	e := &env{t: t, gw: gw, sink: sink, cfg: cfg}
	body := "NHS number 943 476 5919"
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"gp@nhs.example"}, message("staff@example.gov.uk", "gp@nhs.example", "r", body))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	got := mx.Wait(t, 1, 10*time.Second)
	if !got[0].TLS || !strings.Contains(string(got[0].Data), "943 476 5919") {
		t.Fatalf("delivered without TLS or without the body: TLS=%v", got[0].TLS)
	}
	if rs, _ := gw.Store.Recipients(context.Background(), id); len(rs) != 1 || rs[0].Action != "require-tls" {
		t.Fatalf("recipients %+v", rs)
	}
	var attempt *store.AuditEvent
	for deadline := time.Now().Add(5 * time.Second); attempt == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		evs, _ := gw.Store.AuditEvents(context.Background(), id, 100)
		for _, ev := range evs {
			if ev.Action == "delivery.attempt" {
				attempt = ev
			}
		}
	}
	if attempt == nil || !strings.Contains(attempt.Detail, "tls_mode=dane") || !strings.Contains(attempt.Detail, "chain=dane-ee") {
		t.Fatalf("attempt event %+v", attempt)
	}

	code, reply = outbound(t, e, "staff@example.gov.uk", []string{"x@plain.example"}, message("staff@example.gov.uk", "x@plain.example", "r", body))
	if code != 250 {
		t.Fatal(reply)
	}
	if rs, _ := gw.Store.Recipients(context.Background(), msgID(t, reply)); len(rs) != 1 || rs[0].Action != "portal" {
		t.Fatalf("opportunistic domain: %+v", rs)
	}

	// The console's TLS page says the same to the support desk; only an
	// admin may drop a cached policy.
	pw := addConsoleUser(t, gw.Store, "audrey", "auditor")
	aud := newBrowser(t, e)
	aud.get("/console/login")
	if st, _ := aud.post("/console/login", url.Values{"user": {"audrey"}, "password": {pw}}); st != 200 {
		t.Fatalf("auditor sign-in: %d", st)
	}
	st, page := aud.get("/console/tls?domain=NHS.example.")
	if st != 200 || !strings.Contains(page, "nhs.example: dane") || !strings.Contains(page, "mx.nhs.example") || strings.Contains(page, "Drop the cached") {
		t.Fatalf("TLS page %d:\n%s", st, page)
	}
	if st, page = aud.get("/console/tls?domain=plain.example"); st != 200 || !strings.Contains(page, "plain.example: opportunistic") {
		t.Fatalf("TLS page %d:\n%s", st, page)
	}
	if st, _ = aud.post("/console/tls/refresh", url.Values{"domain": {"nhs.example"}}); st != 403 {
		t.Fatalf("auditor refresh: %d", st)
	}
}

// TestStoreSTSCacheMemory: the in-memory copy answers repeated reads, and
// what this process stores or drops is seen at once, never the old policy.
func TestStoreSTSCacheMemory(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	st, err := OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	c := newStoreSTSCache(st)
	now := time.Now()
	put := func(id string) {
		t.Helper()
		if err := c.Put(ctx, tlspolicy.CachedPolicy{Domain: "a.example", ID: id, Text: "version: STSv1\r\nmode: enforce\r\nmx: mx.a.example\r\nmax_age: 86400\r\n",
			FetchedAt: now, Expires: now.Add(time.Hour), RefreshAt: now.Add(30 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := c.Get(ctx, "a.example"); p != nil || err != nil {
		t.Fatalf("empty cache: %+v %v", p, err)
	}
	put("1")
	if p, _ := c.Get(ctx, "a.example"); p == nil || p.ID != "1" {
		t.Fatalf("after Put: %+v", p)
	}
	// Another process changes the row: the copy answers until memTTL.
	if err := st.MTASTSPut(ctx, store.MTASTSPolicy{Domain: "a.example", ID: "2", Policy: "x", FetchedAt: now, Expires: now.Add(time.Hour), RefreshAt: now}); err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Get(ctx, "a.example"); p == nil || p.ID != "1" {
		t.Fatalf("the memory copy was not used: %+v", p)
	}
	put("3")
	if p, _ := c.Get(ctx, "a.example"); p == nil || p.ID != "3" {
		t.Fatalf("after a second Put: %+v", p)
	}
	if err := c.Delete(ctx, "a.example"); err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Get(ctx, "a.example"); p != nil {
		t.Fatalf("after Delete: %+v", p)
	}
}

// mxDeliveryConfig is the configuration of the tests that deliver by MX
// under the outbound TLS policy (StartWith with PolicyDNS and MXDial):
// loopback listeners, fast retries, Ed25519 DKIM, and inbound
// authentication off (not what they test; its ARC seal wants an RSA key).
func mxDeliveryConfig(t *testing.T, mailHost string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Org.Domains = []string{"example.gov.uk"}
	cfg.Org.MailHost = mailHost
	cfg.SMTP.Hostname = "gw.example.gov.uk"
	cfg.SMTP.InboundListen = "127.0.0.1:0"
	cfg.SMTP.OutboundListen = "127.0.0.1:0"
	cfg.Web.Listen = "127.0.0.1:0"
	cfg.Outbound.RetryInitial.Duration = 200 * time.Millisecond
	cfg.Outbound.Workers = 2
	cfg.Queue.PollInterval.Duration = 100 * time.Millisecond
	cfg.DKIM.Algorithm = "ed25519"
	cfg.Inbound.Authenticate = false
	cfg.Policy.Disable = []string{"first-contact-sensitive"}
	return cfg
}
