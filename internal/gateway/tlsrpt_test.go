package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	moxtlsrpt "github.com/mjl-/mox/tlsrpt"

	"sealpost/internal/config"
	"sealpost/internal/queue"
	"sealpost/internal/testutil"
	"sealpost/internal/tlsrpt"
)

// TestTLSRPTReportsSent: the daily job sends one report per policy domain
// that publishes a record, by mail (DKIM-signed, TLS-Required: No, null
// sender, an attachment mox's parser reads) and by HTTPS POST; never twice
// for a day; never to a domain without a record or to our own; an address
// that bounced a report is left alone; the count cap holds.
func TestTLSRPTReportsSent(t *testing.T) {
	var rcptCalls atomic.Int64
	var refuse atomic.Bool
	e := start(t, func(c *config.Config) { c.TLSRPT.Send = true })
	e.sink.Rcpt = func(rcpt string) error {
		if rcpt == "tlsrpt@company-y.example" {
			rcptCalls.Add(1)
			if refuse.Load() {
				return testutil.SMTPError(550, [3]int{5, 1, 1}, "no such user")
			}
		}
		return nil
	}
	var mu sync.Mutex
	var posts [][]byte
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/tlsrpt+gzip" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		posts = append(posts, b)
		mu.Unlock()
	}))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	res := &testutil.Resolver{TXT: map[string][]string{
		"_smtp._tls.company-y.example":  {"v=TLSRPTv1; rua=mailto:tlsrpt@company-y.example," + srv.URL + "/tlsrpt"},
		"_smtp._tls.second.example":     {"v=TLSRPTv1; rua=mailto:r@second.example"},
		"_smtp._tls.example.gov.uk":     {"v=TLSRPTv1; rua=mailto:self@example.gov.uk"},
		"_smtp._tls.norecord.example":   {"v=spf1 -all"},
		"_smtp._tls.tworecords.example": {"v=TLSRPTv1; rua=mailto:a@tworecords.example", "v=TLSRPTv1; rua=mailto:b@tworecords.example"},
	}}
	rep := newTLSReporter(e.gw.Store, e.gw.Queue, e.gw.Config, res, roots, slog.Default())
	e.gw.tlsReport = rep
	day := time.Now().UTC()
	clock := day
	rep.now = func() time.Time { return clock }
	recordDay := func(domains ...string) {
		for _, d := range domains {
			for i := 0; i < 3; i++ {
				rep.record(tlsrpt.Result{PolicyType: tlsrpt.PolicyNotFound, PolicyDomain: d, MXHost: "mx." + d, ResultType: tlsrpt.ResultSuccess})
			}
			rep.record(tlsrpt.Result{PolicyType: tlsrpt.PolicyNotFound, PolicyDomain: d, MXHost: "mx2." + d, ResultType: tlsrpt.ResultSTARTTLSNotSupported,
				SendingMTAIP: "127.0.0.1", ReceivingIP: "127.0.0.2"})
		}
	}
	recordDay("company-y.example", "norecord.example", "tworecords.example", "example.gov.uk")
	n, err := e.gw.SendTLSReports(context.Background(), day)
	if err != nil || n != 1 {
		t.Fatalf("sent %d reports (%v), want 1", n, err)
	}
	m := e.sink.Wait(t, 1, 10*time.Second)[0]
	if m.From != "" || len(m.Rcpts) != 1 || m.Rcpts[0] != "tlsrpt@company-y.example" {
		t.Fatalf("report envelope %q %v, want the null sender to the rua", m.From, m.Rcpts)
	}
	if testutil.Header(m.Data, "TLS-Required") != "No" || !strings.Contains(testutil.Header(m.Data, "DKIM-Signature"), "d=example.gov.uk") {
		t.Fatalf("report lacks TLS-Required: No or our DKIM signature:\n%s", m.Data)
	}
	got, err := moxtlsrpt.ParseMessage(slog.Default(), bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("mox cannot read the report: %v", err)
	}
	if len(got.Policies) != 1 || got.Policies[0].Policy.Domain != "company-y.example" || got.Policies[0].Summary.TotalSuccessfulSessionCount != 3 ||
		got.Policies[0].Summary.TotalFailureSessionCount != 1 || got.Policies[0].FailureDetails[0].ResultType != moxtlsrpt.ResultSTARTTLSNotSupported {
		t.Fatalf("report %+v", got)
	}
	mu.Lock()
	if len(posts) != 1 {
		t.Fatalf("%d HTTPS posts, want 1", len(posts))
	}
	zr, err := gzip.NewReader(bytes.NewReader(posts[0]))
	if err != nil {
		t.Fatal(err)
	}
	if pj, err := moxtlsrpt.Parse(zr); err != nil || pj.Policies[0].Summary.TotalSuccessfulSessionCount != 3 {
		t.Fatalf("posted report: %+v %v", pj, err)
	}
	mu.Unlock()
	if n, _ := e.gw.SendTLSReports(context.Background(), day); n != 0 {
		t.Fatalf("second run sent %d reports for the same day", n)
	}

	// A bounce suppresses the address for the next reports.
	refuse.Store(true)
	clock = day.Add(24 * time.Hour)
	recordDay("company-y.example")
	if n, err := e.gw.SendTLSReports(context.Background(), clock); err != nil || n != 1 {
		t.Fatalf("day 2: %d %v", n, err)
	}
	waitQueueEmpty(t, e)
	calls := rcptCalls.Load()
	clock = day.Add(48 * time.Hour)
	recordDay("company-y.example")
	if n, err := e.gw.SendTLSReports(context.Background(), clock); err != nil || n != 1 {
		t.Fatalf("day 3: %d %v (the HTTPS rua still gets it)", n, err)
	}
	waitQueueEmpty(t, e)
	if rcptCalls.Load() != calls {
		t.Fatal("a report went to an address that bounced the last one")
	}

	// The count cap: two domains with records, a cap of one.
	clock = day.Add(72 * time.Hour)
	recordDay("company-y.example", "second.example")
	cfg := *e.gw.Config()
	cfg.TLSRPT.MaxReports = 1
	e.gw.cfg.Store(&cfg)
	if n, _ := e.gw.SendTLSReports(context.Background(), clock); n != 1 {
		t.Fatalf("cap 1: sent %d", n)
	}
}

// TestSessionResult: the TLS policy's evidence of a session becomes the
// TLS-RPT result: policy type from the mode, failure type as recorded, a
// success only where TLS was made, nothing for a host never reached.
func TestSessionResult(t *testing.T) {
	test := func(s *queue.TLSInfo, wantOK bool, wantType, wantResult, wantDomain string) {
		t.Helper()
		r, ok := sessionResult(s)
		if ok != wantOK || ok && (r.PolicyType != wantType || r.ResultType != wantResult || r.PolicyDomain != wantDomain) {
			t.Errorf("%+v: %+v %v, want %s %s %s", s, r, ok, wantType, wantResult, wantDomain)
		}
	}
	test(&queue.TLSInfo{Mode: "mta-sts", PolicyDomain: "Company-Y.example", Host: "mx1.company-y.example", Version: "TLS 1.3",
		PolicyStrings: []string{"version: STSv1", "mode: enforce", "mx: *.company-y.example"}}, true, tlsrpt.PolicySTS, tlsrpt.ResultSuccess, "company-y.example")
	test(&queue.TLSInfo{Mode: "dane", PolicyDomain: "company-y.example", Host: "mx1.company-y.example", Failure: "tlsa-invalid"}, true, tlsrpt.PolicyTLSA, "tlsa-invalid", "mx1.company-y.example")
	test(&queue.TLSInfo{Mode: "opportunistic", PolicyDomain: "x.example", Host: "mx.x.example", Failure: "starttls-not-supported"}, true, tlsrpt.PolicyNotFound, "starttls-not-supported", "x.example")
	test(&queue.TLSInfo{Mode: "mta-sts", PolicyDomain: "x.example", Host: "mx.x.example"}, false, "", "", "")
	test(&queue.TLSInfo{Version: "TLS 1.3"}, false, "", "", "")
	r, _ := sessionResult(&queue.TLSInfo{Mode: "mta-sts", PolicyDomain: "c.example", Version: "TLS 1.3", PolicyStrings: []string{"version: STSv1", "mx: a.c.example", "mx: *.c.example"}})
	if strings.Join(r.PolicyMXHosts, ",") != "a.c.example,*.c.example" {
		t.Errorf("mx-host %v", r.PolicyMXHosts)
	}
}

// TestSessionResultSTSTesting: a session under an MTA-STS policy in
// "testing" mode runs as opportunistic yet is reported as an sts policy.
func TestSessionResultSTSTesting(t *testing.T) {
	r, ok := sessionResult(&queue.TLSInfo{Mode: "opportunistic", PolicyMode: "testing", PolicyID: "1", PolicyDomain: "t.example", Host: "mx.t.example",
		Failure: "certificate-not-trusted", PolicyStrings: []string{"version: STSv1", "mode: testing", "mx: mx.t.example"}})
	if !ok || r.PolicyType != tlsrpt.PolicySTS || r.PolicyDomain != "t.example" || strings.Join(r.PolicyMXHosts, ",") != "mx.t.example" {
		t.Fatalf("%+v %v", r, ok)
	}
}
