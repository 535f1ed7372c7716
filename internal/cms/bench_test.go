package cms

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkEncrypt: sealpost's encoder beside `openssl cms -encrypt` on the
// same file in the same run (make bench-smime; docs/smime.md has numbers).
func BenchmarkEncrypt(b *testing.B) {
	for _, size := range []int64{1 << 20, 100 << 20} {
		f := filepath.Join(b.TempDir(), "in")
		w, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyN(w, rand.Reader, size); err != nil {
			b.Fatal(err)
		}
		w.Close()
		r := []Recipient{{Cert: readCert(b, "rsa.crt")}}
		for _, c := range []Cipher{AES256GCM, AES256CBC} {
			b.Run(fmt.Sprintf("sealpost-%s-%dMB", c, size>>20), func(b *testing.B) {
				b.SetBytes(size)
				for i := 0; i < b.N; i++ {
					in, _ := os.Open(f)
					out, _ := os.Create(f + ".sp")
					if err := Encrypt(out, in, size, r, Options{Cipher: c}); err != nil {
						b.Fatal(err)
					}
					in.Close()
					out.Close()
				}
			})
			b.Run(fmt.Sprintf("openssl-%s-%dMB", c, size>>20), func(b *testing.B) {
				if _, err := exec.LookPath("openssl"); err != nil {
					b.Skip("openssl not installed")
				}
				b.SetBytes(size)
				for i := 0; i < b.N; i++ {
					cmd := exec.Command("openssl", "cms", "-encrypt", "-binary", "-stream", "-outform", "DER", "-"+c.String(),
						"-in", f, "-out", f+".os", "-recip", "testdata/rsa.crt", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256")
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("%s", out)
					}
				}
			})
		}
	}
}
