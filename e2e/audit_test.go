package e2e

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestAuditVerifyAndExport: policy decisions and an operator's release
// land in the audit log; `audit verify` passes on the untouched log and,
// after a row is changed in the database directly, exits 1 naming it.
func TestAuditVerifyAndExport(t *testing.T) {
	need(t, "swaks")
	s := startSink(t)
	g := newGW(t, gwOptions{mailHost: s.addr, smarthost: s.addr})
	g.start()
	key := filepath.Join(t.TempDir(), "key.txt")
	os.WriteFile(key, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600)
	for i := 0; i < 3; i++ {
		if out, code := swaks(t, "--server", g.outbound, "--from", "staff@example.gov.uk", "--to", "it@example.gov.uk", "--body", "@"+key); code == 0 {
			t.Fatalf("private key accepted:\n%s", out)
		}
	}
	g.stop() // signs a checkpoint
	out, code := g.cli("audit", "verify")
	if code != 0 || !strings.Contains(out, "audit log intact: 3 events, 1 signed checkpoints, signed up to event 3") {
		t.Fatalf("verify (exit %d):\n%s", code, out)
	}
	exp, code := g.cli("audit", "export", "--from", "2020-01-01")
	lines := strings.Split(strings.TrimSpace(exp), "\n")
	var ev struct {
		Seq                 int64
		Action, Actor, Hash string
	}
	if code != 0 || len(lines) != 3 || json.Unmarshal([]byte(lines[0]), &ev) != nil || ev.Action != "policy.reject" || ev.Actor != "staff@example.gov.uk" || len(ev.Hash) != 64 {
		t.Fatalf("export (exit %d):\n%s", code, exp)
	}
	if _, code := g.cli("audit", "export", "--from", "yesterday"); code != 2 {
		t.Fatalf("bad --from: exit %d", code)
	}
	db, err := sql.Open("sqlite", filepath.Join(g.dir, "sealpost.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET actor='nobody@example.gov.uk' WHERE seq=2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, code = g.cli("audit", "verify")
	if code != 1 || !strings.Contains(out, "first bad event 2") {
		t.Fatalf("tampered log (exit %d):\n%s", code, out)
	}
}
