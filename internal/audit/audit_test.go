package audit

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sealpost/internal/store"
)

// fill makes a log of 20 events with checkpoints after events 10 and 20.
func fill(t *testing.T) (*store.Store, ed25519.PublicKey, ed25519.PrivateKey) {
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := Key(make([]byte, 32))
	ctx := context.Background()
	at := time.UnixMilli(1_800_000_000_000)
	for i := 1; i <= 20; i++ {
		e := &store.AuditEvent{At: at.Add(time.Duration(i) * time.Second), Actor: "jane@citizen.example", Action: "portal.view", Object: "m1", IP: "127.0.0.1", Detail: strings.Repeat("x", i)}
		if err := st.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := Checkpoint(ctx, st, key, at.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return st, key.Public().(ed25519.PublicKey), key
}

func TestVerifyIntact(t *testing.T) {
	st, pub, _ := fill(t)
	r, err := Verify(context.Background(), st, pub)
	if err != nil || !r.OK() || r.Events != 20 || r.Checkpoints != 2 || r.LastSigned != 20 {
		t.Fatalf("%+v %v", r, err)
	}
	other, _ := Key([]byte("another installation's key......"))
	if r, _ := Verify(context.Background(), st, other.Public().(ed25519.PublicKey)); r.OK() {
		t.Fatal("checkpoints verified with another key")
	}
}

// TestTampering changes the store directly, as an intruder with the
// database would, and checks that Verify names the first bad event.
func TestTampering(t *testing.T) {
	ctx := context.Background()
	test := func(name string, wantSeq int64, wantWhy string, tamper func(st *store.Store, key ed25519.PrivateKey)) {
		t.Helper()
		st, pub, key := fill(t)
		tamper(st, key)
		r, err := Verify(ctx, st, pub)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.OK() || r.BadSeq != wantSeq || !strings.Contains(r.Why, wantWhy) {
			t.Errorf("%s: got event %d %q, want event %d %q", name, r.BadSeq, r.Why, wantSeq, wantWhy)
		}
	}
	exec := func(st *store.Store, q string, args ...any) {
		if _, err := st.DB.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	test("changed", 5, "was changed", func(st *store.Store, _ ed25519.PrivateKey) {
		exec(st, `UPDATE audit_events SET actor='someone@else.example' WHERE seq=5`)
	})
	test("deleted", 8, "deleted", func(st *store.Store, _ ed25519.PrivateKey) {
		exec(st, `DELETE FROM audit_events WHERE seq=7`)
	})
	test("inserted", 21, "does not point", func(st *store.Store, _ ed25519.PrivateKey) {
		exec(st, `INSERT INTO audit_events (seq, at, actor, action, object, prev, hash) VALUES (21, 0, 'x', 'portal.view', 'm1', x'00', x'00')`)
	})
	test("swapped", 3, "", func(st *store.Store, _ ed25519.PrivateKey) {
		exec(st, `UPDATE audit_events SET seq=-3 WHERE seq=3`)
		exec(st, `UPDATE audit_events SET seq=3 WHERE seq=4`)
		exec(st, `UPDATE audit_events SET seq=4 WHERE seq=-3`)
	})
	test("rewritten and rechained", 10, "signed checkpoint", func(st *store.Store, _ ed25519.PrivateKey) {
		// Change event 5, then recompute every hash after it, as an
		// intruder who knows the scheme would.
		exec(st, `UPDATE audit_events SET detail='nothing happened' WHERE seq=5`)
		var prev []byte
		st.EachAuditEvent(ctx, time.Time{}, time.Time{}, func(e *store.AuditEvent) error {
			if e.Seq >= 5 {
				e.Prev = prev
				e.Hash = store.AuditHash(prev, e)
				exec(st, `UPDATE audit_events SET prev=?, hash=? WHERE seq=?`, e.Prev, e.Hash, e.Seq)
			}
			prev = e.Hash
			return nil
		})
	})
	test("tail deleted", 20, "missing", func(st *store.Store, _ ed25519.PrivateKey) {
		exec(st, `DELETE FROM audit_events WHERE seq>=19`)
	})
	test("forged checkpoint", 20, "signature", func(st *store.Store, _ ed25519.PrivateKey) {
		exec(st, `UPDATE audit_checkpoints SET sig=x'00' WHERE seq=20`)
	})
}

func TestRetentionKeepsTheChainVerifiable(t *testing.T) {
	st, pub, _ := fill(t)
	ctx := context.Background()
	n, err := st.PruneAudit(ctx, time.UnixMilli(1_800_000_000_000).Add(10500*time.Millisecond))
	if err != nil || n != 10 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	r, err := Verify(ctx, st, pub)
	if err != nil || !r.OK() || r.Events != 10 || r.LastSigned != 20 {
		t.Fatalf("%+v %v", r, err)
	}
	// Deleting the first remaining event is still caught.
	st.DB.ExecContext(ctx, `DELETE FROM audit_events WHERE seq=11`)
	if r, _ := Verify(ctx, st, pub); r.OK() || r.BadSeq != 12 {
		t.Fatalf("%+v", r)
	}
}
