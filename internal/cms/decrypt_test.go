package cms

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"sealpost/internal/testutil"
)

func readKey(t testing.TB, crt, key string) crypto.PrivateKey {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join("testdata", crt), filepath.Join("testdata", key))
	if err != nil {
		t.Fatal(err)
	}
	return kp.PrivateKey
}

// TestDecryptOpenSSL: what OpenSSL 3 writes (each cipher, OAEP, PKCS #1
// v1.5, ECDH on each curve) decrypts to the content.
func TestDecryptOpenSSL(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		testutil.Missing(t, "openssl not installed")
	}
	dir := t.TempDir()
	content := bytes.Repeat([]byte("Content-Type: text/plain\r\n\r\nsecret\r\n"), 50)
	in := filepath.Join(dir, "in")
	os.WriteFile(in, content, 0o600)
	type peer struct{ crt, key string }
	rsaP := peer{"rsa.crt", "rsa.key"}
	cases := []struct {
		args []string
		p    peer
	}{
		{[]string{"-aes-256-gcm"}, rsaP},
		{[]string{"-aes-128-gcm"}, rsaP},
		{[]string{"-aes-256-cbc"}, rsaP},
		{[]string{"-aes-128-cbc"}, rsaP},
		{[]string{"-aes-256-gcm", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"}, rsaP},
		{[]string{"-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep"}, rsaP},
		{[]string{"-aes-256-gcm"}, peer{"ec-P-256.crt", "ec-P-256.key"}},
		{[]string{"-aes-256-cbc"}, peer{"ec-P-384.crt", "ec-P-384.key"}},
		{[]string{"-aes-128-gcm"}, peer{"ec-P-521.crt", "ec-P-521.key"}},
	}
	for _, c := range cases {
		out := filepath.Join(dir, "out")
		// -keyopt applies to the -recip before it.
		args := []string{"cms", "-encrypt", "-binary", "-outform", "DER", "-in", in, "-out", out, c.args[0], "-recip", filepath.Join("testdata", c.p.crt)}
		args = append(args, c.args[1:]...)
		if b, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %s", c.args, b)
		}
		der, _ := os.ReadFile(out)
		got, err := Decrypt(der, readCert(t, c.p.crt), readKey(t, c.p.crt, c.p.key))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%v %s: %v", c.args, c.p.crt, err)
		}
	}
}

// TestDecryptRefuses: a changed ciphertext fails GCM's tag, a message for
// someone else is ErrNotForKey, truncation is malformed.
func TestDecryptRefuses(t *testing.T) {
	t.Parallel()
	rsaC, rsaK := readCert(t, "rsa.crt"), readKey(t, "rsa.crt", "rsa.key")
	content := []byte("Content-Type: text/plain\r\n\r\nsecret\r\n")
	for _, c := range []Cipher{AES256GCM, AES256CBC} {
		der := encrypt(t, content, []Recipient{{Cert: rsaC}, {Cert: readCert(t, "ec-P-256.crt")}}, c)
		if got, err := Decrypt(der, rsaC, rsaK); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s round trip: %v", c, err)
		}
		ec := readCert(t, "ec-P-256.crt")
		if got, err := Decrypt(der, ec, readKey(t, "ec-P-256.crt", "ec-P-256.key")); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s round trip ECDH: %v", c, err)
		}
		other := encrypt(t, content, []Recipient{{Cert: readCert(t, "ec-P-384.crt")}}, c)
		if _, err := Decrypt(other, rsaC, rsaK); !errors.Is(err, ErrNotForKey) {
			t.Errorf("%s: not for this key: %v", c, err)
		}
		if _, err := Decrypt(der[:len(der)-5], rsaC, rsaK); err == nil {
			t.Errorf("%s: truncated accepted", c)
		}
	}
	der := encrypt(t, content, []Recipient{{Cert: rsaC}}, AES256GCM)
	der[len(der)-20] ^= 1
	if _, err := Decrypt(der, rsaC, rsaK); err == nil {
		t.Error("changed AuthEnvelopedData decrypted")
	}
}

// FuzzDecrypt: no input makes the parser panic; what decrypts under the
// test key came from a real encryption (a changed byte never yields
// content under AuthEnvelopedData).
func FuzzDecrypt(f *testing.F) {
	rsaC, rsaK := readCert(f, "rsa.crt"), readKey(f, "rsa.crt", "rsa.key")
	ecC, ecK := readCert(f, "ec-P-256.crt"), readKey(f, "ec-P-256.crt", "ec-P-256.key")
	content := []byte("hello")
	for _, c := range []Cipher{AES256GCM, AES256CBC} {
		f.Add(encrypt(f, content, []Recipient{{Cert: rsaC}, {Cert: ecC}}, c), true)
		f.Add(encrypt(f, content, []Recipient{{Cert: rsaC, KeyTransport: PKCS1v15}}, c), false)
	}
	f.Fuzz(func(t *testing.T, der []byte, useEC bool) {
		if useEC {
			Decrypt(der, ecC, ecK)
		} else {
			Decrypt(der, rsaC, rsaK)
		}
	})
}

// TestDecryptBadPadding: EnvelopedData whose last block does not end in
// valid PKCS #7 padding is refused, not returned with garbage.
func TestDecryptBadPadding(t *testing.T) {
	t.Parallel()
	rsaC, rsaK := readCert(t, "rsa.crt"), readKey(t, "rsa.crt", "rsa.key")
	content := bytes.Repeat([]byte("0123456789abcdef"), 4) // a whole block of padding follows
	der := encrypt(t, content, []Recipient{{Cert: rsaC}}, AES256CBC)
	// The second-to-last byte of the next-to-last ciphertext block flips
	// the same byte of the padding block when decrypted.
	der[len(der)-16-2] ^= 1
	if got, err := Decrypt(der, rsaC, rsaK); err == nil {
		t.Fatalf("bad padding accepted: %q", got)
	}
}

// TestRecipientInfosSorted: DER sorts SET OF by encoding (X.690 §11.6).
func TestRecipientInfosSorted(t *testing.T) {
	t.Parallel()
	var rs []Recipient
	for _, c := range []string{"rsa.crt", "ec-P-256.crt", "ec-P-384.crt", "ec-P-521.crt"} {
		rs = append(rs, Recipient{Cert: readCert(t, c)})
	}
	der := encrypt(t, []byte("x"), rs, AES256GCM)
	s := cryptobyte.String(der)
	var ci, content, ed, ris cryptobyte.String
	var v int64
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) || !ci.ReadASN1(&content, cbasn1.Tag(0).ContextSpecific().Constructed()) ||
		!content.ReadASN1(&ed, cbasn1.SEQUENCE) || !ed.ReadASN1Integer(&v) || !ed.ReadASN1(&ris, cbasn1.SET) {
		t.Fatal("cannot parse")
	}
	var prev []byte
	for !ris.Empty() {
		var el cryptobyte.String
		if !ris.ReadAnyASN1Element(&el, nil) {
			t.Fatal("cannot parse RecipientInfo")
		}
		if prev != nil && bytes.Compare(prev, el) > 0 {
			t.Fatal("RecipientInfos are not in DER order")
		}
		prev = el
	}
}
