package inscan

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"sealpost/internal/attach"
	"sealpost/internal/clamd"
	"sealpost/internal/dlp"
	"sealpost/internal/impersonation"
)

func scanner(t testing.TB) *Scanner {
	a, err := attach.New(dlp.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return &Scanner{Attach: a, AVUnavailable: Tempfail, Dangerous: Quarantine}
}

func msg(name string, data []byte) []byte {
	return []byte("From: a@outside.example\r\nTo: b@example.gov.uk\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"" + name +
		"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(data) + "\r\n--b--\r\n")
}

func TestVerdicts(t *testing.T) {
	t.Parallel()
	s := scanner(t)
	ctx := context.Background()
	if v := s.Scan(ctx, bytes.NewReader(msg("a.txt", []byte("fine")))); v.Action != Deliver {
		t.Fatalf("clean: %+v", v)
	}
	if v := s.Scan(ctx, bytes.NewReader(msg("a.js", []byte("fine")))); v.Action != Quarantine || v.Checks[0].Result != "dangerous" {
		t.Fatalf("dangerous: %+v", v)
	}
	if v := s.Scan(ctx, strings.NewReader("no header at all")); v.Action != Quarantine {
		t.Fatalf("not a message: %+v", v)
	}
	// clamd that is not there: no verdict is never clean.
	s.AV = &clamd.Client{Network: "unix", Addr: t.TempDir() + "/none.sock"}
	for _, mode := range []string{Tempfail, Quarantine, Deliver} {
		s.AVUnavailable = mode
		if v := s.Scan(ctx, bytes.NewReader(msg("a.txt", []byte("fine")))); v.Action != mode {
			t.Fatalf("clamd down, %s: %+v", mode, v)
		}
	}
}

// BenchmarkContentChecks: the checks but antivirus on a 10 KB message
// with an attachment (the target: under 1 ms of CPU with every
// check but AV).
func BenchmarkContentChecks(b *testing.B) {
	s := scanner(b)
	body := bytes.Repeat([]byte("Quarterly figures for the committee, see the table below.\r\n"), 100)
	m := msg("figures.csv", body)
	names := impersonation.NewNames([]string{"Jane Smith", "Chief Executive"}, 0)
	var corr []string
	for i := 0; i < 500; i++ {
		corr = append(corr, "supplier"+strings.Repeat("x", i%7)+".example")
	}
	targets := impersonation.NewTargets(append([]string{"example.gov.uk"}, corr...))
	ctx := context.Background()
	b.SetBytes(int64(len(m)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if v := s.Scan(ctx, bytes.NewReader(m)); v.Action != Deliver {
			b.Fatal(v)
		}
		impersonation.Check(impersonation.Input{From: `"Someone" <a@outside.example>`, OrgDomains: []string{"example.gov.uk"}, Targets: targets, Names: []*impersonation.Names{names}})
	}
}
