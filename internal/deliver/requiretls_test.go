package deliver

import (
	"bufio"
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"sealpost/internal/queue"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

const testMsg = "From: a@b.example\r\nSubject: t\r\n\r\nhello\r\n"

func caPool(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in", caFile)
	}
	return p
}

func testTransport(t *testing.T, host, mode string, roots *x509.CertPool) *Transport {
	pool := NewPool(4, time.Minute)
	t.Cleanup(pool.Close)
	return &Transport{Hello: "gw.example", FixedHost: host, TLSMode: mode, ConnectTimeout: 2 * time.Second,
		CommandTimeout: 5 * time.Second, Log: slog.Default(), Pool: pool, RootCAs: roots}
}

func delivery(requireTLS, smtpRequireTLS bool) *queue.Delivery {
	return &queue.Delivery{Msg: &store.Message{ID: "x", MailFrom: "a@b.example"}, Rcpts: []string{"r@c.example"},
		Body: strings.NewReader(testMsg), Size: int64(len(testMsg)), RequireTLS: requireTLS, SMTPRequireTLS: smtpRequireTLS}
}

// TestRequireTLSHopToHop: a REQUIRETLS message goes to a next hop that
// offers REQUIRETLS over verified TLS (go-smtp's server), and the MAIL
// parameter goes on with it (RFC 8689 §4.2.1).
func TestRequireTLSHopToHop(t *testing.T) {
	t.Parallel()
	sink, ca := testutil.NewRequireTLSSink(t)
	tr := testTransport(t, sink.Addr, TLSOpportunistic, caPool(t, ca))
	att := tr.Deliver(context.Background(), delivery(false, true))
	if !att.Rcpts[0].OK {
		t.Fatalf("not delivered: %+v", att.Rcpts[0])
	}
	got := sink.Wait(t, 1, 5*time.Second)[0]
	if !got.TLS || !got.RequireTLS {
		t.Fatalf("next hop got TLS=%v REQUIRETLS=%v, want both", got.TLS, got.RequireTLS)
	}
	if att.TLSInfo == nil || !att.TLSInfo.Verified {
		t.Fatalf("TLS evidence %+v, want verified", att.TLSInfo)
	}
	// Mail without REQUIRETLS does not pass the parameter on.
	if att := tr.Deliver(context.Background(), delivery(false, false)); !att.Rcpts[0].OK {
		t.Fatalf("plain message: %+v", att.Rcpts[0])
	}
	if got := sink.Wait(t, 2, 5*time.Second)[1]; got.RequireTLS {
		t.Fatal("REQUIRETLS sent for a message that did not ask for it")
	}
}

// TestRequireTLSWithoutPeerSupportBounces: verified TLS to a host that
// does not offer REQUIRETLS: the message is not sent and fails with
// 5.7.30; a message without REQUIRETLS goes to the same host.
func TestRequireTLSWithoutPeerSupportBounces(t *testing.T) {
	t.Parallel()
	sink, ca := testutil.NewTLSSink(t)
	tr := testTransport(t, sink.Addr, TLSOpportunistic, caPool(t, ca))
	att := tr.Deliver(context.Background(), delivery(false, true))
	r := att.Rcpts[0]
	if r.OK || !r.Permanent || !strings.HasPrefix(r.Text, "550 5.7.30 ") || !strings.Contains(r.Text, "REQUIRETLS") {
		t.Fatalf("got %+v, want a permanent 5.7.30", r)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("%d messages reached a host without REQUIRETLS", n)
	}
	if att := tr.Deliver(context.Background(), delivery(true, false)); !att.Rcpts[0].OK {
		t.Fatalf("require-tls (no REQUIRETLS) to the same host: %+v", att.Rcpts[0])
	}
}

// TestRequireTLSTriesEveryMX: one MX lacks REQUIRETLS, the other cannot be
// reached: that is no proof no host supports it, so the message waits
// (4xx) instead of bouncing; when the second MX offers it, it is used.
func TestRequireTLSTriesEveryMX(t *testing.T) {
	t.Parallel()
	plain, ca := testutil.NewTLSSink(t)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	roots := caPool(t, ca)
	_, plainPort, _ := net.SplitHostPort(plain.Addr)
	_, deadPort, _ := net.SplitHostPort(deadAddr)
	// Two MX hosts on different ports: the resolver is bypassed with a
	// Transport per test of hosts().
	tr := testTransport(t, "", TLSOpportunistic, roots)
	hosts := []string{"127.0.0.1:" + plainPort, "127.0.0.1:" + deadPort}
	att := tr.deliverHosts(context.Background(), delivery(false, true), hosts)
	if r := att.Rcpts[0]; r.OK || r.Permanent {
		t.Fatalf("one MX unreachable: %+v, want a temporary failure", r)
	}
	good, ca2 := testutil.NewRequireTLSSink(t)
	roots.AppendCertsFromPEM(mustRead(t, ca2))
	_, goodPort, _ := net.SplitHostPort(good.Addr)
	att = tr.deliverHosts(context.Background(), delivery(false, true), []string{"127.0.0.1:" + plainPort, "127.0.0.1:" + goodPort})
	if !att.Rcpts[0].OK {
		t.Fatalf("second MX offers REQUIRETLS: %+v", att.Rcpts[0])
	}
	if got := good.Wait(t, 1, 5*time.Second)[0]; !got.RequireTLS {
		t.Fatal("REQUIRETLS not passed on")
	}
	if len(plain.Messages()) != 0 {
		t.Fatal("the MX without REQUIRETLS got the message")
	}
}

func mustRead(t *testing.T, f string) []byte {
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRequireTLSUnverifiedDeferred: a certificate that does not chain to a
// trusted root is no verified TLS: deferred (4.7.5), nothing sent, never
// a fallback to clear text.
func TestRequireTLSUnverifiedDeferred(t *testing.T) {
	t.Parallel()
	sink, _ := testutil.NewRequireTLSSink(t)
	tr := testTransport(t, sink.Addr, TLSOpportunistic, x509.NewCertPool())
	r := tr.Deliver(context.Background(), delivery(false, true)).Rcpts[0]
	if r.OK || r.Permanent || !strings.Contains(r.Text, "4.7.5") {
		t.Fatalf("got %+v, want a temporary 4.7.5", r)
	}
	if len(sink.Messages()) != 0 {
		t.Fatal("delivered over unverified TLS")
	}
}

// TestTLSWaived: "TLS-Required: No" lowers the receiver's policy only when
// the operator honours it, and never under require-tls or REQUIRETLS.
func TestTLSWaived(t *testing.T) {
	t.Parallel()
	test := func(honour, headerNo, requireTLS, smtpRequireTLS, want bool) {
		t.Helper()
		tr := &Transport{HonourTLSRequiredNo: honour}
		d := &queue.Delivery{Msg: &store.Message{Direction: "out"}, TLSRequiredNo: headerNo, RequireTLS: requireTLS, SMTPRequireTLS: smtpRequireTLS}
		if got := tr.TLSWaived(d); got != want {
			t.Errorf("honour=%v header=%v require-tls=%v REQUIRETLS=%v: %v, want %v", honour, headerNo, requireTLS, smtpRequireTLS, got, want)
		}
	}
	test(true, true, false, false, true)
	test(false, true, false, false, false)
	test(true, false, false, false, false)
	test(true, true, true, false, false)
	test(true, true, false, true, false)
	// Our own TLS-RPT reports may always: the domain whose TLS fails is
	// the one that needs the report.
	tr := &Transport{}
	report := &queue.Delivery{Msg: &store.Message{Direction: queue.DirectionTLSReport}, TLSRequiredNo: true}
	if !tr.TLSWaived(report) {
		t.Error("a TLS-RPT report with TLS-Required: No is not waived")
	}
	report.RequireTLS = true
	if tr.TLSWaived(report) {
		t.Error("a report under require-tls is waived")
	}
}

// strippingProxy is a STARTTLS-stripping attacker on the path: it relays
// a session to upstream and removes STARTTLS from every EHLO reply, so
// the client sees a host that cannot do TLS.
func strippingProxy(t *testing.T, upstream string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				r := bufio.NewReader(u)
				var reply []string
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimRight(line, "\r\n")
					if len(line) >= 4 && line[3] == '-' {
						reply = append(reply, line)
						continue
					}
					reply = append(reply, line)
					var keep []string
					for _, l := range reply {
						if len(l) < 4 || !strings.EqualFold(l[4:], "STARTTLS") {
							keep = append(keep, l)
						}
					}
					for i, l := range keep {
						sep := "-"
						if i == len(keep)-1 {
							sep = " "
						}
						io.WriteString(c, l[:3]+sep+l[min(4, len(l)):]+"\r\n")
					}
					reply = nil
				}
			}()
		}
	}()
	return l.Addr().String()
}

// TestSTARTTLSStripping: through a proxy that removes STARTTLS, mail that
// policy sends with require-tls, mail with REQUIRETLS and a transport in
// "required" mode are deferred (4.7.4) and the receiver gets nothing; only
// opportunistic mail goes, in clear, as RFC 7435 intends.
func TestSTARTTLSStripping(t *testing.T) {
	t.Parallel()
	sink, ca := testutil.NewRequireTLSSink(t)
	roots := caPool(t, ca)
	proxy := strippingProxy(t, sink.Addr)
	for _, c := range []struct {
		name                       string
		mode                       string
		requireTLS, smtpRequireTLS bool
	}{
		{"require-tls decision", TLSOpportunistic, true, false},
		{"REQUIRETLS", TLSOpportunistic, false, true},
		{"required mode", TLSRequired, false, false},
	} {
		tr := testTransport(t, proxy, c.mode, roots)
		r := tr.Deliver(context.Background(), delivery(c.requireTLS, c.smtpRequireTLS)).Rcpts[0]
		if r.OK || r.Permanent || !strings.Contains(r.Text, "4.7.4") {
			t.Errorf("%s: %+v, want deferred with 4.7.4", c.name, r)
		}
	}
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("%d messages passed the stripping proxy although TLS was required", n)
	}
	tr := testTransport(t, proxy, TLSOpportunistic, roots)
	att := tr.Deliver(context.Background(), delivery(false, false))
	if !att.Rcpts[0].OK || att.TLS != "" {
		t.Fatalf("opportunistic through the proxy: %+v TLS %q, want delivered in clear", att.Rcpts[0], att.TLS)
	}
	if got := sink.Wait(t, 1, 5*time.Second)[0]; got.TLS {
		t.Fatal("the proxy did not strip STARTTLS: the test proves nothing")
	}
	// Without the proxy the same sink speaks TLS: the stripping, not the
	// receiver, made the difference.
	direct := testTransport(t, sink.Addr, TLSOpportunistic, roots)
	if att := direct.Deliver(context.Background(), delivery(true, true)); !att.Rcpts[0].OK {
		t.Fatalf("direct: %+v", att.Rcpts[0])
	}
}
