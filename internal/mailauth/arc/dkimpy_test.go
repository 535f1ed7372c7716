package arc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSealVerifiesWithDkimpy is the headline proof: a chain
// sealed by us (one hop and two hops) is verified by an independent ARC
// implementation, dkimpy's arc_verify, with cv=pass; and a body changed
// after sealing gives cv=fail there too.
func TestSealVerifiesWithDkimpy(t *testing.T) {
	py := "/usr/bin/python3" // Debian's, where python3-dkim installs; not one earlier on PATH
	if err := exec.Command(py, "-c", "import dkim").Run(); err != nil {
		if os.Getenv("SEALPOST_REQUIRE_TOOLS") == "1" {
			t.Fatal("python3-dkim is not installed (make test installs it)")
		}
		t.Skip("python3-dkim is not installed")
	}
	// Only rsa-sha256: RFC 8617 §4.1.3 permits no other ARC algorithm and
	// dkimpy refuses ed25519-sha256 ("unknown signature algorithm"), so an
	// Ed25519 seal is for receivers that opt in, never the default.
	algs := map[string]bool{"rsa": true}
	script := `
import sys, dkim
rec = open(sys.argv[2], "rb").read()
def dnsfunc(name, timeout=5):
    return rec if name.lower().rstrip(b".") == b"arc._domainkey.council.example" else None
cv, results, reason = dkim.arc_verify(open(sys.argv[1], "rb").read(), dnsfunc=dnsfunc)
print(cv.decode(), reason)
`
	ctx := context.Background()
	for alg, k := range testKeys(t) {
		if !algs[alg] {
			continue
		}
		t.Run(alg, func(t *testing.T) {
			r := keyResolver(t, "arc", "council.example", k)
			rec := r.TXT["arc._domainkey.council.example"][0]
			s := &Sealer{Domain: "council.example", Selector: "arc", Key: k, AuthServID: "mx.council.example"}
			dir := t.TempDir()
			recPath := filepath.Join(dir, "record.txt")
			if err := os.WriteFile(recPath, []byte(rec), 0o600); err != nil {
				t.Fatal(err)
			}
			run := func(msg []byte) string {
				p := filepath.Join(dir, "msg.eml")
				if err := os.WriteFile(p, msg, 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(py, "-c", script, p, recPath).CombinedOutput()
				if err != nil {
					t.Fatalf("dkimpy: %v\n%s", err, out)
				}
				return strings.TrimSpace(string(out))
			}
			msg := []byte(plainMsg)
			for hop := 1; hop <= 2; hop++ {
				sealed, err := s.Seal(msg, Verify(ctx, r, msg), "spf=pass smtp.mailfrom=sender.example; dkim=none; dmarc=none")
				if err != nil {
					t.Fatal(err)
				}
				msg = append([]byte(sealed), msg...)
				if out := run(msg); !strings.HasPrefix(out, "pass") {
					t.Fatalf("hop %d: dkimpy says %q for\n%s", hop, out, msg)
				}
			}
			bad := []byte(strings.Replace(string(msg), "Hello there.", "Pay now.", 1))
			if out := run(bad); !strings.HasPrefix(out, "fail") {
				t.Fatalf("tampered: dkimpy says %q", out)
			}
		})
	}
}
