package pgp

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/gopenpgp/v3/crypto"

	"sealpost/internal/testutil"
)

const testBody = "Dear Bob,\r\n\r\nThe case file is attached.\r\n\r\nÅsa\r\n"

func testMessage() string {
	return "From: Asa <asa@council.example>\r\nTo: Bob <bob@partner.example>\r\nSubject: Case 42\r\n" +
		"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <42@council.example>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + testBody
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Missing(t, "%s is not installed (scripts/install-test-deps.sh)", tool)
		}
	}
}

func run(t *testing.T, dir string, env []string, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// pgpMIMEParts checks the RFC 3156 §4 structure with the standard library's
// MIME reader (not our writer's view of it) and returns the armoured
// OpenPGP message.
func pgpMIMEParts(t *testing.T, msg []byte) (*mail.Message, []byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("not a message: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" {
		t.Fatalf("Content-Type %q: want multipart/encrypted; protocol=application/pgp-encrypted", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts [][]byte
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, b)
		types = append(types, p.Header.Get("Content-Type"))
	}
	if len(parts) != 2 || types[0] != "application/pgp-encrypted" || !strings.HasPrefix(types[1], "application/octet-stream") {
		t.Fatalf("parts %q: want the version part and application/octet-stream", types)
	}
	if !strings.Contains(string(parts[0]), "Version: 1") {
		t.Fatalf("version part %q", parts[0])
	}
	if !bytes.HasPrefix(parts[1], []byte("-----BEGIN PGP MESSAGE-----")) {
		t.Fatalf("second part is not an armoured OpenPGP message: %.60q", parts[1])
	}
	return m, parts[1]
}

func encryptTo(t *testing.T, certs [][]byte, signer *crypto.Key, opt Options) ([]byte, *Result) {
	t.Helper()
	for _, c := range certs {
		k, err := crypto.NewKeyFromReader(bytes.NewReader(c))
		if err != nil {
			t.Fatalf("reading a peer's certificate: %v", err)
		}
		opt.Recipients = append(opt.Recipients, k)
	}
	opt.Signer = signer
	var out bytes.Buffer
	res, err := Encrypt(&out, strings.NewReader(testMessage()), opt)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), res
}

func signerKey(t *testing.T) (*crypto.Key, []byte) {
	t.Helper()
	k, err := GenerateKey("Council", "gateway@council.example")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.GetArmoredPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, []byte(pub)
}

// checkInner: what a peer decrypted is the original body as a MIME entity
// with its own Content-Type (RFC 3156 §4).
func checkInner(t *testing.T, who string, plain []byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(plain))
	if err != nil {
		t.Fatalf("%s: decrypted data is not a MIME entity: %v\n%q", who, err, plain)
	}
	if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; charset=utf-8") {
		t.Fatalf("%s: inner Content-Type %q", who, ct)
	}
	body, _ := io.ReadAll(m.Body)
	if who == "gosop" {
		// gosop writes what it decrypts with the platform's line ends.
		body = bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))
	}
	if string(body) != testBody {
		t.Fatalf("%s: body %q, want %q", who, body, testBody)
	}
}

// TestPeersDecryptAndVerify: sealpost encrypts and signs; Sequoia's sqop,
// GnuPG, rnp, gosop and PGPainless decrypt with keys they made themselves,
// and check the signature with sealpost's (v4) certificate.
func TestPeersDecryptAndVerify(t *testing.T) {
	t.Parallel()
	need(t, "sqop")
	dir := t.TempDir()
	signer, signerCert := signerKey(t)
	os.WriteFile(filepath.Join(dir, "gw.cert"), signerCert, 0o600)

	// A key made by Sequoia, used by the SOP tools and rnp.
	bobKey := run(t, dir, nil, nil, "sqop", "generate-key", "Bob <bob@partner.example>")
	bobCert := run(t, dir, nil, bobKey, "sqop", "extract-cert")
	os.WriteFile(filepath.Join(dir, "bob.key"), bobKey, 0o600)
	msg, res := encryptTo(t, [][]byte{bobCert}, signer, Options{})
	if !res.Signed || !strings.HasPrefix(res.Data, "SEIPDv1") {
		t.Fatalf("result %s: want SEIPDv1 (the Sequoia key does not advertise SEIPDv2), signed", res)
	}
	hdr, armoured := pgpMIMEParts(t, msg)
	if hdr.Header.Get("Subject") != "Case 42" || hdr.Header.Get("Content-Transfer-Encoding") != "" {
		t.Fatalf("outer header: Subject %q, Content-Transfer-Encoding %q", hdr.Header.Get("Subject"), hdr.Header.Get("Content-Transfer-Encoding"))
	}
	os.WriteFile(filepath.Join(dir, "msg.asc"), armoured, 0o600)

	for _, sop := range []string{"sqop", "gosop", "pgpainless-cli"} {
		t.Run(sop, func(t *testing.T) {
			need(t, sop)
			out := "--verifications-out" // SOP spec draft -04 and later
			if sop == "gosop" {
				out = "--verify-out" // the older name
			}
			plain := run(t, dir, nil, armoured, sop, "decrypt", "--verify-with", "gw.cert", out, sop+".ver", "bob.key")
			checkInner(t, sop, plain)
			ver, _ := os.ReadFile(filepath.Join(dir, sop+".ver"))
			if !bytes.Contains(bytes.ToUpper(ver), []byte(strings.ToUpper(signer.GetFingerprint()))) {
				t.Fatalf("%s verified no signature by %s: %q", sop, signer.GetFingerprint(), ver)
			}
		})
	}
	t.Run("rnp", func(t *testing.T) {
		need(t, "rnp")
		home := filepath.Join(dir, "rnp")
		os.Mkdir(home, 0o700)
		run(t, dir, nil, nil, "rnpkeys", "--homedir", home, "--import", "bob.key")
		run(t, dir, nil, nil, "rnpkeys", "--homedir", home, "--import", "gw.cert")
		cmd := exec.Command("rnp", "--homedir", home, "--decrypt", "msg.asc", "--output=-")
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		plain, err := cmd.Output()
		if err != nil {
			t.Fatalf("rnp: %v\n%s", err, stderr.String())
		}
		checkInner(t, "rnp", plain)
		if !strings.Contains(stderr.String(), "Good signature") || !strings.Contains(stderr.String(), "gateway@council.example") {
			t.Fatalf("rnp did not verify the signature: %s", stderr.String())
		}
	})
	t.Run("gpg", func(t *testing.T) {
		need(t, "gpg")
		home := filepath.Join(dir, "gnupg")
		os.Mkdir(home, 0o700)
		env := []string{"GNUPGHOME=" + home}
		run(t, dir, env, nil, "gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Carol <carol@partner.example>", "default", "default", "never")
		carolCert := run(t, dir, env, nil, "gpg", "--batch", "--export", "carol@partner.example")
		run(t, dir, env, signerCert, "gpg", "--batch", "--import")
		msg, res := encryptTo(t, [][]byte{carolCert}, signer, Options{})
		if !strings.HasPrefix(res.Data, "SEIPDv1") {
			t.Fatalf("gpg 2.2's key got %s, want SEIPDv1", res.Data)
		}
		_, armoured := pgpMIMEParts(t, msg)
		cmd := exec.Command("gpg", "--batch", "--status-fd", "2", "--decrypt")
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = bytes.NewReader(armoured)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		plain, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg: %v\n%s", err, stderr.String())
		}
		checkInner(t, "gpg", plain)
		if !strings.Contains(stderr.String(), "[GNUPG:] VALIDSIG "+signer.GetFingerprint()) && !strings.Contains(strings.ToUpper(stderr.String()), "VALIDSIG "+strings.ToUpper(signer.GetFingerprint())) {
			t.Fatalf("gpg reported no valid signature by %s:\n%s", signer.GetFingerprint(), stderr.String())
		}
	})
}

// TestRFC9216KeysWithGPG: the RFC 9216 example keys (Alice, Ed25519/
// Cv25519; Bob, RSA-3072) from the OpenPGP interoperability suite, both as
// recipients of one message; gpg decrypts it with each secret key.
func TestRFC9216KeysWithGPG(t *testing.T) {
	t.Parallel()
	need(t, "gpg")
	var certs [][]byte
	for _, n := range []string{"alice", "bob"} {
		b, err := os.ReadFile("../../testdata/openpgp/certificates/" + n + ".pgp")
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, b)
	}
	msg, res := encryptTo(t, certs, nil, Options{ProtectHeaders: true})
	if len(res.PKESK) != 2 || res.Signed {
		t.Fatalf("result %s: want two session-key packets, unsigned", res)
	}
	_, armoured := pgpMIMEParts(t, msg)
	for _, n := range []string{"alice", "bob"} {
		home := t.TempDir()
		env := []string{"GNUPGHOME=" + home}
		run(t, home, env, nil, "gpg", "--batch", "--import", filepath.Join(mustAbs(t, "../../testdata/openpgp/certificates"), n+"-secret.pgp"))
		plain := run(t, home, env, armoured, "gpg", "--batch", "--decrypt")
		m, err := mail.ReadMessage(bytes.NewReader(plain))
		if err != nil {
			t.Fatal(err)
		}
		if _, p, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); p["protected-headers"] != "v1" || m.Header.Get("Subject") != "Case 42" {
			t.Fatalf("%s: protected headers missing: Content-Type %q Subject %q", n, m.Header.Get("Content-Type"), m.Header.Get("Subject"))
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
