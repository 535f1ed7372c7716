package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sealpost/internal/audit"
	"sealpost/internal/config"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

func auditEvents(t *testing.T, st *store.Store, object string) []*store.AuditEvent {
	t.Helper()
	evs, err := st.AuditEvents(context.Background(), object, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func detailOf(evs []*store.AuditEvent, action string) []string {
	var out []string
	for _, e := range evs {
		if e.Action == action {
			out = append(out, e.Detail)
		}
	}
	return out
}

// TestMessageLifeInAuditLog: a relayed message's reception, decision and
// delivery are in the chain, with addresses but without subject or body.
func TestMessageLifeInAuditLog(t *testing.T) {
	e := start(t, nil)
	c := dial(t, e.gw.OutboundAddr)
	c.expect("EHLO exchange.example", 250)
	code, msg := c.send("staff@example.gov.uk", []string{"citizen@gmail.example"}, message("Staff <staff@example.gov.uk>", "citizen@gmail.example", "Subject-7f3a", "Body-91c2 text"))
	if code != 250 {
		t.Fatal(msg)
	}
	id := msg[strings.LastIndex(msg, " ")+1:]
	e.sink.Wait(t, 1, 10*time.Second)
	waitQueueEmpty(t, e)
	m, err := e.gw.Store.Message(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	evs := auditEvents(t, e.gw.Store, id)
	var actions []string
	for _, ev := range evs {
		actions = append(actions, ev.Action)
		for _, f := range audit.Fields(ev) {
			if strings.Contains(f.Value, "Subject-7f3a") || strings.Contains(f.Value, "Body-91c2") {
				t.Fatalf("event %s keeps the subject or body: %s=%q", ev.Action, f.Name, f.Value)
			}
		}
	}
	if strings.Join(actions, " ") != "message.received delivery.attempt" {
		t.Fatalf("events %v", actions)
	}
	rcv := evs[0]
	if rcv.Actor != "staff@example.gov.uk" || rcv.IP != "127.0.0.1" || len(rcv.Addrs) != 1 || rcv.Addrs[0] != "citizen@gmail.example" ||
		!strings.Contains(rcv.Detail, fmt.Sprintf("size=%d ", m.Size)) || !strings.Contains(rcv.Detail, "via=connector") || len(field(rcv.Detail, "sha256")) != 64 {
		t.Fatalf("received: %+v", rcv)
	}
	if !strings.Contains(rcv.Detail, "route=outbound status=queued") || !strings.Contains(rcv.Detail, "policy=deliver") {
		t.Fatalf("decision: %+v", rcv)
	}
	if a := evs[1]; a.Addrs[0] != "citizen@gmail.example" || !strings.Contains(a.Detail, "result=delivered attempt=1 route=outbound relay="+e.sink.Addr) || !strings.Contains(a.Detail, "tls=none") {
		t.Fatalf("attempt: %+v", a)
	}
}

func field(detail, key string) string {
	for _, kv := range strings.Fields(detail) {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// TestFailedAuditAppendFailsTheMessage: a message whose reception cannot
// be recorded is not accepted (451), and nothing of it is queued.
func TestFailedAuditAppendFailsTheMessage(t *testing.T) {
	e := start(t, nil)
	if _, err := e.gw.Store.DB.Exec(`CREATE TRIGGER no_audit BEFORE INSERT ON audit_events WHEN NEW.action='message.received' BEGIN SELECT RAISE(ABORT, 'injected: audit full'); END`); err != nil {
		t.Fatal(err)
	}
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO x", 250)
	code, msg := c.send("a@outside.example", []string{"staff@example.gov.uk"}, message("a@outside.example", "staff@example.gov.uk", "x", "x"))
	if code != 451 {
		t.Fatalf("got %s, want 451", msg)
	}
	var n int
	e.gw.Store.DB.QueryRow(`SELECT count(*) FROM messages`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d queue rows for a message the audit log does not have", n)
	}
}

// copyDir copies the files of a stopped gateway's data directory.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := os.Create(filepath.Join(to, rel))
		if err != nil {
			return err
		}
		defer dst.Close()
		_, err = io.Copy(dst, src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// TestAuditTamperingOnGatewayStore runs a gateway, lets it write and sign
// its log, stops it, then tampers with copies of the store (as an intruder
// with write access to the database would) and checks that verification
// fails naming each problem.
func TestAuditTamperingOnGatewayStore(t *testing.T) {
	e := start(t, nil)
	send := func(i int) {
		c := dial(t, e.gw.OutboundAddr)
		c.expect("EHLO exchange.example", 250)
		to := fmt.Sprintf("citizen%d@gmail.example", i)
		if code, msg := c.send("staff@example.gov.uk", []string{to}, message("Staff <staff@example.gov.uk>", to, "s", "b")); code != 250 {
			t.Fatal(msg)
		}
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		send(i)
	}
	e.sink.Wait(t, 3, 10*time.Second)
	waitQueueEmpty(t, e)
	if err := audit.Checkpoint(ctx, e.gw.Store, e.gw.audit.keys, e.gw.audit.witness, time.Now()); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 6; i++ {
		send(i)
	}
	e.sink.Wait(t, 6, 10*time.Second)
	waitQueueEmpty(t, e)
	keys := e.gw.audit.keys
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	e.gw.Shutdown(sctx) // signs the last checkpoint
	cancel()

	verify := func(t *testing.T, dir string) *audit.Report {
		st, err := store.OpenSQLite(filepath.Join(dir, "sealpost.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		v := &audit.Verifier{Keys: keys, WitnessFile: filepath.Join(dir, "audit-witness.log"), Retention: e.cfg.Audit.Retention.Duration}
		r, err := v.Verify(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := verify(t, e.cfg.DataDir)
	if !r.OK() || r.Events != 12 || r.Checkpoints != 2 || r.Witnessed != 2 || r.LastSigned != 12 {
		t.Fatalf("untouched log: %+v", r)
	}
	var more func(st *store.Store) // further tampering through the store
	test := func(name string, wantSeq int64, wantWhy string, sqls ...string) {
		t.Run(name, func(t *testing.T) {
			dir := copyDir(t, e.cfg.DataDir)
			db, err := store.OpenSQLite(filepath.Join(dir, "sealpost.db"))
			if err != nil {
				t.Fatal(err)
			}
			if more != nil {
				more(db)
				more = nil
			}
			for _, q := range sqls {
				if _, err := db.DB.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			db.Close()
			r := verify(t, dir)
			if r.OK() || r.BadSeq != wantSeq || !strings.Contains(r.Why, wantWhy) {
				t.Errorf("got event %d %q, want event %d %q", r.BadSeq, r.Why, wantSeq, wantWhy)
			}
		})
	}
	// (a) every checkpoint row deleted.
	test("checkpoints deleted", 6, "missing from the store", `DELETE FROM audit_checkpoints`)
	// (b) the newest events deleted with their checkpoint.
	test("tail and its checkpoint deleted", 12, "missing from the store", `DELETE FROM audit_events WHERE seq>6`, `DELETE FROM audit_checkpoints WHERE seq>6`)
	// (c) the audit tables emptied.
	test("emptied", 1, "audit tables were emptied", `DELETE FROM audit_events`, `DELETE FROM audit_checkpoints`, `DELETE FROM audit_anchor`)
	// (d) an event changed, the chain recomputed (unkeyed SHA-256, as the
	// old scheme allowed) and the checkpoints from there on deleted.
	test("changed, rechained, checkpoints deleted", 12, "missing from the store",
		`UPDATE audit_events SET detail='nothing' WHERE seq=8`, `UPDATE audit_events SET hash=zeroblob(32), mac=zeroblob(32) WHERE seq>=8`, `DELETE FROM audit_checkpoints WHERE seq>6`)
	test("changed", 8, "was changed", `UPDATE audit_events SET addrs='someone@else.example' WHERE seq=8`)
	test("truncated", 10, "newest events were deleted", `DELETE FROM audit_events WHERE seq>=10`)
	test("reordered", 4, "", `UPDATE audit_events SET seq=-4 WHERE seq=4`, `UPDATE audit_events SET seq=4 WHERE seq=5`, `UPDATE audit_events SET seq=5 WHERE seq=-4`)
	test("forged anchor", 4, "forged", `DELETE FROM audit_events WHERE seq<=3`,
		`INSERT INTO audit_anchor (id, n, seq, count, at, hash, mac, prev, sig) SELECT 1, 1, 3, 3, at, hash, mac, NULL, zeroblob(64) FROM audit_events WHERE seq=4`)
	test("pruned start without anchor", 4, "no signed retention anchor", `DELETE FROM audit_events WHERE seq<=3`)
	test("checkpoint missing, witness has it", 12, "missing from the store", `DELETE FROM audit_checkpoints WHERE seq=12`)
	// Events the gateway wrote (with the key) but no checkpoint covers,
	// older than the checkpoint interval allows: the checkpoints that
	// covered them were removed (or the gateway stopped without signing).
	more = func(st *store.Store) {
		st.SetAuditChain(audit.Chain{Keys: keys})
		if err := st.AppendAudit(ctx, &store.AuditEvent{At: time.Now().Add(-3 * audit.Interval), Actor: "x@example.gov.uk", Action: "portal.view", Object: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	test("unsigned and old", 13, "covered by no signed checkpoint")
}

// TestConsoleEvidenceDownload: the trace page links the message's evidence
// bundle, which verifies with the installation's key; the download is
// itself an audit event.
func TestConsoleEvidenceDownload(t *testing.T) {
	e := start(t, nil)
	pw := addConsoleUser(t, e.gw.Store, "audrey", "auditor")
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"boss@examp1e.gov.uk"}, message("staff@example.gov.uk", "boss@examp1e.gov.uk", "minutes", "the minutes"))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	b := newBrowser(t, e)
	b.get("/console/login")
	if st, _ := b.post("/console/login", url.Values{"user": {"audrey"}, "password": {pw}}); st != 200 {
		t.Fatalf("sign-in: %d", st)
	}
	if st, page := b.get("/console/trace/" + id); st != 200 || !strings.Contains(page, "/console/trace/"+id+"/evidence.json") {
		t.Fatalf("trace page %d:\n%s", st, page)
	}
	st, body := b.get("/console/trace/" + id + "/evidence.json")
	if st != 200 {
		t.Fatalf("evidence: %d\n%s", st, body)
	}
	var bundle audit.Bundle
	if err := json.Unmarshal([]byte(body), &bundle); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyBundle(&bundle, e.gw.audit.keys.Public())
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range rep.Events {
		actions = append(actions, ev.Get("action"))
	}
	if got := strings.Join(actions, " "); !strings.HasPrefix(got, "message.received policy.hold") {
		t.Fatalf("proven events: %s", got)
	}
	if evs := detailOf(auditEvents(t, e.gw.Store, id), "audit.evidence"); len(evs) != 1 {
		t.Fatalf("download audited %d times", len(evs))
	}
	if st, _ := b.get("/console/trace/x%22y/evidence.json"); st != 404 {
		t.Fatalf("bad id: %d", st)
	}
}

// TestDeliveryTLSEvidence: a delivery over TLS records the version, the
// cipher, the peer certificate's SHA-256 and whether it verified (it is
// checked under opportunistic TLS too, only to be recorded).
func TestDeliveryTLSEvidence(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		sink, ca := testutil.NewTLSSink(t)
		e := start(t, func(c *config.Config) {
			c.Outbound.Smarthost = sink.Addr
			if trusted {
				c.Outbound.CAFile = ca
			}
		})
		code, reply := outbound(t, e, "staff@example.gov.uk", []string{"citizen@gmail.example"}, message("staff@example.gov.uk", "citizen@gmail.example", "s", "b"))
		if code != 250 {
			t.Fatal(reply)
		}
		id := msgID(t, reply)
		sink.Wait(t, 1, 10*time.Second)
		waitQueueEmpty(t, e)
		att := detailOf(auditEvents(t, e.gw.Store, id), "delivery.attempt")
		want := "verified=no"
		if trusted {
			want = "verified=yes"
		}
		if len(att) != 1 || !strings.Contains(att[0], `tls="TLS 1.3" cipher=TLS_`) || !strings.Contains(att[0], want) || len(field(att[0], "cert_sha256")) != 64 {
			t.Fatalf("trusted %v: %q", trusted, att)
		}
	}
}
