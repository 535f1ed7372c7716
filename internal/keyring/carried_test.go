package keyring

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sealpost/internal/testutil"
)

func tool(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return out
}

// TestCarried: an OpenPGP certificate made by sqop, attached as
// application/pgp-keys (base64), and the signer's certificate of a
// message OpenSSL signed (multipart/signed) are found; the same signed
// message with one byte of its signed part changed yields no certificate.
func TestCarried(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"sqop", "openssl"} {
		if _, err := exec.LookPath(n); err != nil {
			testutil.Missing(t, "%s is not installed", n)
		}
	}
	dir := t.TempDir()
	cert := tool(t, tool(t, nil, "sqop", "generate-key", "Ann <ann@sender.example>"), "sqop", "extract-cert", "--no-armor")
	b64 := tool(t, cert, "base64")
	msg := "From: ann@sender.example\r\nTo: staff@example.gov.uk\r\nSubject: my key\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n--xx\r\nContent-Type: text/plain\r\n\r\nHere is my key.\r\n" +
		"--xx\r\nContent-Type: application/pgp-keys\r\nContent-Transfer-Encoding: base64\r\n\r\n" + string(b64) + "\r\n--xx--\r\n"
	got := Carried([]byte(msg))
	if len(got) != 1 || !bytes.Equal(got[0], cert) {
		t.Fatalf("pgp-keys: %d keys", len(got))
	}
	keys, err := Parse(got[0])
	if err != nil || keys[0].Kind != KindPGP {
		t.Fatalf("parse: %v", err)
	}

	key, crt := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem")
	tool(t, nil, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "30",
		"-subj", "/CN=Dan", "-addext", "subjectAltName=email:dan@example.test")
	content := filepath.Join(dir, "content")
	os.WriteFile(content, []byte("Content-Type: text/plain\r\n\r\nSigned words.\r\n"), 0o600)
	signed := tool(t, nil, "openssl", "cms", "-sign", "-in", content, "-signer", crt, "-inkey", key, "-crlfeol")
	signedMsg := "From: dan@example.test\nSubject: signed\n" + strings.ReplaceAll(string(signed), "\r\n", "\n")
	signedMsg = strings.ReplaceAll(signedMsg, "\n", "\r\n")
	got = Carried([]byte(signedMsg))
	if len(got) != 1 {
		t.Fatalf("signed: %d certificates", len(got))
	}
	keys, err = Parse(got[0])
	if err != nil || keys[0].Kind != KindX509 || keys[0].Addresses[0] != "dan@example.test" {
		t.Fatalf("parse: %v %+v", err, keys)
	}
	changed := strings.Replace(signedMsg, "Signed words.", "Signed werds.", 1)
	if got := Carried([]byte(changed)); len(got) != 0 {
		t.Fatal("the certificate of a signature that does not verify was taken")
	}
}

func FuzzCarried(f *testing.F) {
	f.Add([]byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIB\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pgp-keys\r\n\r\nxx\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, k := range Carried(msg) {
			if len(k) > carriedMaxKey {
				t.Fatal("over the limit")
			}
		}
	})
}
