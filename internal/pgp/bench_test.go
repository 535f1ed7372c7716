package pgp

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/gopenpgp/v3/crypto"

	"sealpost/internal/testutil"
)

// BenchmarkEncryptBesideGPG: PGP/MIME encryption of a 1 MB and a 100 MB
// message to one RSA-3072 key (made by gpg), and `gpg --encrypt` of the
// same file to the same key in the same run. MB/s of each is reported.
//
//	go test -run XXX -bench EncryptBesideGPG -benchtime 3x ./internal/pgp/
func BenchmarkEncryptBesideGPG(b *testing.B) {
	if _, err := exec.LookPath("gpg"); err != nil {
		testutil.Missing(b, "gpg is not installed")
	}
	dir := b.TempDir()
	env := append(os.Environ(), "GNUPGHOME="+dir)
	gpg := func(stdin []byte, args ...string) []byte {
		cmd := exec.Command("gpg", append([]string{"--batch", "--passphrase", ""}, args...)...)
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpg(nil, "--quick-gen-key", "Bench <bench@partner.example>", "rsa3072", "encr", "never")
	cert := gpg(nil, "--export", "bench@partner.example")
	key, err := crypto.NewKey(cert)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1 << 20, 100 << 20} {
		line := strings.Repeat("x", 76) + "\r\n"
		body := strings.Repeat(line, size/len(line))
		msg := []byte("From: a@council.example\r\nTo: bench@partner.example\r\nSubject: bench\r\nContent-Type: text/plain\r\n\r\n" + body)
		file := filepath.Join(dir, "msg.eml")
		if err := os.WriteFile(file, msg, 0o600); err != nil {
			b.Fatal(err)
		}
		name := "1MB"
		if size > 1<<20 {
			name = "100MB"
		}
		b.Run(name+"/sealpost", func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for i := 0; i < b.N; i++ {
				if _, err := Encrypt(io.Discard, bytes.NewReader(msg), Options{Recipients: []*crypto.Key{key}}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/gpg", func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for i := 0; i < b.N; i++ {
				gpg(nil, "--trust-model", "always", "--armor", "-r", "bench@partner.example", "-o", "-", "--encrypt", file)
			}
		})
	}
}
