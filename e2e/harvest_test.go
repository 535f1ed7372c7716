package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHarvestFromInbound: issue 15's harvested rung fed by real inbound
// mail. sender.example passes DMARC (SPF aligned); forger.example fails it
// (p=none, so the mail is still delivered). A key attached by the passing
// sender (application/pgp-keys, made by sqop) and the certificate of an
// OpenSSL-signed S/MIME message from it become harvested keys for exactly
// the From address; the failing sender's attached key is not kept, and
// neither is one attached by the passing sender whose user ID names
// someone else.
func TestHarvestFromInbound(t *testing.T) {
	need(t, "swaks", "smtp-sink", "sqop", "openssl")
	z := &zone{
		txt: map[string][]string{
			"sender.example":        {"v=spf1 ip4:127.0.0.2 -all"},
			"_dmarc.sender.example": {"v=DMARC1; p=reject"},
			"forger.example":        {"v=spf1 ip4:127.0.0.9 -all"},
			"_dmarc.forger.example": {"v=DMARC1; p=none"},
			"example.gov.uk":        {"v=spf1 ip4:127.0.0.1 -all"},
			"_dmarc.example.gov.uk": {"v=DMARC1; p=reject"},
		},
		a: map[string][]string{"mta.sender.example": {"127.0.0.2"}},
	}
	dnsAddr := startDNS(t, z)
	s := startSink(t)
	g := newGW(t, gwOptions{mailHost: s.addr, resolver: dnsAddr, inbound: "authenticate = true\narc_seal = false"})
	g.start()
	dir := t.TempDir()
	run := func(stdin []byte, name string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out
	}
	send := func(mailFrom, subject, data string) {
		t.Helper()
		p := filepath.Join(dir, "send.eml")
		os.WriteFile(p, []byte(data), 0o600)
		if out, code := swaks(t, "--server", g.inbound, "--local-interface", "127.0.0.2", "--helo", "mta.sender.example",
			"--from", mailFrom, "--to", "staff@example.gov.uk", "--data", "@"+p); code != 0 {
			t.Fatalf("%s refused (%d):\n%s", subject, code, out)
		}
		s.waitFor(t, subject, 30*time.Second)
	}
	withKey := func(from, subject string, cert []byte) string {
		return "From: <" + from + ">\r\nTo: staff@example.gov.uk\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=\"kk\"\r\n\r\n--kk\r\nContent-Type: text/plain\r\n\r\nMy key is attached.\r\n" +
			"--kk\r\nContent-Type: application/pgp-keys\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString(cert) + "\r\n--kk--\r\n"
	}
	certOf := func(uid string) []byte {
		return run(run(nil, "sqop", "generate-key", uid), "sqop", "extract-cert", "--no-armor")
	}
	ann, eve, other := certOf("Ann <ann@sender.example>"), certOf("Eve <eve@forger.example>"), certOf("Zed <zed@sender.example>")
	send("ann@sender.example", "ann key", withKey("ann@sender.example", "ann key", ann))
	send("eve@forger.example", "eve key", withKey("eve@forger.example", "eve key", eve))
	send("ann@sender.example", "zed key", withKey("ann@sender.example", "zed key", other))

	key, crt := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem")
	run(nil, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "30",
		"-subj", "/CN=Bea", "-addext", "subjectAltName=email:bea@sender.example")
	content := filepath.Join(dir, "content")
	os.WriteFile(content, []byte("Content-Type: text/plain\r\n\r\nSigned by Bea.\r\n"), 0o600)
	signed := run(nil, "openssl", "cms", "-sign", "-in", content, "-signer", crt, "-inkey", key, "-crlfeol")
	send("bea@sender.example", "bea signed", "From: <bea@sender.example>\r\nTo: staff@example.gov.uk\r\nSubject: bea signed\r\n"+string(signed))

	out, code := g.cli("keys", "list", "--json")
	var list struct {
		Keys []struct {
			Kind, Source, Trust string
			Addresses           []string
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("keys list: %d %s", code, out)
	}
	got := map[string]string{}
	for _, k := range list.Keys {
		got[strings.Join(k.Addresses, ",")] = k.Kind + "/" + k.Source + "/" + k.Trust
	}
	want := map[string]string{"ann@sender.example": "pgp/harvested/dmarc-pass", "bea@sender.example": "x509/harvested/dmarc-pass"}
	for a, w := range want {
		if got[a] != w {
			t.Errorf("%s: %q, want %q (all: %v)", a, got[a], w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("harvested more than the authenticated senders' own keys: %v", got)
	}
	if out, code := g.cli("keys", "lookup", "ann@sender.example", "--json", "--offline"); code != 0 || !strings.Contains(out, `"source":"harvested"`) {
		t.Errorf("lookup: %d %s", code, out)
	}
}
