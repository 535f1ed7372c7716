package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sealpost/internal/config"
	"sealpost/internal/keyring"
	"sealpost/internal/pgp"
	"sealpost/internal/policy"
	"sealpost/internal/testutil"
)

// TestEncryptPGPEndToEnd: the policy wants partner mail encrypted. Bob has
// a key (made by Sequoia's sqop, added by the operator): he gets PGP/MIME,
// DKIM-signed, that sqop decrypts and whose signature by the domain's org
// key verifies; no plaintext leaves. Carol has none: she gets the portal,
// and the decision says why. The audit log names Bob's key, its source and
// the algorithms.
func TestEncryptPGPEndToEnd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sqop"); err != nil {
		testutil.Missing(t, "sqop is not installed (scripts/install-test-deps.sh)")
	}
	e := start(t, func(c *config.Config) {
		c.Encryption.WKD = false // tests reach loopback only; WKD is tested in internal/keyring
		c.Encryption.SignDomains = []string{"example.gov.uk"}
		c.Policy.Rules = []config.PolicyRule{
			{Name: "partners-encrypted", When: `recipient.domain == "partner.example"`, Action: "encrypt-pgp", Reason: "partners get OpenPGP"},
			{Name: "any-key", When: `recipient.domain == "nokey.example"`, Action: "encrypt", Reason: "encrypt when they have a key"},
		}
	})
	dir := t.TempDir()
	bobKey := runTool(t, nil, "sqop", "generate-key", "Bob <bob@partner.example>")
	bobCert := runTool(t, bobKey, "sqop", "extract-cert")
	os.WriteFile(filepath.Join(dir, "bob.key"), bobKey, 0o600)
	ctx := context.Background()
	keys, err := e.gw.Keyring.Add(ctx, bobCert, false)
	if err != nil {
		t.Fatal(err)
	}
	body := "The minutes of the case conference, strictly for Bob.\r\n"
	msg := message("Staff <staff@example.gov.uk>", "bob@partner.example, carol@nokey.example", "minutes", body)
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"bob@partner.example", "carol@nokey.example"}, msg)
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)

	got := mailTo(t, e.sink, "bob@partner.example", "minutes", 0)
	if bytes.Contains(got.Data, []byte("strictly for Bob")) {
		t.Fatal("the plaintext left the gateway")
	}
	verifyDKIM(t, e.gw, got.Data)
	m, err := mail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if mt != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	mr.NextPart()
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	armoured, _ := io.ReadAll(p)
	os.WriteFile(filepath.Join(dir, "org.cert"), mustRead(t, filepath.Join(e.cfg.Path("keys"), "openpgp-example.gov.uk.asc")), 0o600)
	cmd := exec.Command("sqop", "decrypt", "--verify-with", filepath.Join(dir, "org.cert"), "--verifications-out", filepath.Join(dir, "ver"), filepath.Join(dir, "bob.key"))
	cmd.Stdin = bytes.NewReader(armoured)
	plain, err := cmd.Output()
	if err != nil {
		t.Fatalf("sqop decrypt: %v", err)
	}
	if !bytes.Contains(plain, []byte("strictly for Bob")) {
		t.Fatalf("decrypted %q", plain)
	}
	if ver := mustRead(t, filepath.Join(dir, "ver")); len(bytes.TrimSpace(ver)) == 0 {
		t.Fatal("sqop verified no signature by the org key")
	}

	// Carol: no key anywhere on the ladder, so the portal.
	mailTo(t, e.sink, "carol@nokey.example", "Secure message", 0)
	var d policy.Decision
	if err := json.Unmarshal([]byte(decision(t, e, id).Detail), &d); err != nil {
		t.Fatal(err)
	}
	for _, r := range d.Recipients {
		why := strings.Join(r.Reasons, " | ")
		switch r.Address {
		case "carol@nokey.example":
			if r.Action != "portal" || !strings.Contains(why, "no usable key for carol@nokey.example") || !strings.Contains(why, "sealed into the portal instead") {
				t.Errorf("carol: %s: %s", r.Action, why)
			}
		case "bob@partner.example":
			if r.Action != "encrypt-pgp" || !strings.Contains(why, keys[0].Fingerprint) {
				t.Errorf("bob: %s: %s", r.Action, why)
			}
		}
	}
	waitQueueEmpty(t, e)
	events, err := e.gw.Store.AuditEvents(ctx, id, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range events {
		if ev.Action == "encrypt.pgp" {
			found = true
			for _, want := range []string{"key=" + keys[0].Fingerprint, "source=operator", "trust=operator", "alg=" + keys[0].Algorithm, "data=SEIPDv1", "signed"} {
				if !strings.Contains(ev.Detail, want) {
					t.Errorf("audit %q lacks %q", ev.Detail, want)
				}
			}
		}
	}
	if !found {
		t.Fatal("no encrypt.pgp audit event")
	}
}

// TestEncryptKeyRevokedBeforeDelivery: the key goes between decision and
// delivery (here: the operator removes it while the message is held); the
// transport finds none and the portal takes the recipient; nothing leaves
// in clear.
func TestEncryptKeyGoneBeforeDelivery(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sqop"); err != nil {
		testutil.Missing(t, "sqop is not installed (scripts/install-test-deps.sh)")
	}
	e := start(t, func(c *config.Config) {
		c.Encryption.WKD = false
		c.Policy.Rules = []config.PolicyRule{
			{Name: "partners-encrypted", When: `recipient.domain == "partner.example"`, Action: "encrypt-pgp", Reason: "partners get OpenPGP"},
			{Name: "confirm", When: `message.subject == "confirm"`, Action: "hold", Reason: "confirm first"},
		}
	})
	ctx := context.Background()
	cert := runTool(t, runTool(t, nil, "sqop", "generate-key", "Bob <bob@partner.example>"), "sqop", "extract-cert")
	keys, err := e.gw.Keyring.Add(ctx, cert, false)
	if err != nil {
		t.Fatal(err)
	}
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"bob@partner.example"}, message("staff@example.gov.uk", "bob@partner.example", "confirm", "held body text"))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	if d := decision(t, e, id); d.State != "held" {
		t.Fatalf("state %s", d.State)
	}
	if err := e.gw.Keyring.Remove(ctx, keys[0].Fingerprint); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gw.Queue.Resolve(ctx, id, true, "released", "sender", "test"); err != nil {
		t.Fatal(err)
	}
	mailTo(t, e.sink, "bob@partner.example", "Secure message", 0)
	waitQueueEmpty(t, e)
	for _, m := range e.sink.Messages() {
		if bytes.Contains(m.Data, []byte("held body text")) {
			t.Fatal("the held message left in clear after its key was removed")
		}
	}
	events, _ := e.gw.Store.AuditEvents(ctx, id, 100)
	found := false
	for _, ev := range events {
		found = found || (ev.Action == "encrypt.portal" && strings.Contains(ev.Detail, "no usable key"))
	}
	if !found {
		t.Fatal("no encrypt.portal audit event saying why")
	}
}

func runTool(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWKDServedOverWeb: a staff key the operator adds is served at the
// direct method's path on the web listener, binary; other paths are 404.
func TestWKDServedOverWeb(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *config.Config) { c.Encryption.WKD = false })
	ctx := context.Background()
	k, err := pgp.GenerateKey("Staff", "staff@example.gov.uk")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := k.GetPublicKey()
	if _, err := e.gw.Keyring.Add(ctx, pub, true); err != nil {
		t.Fatal(err)
	}
	get := func(host, path string) (int, []byte) {
		req, _ := http.NewRequest("GET", "http://"+e.gw.WebAddr.String()+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, body := get("example.gov.uk", "/.well-known/openpgpkey/hu/"+keyring.WKDHash("staff")+"?l=staff")
	if code != 200 || len(body) == 0 {
		t.Fatalf("direct: %d, %d bytes", code, len(body))
	}
	if ks, err := keyring.ParseBinaryPGP(body); err != nil || !strings.EqualFold(ks[0].Fingerprint, k.GetFingerprint()) {
		t.Fatalf("served %v %v", ks, err)
	}
	if code, _ := get("example.gov.uk", "/.well-known/openpgpkey/example.gov.uk/hu/"+keyring.WKDHash("staff")); code != 200 {
		t.Fatalf("advanced: %d", code)
	}
	if code, _ := get("example.gov.uk", "/.well-known/openpgpkey/hu/"+keyring.WKDHash("nobody")); code != 404 {
		t.Fatalf("unknown: %d", code)
	}
	if code, _ := get("other.example", "/.well-known/openpgpkey/hu/"+keyring.WKDHash("staff")); code != 404 {
		t.Fatalf("another domain's host: %d", code)
	}
}

// TestEncryptActionByKind: action encrypt gives each recipient what they
// have: Dan's S/MIME certificate, added to the key store with keys add,
// goes through the S/MIME transport (OpenSSL decrypts); Bob's OpenPGP key
// gives PGP/MIME; Carol, with neither, gets the portal.
func TestEncryptActionByKind(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"openssl", "sqop"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Missing(t, "%s is not installed", tool)
		}
	}
	anchors, _ := filepath.Abs("testdata/smime/ca.crt")
	e := start(t, func(c *config.Config) {
		c.Encryption.WKD = false
		c.Policy.Disable = []string{"first-contact-sensitive", "unscannable-content"}
		c.Policy.Rules = []config.PolicyRule{{Name: "partners", When: `recipient.domain in ["example.test", "partner.example"]`, Action: "encrypt", Reason: "partners get encryption"}}
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
	rcpts := []string{"dan@example.test", "bob@partner.example", "carol@partner.example"}
	msg := "From: staff@example.gov.uk\r\nTo: " + strings.Join(rcpts, ", ") + "\r\nSubject: case file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain\r\n\r\nThe case file for the partner.\r\n"
	code, reply := outbound(t, e, "staff@example.gov.uk", rcpts, msg)
	if code != 250 {
		t.Fatal(reply)
	}
	dan := mailTo(t, e.sink, "dan@example.test", "case file", 0)
	f := filepath.Join(dir, "dan.eml")
	os.WriteFile(f, dan.Data, 0o600)
	out, err := exec.Command("openssl", "cms", "-decrypt", "-in", f, "-recip", "testdata/smime/dan.crt", "-inkey", "testdata/smime/dan.key").Output()
	if err != nil || !strings.Contains(string(out), "The case file for the partner.") {
		t.Fatalf("openssl: %q %v", out, err)
	}
	bob := mailTo(t, e.sink, "bob@partner.example", "case file", 0)
	if bytes.Contains(bob.Data, []byte("The case file")) || !bytes.Contains(bob.Data, []byte("multipart/encrypted")) {
		t.Fatalf("bob got:\n%.400s", bob.Data)
	}
	mailTo(t, e.sink, "carol@partner.example", "Secure message", 0)
	var d policy.Decision
	json.Unmarshal([]byte(decision(t, e, msgID(t, reply)).Detail), &d)
	for _, r := range d.Recipients {
		if r.Address == "carol@partner.example" && (r.Action != "portal" || !strings.Contains(strings.Join(r.Reasons, " "), "no usable key")) {
			t.Errorf("carol: %s %v", r.Action, r.Reasons)
		}
		if r.Address == "dan@example.test" && (r.Action != "encrypt" || !strings.Contains(strings.Join(r.Reasons, " "), "kind=x509")) {
			t.Errorf("dan: %s %v", r.Action, r.Reasons)
		}
	}
}
