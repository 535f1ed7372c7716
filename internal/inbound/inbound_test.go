package inbound

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"net"
	"strings"
	"testing"

	mdkim "github.com/mjl-/mox/dkim"
	mdns "github.com/mjl-/mox/dns"

	"sealpost/internal/dns"
	"sealpost/internal/mailauth/arc"
)

// world is the DNS of the tests: a sender with SPF and DKIM, domains with
// each DMARC policy, and the organisation (council.example).
type world struct {
	res    dns.MockResolver
	edKey  ed25519.PrivateKey
	arcKey *rsa.PrivateKey
}

func newWorld(t testing.TB) *world {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	w := &world{edKey: priv, arcKey: rk}
	w.res = dns.MockResolver{
		TXT: map[string][]string{
			"sender.example":                 {"v=spf1 ip4:192.0.2.0/24 -all"},
			"_dmarc.sender.example":          {"v=DMARC1; p=reject"},
			"sel._domainkey.sender.example":  {"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)},
			"bank.example":                   {"v=spf1 ip4:198.51.100.0/24 -all"},
			"_dmarc.bank.example":            {"v=DMARC1; p=reject"},
			"_dmarc.shop.example":            {"v=DMARC1; p=quarantine"},
			"_dmarc.news.example":            {"v=DMARC1; p=none"},
			"_dmarc.testing.example":         {"v=DMARC1; p=reject; t=y"},
			"council.example":                {"v=spf1 ip4:203.0.113.0/24 -all"},
			"arc._domainkey.council.example": {"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)},
			"_dmarc.parent.example":          {"v=DMARC1; p=none; sp=reject"},
			"_dmarc.psd.example":             {"v=DMARC1; p=none; psd=y"},
			"_dmarc.org.psd.example":         {"v=DMARC1; p=reject"},
		},
		Fail: map[string]error{"_dmarc.down.example": dns.ErrTemporary},
	}
	return w
}

func (w *world) eval(t testing.TB, mut func(*Config)) *Evaluator {
	cfg := Config{Resolver: w.res, AuthServID: "mx.council.example", OrgDomains: []string{"council.example"},
		Seal: &arc.Sealer{Domain: "council.example", Selector: "arc", Key: w.arcKey, AuthServID: "mx.council.example"}}
	if mut != nil {
		mut(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func message(from string) []byte {
	return []byte("From: Someone <someone@" + from + ">\r\nTo: staff@council.example\r\nSubject: Hello\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@" + from + ">\r\n\r\nHello there.\r\n")
}

func (w *world) sign(t testing.TB, msg []byte, domain string) []byte {
	sel := mdkim.Selector{Hash: "sha256", HeaderRelaxed: true, BodyRelaxed: true, Headers: []string{"From", "To", "Subject", "Date", "Message-ID"},
		PrivateKey: w.edKey, Domain: mdns.Domain{ASCII: "sel"}}
	h, err := mdkim.Sign(context.Background(), slog.New(slog.DiscardHandler), "someone", mdns.Domain{ASCII: domain}, []mdkim.Selector{sel}, false, bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(h), msg...)
}

func TestVerdicts(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	e := w.eval(t, nil)
	good := net.ParseIP("192.0.2.10")
	bad := net.ParseIP("233.252.0.1")
	cases := []struct {
		name   string
		conn   Conn
		msg    []byte
		action Action
		code   int
		dmarc  string
	}{
		{"spf and dkim pass", Conn{IP: good, HELO: "mta.sender.example", MailFrom: "a@sender.example"}, w.sign(t, message("sender.example"), "sender.example"), Accept, 0, "pass"},
		{"dkim alone passes DMARC when forwarded", Conn{IP: bad, HELO: "fwd.example", MailFrom: "list@fwd.example"}, w.sign(t, message("sender.example"), "sender.example"), Accept, 0, "pass"},
		{"spf alone passes DMARC", Conn{IP: good, HELO: "mta.sender.example", MailFrom: "a@sender.example"}, message("sender.example"), Accept, 0, "pass"},
		{"p=reject spoof refused", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, message("bank.example"), Reject, 550, "fail"},
		{"p=reject: SPF fail for the From domain itself is no pass", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@bank.example"}, message("bank.example"), Reject, 550, "fail"},
		{"p=reject: SPF pass for another domain does not align", Conn{IP: good, HELO: "mta.sender.example", MailFrom: "a@sender.example"}, message("bank.example"), Reject, 550, "fail"},
		{"p=reject: a signature of another domain does not align", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, w.sign(t, message("bank.example"), "sender.example"), Reject, 550, "fail"},
		{"p=quarantine", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, message("shop.example"), Quarantine, 0, "fail"},
		{"p=none is tagged", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, message("news.example"), Tag, 0, "fail"},
		{"t=y lowers reject to quarantine", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, message("testing.example"), Quarantine, 0, "fail"},
		{"sp= for a subdomain", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, message("mail.parent.example"), Reject, 550, "fail"},
		{"psd=y: org domain below the PSD", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, message("www.org.psd.example"), Reject, 550, "fail"},
		{"no policy", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, message("nopolicy.example"), Accept, 0, "none"},
		{"DNS failure tempfails", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, message("down.example"), Tempfail, 451, "temperror"},
		{"own domain spoofed from outside, no DMARC record", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, message("council.example"), Reject, 550, "none"},
		{"own subdomain spoofed from outside", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, message("hr.council.example"), Reject, 550, "none"},
		{"own domain signed by an outside domain only", Conn{IP: bad, HELO: "evil.example", MailFrom: "x@evil.example"}, w.sign(t, message("council.example"), "sender.example"), Reject, 550, "none"},
		{"own domain with SPF pass is fine", Conn{IP: net.ParseIP("203.0.113.5"), HELO: "out.council.example", MailFrom: "a@council.example"}, message("council.example"), Accept, 0, "none"},
		{"no From", Conn{IP: good, HELO: "mta.sender.example", MailFrom: "a@sender.example"}, []byte("Subject: x\r\n\r\nbody\r\n"), Reject, 550, "permerror"},
		{"two From fields", Conn{IP: good, HELO: "mta.sender.example", MailFrom: "a@sender.example"}, append([]byte("From: a@bank.example\r\n"), message("sender.example")...), Reject, 550, "permerror"},
		{"From authors in two domains", Conn{IP: good, HELO: "mta.sender.example", MailFrom: "a@sender.example"}, []byte("From: a@sender.example, b@bank.example\r\nSubject: x\r\n\r\nb\r\n"), Reject, 550, "permerror"},
	}
	for _, c := range cases {
		v := e.Evaluate(context.Background(), c.conn, c.msg)
		if v.Action != c.action || v.DMARC.Status != c.dmarc {
			t.Errorf("%s: %s (dmarc %s: %s), want %s (dmarc %s)\n%+v", c.name, v.Action, v.DMARC.Status, v.Why, c.action, c.dmarc, v.Checks)
			continue
		}
		if c.code != 0 && (v.Reply == nil || v.Reply.Code != c.code) {
			t.Errorf("%s: reply %v, want %d", c.name, v.Reply, c.code)
		}
		if c.code == 550 && v.Reply.Enhanced != "5.7.1" {
			t.Errorf("%s: enhanced %s, want 5.7.1", c.name, v.Reply.Enhanced)
		}
		if (v.Action == Reject || v.Action == Tempfail) != (v.Prepend == "") {
			t.Errorf("%s: prepend %q for %s", c.name, v.Prepend, v.Action)
		}
		if v.Why == "" {
			t.Errorf("%s: no why", c.name)
		}
	}
}

func TestRejectActionQuarantine(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	e := w.eval(t, func(c *Config) { c.RejectAction = Quarantine })
	bad := Conn{IP: net.ParseIP("233.252.0.1"), HELO: "evil.example", MailFrom: "x@evil.example"}
	for _, from := range []string{"bank.example", "council.example"} {
		if v := e.Evaluate(context.Background(), bad, message(from)); v.Action != Quarantine || v.Reply != nil {
			t.Errorf("%s: %s %v, want quarantine", from, v.Action, v.Reply)
		}
	}
}

// RFC 7489 mode: the organisational domain comes from the public suffix
// list and np=/psd=/t= are not used, so t=y does not soften p=reject.
func TestRFC7489Mode(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	e := w.eval(t, func(c *Config) { c.DMARCMode = ModeRFC7489 })
	bad := Conn{IP: net.ParseIP("233.252.0.1"), HELO: "evil.example", MailFrom: "x@evil.example"}
	if v := e.Evaluate(context.Background(), bad, message("testing.example")); v.Action != Reject {
		t.Errorf("t=y under RFC 7489: %s, want reject", v.Action)
	}
	if _, err := New(Config{Resolver: w.res, AuthServID: "mx.x", DMARCMode: "rfc1234"}); err == nil {
		t.Error("unknown mode accepted")
	}
}

func TestAuthenticationResults(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	e := w.eval(t, nil)
	forged := "Authentication-Results: MX.Council.Example; spf=pass smtp.mailfrom=ceo@council.example; dmarc=pass\r\n" +
		"Authentication-Results: (comment) mx.council.example;\r\n dkim=pass header.d=council.example\r\n" +
		"Authentication-Results: other.example; spf=pass\r\n"
	msg := append([]byte(forged), w.sign(t, message("sender.example"), "sender.example")...)
	v := e.Evaluate(context.Background(), Conn{IP: net.ParseIP("192.0.2.10"), HELO: "mta.sender.example", MailFrom: "a@sender.example"}, msg)
	if v.Removed != 2 {
		t.Fatalf("removed %d forged fields, want 2", v.Removed)
	}
	if bytes.Contains(v.Message, []byte("ceo@council.example")) || bytes.Contains(v.Message, []byte("header.d=council.example")) {
		t.Fatalf("forged results left in:\n%s", v.Message)
	}
	if !bytes.Contains(v.Message, []byte("Authentication-Results: other.example; spf=pass")) {
		t.Fatal("another server's results were removed")
	}
	ar := v.Prepend[strings.Index(v.Prepend, "Authentication-Results:"):]
	for _, want := range []string{"Authentication-Results: mx.council.example;", "arc=none", "spf=pass smtp.mailfrom=a@sender.example",
		"dkim=pass header.d=sender.example header.s=sel header.a=ed25519-sha256 header.b=", "dmarc=pass (p=reject) header.from=sender.example"} {
		if !strings.Contains(ar, want) {
			t.Errorf("AR lacks %q:\n%s", want, ar)
		}
	}
	if !strings.HasPrefix(v.Prepend, "ARC-Seal: ") || !strings.Contains(v.Prepend, "cv=none; d=council.example; i=1; s=arc;") {
		t.Errorf("no seal first:\n%s", v.Prepend)
	}
	// Our seal validates (and a forwarder's later check sees cv=pass).
	sealed := append([]byte(v.Prepend), v.Message...)
	if r := arc.Verify(context.Background(), w.res, sealed); r.Status != arc.Pass || r.Instance != 1 {
		t.Fatalf("our seal: %+v", r)
	}
	// A changed body breaks it.
	broken := bytes.Replace(sealed, []byte("Hello there."), []byte("Pay me now."), 1)
	if r := arc.Verify(context.Background(), w.res, broken); r.Status != arc.Fail {
		t.Fatalf("tampered seal: %+v", r)
	}
}

func TestNoSealWithoutSealer(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	e := w.eval(t, func(c *Config) { c.Seal = nil })
	v := e.Evaluate(context.Background(), Conn{IP: net.ParseIP("192.0.2.10"), HELO: "h.sender.example", MailFrom: "a@sender.example"}, message("sender.example"))
	if strings.Contains(v.Prepend, "ARC-") || !strings.HasPrefix(v.Prepend, "Authentication-Results: mx.council.example;") {
		t.Fatalf("prepend %q", v.Prepend)
	}
}

func TestCRLF(t *testing.T) {
	if got := string(CRLF([]byte("a\nb\r\nc\n"))); got != "a\r\nb\r\nc\r\n" {
		t.Fatalf("%q", got)
	}
}

func FuzzEvaluate(f *testing.F) {
	f.Add([]byte("From: a@bank.example\r\nAuthentication-Results: mx.council.example; x\r\n\r\nb\r\n"), "x@evil.example")
	f.Add([]byte("From: =?utf-8?q?a?= <a@b.example>\r\nFrom: c\r\n"), "")
	w := newWorld(f)
	e := w.eval(f, nil)
	f.Fuzz(func(t *testing.T, msg []byte, mailFrom string) {
		v := e.Evaluate(context.Background(), Conn{IP: net.ParseIP("192.0.2.1"), HELO: "h.example", MailFrom: mailFrom}, msg)
		if v.Action == "" || v.Why == "" {
			t.Fatalf("empty verdict %+v", v)
		}
		if (v.Action == Reject || v.Action == Tempfail) && v.Reply == nil {
			t.Fatalf("%s without reply", v.Action)
		}
	})
}
