package smime

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"sealpost/internal/cms"
)

func staffKey(t testing.TB, name string) KeyPair {
	kp, err := tls.LoadX509KeyPair("testdata/peer/"+name+".crt", "testdata/peer/"+name+".key")
	if err != nil {
		t.Fatal(err)
	}
	return KeyPair{Cert: kp.Leaf, Key: kp.PrivateKey}
}

// TestDecryptMessageFromOpenSSL: mail `openssl cms -encrypt` writes (S/MIME
// format, base64) to a staff certificate decrypts, with the outer fields
// kept and the content restored.
func TestDecryptMessageFromOpenSSL(t *testing.T) {
	t.Parallel()
	needOpenSSL(t)
	in := writeTemp(t, []byte(wantInner))
	keys := []KeyPair{staffKey(t, "ec-P-256"), staffKey(t, "rsa")}
	for _, c := range []string{"-aes-256-gcm", "-aes-256-cbc"} {
		for _, who := range []string{"rsa", "ec-P-256"} {
			enc, err := openssl(t, "cms", "-encrypt", c, "-in", in, "-binary", "-subject", "case 42", "-from", "sam@partner.example",
				"testdata/peer/"+who+".crt")
			if err != nil {
				t.Fatal(err)
			}
			enc = bytes.ReplaceAll(bytes.ReplaceAll(enc, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
			got, kp, err := DecryptMessage(enc, keys)
			if err != nil {
				t.Fatalf("%s %s: %v", c, who, err)
			}
			if !strings.HasSuffix(string(got), wantInner) || !strings.Contains(string(got), "Subject: case 42\r\n") {
				t.Fatalf("%s %s: got\n%s", c, who, got)
			}
			if Fingerprint(kp.Cert) != Fingerprint(staffKey(t, who).Cert) {
				t.Errorf("%s %s: opened with the wrong key", c, who)
			}
		}
	}
	if _, _, err := DecryptMessage([]byte(testMsg), keys); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("plain message: %v", err)
	}
	var enc bytes.Buffer
	EncryptMessage(&enc, strings.NewReader(testMsg), int64(len(testMsg)), []cms.Recipient{{Cert: staffKey(t, "rsa").Cert}}, Options{})
	if _, _, err := DecryptMessage(enc.Bytes(), keys[:1]); !errors.Is(err, cms.ErrNotForKey) {
		t.Errorf("not for our keys: %v", err)
	}
}

// FuzzDecryptMessage: no message makes the MIME or CMS parser panic.
func FuzzDecryptMessage(f *testing.F) {
	keys := []KeyPair{staffKey(f, "rsa"), staffKey(f, "ec-P-256")}
	var enc bytes.Buffer
	EncryptMessage(&enc, strings.NewReader(testMsg), int64(len(testMsg)), []cms.Recipient{{Cert: keys[1].Cert}}, Options{})
	f.Add(enc.Bytes())
	f.Add([]byte(testMsg))
	f.Add([]byte("Content-Type: application/pkcs7-mime\r\nContent-Transfer-Encoding: base64\r\n\r\nMAA=\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		DecryptMessage(msg, keys)
	})
}

// FuzzParseCertificates: certificate and CRL files never panic the parsers.
func FuzzParseCertificates(f *testing.F) {
	for _, n := range []string{"peer/rsa.crt", "mimekit/ca.crt", "mimekit/root.crl"} {
		b, err := readTestdata(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseCertificates(b)
		ParseCRL(b)
	})
}
