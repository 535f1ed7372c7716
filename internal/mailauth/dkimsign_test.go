package mailauth

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"

	"sealpost/internal/testutil"
)

const msg = "From: Ann <ann@example.gov.uk>\r\nTo: bob@partner.example\r\nSubject: Quarterly figures\r\nDate: Thu, 26 Nov 2026 08:00:00 +0000\r\nMessage-ID: <q1@example.gov.uk>\r\n\r\nHello Bob,\r\n\r\n.leading dot and trailing spaces   \r\n\r\n\r\n"

func signed(t *testing.T, alg string) (*Signer, string) {
	t.Helper()
	s, err := LoadOrCreate(t.TempDir(), alg, "", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(context.Background(), "ann", "example.gov.uk", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return s, sig + msg
}

func TestSignVerifiesWithMox(t *testing.T) {
	for _, alg := range []string{"rsa-2048", "ed25519", "rsa-2048+ed25519"} {
		t.Run(alg, func(t *testing.T) {
			s, m := signed(t, alg)
			recs, _ := s.Records("example.gov.uk")
			txt := map[string][]string{}
			for _, r := range recs {
				txt[r.Name+"."] = []string{r.Value}
				if strings.Contains(r.Name, "sealpost") {
					t.Fatalf("selector names the product: %s", r.Name)
				}
			}
			results, err := dkim.Verify(context.Background(), slog.Default(), dns.MockResolver{TXT: txt}, false, dkim.DefaultPolicy, strings.NewReader(m), false)
			if err != nil || len(results) != len(recs) {
				t.Fatalf("%d results for %d keys: %v", len(results), len(recs), err)
			}
			for _, r := range results {
				if r.Status != dkim.StatusPass {
					t.Fatalf("%s: %v", r.Status, r.Err)
				}
			}
			bad := strings.Replace(m, "Hello Bob", "Hello Eve", 1)
			results, _ = dkim.Verify(context.Background(), slog.Default(), dns.MockResolver{TXT: txt}, false, dkim.DefaultPolicy, strings.NewReader(bad), false)
			if results[0].Status == dkim.StatusPass {
				t.Fatal("tampered body verified")
			}
		})
	}
}

// TestSignVerifiesWithDkimpy cross-checks with an independent
// implementation: python3-dkim (dkimpy), as receivers use it.
func TestSignVerifiesWithDkimpy(t *testing.T) {
	py := "/usr/bin/python3" // Debian's, where python3-dkim installs; not one earlier on PATH
	if err := exec.Command(py, "-c", "import dkim").Run(); err != nil {
		testutil.Missing(t, "python3-dkim is not installed")
	}
	for _, alg := range []string{"rsa-2048", "ed25519"} {
		t.Run(alg, func(t *testing.T) {
			s, m := signed(t, alg)
			recs, _ := s.Records("example.gov.uk")
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "msg.eml"), []byte(m), 0o600)
			os.WriteFile(filepath.Join(dir, "record.txt"), []byte(recs[0].Value), 0o600)
			script := `
import sys, dkim
rec = open(sys.argv[2], "rb").read()
def dnsfunc(name, timeout=5):
    return rec
msg = open(sys.argv[1], "rb").read()
ok = dkim.verify(msg, dnsfunc=dnsfunc)
print("pass" if ok else "fail")
sys.exit(0 if ok else 1)
`
			out, err := exec.Command(py, "-c", script, filepath.Join(dir, "msg.eml"), filepath.Join(dir, "record.txt")).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("pass")) {
				t.Fatalf("dkimpy: %v\n%s", err, out)
			}
		})
	}
}

func TestKeysPersist(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreate(dir, "ed25519", "", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreate(dir, "ed25519", "", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	ra, _ := a.Records("x.example")
	rb, _ := b.Records("x.example")
	if ra[0] != rb[0] {
		t.Fatal("key or selector changed between starts")
	}
	st, _ := os.Stat(filepath.Join(dir, "dkim-ed25519.pem"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode())
	}
	off, _ := LoadOrCreate(dir, "off", "", slog.Default())
	if off.Enabled() {
		t.Fatal("off signs")
	}
}

// TestSignFoldedAndOddHeaders: folded fields, odd spacing and repeated
// fields still verify with mox.
func TestSignFoldedAndOddHeaders(t *testing.T) {
	s, err := LoadOrCreate(t.TempDir(), "ed25519", "", slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	m := "Received: x\r\nFrom : Ann\r\n  <ann@example.gov.uk>\r\nSubject:   a\t long\r\n\tfolded   subject  \r\nTo: a@b.example\r\nTo: c@d.example\r\n\r\nbody  \r\n\r\n"
	sig, err := s.Sign(context.Background(), "ann", "example.gov.uk", strings.NewReader(m))
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := s.Records("example.gov.uk")
	res, err := dkim.Verify(context.Background(), slog.Default(), dns.MockResolver{TXT: map[string][]string{recs[0].Name + ".": {recs[0].Value}}}, false, dkim.DefaultPolicy, strings.NewReader(sig+m), false)
	if err != nil || len(res) != 1 || res[0].Status != dkim.StatusPass {
		t.Fatalf("%v %+v\n%s", err, res, sig)
	}
	for _, l := range strings.Split(sig, "\r\n") {
		if len(l) > 998 {
			t.Fatalf("line of %d characters", len(l))
		}
	}
}
