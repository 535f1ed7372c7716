package mailauth

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"
)

// dkimpyVerify reports for each message whether python3-dkim (dkimpy, the
// library behind its dkimverify command) verifies it against record; one
// interpreter checks them all.
func dkimpyVerify(t *testing.T, msgs []string, record string) []bool {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import dkim").Run(); err != nil {
		if os.Getenv("SEALPOST_REQUIRE_TOOLS") == "1" {
			t.Fatal("python3-dkim is not installed (make test installs it)")
		}
		t.Skip("python3-dkim is not installed")
	}
	dir := t.TempDir()
	args := []string{"-c", `
import sys, dkim
rec = open(sys.argv[1], "rb").read()
for f in sys.argv[2:]:
    print("pass" if dkim.verify(open(f, "rb").read(), dnsfunc=lambda name, timeout=5: rec) else "fail")
`, filepath.Join(dir, "record.txt")}
	os.WriteFile(args[2], []byte(record), 0o600)
	for i, m := range msgs {
		f := filepath.Join(dir, fmt.Sprintf("%d.eml", i))
		os.WriteFile(f, []byte(m), 0o600)
		args = append(args, f)
	}
	out, err := exec.Command(py, args...).CombinedOutput()
	lines := strings.Fields(string(out))
	if err != nil || len(lines) != len(msgs) {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
	res := make([]bool, len(msgs))
	for i, l := range lines {
		res[i] = l == "pass"
	}
	return res
}

func moxVerifies(t *testing.T, m string, txt map[string][]string) bool {
	t.Helper()
	res, err := dkim.Verify(context.Background(), slog.Default(), dns.MockResolver{TXT: txt}, false, dkim.DefaultPolicy, strings.NewReader(m), false)
	return err == nil && len(res) > 0 && res[0].Status == dkim.StatusPass
}

// TestSignatureBreaksOnTampering: both verifiers pass the signed message
// and what relaxed canonicalisation forgives in transit (re-folded
// headers, changed whitespace, trailing blank lines), and fail every
// change that matters: the body, a signed header, a header added above
// the signed one (over-signing, RFC 6376 §8.15), a second From.
func TestSignatureBreaksOnTampering(t *testing.T) {
	s, m := signed(t, "ed25519") // the key type does not matter here; Ed25519 is quick to make
	recs, _ := s.Records("example.gov.uk")
	txt := map[string][]string{recs[0].Name + ".": {recs[0].Value}}
	sigEnd := strings.Index(m, "From: Ann")
	sig, orig := m[:sigEnd], m[sigEnd:]
	if !strings.Contains(sig, "c=relaxed/relaxed") {
		t.Fatalf("not relaxed/relaxed: %s", sig)
	}
	type variant struct {
		name    string
		mangled string
		want    bool
	}
	variants := []variant{
		{"as signed", orig, true},
		{"header re-folded", strings.Replace(orig, "Subject: Quarterly figures", "subject:   Quarterly\r\n\tfigures  ", 1), true},
		{"body whitespace", strings.Replace(orig, "Hello Bob,", "Hello   Bob, \t", 1) + "\r\n\r\n", true},
		{"body changed", strings.Replace(orig, "Hello Bob", "Hello Eve", 1), false},
		{"body extended", orig + "P.S. send the money to Eve\r\n", false},
		{"subject changed", strings.Replace(orig, "Quarterly figures", "Quarterly figures: urgent", 1), false},
		{"subject added above", "Subject: Pay this invoice\r\n" + orig, false},
		{"second From", "From: Eve <eve@example.gov.uk>\r\n" + orig, false},
		{"To changed", strings.Replace(orig, "To: bob@partner.example", "To: eve@partner.example", 1), false},
	}
	var msgs []string
	for _, v := range variants {
		if v.mangled == orig && v.name != "as signed" {
			t.Fatalf("%s: the change did not apply", v.name)
		}
		msgs = append(msgs, sig+v.mangled)
	}
	py := dkimpyVerify(t, msgs, recs[0].Value)
	for i, v := range variants {
		if got := moxVerifies(t, msgs[i], txt); got != v.want {
			t.Errorf("%s: mox verifies %v, want %v", v.name, got, v.want)
		}
		if py[i] != v.want {
			t.Errorf("%s: dkimpy verifies %v, want %v", v.name, py[i], v.want)
		}
	}
}
