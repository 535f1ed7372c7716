package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The web listener on the internet, driven by curl and openssl against the
// built binary; who may send as whom, driven by swaks.

// opensslCert writes a self-signed P-256 pair for cn to cert and key,
// replacing what was there in one rename each (as certbot does).
func opensslCert(t *testing.T, cert, key, cn string) {
	t.Helper()
	dir := t.TempDir()
	c, k := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", k, "-out", c, "-subj", "/CN="+cn, "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	for src, dst := range map[string]string{c: cert, k: key} {
		b, _ := os.ReadFile(src)
		if err := os.WriteFile(dst+".new", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dst+".new", dst); err != nil {
			t.Fatal(err)
		}
	}
}

// sClient runs openssl s_client against addr with args and returns its
// output; ok is whether a cipher was negotiated.
func sClient(t *testing.T, addr string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command("openssl", append([]string{"s_client", "-connect", addr}, args...)...)
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput()
	s := string(out)
	return s, strings.Contains(s, "Cipher is ") && !strings.Contains(s, "Cipher is (NONE)")
}

func TestHTTPSWebListener(t *testing.T) {
	need(t, "curl", "openssl")
	keys := t.TempDir()
	cert, key := filepath.Join(keys, "web-cert.pem"), filepath.Join(keys, "web-key.pem")
	opensslCert(t, cert, key, "first.test")
	g := newGW(t, gwOptions{extra: fmt.Sprintf("tls_cert = %q\ntls_key = %q\nredirect_listen = \"127.0.0.1:0\"\n", cert, key)})
	b, _ := os.ReadFile(g.cfgPath)
	os.WriteFile(g.cfgPath, []byte(strings.Replace(string(b), `public_url = "http://`, `public_url = "https://`, 1)), 0o600)
	g.start()
	waitListen(t, g.web, 10*time.Second)

	// curl: HSTS, and the CSRF cookie __Host-, Secure, Path=/, no Domain.
	out, err := exec.Command("curl", "-sS", "-k", "-D", "-", "-o", "/dev/null", "https://"+g.web+"/console/login").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	head := strings.ToLower(string(out))
	if !strings.Contains(head, "strict-transport-security: max-age=") {
		t.Errorf("no HSTS:\n%s", out)
	}
	var cookie string
	for _, l := range strings.Split(head, "\n") {
		if strings.HasPrefix(l, "set-cookie: __host-csrf=") {
			cookie = l
		}
	}
	if !strings.Contains(cookie, "; secure") || !strings.Contains(cookie, "path=/;") || strings.Contains(cookie, "domain=") || !strings.Contains(cookie, "httponly") {
		t.Errorf("CSRF cookie not __Host-/Secure/Path=/: %q\n%s", cookie, out)
	}
	if strings.Contains(head, "\nserver:") || strings.Contains(head, "sealpost") {
		t.Errorf("the response names the server:\n%s", out)
	}

	// openssl: TLS 1.1 and CBC suites refused; TLS 1.2 with GCM and TLS 1.3
	// accepted. @SECLEVEL=0 lets this client offer what OpenSSL 3 would
	// not by itself, so the refusal is the server's.
	if o, ok := sClient(t, g.web, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"); ok {
		t.Errorf("TLS 1.1 accepted:\n%s", o)
	}
	for _, cbc := range []string{"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256"} {
		if o, ok := sClient(t, g.web, "-tls1_2", "-cipher", cbc+":@SECLEVEL=0"); ok {
			t.Errorf("CBC suite %s accepted:\n%s", cbc, o)
		}
	}
	if o, ok := sClient(t, g.web, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"); !ok || !strings.Contains(o, "first.test") {
		t.Fatalf("TLS 1.2 with AES-GCM refused:\n%s", o)
	}
	if o, ok := sClient(t, g.web, "-tls1_3"); !ok {
		t.Fatalf("TLS 1.3 refused:\n%s", o)
	}

	// A renewed certificate is served after SIGHUP, without a restart.
	opensslCert(t, cert, key, "second.test")
	g.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, _ := sClient(t, g.web, "-tls1_3")
		if strings.Contains(o, "second.test") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate is not served after SIGHUP:\n%s\n%s", o, g.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A broken one is refused and the renewed one kept.
	os.WriteFile(key, []byte("not a key\n"), 0o600)
	g.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(time.Second)
	if o, ok := sClient(t, g.web, "-tls1_3"); !ok || !strings.Contains(o, "second.test") {
		t.Fatalf("after a broken certificate and SIGHUP:\n%s", o)
	}
	if !strings.Contains(g.out.String(), "web.tls_key") && !strings.Contains(g.out.String(), "web.tls_cert") {
		t.Errorf("the refused reload does not name the key:\n%s", g.out.String())
	}
}

func TestSwaksSenderIdentity(t *testing.T) {
	need(t, "swaks")
	s := startSink(t)
	g := newGW(t, gwOptions{mailHost: s.addr, smarthost: s.addr})
	// AUTH users are everyone outside the connector networks.
	b, _ := os.ReadFile(g.cfgPath)
	os.WriteFile(g.cfgPath, []byte(strings.Replace(string(b), `connector_networks = ["127.0.0.0/8"]`, `connector_networks = ["192.0.2.0/24"]`, 1)), 0o600)
	add := func(args ...string) string {
		cmd := exec.Command(binPath, append(append([]string{"user", "add"}, args...), "--role", "sender", "--password-stdin", "--config", g.cfgPath)...)
		cmd.Stdin = strings.NewReader("a long enough password\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("user add %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	add("alice", "--address", "alice@example.gov.uk", "--address", "housing@example.gov.uk")
	if out := add("bob"); !strings.Contains(out, "bob@example.gov.uk") {
		t.Fatalf("default address not shown:\n%s", out)
	}
	if out, code := g.cli("user", "add", "eve", "--address", "eve@elsewhere.example"); code != 2 || !strings.Contains(out, "org.domains") {
		t.Fatalf("an address outside org.domains was accepted (exit %d):\n%s", code, out)
	}
	if out, code := g.cli("user", "address", "add", "bob", "reception@example.gov.uk"); code != 0 {
		t.Fatalf("user address add: %s", out)
	}
	out, _ := g.cli("user", "list")
	if !strings.Contains(out, "alice@example.gov.uk, housing@example.gov.uk") || !strings.Contains(out, "bob@example.gov.uk, reception@example.gov.uk") {
		t.Fatalf("user list does not show the addresses:\n%s", out)
	}
	g.start()
	send := func(user, from, headerFrom string) (string, int) {
		return swaks(t, "--server", g.outbound, "--tls", "--auth", "PLAIN", "--auth-user", user, "--auth-password", "a long enough password",
			"--from", from, "--to", "x@partner.example", "--header", "From: "+headerFrom, "--header", "Subject: as "+headerFrom)
	}
	// As another user's address: refused at MAIL FROM, naming the rule.
	if out, code := send("alice", "bob@example.gov.uk", "bob@example.gov.uk"); code == 0 || !strings.Contains(out, "550 5.7.1 Sender address not permitted for this login") {
		t.Fatalf("alice sent as bob (exit %d):\n%s", code, out)
	}
	// Own envelope, another's header From: refused at the end of DATA.
	if out, code := send("alice", "alice@example.gov.uk", "Bob <bob@example.gov.uk>"); code == 0 || !strings.Contains(out, "550 5.7.1 Header From address not permitted for this login") {
		t.Fatalf("alice's header From as bob accepted (exit %d):\n%s", code, out)
	}
	// Own address, and an alias the operator granted: accepted.
	if out, code := send("alice", "alice@example.gov.uk", "Alice <alice@example.gov.uk>"); code != 0 {
		t.Fatalf("alice as herself refused:\n%s", out)
	}
	if out, code := send("alice", "housing@example.gov.uk", "Housing <housing@example.gov.uk>"); code != 0 {
		t.Fatalf("alice as her granted alias refused:\n%s", out)
	}
	if out, code := send("bob", "reception@example.gov.uk", "reception@example.gov.uk"); code != 0 {
		t.Fatalf("bob as his granted alias refused:\n%s", out)
	}
	s.waitFor(t, "Subject: as Alice <alice@example.gov.uk>", 20*time.Second)
	s.waitFor(t, "Subject: as Housing <housing@example.gov.uk>", 20*time.Second)
	for _, m := range s.messages() {
		if strings.Contains(m, "bob@example.gov.uk>\n") && strings.Contains(m, "Subject: as Bob") {
			t.Fatalf("a refused message was delivered:\n%s", m)
		}
	}
}
