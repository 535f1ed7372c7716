package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/queue"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

// fakeHop records what a transport was handed and accepts it all.
type fakeHop struct {
	got    []*queue.Delivery
	bodies []string
}

func (f *fakeHop) Deliver(ctx context.Context, d *queue.Delivery) queue.Attempt {
	b, _ := io.ReadAll(io.NewSectionReader(d.Body, 0, d.Size))
	f.got = append(f.got, d)
	f.bodies = append(f.bodies, string(b))
	att := queue.Attempt{Rcpts: make([]queue.RcptResult, len(d.Rcpts))}
	for i := range att.Rcpts {
		att.Rcpts[i] = queue.RcptResult{OK: true, Text: "250 ok"}
	}
	return att
}

const smimeTestMsg = "From: sam@council.example\r\nTo: dan@example.test, nokey@example.test\r\nSubject: case 42\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n\r\nOfficial-sensitive content.\r\n"

func smimeConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	abs, _ := filepath.Abs("testdata/smime/ca.crt")
	certs := filepath.Join(cfg.DataDir, "smime", "certs")
	os.MkdirAll(certs, 0o700)
	b, _ := os.ReadFile("testdata/smime/dan.crt")
	os.WriteFile(filepath.Join(certs, "dan.pem"), b, 0o600)
	cfg.SMIME = config.SMIME{Enabled: true, TrustAnchors: abs, CertificatesDir: "smime/certs", Cipher: "aes-256-gcm",
		RSAKeyTransport: "oaep", Revocation: "off", CRLDir: "smime/crls"}
	return cfg
}

type smimeRig struct {
	tr           *smimeTransport
	next, portal *fakeHop
	events       []*store.AuditEvent
	auditErr     error
	portalOn     bool
}

func newSMIMERig(t *testing.T, cfg *config.Config) *smimeRig {
	r := &smimeRig{next: &fakeHop{}, portal: &fakeHop{}, portalOn: true}
	tr, err := newSMIMETransport(cfg, r.next, r.portal, func() bool { return r.portalOn },
		func(ctx context.Context, e *store.AuditEvent) error {
			if r.auditErr != nil {
				return r.auditErr
			}
			r.events = append(r.events, e)
			return nil
		}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.tr = tr
	return r
}

func (r *smimeRig) deliver() queue.Attempt {
	return r.tr.Deliver(context.Background(), &queue.Delivery{Msg: &store.Message{ID: "m1"}, Route: queue.RouteSMIME, Domain: "example.test",
		Rcpts: []string{"dan@example.test", "nokey@example.test"}, Body: strings.NewReader(smimeTestMsg), Size: int64(len(smimeTestMsg))})
}

// TestSMIMETransport: the recipient with a certificate gets mail OpenSSL
// decrypts, the one without gets the portal, and the audit log has the
// certificate, its source and the algorithms, or the reason.
func TestSMIMETransport(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		testutil.Missing(t, "openssl not installed")
	}
	r := newSMIMERig(t, smimeConfig(t))
	att := r.deliver()
	for i, res := range att.Rcpts {
		if !res.OK {
			t.Fatalf("recipient %d: %+v", i, res)
		}
	}
	if len(r.next.got) != 1 || strings.Join(r.next.got[0].Rcpts, ",") != "dan@example.test" ||
		r.next.got[0].Route != queue.RouteOutbound || r.next.got[0].Domain != "example.test" {
		t.Fatalf("outbound got %+v", r.next.got)
	}
	if len(r.portal.got) != 1 || strings.Join(r.portal.got[0].Rcpts, ",") != "nokey@example.test" || r.portal.bodies[0] != smimeTestMsg {
		t.Fatalf("portal got %+v", r.portal.got)
	}
	sent := r.next.bodies[0]
	if strings.Contains(sent, "Official-sensitive") || !strings.Contains(sent, "smime-type=authEnveloped-data") {
		t.Fatalf("outbound body not encrypted:\n%s", sent)
	}
	f := filepath.Join(t.TempDir(), "m.eml")
	os.WriteFile(f, []byte(sent), 0o600)
	out, err := exec.Command("openssl", "cms", "-decrypt", "-binary", "-in", f, "-recip", "testdata/smime/dan.crt", "-inkey", "testdata/smime/dan.key").Output()
	if err != nil || !strings.Contains(string(out), "Official-sensitive content.") {
		t.Fatalf("openssl: %q %v", out, err)
	}
	if len(r.events) != 2 {
		t.Fatalf("events: %+v", r.events)
	}
	enc, fb := r.events[0], r.events[1]
	if enc.Action != "smime.encrypt" || enc.Addrs[0] != "dan@example.test" || !strings.Contains(enc.Detail, "source=dir algorithms=aes-256-gcm,rsaes-oaep-sha256") ||
		len(strings.SplitN(strings.SplitN(enc.Detail, "cert=", 2)[1], " ", 2)[0]) != 64 {
		t.Errorf("encrypt event: %+v", enc)
	}
	if fb.Action != "smime.fallback" || fb.Addrs[0] != "nokey@example.test" || !strings.Contains(fb.Detail, "no S/MIME certificate for nokey@example.test") {
		t.Errorf("fallback event: %+v", fb)
	}
}

// TestSMIMETransportFailsClosed: no audit, nothing sent (4xx); S/MIME off
// means the portal with the reason; portal off means a 5xx, never plain.
func TestSMIMETransportFailsClosed(t *testing.T) {
	t.Parallel()
	r := newSMIMERig(t, smimeConfig(t))
	r.auditErr = errors.New("disk full")
	att := r.deliver()
	if len(r.next.got)+len(r.portal.got) != 0 || att.Rcpts[0].OK || att.Rcpts[0].Permanent || !strings.HasPrefix(att.Rcpts[0].Text, "451") {
		t.Fatalf("audit failure: sent %d/%d, %+v", len(r.next.got), len(r.portal.got), att.Rcpts)
	}

	cfg := smimeConfig(t)
	cfg.SMIME.Enabled = false
	r = newSMIMERig(t, cfg)
	r.deliver()
	if len(r.next.got) != 0 || len(r.portal.got) != 1 || len(r.portal.got[0].Rcpts) != 2 ||
		!strings.Contains(r.events[0].Detail, "smime.enabled = false") {
		t.Fatalf("disabled: next %d portal %+v events %+v", len(r.next.got), r.portal.got, r.events)
	}

	r = newSMIMERig(t, smimeConfig(t))
	r.portalOn = false
	att = r.deliver()
	if len(r.portal.got) != 0 || !att.Rcpts[1].Permanent || !strings.HasPrefix(att.Rcpts[1].Text, "550 5.7.1") || !att.Rcpts[0].OK {
		t.Fatalf("portal off: %+v", att.Rcpts)
	}

	// An anchor that is not the recipient's issuer: no chain, portal.
	cfg = smimeConfig(t)
	other := filepath.Join(t.TempDir(), "other.pem")
	b, _ := os.ReadFile("../smime/testdata/mimekit/ca.crt")
	os.WriteFile(other, b, 0o600)
	cfg.SMIME.TrustAnchors = other
	r = newSMIMERig(t, cfg)
	r.deliver()
	if len(r.next.got) != 0 || len(r.portal.got) != 1 || !strings.Contains(r.events[0].Detail, "no chain to a trust anchor") {
		t.Fatalf("wrong anchor: next %d, events %+v", len(r.next.got), r.events)
	}
}

// TestEncryptSMIMEEndToEnd: a policy rule's encrypt-smime reaches the
// transport through the queue: the recipient with a certificate receives
// mail OpenSSL decrypts, the one without a portal notice, and the audit
// log records both decisions.
func TestEncryptSMIMEEndToEnd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		testutil.Missing(t, "openssl not installed")
	}
	anchors, _ := filepath.Abs("testdata/smime/ca.crt")
	certs := t.TempDir()
	b, _ := os.ReadFile("testdata/smime/dan.crt")
	os.WriteFile(filepath.Join(certs, "dan.pem"), b, 0o600)
	e := start(t, func(c *config.Config) {
		c.Policy.Disable = []string{"first-contact-sensitive", "unscannable-content"}
		c.Policy.Rules = []config.PolicyRule{{Name: "partner-smime", When: `recipient.domain == "example.test"`, Action: "encrypt-smime", Reason: "partner has S/MIME"}}
		c.SMIME = config.SMIME{Enabled: true, TrustAnchors: anchors, CertificatesDir: certs, Revocation: "off"}
	})
	msg := "From: staff@example.gov.uk\r\nTo: dan@example.test, nokey@example.test\r\nSubject: case file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain\r\n\r\nThe case file for the partner.\r\n"
	if code, reply := outbound(t, e, "staff@example.gov.uk", []string{"dan@example.test", "nokey@example.test"}, msg); code != 250 {
		t.Fatal(reply)
	}
	got := mailTo(t, e.sink, "dan@example.test", "case file", 0)
	if strings.Contains(string(got.Data), "The case file") || !strings.Contains(string(got.Data), "application/pkcs7-mime") {
		t.Fatalf("dan got:\n%s", got.Data)
	}
	f := filepath.Join(t.TempDir(), "m.eml")
	os.WriteFile(f, got.Data, 0o600)
	out, err := exec.Command("openssl", "cms", "-decrypt", "-in", f, "-recip", "testdata/smime/dan.crt", "-inkey", "testdata/smime/dan.key").Output()
	if err != nil || !strings.Contains(string(out), "The case file for the partner.") {
		t.Fatalf("openssl: %q %v", out, err)
	}
	mailTo(t, e.sink, "nokey@example.test", "Secure message", 0)
	var actions []string
	e.gw.Store.EachAuditEvent(context.Background(), time.Time{}, time.Now().Add(time.Hour), func(ev *store.AuditEvent) error {
		if strings.HasPrefix(ev.Action, "smime.") {
			actions = append(actions, ev.Action+" "+ev.Addrs[0])
		}
		return nil
	})
	if strings.Join(actions, ",") != "smime.encrypt dan@example.test,smime.fallback nokey@example.test" {
		t.Fatalf("audit: %v", actions)
	}
}

// TestQuarantinedSMIMEReleasedEncrypted: a quarantined message whose
// then-action is encrypt-smime is encrypted after release, never sent in
// clear.
func TestQuarantinedSMIMEReleasedEncrypted(t *testing.T) {
	t.Parallel()
	anchors, _ := filepath.Abs("testdata/smime/ca.crt")
	certs := t.TempDir()
	b, _ := os.ReadFile("testdata/smime/dan.crt")
	os.WriteFile(filepath.Join(certs, "dan.pem"), b, 0o600)
	e := start(t, func(c *config.Config) {
		c.Policy.Disable = []string{"first-contact-sensitive", "unscannable-content"}
		c.Policy.Rules = []config.PolicyRule{
			{Name: "partner-smime", When: `recipient.domain == "example.test"`, Action: "encrypt-smime"},
			{Name: "review-me", When: `message.subject.contains("review me")`, Action: "quarantine"},
		}
		c.SMIME = config.SMIME{Enabled: true, TrustAnchors: anchors, CertificatesDir: certs, Revocation: "off"}
	})
	msg := "From: staff@example.gov.uk\r\nTo: dan@example.test\r\nSubject: review me\r\n\r\nHeld then encrypted.\r\n"
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"dan@example.test"}, msg)
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	if _, err := e.gw.Queue.Resolve(context.Background(), id, true, "released", "admin", ""); err != nil {
		t.Fatal(err)
	}
	got := mailTo(t, e.sink, "dan@example.test", "review me", 0)
	if strings.Contains(string(got.Data), "Held then encrypted.") || !strings.Contains(string(got.Data), "application/pkcs7-mime") {
		t.Fatalf("released copy:\n%s", got.Data)
	}
	r, _ := e.gw.Store.Recipients(context.Background(), id)
	if r[0].Route != queue.RouteSMIME {
		t.Fatalf("route %+v", r[0])
	}
}

// TestSMIMEConfigErrors: unreadable files are start-up errors naming the key.
func TestSMIMEConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mutate func(*config.SMIME)
		key    string
	}{
		{func(s *config.SMIME) { s.TrustAnchors = "/nonexistent/anchors.pem" }, "smime.trust_anchors"},
		{func(s *config.SMIME) { s.TrustAnchors, _ = filepath.Abs("testdata/smime/dan.key") }, "smime.trust_anchors"},
		{func(s *config.SMIME) { s.Intermediates = "/nonexistent/i.pem" }, "smime.intermediates"},
		{func(s *config.SMIME) { s.SignCert, s.SignKey = "/nonexistent/c.pem", "/nonexistent/k.pem" }, "smime.sign_cert"},
	} {
		cfg := smimeConfig(t)
		tc.mutate(&cfg.SMIME)
		_, err := newSMIMETransport(cfg, &fakeHop{}, &fakeHop{}, func() bool { return true }, nil, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("want an error naming %s, got %v", tc.key, err)
		}
	}
}

// TestSMIMETransportSigns: with sign_cert/sign_key the encrypted mail is
// signed inside; openssl decrypts it and verifies the signature to the CA.
func TestSMIMETransportSigns(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		testutil.Missing(t, "openssl not installed")
	}
	cfg := smimeConfig(t)
	cfg.SMIME.SignCert, _ = filepath.Abs("testdata/smime/dan.crt")
	cfg.SMIME.SignKey, _ = filepath.Abs("testdata/smime/dan.key")
	r := newSMIMERig(t, cfg)
	r.deliver()
	if len(r.next.bodies) != 1 || !strings.Contains(r.events[0].Detail, "signed=true") {
		t.Fatalf("sent %d, events %+v", len(r.next.bodies), r.events)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "m.eml"), []byte(r.next.bodies[0]), 0o600)
	dec, err := exec.Command("openssl", "cms", "-decrypt", "-binary", "-in", filepath.Join(dir, "m.eml"), "-recip", "testdata/smime/dan.crt", "-inkey", "testdata/smime/dan.key").Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "d.eml"), dec, 0o600)
	out, err := exec.Command("openssl", "cms", "-verify", "-in", filepath.Join(dir, "d.eml"), "-CAfile", "testdata/smime/ca.crt").Output()
	if err != nil || !strings.Contains(string(out), "Official-sensitive content.") {
		t.Fatalf("verify: %q %v", out, err)
	}
}
