package smime

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sealpost/internal/cms"
	"sealpost/internal/testutil"
)

const testMsg = "From: Sam <sam@council.example>\r\nTo: dan@example.test\r\nSubject: case 42\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
	"The file is attached.\r\n-- \r\nSam\r\n"

// wantInner is testMsg's protected entity: the Content-* fields and body.
const wantInner = "Content-Type: text/plain;\r\n charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
	"The file is attached.\r\n-- \r\nSam\r\n"

func needOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		testutil.Missing(t, "openssl not installed")
	}
}

func openssl(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Logf("openssl %s: %s", strings.Join(args, " "), stderr.String())
	}
	return out, err
}

func peerCert(t *testing.T, name string) cms.Recipient {
	cs, err := fileSource{"peer/" + name}.Certificates(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return cms.Recipient{Cert: cs[0]}
}

func danSigner(t *testing.T) *Signer {
	kp, err := tls.LoadX509KeyPair("testdata/peer/rsa.crt", "testdata/peer/rsa.key")
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{Cert: kp.Leaf, Key: kp.PrivateKey.(crypto.Signer)}
}

func writeTemp(t *testing.T, b []byte) string {
	f := filepath.Join(t.TempDir(), "m.eml")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestEncryptMessageOpenSSL: every S/MIME variant decrypts in `openssl cms`
// to exactly the Content-* fields and body; the other fields stay outside.
func TestEncryptMessageOpenSSL(t *testing.T) {
	t.Parallel()
	needOpenSSL(t)
	rsaR, rsaV15, ec := peerCert(t, "rsa.crt"), peerCert(t, "rsa.crt"), peerCert(t, "ec-P-256.crt")
	rsaV15.KeyTransport = cms.PKCS1v15
	for _, c := range []cms.Cipher{cms.AES256GCM, cms.AES256CBC} {
		for _, v := range []struct {
			r    cms.Recipient
			name string
		}{{rsaR, "rsa"}, {rsaV15, "rsa"}, {ec, "ec-P-256"}} {
			var out bytes.Buffer
			if err := EncryptMessage(&out, strings.NewReader(testMsg), int64(len(testMsg)), []cms.Recipient{v.r}, Options{Cipher: c}); err != nil {
				t.Fatal(err)
			}
			head, _, _ := strings.Cut(out.String(), "\r\n\r\n")
			wantType := "smime-type=authEnveloped-data"
			if c == cms.AES256CBC {
				wantType = "smime-type=enveloped-data"
			}
			if !strings.Contains(head, "Subject: case 42\r\n") || !strings.Contains(head, wantType) || strings.Contains(head, "text/plain") {
				t.Fatalf("%s %s: outer header:\n%s", c, v.r.Algorithm(), head)
			}
			got, err := openssl(t, "cms", "-decrypt", "-binary", "-in", writeTemp(t, out.Bytes()),
				"-recip", "testdata/peer/"+v.name+".crt", "-inkey", "testdata/peer/"+v.name+".key")
			if err != nil || string(got) != wantInner {
				t.Fatalf("%s %s: openssl decrypted %q, %v", c, v.r.Algorithm(), got, err)
			}
		}
	}
}

// TestSignedVerifiesInOpenSSL: signed, and signed-then-encrypted, mail
// verifies with `openssl cms -verify`; a changed byte does not.
func TestSignedVerifiesInOpenSSL(t *testing.T) {
	t.Parallel()
	needOpenSSL(t)
	var signed bytes.Buffer
	if err := SignMessage(&signed, strings.NewReader(testMsg), int64(len(testMsg)), danSigner(t)); err != nil {
		t.Fatal(err)
	}
	got, err := openssl(t, "cms", "-verify", "-in", writeTemp(t, signed.Bytes()), "-CAfile", "testdata/peer/rsa.crt")
	if err != nil || !strings.Contains(string(got), "The file is attached.") {
		t.Fatalf("verify signed: %q %v", got, err)
	}
	tampered := bytes.Replace(signed.Bytes(), []byte("The file is attached."), []byte("The file is attacked."), 1)
	if _, err := openssl(t, "cms", "-verify", "-in", writeTemp(t, tampered), "-CAfile", "testdata/peer/rsa.crt"); err == nil {
		t.Fatal("openssl verified a changed message")
	}

	var enc bytes.Buffer
	if err := EncryptMessage(&enc, strings.NewReader(testMsg), int64(len(testMsg)), []cms.Recipient{peerCert(t, "ec-P-256.crt")},
		Options{Signer: danSigner(t)}); err != nil {
		t.Fatal(err)
	}
	dec, err := openssl(t, "cms", "-decrypt", "-binary", "-in", writeTemp(t, enc.Bytes()), "-recip", "testdata/peer/ec-P-256.crt", "-inkey", "testdata/peer/ec-P-256.key")
	if err != nil || !strings.HasPrefix(string(dec), "Content-Type: multipart/signed") {
		t.Fatalf("decrypt signed: %q %v", dec, err)
	}
	got, err = openssl(t, "cms", "-verify", "-in", writeTemp(t, dec), "-CAfile", "testdata/peer/rsa.crt")
	if err != nil || !strings.Contains(string(got), "The file is attached.") {
		t.Fatalf("verify decrypted: %q %v", got, err)
	}
}

// bigMessage is a message of n bytes generated on the fly.
type bigMessage struct{ n int64 }

func (b bigMessage) ReadAt(p []byte, off int64) (int, error) {
	const head = "Subject: big\r\nContent-Type: application/octet-stream\r\n\r\n"
	if off >= b.n {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < b.n {
		if off < int64(len(head)) {
			p[n] = head[off]
		} else {
			p[n] = byte(off)
		}
		n++
		off++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestEncryptStreams: 32 MB encrypt with a few hundred kB allocated in
// all: the message is never held whole.
func TestEncryptStreams(t *testing.T) {
	const size = 32 << 20
	r := []cms.Recipient{peerCert(t, "rsa.crt")}
	for _, c := range []cms.Cipher{cms.AES256GCM, cms.AES256CBC} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var n countWriter
		if err := EncryptMessage(&n, bigMessage{size}, size, r, Options{Cipher: c}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
			t.Errorf("%s: %d bytes allocated to encrypt %d", c, alloc, size)
		}
		if n < size*4/3 {
			t.Errorf("%s: only %d bytes written", c, n)
		}
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
