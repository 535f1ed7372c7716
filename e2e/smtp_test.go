package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSwaksDialogues(t *testing.T) {
	need(t, "swaks")
	s := startSink(t)
	g := newGW(t, gwOptions{mailHost: s.addr, smarthost: s.addr})
	g.start()

	// Inbound MX: mail for the org is relayed to the mail host.
	out, code := swaks(t, "--server", g.inbound, "--from", "citizen@outside.example", "--to", "staff@example.gov.uk", "--header", "Subject: swaks inbound")
	if code != 0 || !strings.Contains(out, "250 2.0.0 OK queued as") {
		t.Fatalf("inbound relay failed (exit %d):\n%s", code, out)
	}
	// No open relay, with or without TLS.
	for _, extra := range [][]string{nil, {"--tls"}} {
		out, code = swaks(t, append([]string{"--server", g.inbound, "--from", "spammer@outside.example", "--to", "victim@elsewhere.example"}, extra...)...)
		if code == 0 || !strings.Contains(out, "550 5.7.1 Relaying denied") {
			t.Fatalf("relay for a foreign domain was not refused (exit %d):\n%s", code, out)
		}
	}
	// Outbound from a connector address: relayed and DKIM-signed.
	out, code = swaks(t, "--server", g.outbound, "--from", "staff@example.gov.uk", "--to", "citizen@gmail.example", "--header", "Subject: swaks outbound")
	if code != 0 {
		t.Fatalf("outbound relay failed:\n%s", out)
	}
	// smtp-sink may show a file before it is complete: wait for the part
	// that matters (the signature comes before the Subject).
	outm := s.waitFor(t, "Subject: swaks outbound", 20*time.Second)
	if !strings.Contains(outm, "DKIM-Signature: v=1;") || !strings.Contains(outm, " d=example.gov.uk;") {
		t.Fatalf("outbound message not signed:\n%s", outm)
	}
	inm := s.waitFor(t, "Subject: swaks inbound", 20*time.Second)
	if strings.Contains(inm, "DKIM-Signature") {
		t.Error("inbound mail was signed")
	}
	// Size limit: 552 5.3.4.
	big := filepath.Join(t.TempDir(), "big.txt")
	os.WriteFile(big, []byte(strings.Repeat(strings.Repeat("y", 76)+"\r\n", 20000)), 0o600)
	out, code = swaks(t, "--server", g.inbound, "--from", "a@outside.example", "--to", "staff@example.gov.uk", "--attach", "@"+big)
	if code == 0 || !strings.Contains(out, "<** 552 5.3.4") {
		t.Fatalf("oversized message not refused with 552 5.3.4 (exit %d):\n%s", code, out[max(0, len(out)-600):])
	}
}

func TestSwaksAuthOnlyOverTLS(t *testing.T) {
	need(t, "swaks")
	s := startSink(t)
	g := newGW(t, gwOptions{mailHost: s.addr, smarthost: s.addr, extra: ""})
	// Outbound AUTH users are everyone outside the connector networks; make
	// loopback not a connector.
	b, _ := os.ReadFile(g.cfgPath)
	os.WriteFile(g.cfgPath, []byte(strings.Replace(string(b), `connector_networks = ["127.0.0.0/8"]`, `connector_networks = ["192.0.2.0/24"]`, 1)), 0o600)
	cmd := exec.Command(binPath, "user", "add", "alice", "--role", "sender", "--password-stdin", "--config", g.cfgPath)
	cmd.Stdin = strings.NewReader("a long enough password\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	g.start()
	// Without TLS, AUTH is not offered and relaying is refused.
	out, code := swaks(t, "--server", g.outbound, "--from", "alice@example.gov.uk", "--to", "x@partner.example", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "a long enough password")
	if code == 0 || strings.Contains(out, "235 ") {
		t.Fatalf("authenticated without TLS:\n%s", out)
	}
	out, code = swaks(t, "--server", g.outbound, "--from", "alice@example.gov.uk", "--to", "x@partner.example")
	if code == 0 || !strings.Contains(out, "530 5.7.0") {
		t.Fatalf("unauthenticated relay not refused:\n%s", out)
	}
	// Over STARTTLS (TLS 1.2+), it works; a wrong password does not.
	out, code = swaks(t, "--server", g.outbound, "--tls", "--from", "alice@example.gov.uk", "--to", "x@partner.example", "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "wrong password")
	if code == 0 || !strings.Contains(out, "535 5.7.8") {
		t.Fatalf("wrong password accepted:\n%s", out)
	}
	out, code = swaks(t, "--server", g.outbound, "--tls", "--from", "alice@example.gov.uk", "--to", "x@partner.example", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "a long enough password")
	if code != 0 || !strings.Contains(out, "235 2.7.0") {
		t.Fatalf("AUTH over TLS failed:\n%s", out)
	}
	if !strings.Contains(out, "TLSv1.3") && !strings.Contains(out, "TLSv1.2") {
		t.Fatalf("TLS version not 1.2+:\n%s", out)
	}
	s.wait(t, 1, 20*time.Second)
}

func TestOpenSSLRefusesOldTLS(t *testing.T) {
	need(t, "openssl")
	g := newGW(t, gwOptions{})
	g.start()
	// OpenSSL 3 offers TLS 1.1 only at security level 0: without it this
	// would pass whatever the server allows.
	cmd := exec.Command("openssl", "s_client", "-connect", g.inbound, "-starttls", "smtp", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
	cmd.Stdin = strings.NewReader("QUIT\r\n")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "Cipher is (NONE)") {
		t.Fatalf("TLS 1.1 handshake succeeded:\n%s", out)
	}
	cmd = exec.Command("openssl", "s_client", "-connect", g.inbound, "-starttls", "smtp", "-tls1_2")
	cmd.Stdin = strings.NewReader("QUIT\r\n")
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), "Protocol  : TLSv1.2") || strings.Contains(string(out), "Cipher is (NONE)") {
		t.Fatalf("TLS 1.2 handshake failed:\n%s", out)
	}
}

func TestSmtpSourceLoad(t *testing.T) {
	need(t, "smtp-source", "smtp-sink")
	s := startSink(t)
	g := newGW(t, gwOptions{mailHost: s.addr, smarthost: s.addr})
	g.start()
	const n = 2000
	cmd := exec.Command("timeout", "120", "smtp-source", "-s", "20", "-m", "2000", "-l", "10240", "-f", "staff@example.gov.uk", "-t", "someone@partner.example", g.outbound)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("smtp-source: %v\n%s", err, out)
	}
	msgs := s.wait(t, n, 60*time.Second)
	t.Logf("%s", g.out.String()[:min(2000, len(g.out.String()))])
	for _, m := range msgs[:10] {
		if len(m) > 0 && !strings.Contains(m, "DKIM-Signature:") { // an empty file is one smtp-sink is still writing
			t.Fatalf("relayed message not signed:\n%s", m)
		}
	}
	// Metrics count what happened.
	resp, err := http.Get("http://" + g.web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`sealpost_smtp_messages_accepted_total{role="outbound"} 2000`, `sealpost_delivery_attempts_total{result="delivered",route="outbound"} 2000`, "sealpost_queue_depth 0", "sealpost_delivery_seconds_bucket"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestSigtermDrainsAndSighupReloads(t *testing.T) {
	need(t, "swaks")
	s := startSink(t)
	g := newGW(t, gwOptions{mailHost: s.addr, smarthost: s.addr})
	g.start()
	// SIGHUP with a broken file keeps the running configuration.
	good, _ := os.ReadFile(g.cfgPath)
	os.WriteFile(g.cfgPath, []byte(strings.Replace(string(good), `mail_host =`, `mail_hots =`, 1)), 0o600)
	g.cmd.Process.Signal(syscall.SIGHUP)
	for end := time.Now().Add(10 * time.Second); !strings.Contains(g.out.String(), "reload refused") && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(g.out.String(), "reload refused") {
		t.Fatalf("bad reload not reported:\n%s", g.out.String())
	}
	// A good reload: a second domain becomes inbound.
	os.WriteFile(g.cfgPath, []byte(strings.Replace(string(good), `domains = ["example.gov.uk"]`, `domains = ["example.gov.uk", "second.gov.uk"]`, 1)), 0o600)
	reloads := strings.Count(g.out.String(), "configuration reloaded")
	g.cmd.Process.Signal(syscall.SIGHUP)
	for end := time.Now().Add(10 * time.Second); strings.Count(g.out.String(), "configuration reloaded") == reloads && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	if out, code := swaks(t, "--server", g.inbound, "--from", "a@outside.example", "--to", "x@second.gov.uk"); code != 0 {
		t.Fatalf("reloaded domain refused:\n%s", out)
	}
	if len(s.wait(t, 1, 20*time.Second)) == 0 {
		t.Log(g.out.String())
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-g.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, g.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	g.cmd = nil
	if !strings.Contains(g.out.String(), "sealpost stopped") {
		t.Fatalf("no clean stop:\n%s", g.out.String())
	}
}
