package pgp

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/gopenpgp/v3/crypto"
)

// wrapPGPMIME puts a peer's armoured OpenPGP message into the RFC 3156 §4
// structure a mail client sends.
func wrapPGPMIME(armoured []byte) string {
	return "From: Partner <p@partner.example>\r\nTo: staff@council.example\r\nSubject: from a partner\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\n\r\n" + string(armoured) + "\r\n--b1--\r\n"
}

const innerEntity = "Content-Type: text/plain; charset=utf-8\r\n\r\nReport attached, signed by us.\r\n"

// TestPeersEncryptToOrgKey: sqop, gosop and gpg encrypt and sign to a key
// the organisation holds (v4, made by sealpost); Decrypt restores the
// message and checks the signature with the peer's certificate.
func TestPeersEncryptToOrgKey(t *testing.T) {
	t.Parallel()
	need(t, "sqop")
	dir := t.TempDir()
	org, err := GenerateKey("Staff", "staff@council.example")
	if err != nil {
		t.Fatal(err)
	}
	orgCert, _ := org.GetArmoredPublicKey()
	os.WriteFile(filepath.Join(dir, "org.cert"), []byte(orgCert), 0o600)
	peerKey := run(t, dir, nil, nil, "sqop", "generate-key", "Partner <p@partner.example>")
	peerCert := run(t, dir, nil, peerKey, "sqop", "extract-cert")
	os.WriteFile(filepath.Join(dir, "peer.key"), peerKey, 0o600)
	peer, err := crypto.NewKeyFromReader(bytes.NewReader(peerCert))
	if err != nil {
		t.Fatal(err)
	}
	check := func(who string, armoured []byte, verify []*crypto.Key, wantSig string) {
		t.Helper()
		var out bytes.Buffer
		res, err := Decrypt(&out, strings.NewReader(wrapPGPMIME(armoured)), []*crypto.Key{org}, verify)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		got := strings.ReplaceAll(out.String(), "\r\n", "\n")
		if !strings.Contains(got, "Subject: from a partner\n") || !strings.Contains(got, "Content-Type: text/plain; charset=utf-8\n\nReport attached, signed by us.\n") || strings.Contains(got, "multipart/encrypted") {
			t.Fatalf("%s: decrypted message:\n%s", who, out.String())
		}
		if res.Signature != wantSig {
			t.Fatalf("%s: signature %q, want %q", who, res.Signature, wantSig)
		}
	}
	for _, sop := range []string{"sqop", "gosop"} {
		if _, err := exec.LookPath(sop); err != nil {
			continue
		}
		armoured := run(t, dir, nil, []byte(innerEntity), sop, "encrypt", "--sign-with", "peer.key", "org.cert")
		check(sop, armoured, []*crypto.Key{peer}, "pass")
		check(sop+" without the signer's certificate", armoured, nil, "unknown")
		other, _ := GenerateKey("Other", "other@partner.example")
		otherPub, _ := other.ToPublic()
		check(sop+" verified against another key", armoured, []*crypto.Key{otherPub}, "unknown")
		// A changed ciphertext never decrypts.
		bad := bytes.Replace(armoured, []byte("\n"), []byte("\nAA"), 5)
		if _, err := Decrypt(&bytes.Buffer{}, strings.NewReader(wrapPGPMIME(bad)), []*crypto.Key{org}, nil); err == nil {
			t.Fatalf("%s: a changed message decrypted", sop)
		}
	}
	t.Run("gpg", func(t *testing.T) {
		need(t, "gpg")
		home := filepath.Join(dir, "gnupg")
		os.Mkdir(home, 0o700)
		env := []string{"GNUPGHOME=" + home}
		run(t, dir, env, nil, "gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Carol <carol@partner.example>", "future-default", "default", "never")
		run(t, dir, env, []byte(orgCert), "gpg", "--batch", "--import")
		armoured := run(t, dir, env, []byte(innerEntity), "gpg", "--batch", "--trust-model", "always", "--armor", "--local-user", "carol@partner.example",
			"--recipient", "staff@council.example", "--sign", "--encrypt")
		carol, err := crypto.NewKeyFromReader(bytes.NewReader(run(t, dir, env, nil, "gpg", "--batch", "--export", "carol@partner.example")))
		if err != nil {
			t.Fatal(err)
		}
		check("gpg", armoured, []*crypto.Key{carol}, "pass")
	})
	// Not for us: refused, nothing written.
	var out bytes.Buffer
	if _, err := Decrypt(&out, strings.NewReader("Subject: x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"), []*crypto.Key{org}, nil); err != ErrNotPGPMIME || out.Len() != 0 {
		t.Fatalf("plain message: %v, %d bytes written", err, out.Len())
	}
}

func FuzzDecrypt(f *testing.F) {
	f.Add([]byte(wrapPGPMIME([]byte("-----BEGIN PGP MESSAGE-----\n\nwcBMA\n-----END PGP MESSAGE-----\n"))))
	f.Add([]byte("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\r\n\r\n--x\r\n\r\nVersion: 1\r\n--x\r\n\r\n\x85\x01\x0c\r\n--x--\r\n"))
	k, err := GenerateKey("F", "f@x.example")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		if _, err := Decrypt(&out, bytes.NewReader(data), []*crypto.Key{k}, nil); err != nil && out.Len() != 0 {
			t.Fatal("output written for a message that did not decrypt")
		}
	})
}
