package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	moxtlsrpt "github.com/mjl-/mox/tlsrpt"

	"sealpost/internal/dns"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

// TestTLSRPTFromMXDeliveries is issue 14's end-to-end proof of TLS-RPT:
// real MX deliveries under the outbound TLS policy (an MTA-STS "testing"
// domain whose MX shows a certificate from an unknown CA, and a DANE-EE
// domain), then the daily job. Each policy domain's report arrives by mail
// at its rua, mox's parser reads it, and its counts are the sessions made:
// the testing domain's deliveries all as certificate failures (RFC 8461 §5:
// testing delivers and reports), the DANE host's all as successes.
func TestTLSRPTFromMXDeliveries(t *testing.T) {
	t.Parallel()
	ca := testutil.NewCA(t, "test CA")
	daneCert := ca.Leaf(t, "mx.dane.example")
	// Not in outbound.ca_file nor the system roots: WebPKI fails it.
	stsCert := testutil.NewCA(t, "unknown CA").Leaf(t, "mx.sts.example")
	daneMX := testutil.NewSinkTLS(t, &daneCert)
	stsMX := testutil.NewSinkTLS(t, &stsCert)
	rua := testutil.NewSink(t)
	spki := sha256.Sum256(daneCert.Leaf.RawSubjectPublicKeyInfo)
	ip := func(last byte) []net.IP { return []net.IP{net.IPv4(127, 0, 0, last)} }
	policyDNS := dns.MockResolver{
		MX: map[string][]dns.MX{
			"dane.example":    {{Host: "mx.dane.example", Pref: 10}},
			"sts.example":     {{Host: "mx.sts.example", Pref: 10}},
			"reports.example": {{Host: "mx.reports.example", Pref: 10}},
		},
		IP:        map[string][]net.IP{"mx.dane.example": ip(2), "mx.sts.example": ip(3), "mx.reports.example": ip(4)},
		TLSA:      map[string][]dns.TLSA{"_25._tcp.mx.dane.example": {{Usage: 3, Selector: 1, MatchingType: 1, CertAssoc: spki[:]}}},
		TXT:       map[string][]string{"_mta-sts.sts.example": {"v=STSv1; id=20261201"}},
		Authentic: map[string]bool{"dane.example": true, "mx.dane.example": true, "_25._tcp.mx.dane.example": true},
	}
	// The TLS-RPT records: the DANE report goes to the TLSA base domain
	// (the MX host, RFC 8460 §4.4), the MTA-STS one to the recipient domain.
	reportDNS := &testutil.Resolver{TXT: map[string][]string{
		"_smtp._tls.sts.example":     {"v=TLSRPTv1; rua=mailto:tls@reports.example"},
		"_smtp._tls.mx.dane.example": {"v=TLSRPTv1; rua=mailto:dane-tls@reports.example"},
	}}
	sinks := map[string]string{"127.0.0.2": daneMX.Addr, "127.0.0.3": stsMX.Addr, "127.0.0.4": rua.Addr}
	var mu sync.Mutex
	dialled := map[string]int{}
	sink := testutil.NewSink(t)
	cfg := mxDeliveryConfig(t, sink.Addr)
	cfg.Outbound.MTASTS = true
	cfg.TLSRPT.Send = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The MTA-STS policy is in the store's cache under the id the TXT record
	// names, so no HTTPS fetch is made (the fetch has tests of its own).
	st, err := OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.MTASTSPut(context.Background(), store.MTASTSPolicy{Domain: "sts.example", ID: "20261201",
		Policy:    "version: STSv1\r\nmode: testing\r\nmx: mx.sts.example\r\nmax_age: 86400\r\n",
		FetchedAt: now, Expires: now.Add(24 * time.Hour), RefreshAt: now.Add(12 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	gw, err := StartWith(cfg, log, reportDNS, StartOptions{PolicyDNS: policyDNS,
		MXDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			to, ok := sinks[host]
			if !ok {
				return nil, fmt.Errorf("no test receiver at %s", addr)
			}
			mu.Lock()
			dialled[host]++
			mu.Unlock()
			return (&net.Dialer{}).DialContext(ctx, network, to)
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
	const nSTS, nDANE = 2, 3
	send := func(rcpt string) {
		t.Helper()
		if code, reply := outbound(t, e, "staff@example.gov.uk", []string{rcpt}, message("staff@example.gov.uk", rcpt, "minutes", "The minutes of Tuesday's meeting.")); code != 250 {
			t.Fatalf("%s: %s", rcpt, reply)
		}
	}
	for i := 0; i < nSTS; i++ {
		send(fmt.Sprintf("clerk%d@sts.example", i))
	}
	for i := 0; i < nDANE; i++ {
		send(fmt.Sprintf("gp%d@dane.example", i))
	}
	for _, m := range daneMX.Wait(t, nDANE, 15*time.Second) {
		if !m.TLS {
			t.Fatal("DANE delivery without TLS")
		}
	}
	stsMX.Wait(t, nSTS, 15*time.Second)
	waitQueueEmpty(t, e)

	n, err := gw.SendTLSReports(context.Background(), time.Now().UTC())
	if err != nil || n != 2 {
		t.Fatalf("sent %d reports (%v), want one per policy domain (2)", n, err)
	}
	type want struct {
		domain, policyType string
		success, failure   int64
		failureType        string
	}
	wants := map[string]want{
		"tls@reports.example":      {"sts.example", string(moxtlsrpt.STS), 0, nSTS, "certificate-not-trusted"},
		"dane-tls@reports.example": {"mx.dane.example", string(moxtlsrpt.TLSA), nDANE, 0, ""},
	}
	for _, m := range rua.Wait(t, 2, 15*time.Second) {
		if len(m.Rcpts) != 1 {
			t.Fatalf("report to %v", m.Rcpts)
		}
		w, ok := wants[m.Rcpts[0]]
		if !ok {
			t.Fatalf("report to %v, an address no record names", m.Rcpts)
		}
		delete(wants, m.Rcpts[0])
		rep, err := moxtlsrpt.ParseMessage(slog.Default(), bytes.NewReader(m.Data))
		if err != nil {
			t.Fatalf("mox cannot read the report to %s: %v\n%s", m.Rcpts[0], err, m.Data)
		}
		if len(rep.Policies) != 1 {
			t.Fatalf("report to %s has %d policies: %+v", m.Rcpts[0], len(rep.Policies), rep)
		}
		p := rep.Policies[0]
		var fails []string
		var failed int64
		for _, fd := range p.FailureDetails {
			fails = append(fails, string(fd.ResultType))
			failed += fd.FailedSessionCount
		}
		if p.Policy.Domain != w.domain || string(p.Policy.Type) != w.policyType ||
			p.Summary.TotalSuccessfulSessionCount != w.success || p.Summary.TotalFailureSessionCount != w.failure || failed != w.failure ||
			w.failure > 0 && (len(fails) != 1 || fails[0] != w.failureType) {
			t.Errorf("report to %s: policy %s %s, %d ok, %d failed %v; want %+v", m.Rcpts[0], p.Policy.Type, p.Policy.Domain,
				p.Summary.TotalSuccessfulSessionCount, p.Summary.TotalFailureSessionCount, fails, w)
		}
		if w.policyType == string(moxtlsrpt.STS) && !strings.Contains(strings.Join(p.Policy.MXHost, ","), "mx.sts.example") {
			t.Errorf("MTA-STS report names mx-host %v", p.Policy.MXHost)
		}
	}
	if len(wants) != 0 {
		t.Fatalf("no report for %v", wants)
	}
}
