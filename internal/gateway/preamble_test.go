package gateway

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/testutil"
)

// TestPreambleLinkOpensSameMessage: "never unreadable". For recipient
// domains in encryption.preamble_domains the encrypted copy is a
// multipart/mixed of a plaintext preamble with a portal link and the
// encrypted entity: sqop (OpenPGP) and openssl (S/MIME) still decrypt the
// inner part, the link opens the same message in the portal after the
// usual sign-in, no notification is mailed besides, and no plaintext of
// the message leaves. A recipient domain not in the list gets the plain
// encrypted message, without a preamble.
func TestPreambleLinkOpensSameMessage(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"openssl", "sqop"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Missing(t, "%s is not installed", tool)
		}
	}
	anchors, _ := filepath.Abs("testdata/smime/ca.crt")
	e := start(t, func(c *config.Config) {
		c.Encryption.WKD = false
		c.Encryption.PreambleDomains = []string{"partner.example", "EXAMPLE.test"}
		c.Policy.Disable = []string{"first-contact-sensitive", "unscannable-content"}
		c.Policy.Rules = []config.PolicyRule{{Name: "partners", When: `recipient.domain in ["example.test", "partner.example", "other.example"]`, Action: "encrypt", Reason: "partners get encryption"}}
		c.SMIME = config.SMIME{Enabled: true, TrustAnchors: anchors, CertificatesDir: t.TempDir(), Revocation: "off"}
	})
	ctx := context.Background()
	if _, err := e.gw.Keyring.Add(ctx, mustRead(t, "testdata/smime/dan.crt"), false); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bobKey := runTool(t, nil, "sqop", "generate-key", "Bob <bob@partner.example>")
	os.WriteFile(filepath.Join(dir, "bob.key"), bobKey, 0o600)
	if _, err := e.gw.Keyring.Add(ctx, runTool(t, bobKey, "sqop", "extract-cert"), false); err != nil {
		t.Fatal(err)
	}
	ollyKey := runTool(t, nil, "sqop", "generate-key", "Olly <olly@other.example>")
	if _, err := e.gw.Keyring.Add(ctx, runTool(t, ollyKey, "sqop", "extract-cert"), false); err != nil {
		t.Fatal(err)
	}
	secret := "The case file for the partner, reference 7731."
	rcpts := []string{"dan@example.test", "bob@partner.example", "olly@other.example"}
	msg := "From: staff@example.gov.uk\r\nTo: " + strings.Join(rcpts, ", ") + "\r\nSubject: case file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain\r\n\r\n" + secret + "\r\n"
	code, reply := outbound(t, e, "staff@example.gov.uk", rcpts, msg)
	if code != 250 {
		t.Fatal(reply)
	}

	// Bob: OpenPGP inside the wrapper.
	bob := mailTo(t, e.sink, "bob@partner.example", "case file", 0)
	verifyDKIM(t, e.gw, bob.Data)
	preamble, inner := splitPreamble(t, bob.Data, "multipart/encrypted")
	mt, params, _ := mime.ParseMediaType(inner.Header.Get("Content-Type"))
	if mt != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" {
		t.Fatalf("inner Content-Type %q", inner.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(inner.Body, params["boundary"])
	mr.NextPart()
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	armoured, _ := io.ReadAll(p)
	if plain := runTool(t, armoured, "sqop", "decrypt", filepath.Join(dir, "bob.key")); !bytes.Contains(plain, []byte(secret)) {
		t.Fatalf("sqop decrypted %q", plain)
	}
	bobLink := linkRe.FindStringSubmatch(preamble)
	if bobLink == nil {
		t.Fatalf("no portal link in the preamble:\n%s", preamble)
	}

	// Dan: S/MIME inside the wrapper; openssl reads the inner entity.
	dan := mailTo(t, e.sink, "dan@example.test", "case file", 0)
	preamble, inner = splitPreamble(t, dan.Data, "application/pkcs7-mime")
	var entity bytes.Buffer
	for k, v := range inner.Header {
		entity.WriteString(k + ": " + strings.Join(v, " ") + "\r\n")
	}
	entity.WriteString("\r\n")
	io.Copy(&entity, inner.Body)
	f := filepath.Join(dir, "dan.eml")
	os.WriteFile(f, entity.Bytes(), 0o600)
	out, err := exec.Command("openssl", "cms", "-decrypt", "-in", f, "-recip", "testdata/smime/dan.crt", "-inkey", "testdata/smime/dan.key").Output()
	if err != nil || !strings.Contains(string(out), secret) {
		t.Fatalf("openssl: %q %v", out, err)
	}
	danLink := linkRe.FindStringSubmatch(preamble)
	if danLink == nil {
		t.Fatalf("no portal link in the preamble:\n%s", preamble)
	}

	// Olly's domain is not in the list: the plain encrypted message.
	olly := mailTo(t, e.sink, "olly@other.example", "case file", 0)
	if m, err := mail.ReadMessage(bytes.NewReader(olly.Data)); err != nil || !strings.HasPrefix(m.Header.Get("Content-Type"), "multipart/encrypted") {
		t.Fatalf("olly got Content-Type %q (%v)", m.Header.Get("Content-Type"), err)
	}

	for _, leak := range []testutil.Received{bob, dan, olly} {
		if bytes.Contains(leak.Data, []byte("7731")) {
			t.Fatalf("plaintext left the gateway to %v", leak.Rcpts)
		}
	}
	waitQueueEmpty(t, e)
	time.Sleep(200 * time.Millisecond)
	for _, m := range e.sink.Messages() {
		if strings.Contains(testutil.Header(m.Data, "Subject"), "Secure message") {
			t.Fatalf("a portal notification went to %v besides the preamble", m.Rcpts)
		}
	}

	// The links open the same message, each for its own recipient.
	for _, c := range []struct{ link, rcpt string }{{bobLink[1], "bob@partner.example"}, {danLink[1], "dan@example.test"}} {
		b := newBrowser(t, e)
		landing := "/m/" + c.link
		signIn(t, e, b, landing, c.rcpt)
		if st, page := b.get(landing); st != 200 || !strings.Contains(page, secret) || !strings.Contains(page, "case file") {
			t.Fatalf("%s: portal page %d:\n%.2000s", c.rcpt, st, page)
		}
	}
}

// splitPreamble checks that msg is multipart/mixed of a text/plain
// preamble and an entity of innerType, and returns the preamble's text and
// the inner entity.
func splitPreamble(t *testing.T, msg []byte, innerType string) (string, *mail.Message) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("outer Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("first part %q", ct)
	}
	text, _ := io.ReadAll(p) // multipart decodes quoted-printable
	p, err = mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(p)
	var hdr bytes.Buffer
	for k, v := range p.Header {
		hdr.WriteString(k + ": " + strings.Join(v, " ") + "\r\n")
	}
	inner, err := mail.ReadMessage(io.MultiReader(&hdr, strings.NewReader("\r\n"), bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(inner.Header.Get("Content-Type"), innerType) {
		t.Fatalf("inner part %q, want %s", inner.Header.Get("Content-Type"), innerType)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("more than two parts: %v", err)
	}
	return string(text), inner
}
