package e2e

import (
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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

// TestAuditEvidenceAndWitness: messages relayed by the built binary are
// in the chain; `audit evidence` writes a bundle that `audit verify
// --bundle` accepts with no configuration or data directory, and refuses
// once tampered; deleting every checkpoint from the database (and the
// newest events) is caught against the witness file.
func TestAuditEvidenceAndWitness(t *testing.T) {
	need(t, "swaks")
	s := startSink(t)
	witness := filepath.Join(t.TempDir(), "witness.log")
	g := newGW(t, gwOptions{mailHost: s.addr, smarthost: s.addr, extra: "[audit]\nwitness_file = \"" + witness + "\"\n"})
	g.start()
	var id string
	for i := 0; i < 2; i++ {
		out, code := swaks(t, "--server", g.outbound, "--from", "staff@example.gov.uk", "--to", "citizen@gmail.example,other@gmail.example", "--header", "Subject: Subject-e2e-42")
		if code != 0 {
			t.Fatalf("swaks:\n%s", out)
		}
		if m := regexp.MustCompile(`queued as ([0-9a-z]{26})`).FindStringSubmatch(out); m != nil {
			id = m[1]
		}
	}
	s.wait(t, 2, 10*time.Second)
	time.Sleep(500 * time.Millisecond) // the delivery results' commit
	g.stop()
	if out, code := g.cli("audit", "verify"); code != 0 || !strings.Contains(out, "witness: "+witness+" (1 checkpoints)") {
		t.Fatalf("verify (exit %d):\n%s", code, out)
	}
	if exp, _ := g.cli("audit", "export"); strings.Contains(exp, "Subject-e2e-42") || !strings.Contains(exp, `"message.received"`) || !strings.Contains(exp, `"delivery.attempt"`) {
		t.Fatalf("export:\n%s", exp)
	}

	// A message's bundle, checked in an empty directory with no config.
	bundle := filepath.Join(t.TempDir(), "m.json")
	if out, code := g.cli("audit", "evidence", "--message", id, "--out", bundle); code != 0 {
		t.Fatalf("evidence (exit %d):\n%s", code, out)
	}
	offline := func(file string) (string, int) {
		cmd := exec.Command(binPath, "audit", "verify", "--bundle", file)
		cmd.Dir, cmd.Env = t.TempDir(), []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out), 0
	}
	if out, code := offline(bundle); code != 0 || !strings.Contains(out, "evidence bundle intact: 3 events") || !strings.Contains(out, "delivery.attempt") {
		t.Fatalf("bundle (exit %d):\n%s", code, out)
	}
	b, _ := os.ReadFile(bundle)
	tampered := filepath.Join(t.TempDir(), "t.json")
	os.WriteFile(tampered, []byte(strings.Replace(string(b), "result=delivered", "result=failed", 1)), 0o600)
	if out, code := offline(tampered); code != 1 || !strings.Contains(out, "NOT intact") || !strings.Contains(out, "an event was changed") {
		t.Fatalf("tampered bundle (exit %d):\n%s", code, out)
	}
	// An address's bundle hides the other parties.
	if out, code := g.cli("audit", "evidence", "--address", "other@gmail.example", "--from", "2020-01-01", "--out", bundle); code != 0 {
		t.Fatalf("evidence (exit %d):\n%s", code, out)
	}
	b, _ = os.ReadFile(bundle)
	if strings.Contains(string(b), "citizen@gmail.example") || !strings.Contains(string(b), "other@gmail.example") {
		t.Fatalf("address bundle:\n%s", b)
	}
	if out, code := offline(bundle); code != 0 {
		t.Fatalf("address bundle (exit %d):\n%s", code, out)
	}

	// The intruder deletes every checkpoint and the newest events.
	db, err := sql.Open("sqlite", filepath.Join(g.dir, "sealpost.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_checkpoints`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_events WHERE seq > 3`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, code := g.cli("audit", "verify")
	if code != 1 || !strings.Contains(out, "is in the witness file but missing from the store") {
		t.Fatalf("cut log (exit %d):\n%s", code, out)
	}
}

// TestAuditAppendFailureFailsCLI: a command whose audit event cannot be
// recorded fails, and what it made does not work (the user is disabled).
func TestAuditAppendFailureFailsCLI(t *testing.T) {
	g := newGW(t, gwOptions{})
	if out, code := g.cli("user", "add", "carol", "--role", "admin"); code != 0 {
		t.Fatalf("user add (exit %d):\n%s", code, out)
	}
	db, err := sql.Open("sqlite", filepath.Join(g.dir, "sealpost.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'injected: audit refused'); END`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, code := g.cli("user", "add", "dave", "--role", "admin")
	if code != 1 || !strings.Contains(out, "audit log could not record it") {
		t.Fatalf("user add with the audit log refusing (exit %d):\n%s", code, out)
	}
	if out, _ := g.cli("user", "list", "--json"); !strings.Contains(out, `{"name":"dave","role":"admin","disabled":true`) {
		t.Fatalf("dave still works:\n%s", out)
	}
	if out, code := g.cli("audit", "verify"); code != 0 {
		t.Fatalf("verify (exit %d):\n%s", code, out)
	}
}
