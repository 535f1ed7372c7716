package cms

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sealpost/internal/testutil"
)

func readCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func encrypt(t testing.TB, content []byte, rcpts []Recipient, c Cipher) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Encrypt(&out, bytes.NewReader(content), int64(len(content)), rcpts, Options{Cipher: c}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// opensslDecrypt is the real peer: OpenSSL 3's cms -decrypt.
func opensslDecrypt(t *testing.T, der []byte, crt, key string) ([]byte, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.der")
	if err := os.WriteFile(f, der, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in", f,
		"-recip", filepath.Join("testdata", crt), "-inkey", filepath.Join("testdata", key))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &exec.ExitError{Stderr: stderr.Bytes()}
	}
	return out, nil
}

// TestOpenSSLDecrypts: every variant sealpost writes decrypts in OpenSSL 3
// to exactly the content, including sizes around block boundaries.
func TestOpenSSLDecrypts(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		testutil.Missing(t, "openssl not installed")
	}
	rsaC := readCert(t, "rsa.crt")
	type variant struct {
		name     string
		rcpt     Recipient
		crt, key string
	}
	variants := []variant{
		{"rsa-oaep", Recipient{Cert: rsaC}, "rsa.crt", "rsa.key"},
		{"rsa-v15", Recipient{Cert: rsaC, KeyTransport: PKCS1v15}, "rsa.crt", "rsa.key"},
	}
	for _, curve := range []string{"P-256", "P-384", "P-521"} {
		variants = append(variants, variant{"ecdh-" + curve, Recipient{Cert: readCert(t, "ec-"+curve+".crt")}, "ec-" + curve + ".crt", "ec-" + curve + ".key"})
	}
	for _, c := range []Cipher{AES256GCM, AES256CBC} {
		for _, v := range variants {
			for _, size := range []int{0, 15, 16, 17, 100_000} {
				content := make([]byte, size)
				rand.Read(content)
				der := encrypt(t, content, []Recipient{v.rcpt}, c)
				got, err := opensslDecrypt(t, der, v.crt, v.key)
				if err != nil {
					t.Fatalf("%s %s %d bytes: openssl: %s", c, v.name, size, err.(*exec.ExitError).Stderr)
				}
				if !bytes.Equal(got, content) {
					t.Fatalf("%s %s %d bytes: openssl decrypted something else", c, v.name, size)
				}
			}
		}
		// One message, several recipients: each one decrypts it.
		content := []byte("Content-Type: text/plain\r\n\r\nto all\r\n")
		var all []Recipient
		for _, v := range variants {
			all = append(all, v.rcpt)
		}
		der := encrypt(t, content, all, c)
		for _, v := range variants {
			if got, err := opensslDecrypt(t, der, v.crt, v.key); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("%s multi-recipient, %s cannot decrypt: %v", c, v.name, err)
			}
		}
	}
}

// TestOpenSSLRefusesTampered: flipping a ciphertext bit of
// AuthEnvelopedData makes OpenSSL refuse it (the GCM tag is real).
func TestOpenSSLRefusesTampered(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		testutil.Missing(t, "openssl not installed")
	}
	content := bytes.Repeat([]byte("secret "), 100)
	der := encrypt(t, content, []Recipient{{Cert: readCert(t, "rsa.crt")}}, AES256GCM)
	der[len(der)-18-50] ^= 1 // inside the ciphertext, before the mac
	if _, err := opensslDecrypt(t, der, "rsa.crt", "rsa.key"); err == nil {
		t.Fatal("openssl accepted tampered AuthEnvelopedData")
	}
}

// TestGCMStreamMatchesAEAD: the streamed GCM equals crypto/cipher's for
// every length around block and chunk boundaries, fed in odd pieces.
func TestGCMStreamMatchesAEAD(t *testing.T) {
	t.Parallel()
	key, nonce := make([]byte, 32), make([]byte, 12)
	rand.Read(key)
	rand.Read(nonce)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 1000, chunk - 1, chunk, chunk + 5} {
		p := make([]byte, n)
		rand.Read(p)
		want := aead.Seal(nil, nonce, p, nil)
		g, err := newGCMStream(block, nonce)
		if err != nil {
			t.Fatal(err)
		}
		got := append([]byte(nil), p...)
		for off := 0; off < n; {
			step := min(7+off%23, n-off)
			g.seal(got[off : off+step])
			off += step
		}
		got = append(got, g.tag()...)
		if !bytes.Equal(got, want) {
			t.Fatalf("length %d: streamed GCM differs from crypto/cipher", n)
		}
	}
}

// TestKeyWrapRFC3394: the test vector of RFC 3394 §4.6 (256-bit KEK,
// 256-bit key) and the integrity check on unwrap.
func TestKeyWrapRFC3394(t *testing.T) {
	t.Parallel()
	h := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kek := h("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	key := h("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	want := h("28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21")
	got, err := wrapKey(kek, key)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("wrap = %x, %v", got, err)
	}
	back, err := unwrapKey(kek, got)
	if err != nil || !bytes.Equal(back, key) {
		t.Fatalf("unwrap = %x, %v", back, err)
	}
	got[3] ^= 1
	if _, err := unwrapKey(kek, got); err == nil {
		t.Fatal("unwrap accepted a corrupted key")
	}
}

// TestWrongSize: content that does not match the announced size is an
// error, never a silently truncated message.
func TestWrongSize(t *testing.T) {
	t.Parallel()
	r := []Recipient{{Cert: readCert(t, "rsa.crt")}}
	for _, c := range []Cipher{AES256GCM, AES256CBC} {
		var out bytes.Buffer
		if err := Encrypt(&out, strings.NewReader("short"), 10, r, Options{Cipher: c}); err == nil {
			t.Errorf("%s: short content accepted", c)
		}
		if err := Encrypt(&out, strings.NewReader("much longer than that"), 10, r, Options{Cipher: c}); err == nil {
			t.Errorf("%s: long content accepted", c)
		}
	}
}
