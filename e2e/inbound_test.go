package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"sealpost/internal/testutil"
)

// zone is an authoritative DNS server on loopback for the inbound e2e:
// TXT and A records by name; other names are NXDOMAIN.
type zone struct {
	mu  sync.Mutex
	txt map[string][]string
	a   map[string][]string
}

func (z *zone) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, q := range r.Question {
		name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
		_, hasT := z.txt[name]
		_, hasA := z.a[name]
		if !hasT && !hasA {
			m.Rcode = mdns.RcodeNameError
			continue
		}
		hdr := mdns.RR_Header{Name: q.Name, Class: mdns.ClassINET, Ttl: 300}
		switch q.Qtype {
		case mdns.TypeTXT:
			for _, v := range z.txt[name] {
				hdr.Rrtype = mdns.TypeTXT
				var parts []string
				for len(v) > 255 { // RFC 1035 §3.3: 255 octets a string
					parts, v = append(parts, v[:255]), v[255:]
				}
				m.Answer = append(m.Answer, &mdns.TXT{Hdr: hdr, Txt: append(parts, v)})
			}
		case mdns.TypeA:
			for _, v := range z.a[name] {
				hdr.Rrtype = mdns.TypeA
				m.Answer = append(m.Answer, &mdns.A{Hdr: hdr, A: net.ParseIP(v)})
			}
		}
	}
	w.WriteMsg(m)
}

// startDNS serves z on UDP and TCP at one loopback port.
func startDNS(t *testing.T, z *zone) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*mdns.Server{{PacketConn: pc, Handler: z}, {Listener: l, Handler: z}} {
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown() })
	}
	return pc.LocalAddr().String()
}

const dkimpy = "/usr/bin/python3" // Debian's, where python3-dkim installs

func needDkimpy(t *testing.T) {
	if err := exec.Command(dkimpy, "-c", "import dkim").Run(); err != nil {
		testutil.Missing(t, "python3-dkim is not installed")
	}
}

// dkimpySign signs msg as sel._domainkey.domain with dkimpy.
func dkimpySign(t *testing.T, dir string, keyPEM []byte, msg string) string {
	t.Helper()
	kp, mp := filepath.Join(dir, "key.pem"), filepath.Join(dir, "unsigned.eml")
	os.WriteFile(kp, keyPEM, 0o600)
	os.WriteFile(mp, []byte(msg), 0o600)
	script := `import sys, dkim
msg = open(sys.argv[2], "rb").read()
sig = dkim.sign(msg, b"sel", b"sender.example", open(sys.argv[1], "rb").read(), include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
sys.stdout.buffer.write(sig + msg)`
	out, err := exec.Command(dkimpy, "-c", script, kp, mp).Output()
	if err != nil {
		t.Fatalf("dkimpy sign: %v", err)
	}
	return string(out)
}

// dkimpyARC runs dkimpy's arc_verify on msg, its DNS answered from txt.
func dkimpyARC(t *testing.T, dir string, txt map[string]string, msg string) string {
	t.Helper()
	mp, rp := filepath.Join(dir, "delivered.eml"), filepath.Join(dir, "records.json")
	os.WriteFile(mp, []byte(strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\n", "\r\n")), 0o600)
	js, _ := json.Marshal(txt)
	os.WriteFile(rp, js, 0o600)
	script := `import sys, json, dkim
recs = json.load(open(sys.argv[2]))
def dnsfunc(name, timeout=5):
    v = recs.get(name.decode().lower().rstrip("."))
    return v.encode() if v else None
cv, results, reason = dkim.arc_verify(open(sys.argv[1], "rb").read(), dnsfunc=dnsfunc)
print(cv.decode(), reason)`
	out, err := exec.Command(dkimpy, "-c", script, mp, rp).CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy arc_verify: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func inboundMessage(from, subject string) string {
	return "From: Sender <" + from + ">\r\nTo: staff@example.gov.uk\r\nSubject: " + subject +
		"\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@sender.example>\r\n\r\nHello from outside.\r\n"
}

// TestInboundAuthentication is issue 11's inbound proof against real
// peers on loopback: an authoritative DNS server (miekg/dns), senders on
// several 127.0.0.x addresses (swaks --local-interface), a message signed
// by dkimpy, and dkimpy's arc_verify judging our ARC seal.
func TestInboundAuthentication(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	needDkimpy(t)
	senderKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&senderKey.PublicKey)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(senderKey)})
	z := &zone{
		txt: map[string][]string{
			"sender.example":                {"v=spf1 ip4:127.0.0.2 -all"},
			"_dmarc.sender.example":         {"v=DMARC1; p=reject"},
			"sel._domainkey.sender.example": {"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)},
			"bank.example":                  {"v=spf1 ip4:127.0.0.9 -all"},
			"_dmarc.bank.example":           {"v=DMARC1; p=reject"},
			"example.gov.uk":                {"v=spf1 ip4:127.0.0.1 -all"},
			"_dmarc.shop.example":           {"v=DMARC1; p=quarantine"},
		},
		a: map[string][]string{"mta.sender.example": {"127.0.0.2"}},
	}
	dnsAddr := startDNS(t, z)
	s := startSink(t)
	g := newGW(t, gwOptions{mailHost: s.addr, dkim: "rsa-2048+ed25519", resolver: dnsAddr,
		inbound: "authenticate = true\narc_seal = true\ndmarc_reject_action = \"reject\""})
	g.start()
	dir := t.TempDir()

	send := func(ip, mailFrom, data string) (string, int) {
		p := filepath.Join(dir, "send.eml")
		os.WriteFile(p, []byte(data), 0o600)
		return swaks(t, "--server", g.inbound, "--local-interface", ip, "--helo", "mta.sender.example",
			"--from", mailFrom, "--to", "staff@example.gov.uk", "--data", "@"+p)
	}

	// 1. SPF pass, signed by dkimpy, with a forged Authentication-Results
	// claiming our authserv-id: delivered, the forgery removed, our
	// results and ARC set above it; dkimpy's arc_verify says cv=pass.
	signed := dkimpySign(t, dir, keyPEM, inboundMessage("a@sender.example", "signed and spf"))
	forged := "Authentication-Results: gw.example.gov.uk; spf=pass smtp.mailfrom=ceo@example.gov.uk; dmarc=pass\r\n"
	if out, code := send("127.0.0.2", "a@sender.example", forged+signed); code != 0 {
		t.Fatalf("signed message refused (%d):\n%s", code, out)
	}
	m := s.waitFor(t, "signed and spf", 30*time.Second)
	for _, want := range []string{"Authentication-Results: gw.example.gov.uk;", "spf=pass smtp.mailfrom=a@sender.example",
		"dkim=pass (2048-bit key) header.d=sender.example header.s=sel", "dmarc=pass (p=reject) header.from=sender.example",
		"ARC-Seal: ", "d=example.gov.uk"} {
		if !strings.Contains(m, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, m)
		}
	}
	if strings.Contains(m, "ceo@example.gov.uk") {
		t.Errorf("the forged Authentication-Results reached the mail host:\n%s", m)
	}
	out, _ := g.cli("dns", "records", "--json")
	var recs struct {
		Records []struct{ Name, Type, Value string }
	}
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("dns records: %v\n%s", err, out)
	}
	keys := map[string]string{}
	for _, r := range recs.Records {
		if strings.Contains(r.Name, "._domainkey.") {
			keys[strings.TrimSuffix(r.Name, ".")] = r.Value
		}
	}
	if len(keys) == 0 {
		t.Fatalf("no DKIM records in:\n%s", out)
	}
	if got := dkimpyARC(t, dir, keys, m); !strings.HasPrefix(got, "pass") {
		t.Errorf("dkimpy arc_verify of our seal: %q, want pass", got)
	}

	// 2. SPF fail (127.0.0.3 is not in sender.example's SPF) but the DKIM
	// signature aligns: delivered, and the results say spf=fail.
	signed2 := dkimpySign(t, dir, keyPEM, inboundMessage("a@sender.example", "signed spf fail"))
	if out, code := send("127.0.0.3", "a@sender.example", signed2); code != 0 {
		t.Fatalf("DKIM-aligned message refused (%d):\n%s", code, out)
	}
	m2 := s.waitFor(t, "signed spf fail", 30*time.Second)
	if !strings.Contains(m2, "spf=fail smtp.mailfrom=a@sender.example") || !strings.Contains(m2, "dmarc=pass") {
		t.Errorf("want spf=fail, dmarc=pass:\n%s", m2)
	}

	// 3. A p=reject domain spoofed from 127.0.0.4: 550 5.7.1.
	if out, code := send("127.0.0.4", "x@bank.example", inboundMessage("security@bank.example", "bank spoof")); code == 0 || !strings.Contains(out, "550 5.7.1") {
		t.Errorf("p=reject spoof: exit %d, want a 550 5.7.1 refusal:\n%s", code, out)
	}
	// 4. The org's own domain spoofed from outside (no DMARC record of
	// its own here): refused as p=reject.
	if out, code := send("127.0.0.5", "ceo@example.gov.uk", inboundMessage("ceo@example.gov.uk", "own spoof")); code == 0 || !strings.Contains(out, "550 5.7.1") {
		t.Errorf("own-domain spoof: exit %d, want a 550 5.7.1 refusal:\n%s", code, out)
	}
	// 5. Unsigned mail from a domain without DMARC, SPF fail: delivered
	// with the results (nothing to enforce).
	if out, code := send("127.0.0.6", "news@nodmarc.example", inboundMessage("news@nodmarc.example", "no policy")); code != 0 {
		t.Errorf("mail without a DMARC policy refused (%d):\n%s", code, out)
	}
	m5 := s.waitFor(t, "no policy", 30*time.Second)
	if !strings.Contains(m5, "dmarc=none") {
		t.Errorf("want dmarc=none:\n%s", m5)
	}
	// 6. p=quarantine: accepted (250) into the inbound quarantine, not
	// delivered; an admin's release delivers it with the results.
	if out, code := send("127.0.0.7", "x@shop.example", inboundMessage("offers@shop.example", "shop quarantine")); code != 0 {
		t.Fatalf("p=quarantine message refused (%d):\n%s", code, out)
	}
	var id string
	for deadline := time.Now().Add(15 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, _ := g.cli("quarantine", "list")
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "shop quarantine") && strings.Contains(l, "quarantined") {
				id = strings.Fields(l)[0]
			}
		}
	}
	if id == "" {
		out, _ := g.cli("quarantine", "list")
		t.Fatalf("p=quarantine message not in the quarantine:\n%s", out)
	}
	out, _ = g.cli("quarantine", "show", id)
	if !strings.Contains(out, "DMARC fail for shop.example") {
		t.Errorf("quarantine show lacks the DMARC reason:\n%s", out)
	}
	time.Sleep(500 * time.Millisecond)
	for _, msg := range s.messages() {
		if strings.Contains(msg, "shop quarantine") {
			t.Errorf("a quarantined message reached the mail host before release")
		}
	}
	if out, code := g.cli("quarantine", "release", id, "--reason", "e2e"); code != 0 {
		t.Fatalf("release: %d\n%s", code, out)
	}
	if m6 := s.waitFor(t, "shop quarantine", 30*time.Second); !strings.Contains(m6, "dmarc=fail (p=quarantine) header.from=shop.example") {
		t.Errorf("released message lacks its results:\n%s", m6)
	}
	for _, msg := range s.messages() {
		if strings.Contains(msg, "bank spoof") || strings.Contains(msg, "own spoof") {
			t.Errorf("a refused message reached the mail host:\n%s", msg)
		}
	}

	// The CLI gives the same verdict for the spoof, as JSON.
	spoof := filepath.Join(dir, "spoof.eml")
	os.WriteFile(spoof, []byte(inboundMessage("security@bank.example", "bank spoof")), 0o600)
	out, code := g.cli("inbound", "test", "--json", "--ip", "127.0.0.4", "--helo", "evil.example", "--mail-from", "x@bank.example", spoof)
	var rep struct {
		Verdict, SPF, DMARC, Reply string
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("inbound test: %d %v\n%s", code, err, out)
	}
	if rep.Verdict != "reject" || rep.SPF != "fail" || rep.DMARC != "fail" || !strings.HasPrefix(rep.Reply, "550 5.7.1") {
		t.Errorf("inbound test --json: %+v\n%s", rep, out)
	}
}
