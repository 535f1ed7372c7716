package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sealpost/internal/store"
)

type fixture struct {
	t       testing.TB
	st      *store.Store
	keys    *Keys
	witness *Witness
	now     time.Time
}

func (f *fixture) verifier() *Verifier {
	return &Verifier{Keys: f.keys, WitnessFile: f.witness.Path, Now: f.now}
}

// fill makes a log of 20 events with checkpoints after events 10 and 20.
func fill(t testing.TB) *fixture {
	dir := t.TempDir()
	st, err := store.OpenSQLite(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := DeriveKeys(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	st.SetAuditChain(Chain{Keys: keys})
	f := &fixture{t: t, st: st, keys: keys, witness: &Witness{Path: filepath.Join(dir, "witness.log")}, now: time.UnixMilli(1_800_000_000_000)}
	ctx := context.Background()
	for i := 1; i <= 20; i++ {
		e := &store.AuditEvent{At: f.now.Add(time.Duration(i-30) * time.Second), Actor: "jane@citizen.example", Action: "portal.view", Object: "m1",
			IP: "127.0.0.1", Detail: strings.Repeat("x", i), Addrs: []string{"staff@example.gov.uk"}}
		if i%3 == 0 {
			e.Object, e.Actor = "m2", "bob@other.example"
		}
		if err := st.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := Checkpoint(ctx, st, keys, f.witness, f.now.Add(time.Duration(i-30)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

func TestVerifyIntact(t *testing.T) {
	f := fill(t)
	r, err := f.verifier().Verify(context.Background(), f.st)
	if err != nil || !r.OK() || r.Events != 20 || r.Checkpoints != 2 || r.Witnessed != 2 || r.LastSigned != 20 {
		t.Fatalf("%+v %v", r, err)
	}
	other, _ := DeriveKeys([]byte("another installation's key......"))
	v := f.verifier()
	v.Keys = other
	if r, _ := v.Verify(context.Background(), f.st); r.OK() {
		t.Fatal("verified with another installation's key")
	}
}

func TestAppendNeedsTheKey(t *testing.T) {
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AppendAudit(context.Background(), &store.AuditEvent{At: time.Now(), Actor: "x", Action: "y"}); err != store.ErrNoAuditKey {
		t.Fatalf("append without a key: %v", err)
	}
}

// TestTampering changes the store (and the witness) directly, as an
// intruder with the database would, and checks that Verify names the first
// bad event and the problem.
func TestTampering(t *testing.T) {
	ctx := context.Background()
	test := func(name string, wantSeq int64, wantWhy string, tamper func(f *fixture)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := fill(t)
			tamper(f)
			r, err := f.verifier().Verify(ctx, f.st)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK() || r.BadSeq != wantSeq || !strings.Contains(r.Why, wantWhy) {
				t.Errorf("got event %d %q, want event %d %q", r.BadSeq, r.Why, wantSeq, wantWhy)
			}
		})
	}
	exec := func(f *fixture, q string, args ...any) {
		f.t.Helper()
		if _, err := f.st.DB.ExecContext(ctx, q, args...); err != nil {
			f.t.Fatal(err)
		}
	}
	// rechain recomputes every link from event from on as the best-placed
	// intruder would: knowing every field's salt (bundles disclose some),
	// so the public chain comes out right, but not the MAC key.
	rechain := func(f *fixture, from int64) {
		guess, _ := DeriveKeys([]byte("the intruder's guess at the key.."))
		c := Chain{Keys: &Keys{Salt: f.keys.Salt, MAC: guess.MAC}}
		var head store.AuditHead
		var evs []*store.AuditEvent
		f.st.EachAuditEvent(ctx, time.Time{}, time.Time{}, func(e *store.AuditEvent) error { evs = append(evs, e); return nil })
		for _, e := range evs {
			if e.Seq >= from {
				e.Prev = head.Hash
				c.Link(head, e)
				exec(f, `UPDATE audit_events SET prev=?, hash=?, mac=? WHERE seq=?`, e.Prev, e.Hash, e.MAC, e.Seq)
			}
			head = store.AuditHead{Seq: e.Seq, Hash: e.Hash, MAC: e.MAC}
		}
	}
	test("changed", 5, "was changed", func(f *fixture) {
		exec(f, `UPDATE audit_events SET actor='someone@else.example' WHERE seq=5`)
	})
	test("address changed", 4, "was changed", func(f *fixture) {
		exec(f, `UPDATE audit_events SET addrs='someone@else.example' WHERE seq=4`)
	})
	test("deleted", 8, "deleted", func(f *fixture) {
		exec(f, `DELETE FROM audit_events WHERE seq=7`)
	})
	test("inserted", 21, "does not point", func(f *fixture) {
		exec(f, `INSERT INTO audit_events (seq, at, actor, action, object, prev, hash) VALUES (21, 0, 'x', 'portal.view', 'm1', x'00', x'00')`)
	})
	test("swapped", 3, "", func(f *fixture) {
		exec(f, `UPDATE audit_events SET seq=-3 WHERE seq=3`)
		exec(f, `UPDATE audit_events SET seq=3 WHERE seq=4`)
		exec(f, `UPDATE audit_events SET seq=4 WHERE seq=-3`)
	})
	test("rewritten and rechained without the key", 5, "keyed link", func(f *fixture) {
		exec(f, `UPDATE audit_events SET detail='nothing happened' WHERE seq=5`)
		rechain(f, 5)
	})
	test("tail rechained without the key, no checkpoint there", 21, "keyed link", func(f *fixture) {
		f.st.AppendAudit(ctx, &store.AuditEvent{At: f.now, Actor: "a@b.example", Action: "portal.view", Object: "m9"})
		rechain(f, 21)
	})
	test("tail deleted", 19, "newest events were deleted", func(f *fixture) {
		exec(f, `DELETE FROM audit_events WHERE seq>=19`)
	})
	test("forged checkpoint", 20, "signature", func(f *fixture) {
		exec(f, `UPDATE audit_checkpoints SET sig=x'00' WHERE seq=20`)
	})
	// (a) every checkpoint row deleted.
	test("checkpoints deleted, numbering restarted", 21, "differs from the witness", func(f *fixture) {
		exec(f, `DELETE FROM audit_checkpoints`)
		f.st.AppendAudit(ctx, &store.AuditEvent{At: f.now, Actor: "a@b.example", Action: "portal.view", Object: "m9"})
		Checkpoint(ctx, f.st, f.keys, &Witness{Path: filepath.Join(f.t.TempDir(), "elsewhere")}, f.now) // a fresh numbering
	})
	test("checkpoints deleted, nothing new", 10, "missing from the store", func(f *fixture) {
		exec(f, `DELETE FROM audit_checkpoints`)
	})
	// (b) the newest events deleted together with their checkpoint.
	test("tail and its checkpoint deleted", 20, "missing from the store", func(f *fixture) {
		exec(f, `DELETE FROM audit_events WHERE seq>=16`)
		exec(f, `DELETE FROM audit_checkpoints WHERE seq=20`)
	})
	// (c) the audit tables emptied.
	test("emptied", 1, "audit tables were emptied", func(f *fixture) {
		exec(f, `DELETE FROM audit_events`)
		exec(f, `DELETE FROM audit_checkpoints`)
		exec(f, `DELETE FROM audit_anchor`)
	})
	// (d) an event changed, the chain recomputed, later checkpoints deleted.
	test("changed, rechained, later checkpoints deleted", 20, "missing from the store", func(f *fixture) {
		exec(f, `UPDATE audit_events SET detail='nothing happened' WHERE seq=12`)
		rechain(f, 12)
		exec(f, `DELETE FROM audit_checkpoints WHERE seq>10`)
	})
	test("pruned start, checkpoints kept", 11, "no signed retention anchor", func(f *fixture) {
		exec(f, `DELETE FROM audit_events WHERE seq<=10`)
	})
	test("forged anchor", 11, "forged", func(f *fixture) {
		exec(f, `DELETE FROM audit_events WHERE seq<=10`)
		exec(f, `INSERT INTO audit_anchor (id, n, seq, count, at, hash, mac, prev, sig) SELECT 1, n, seq, count, at, hash, mac, prev, x'0102' FROM audit_checkpoints WHERE seq=10`)
	})
	test("pruned start without an anchor", 1, "no signed retention anchor", func(f *fixture) {
		exec(f, `DELETE FROM audit_events WHERE seq<=10`)
		exec(f, `DELETE FROM audit_checkpoints WHERE seq=10`)
	})
	test("witness missing", 0, "witness file", func(f *fixture) {
		os.Remove(f.witness.Path)
	})
	test("witness line removed", 11, "lines were removed", func(f *fixture) {
		f.st.AppendAudit(ctx, &store.AuditEvent{At: f.now, Actor: "a@b.example", Action: "portal.view", Object: "m9"})
		Checkpoint(ctx, f.st, f.keys, f.witness, f.now)
		b, _ := os.ReadFile(f.witness.Path)
		lines := strings.SplitAfter(string(b), "\n")
		os.WriteFile(f.witness.Path, []byte(lines[0]+lines[2]), 0o600)
	})
	test("unsigned and old", 21, "covered by no signed checkpoint", func(f *fixture) {
		f.st.AppendAudit(ctx, &store.AuditEvent{At: f.now.Add(-3 * Interval), Actor: "a@b.example", Action: "portal.view", Object: "m9"})
	})
}

// TestKeyedLinkAlone: without the witness and the checkpoints, the keyed
// link alone still catches a rewrite by someone who knows the salts.
func TestKeyedLinkAlone(t *testing.T) {
	f := fill(t)
	ctx := context.Background()
	f.st.DB.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE seq>10`)
	f.st.DB.ExecContext(ctx, `UPDATE audit_events SET detail='nothing happened' WHERE seq=12`)
	guess, _ := DeriveKeys([]byte("the intruder's guess at the key.."))
	c := Chain{Keys: &Keys{Salt: f.keys.Salt, MAC: guess.MAC}}
	var head store.AuditHead
	var evs []*store.AuditEvent
	f.st.EachAuditEvent(ctx, time.Time{}, time.Time{}, func(e *store.AuditEvent) error { evs = append(evs, e); return nil })
	for _, e := range evs {
		if e.Seq >= 12 {
			e.Prev = head.Hash
			c.Link(head, e)
			f.st.DB.ExecContext(ctx, `UPDATE audit_events SET prev=?, hash=?, mac=? WHERE seq=?`, e.Prev, e.Hash, e.MAC, e.Seq)
		}
		head = store.AuditHead{Seq: e.Seq, Hash: e.Hash, MAC: e.MAC}
	}
	v := f.verifier()
	v.WitnessFile = ""
	r, err := v.Verify(ctx, f.st)
	if err != nil || r.OK() || r.BadSeq != 12 || !strings.Contains(r.Why, "keyed link") {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestFreshUnsignedTailIsFine(t *testing.T) {
	f := fill(t)
	f.st.AppendAudit(context.Background(), &store.AuditEvent{At: f.now.Add(-Interval), Actor: "a@b.example", Action: "portal.view", Object: "m9"})
	if r, err := f.verifier().Verify(context.Background(), f.st); err != nil || !r.OK() || r.LastSigned != 20 || r.Events != 21 {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestRetentionKeepsTheChainVerifiable(t *testing.T) {
	f := fill(t)
	ctx := context.Background()
	// Events 1..12 are old; the newest checkpoint among them is at 10.
	n, err := f.st.PruneAudit(ctx, f.now.Add(-17*time.Second))
	if err != nil || n != 10 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	r, err := f.verifier().Verify(ctx, f.st)
	if err != nil || !r.OK() || r.Events != 10 || r.LastSigned != 20 {
		t.Fatalf("%+v %v", r, err)
	}
	// Appending and signing continue from the anchor.
	f.st.AppendAudit(ctx, &store.AuditEvent{At: f.now, Actor: "a@b.example", Action: "portal.view", Object: "m9"})
	if err := Checkpoint(ctx, f.st, f.keys, f.witness, f.now); err != nil {
		t.Fatal(err)
	}
	if r, err := f.verifier().Verify(ctx, f.st); err != nil || !r.OK() || r.LastSigned != 21 {
		t.Fatalf("%+v %v", r, err)
	}
	// Deleting the first remaining event is still caught.
	f.st.DB.ExecContext(ctx, `DELETE FROM audit_events WHERE seq=11`)
	if r, _ := f.verifier().Verify(ctx, f.st); r.OK() || r.BadSeq != 12 {
		t.Fatalf("%+v", r)
	}
}

func TestEarlyPruneIsCaught(t *testing.T) {
	f := fill(t)
	ctx := context.Background()
	if _, err := f.st.PruneAudit(ctx, f.now.Add(-17*time.Second)); err != nil {
		t.Fatal(err)
	}
	v := f.verifier()
	v.Retention = 30 * 24 * time.Hour // the anchor is seconds old
	if r, _ := v.Verify(ctx, f.st); r.OK() || !strings.Contains(r.Why, "before their time") {
		t.Fatalf("%+v", r)
	}
}

func bundleOf(t testing.TB, f *fixture, sel Selection) (*Bundle, []byte) {
	t.Helper()
	b, err := BuildBundle(context.Background(), f.st, f.keys, sel, f.now)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, data
}

func TestBundleRoundTrip(t *testing.T) {
	f := fill(t)
	_, data := bundleOf(t, f, Selection{Message: "m2"})
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyBundle(&b, f.keys.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Events) != 6 || rep.Checkpoints != 3 {
		t.Fatalf("%d events, %d checkpoints", len(rep.Events), rep.Checkpoints)
	}
	for _, e := range rep.Events {
		if e.Get("object") != "m2" || e.Get("actor") != "bob@other.example" {
			t.Fatalf("event %d: %+v", e.Seq, e)
		}
	}
	other, _ := DeriveKeys([]byte("another installation's key......"))
	if _, err := VerifyBundle(&b, other.Public()); err == nil {
		t.Fatal("a bundle verified with a key it is not signed with")
	}
}

func TestAddressBundleRedactsOthers(t *testing.T) {
	f := fill(t)
	_, data := bundleOf(t, f, Selection{Address: "BOB@other.example"})
	if strings.Contains(string(data), "jane@citizen.example") || strings.Contains(string(data), "staff@example.gov.uk") {
		t.Fatal("another party's address is in the bundle")
	}
	var b Bundle
	json.Unmarshal(data, &b)
	rep, err := VerifyBundle(&b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Events) != 6 {
		t.Fatalf("%d events", len(rep.Events))
	}
	e := rep.Events[0]
	if e.Get("actor") != "bob@other.example" || e.Get("addr") != "["+f.keys.PseudonymOf("staff@example.gov.uk")+"]" {
		t.Fatalf("%+v", e)
	}
}

func TestTamperedBundleRefused(t *testing.T) {
	f := fill(t)
	test := func(name, want string, tamper func(b *Bundle)) {
		t.Helper()
		b, data := bundleOf(t, f, Selection{Message: "m2"})
		json.Unmarshal(data, b)
		tamper(b)
		if _, err := VerifyBundle(b, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	proven := func(b *Bundle) *BundleEvent {
		for i := range b.Segments[0].Events {
			if len(b.Segments[0].Events[i].Fields) > 0 {
				return &b.Segments[0].Events[i]
			}
		}
		t.Fatal("no proven event")
		return nil
	}
	test("value changed", "an event was changed", func(b *Bundle) { proven(b).Fields[2].Value = "portal.nothing" })
	test("field redacted falsely", "an event was changed", func(b *Bundle) {
		e := proven(b)
		e.Fields[1] = BundleField{Name: "actor", Redacted: "party-x", Commitment: strings.Repeat("00", 32)}
	})
	test("event removed", "events were removed", func(b *Bundle) { b.Segments[0].Events = b.Segments[0].Events[1:] })
	test("events swapped", "out of order", func(b *Bundle) {
		ev := b.Segments[0].Events
		ev[0], ev[1] = ev[1], ev[0]
	})
	test("digest changed", "an event was changed", func(b *Bundle) {
		for i := range b.Segments[0].Events {
			if e := &b.Segments[0].Events[i]; e.Digest != "" {
				e.Digest = strings.Repeat("ab", 32)
				return
			}
		}
	})
	test("checkpoint re-signed by another key", "", func(b *Bundle) {
		other, _ := DeriveKeys([]byte("another installation's key......"))
		b.PublicKey = "AAAA" + b.PublicKey[4:]
		_ = other
	})
	test("not a bundle", "not an evidence bundle", func(b *Bundle) { b.Format = "x" })
}

// TestForgedAnchorWithoutWitness: the anchor's own signature is checked,
// also where no witness is there to compare with.
func TestForgedAnchorWithoutWitness(t *testing.T) {
	f := fill(t)
	ctx := context.Background()
	f.st.DB.ExecContext(ctx, `DELETE FROM audit_events WHERE seq<=10`)
	f.st.DB.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE seq<=10`)
	f.st.DB.ExecContext(ctx, `INSERT INTO audit_anchor (id, n, seq, count, at, hash, mac, prev, sig) SELECT 1, n, seq, count, at, hash, mac, prev, zeroblob(64) FROM audit_checkpoints WHERE seq=20`)
	f.st.DB.ExecContext(ctx, `UPDATE audit_anchor SET n=1, seq=10, count=10, prev=NULL, hash=(SELECT prev FROM audit_events WHERE seq=11)`)
	v := f.verifier()
	v.WitnessFile = ""
	if r, err := v.Verify(ctx, f.st); err != nil || r.OK() || !strings.Contains(r.Why, "not a checkpoint signed by the installation") {
		t.Fatalf("%+v %v", r, err)
	}
}

// TestRecorderKeepsWhatTheStoreRefuses: an append the store refuses is
// kept in the pending file and appended, in order, once it accepts again;
// with no pending file the error reaches the caller.
func TestRecorderKeepsWhatTheStoreRefuses(t *testing.T) {
	f := fill(t)
	ctx := context.Background()
	f.st.DB.ExecContext(ctx, `CREATE TRIGGER refuse BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'injected'); END`)
	r := &Recorder{Store: f.st}
	if err := r.Record(ctx, &store.AuditEvent{At: f.now, Actor: "a", Action: "x.one"}); err == nil {
		t.Fatal("a refused append reported as recorded")
	}
	r.PendingFile = filepath.Join(t.TempDir(), "pending")
	for _, a := range []string{"x.one", "x.two"} {
		if err := r.Record(ctx, &store.AuditEvent{At: f.now, Actor: "a", Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err == nil {
		t.Fatal("flush into a refusing store succeeded")
	}
	f.st.DB.ExecContext(ctx, `DROP TRIGGER refuse`)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, _ := f.st.AuditEvents(ctx, "", 100)
	if len(evs) != 22 || evs[20].Action != "x.one" || evs[21].Action != "x.two" {
		t.Fatalf("%d events", len(evs))
	}
	if b, _ := os.ReadFile(r.PendingFile); len(b) != 0 {
		t.Fatalf("pending file still holds %q", b)
	}
}

// TestCheckpointCountChecked: a checkpoint (even one signed with the key,
// as a faulty writer could) whose count does not match the events it
// covers is refused.
func TestCheckpointCountChecked(t *testing.T) {
	f := fill(t)
	ctx := context.Background()
	cps, _ := f.st.AuditCheckpoints(ctx)
	c := cps[1]
	c.Count = 9
	c.Sig = ed25519.Sign(f.keys.Sign, signedBytes(c))
	f.st.DB.ExecContext(ctx, `UPDATE audit_checkpoints SET count=?, sig=? WHERE seq=?`, c.Count, c.Sig, c.Seq)
	v := f.verifier()
	v.WitnessFile = ""
	if r, err := v.Verify(ctx, f.st); err != nil || r.OK() || !strings.Contains(r.Why, "counts 9 events") {
		t.Fatalf("%+v %v", r, err)
	}
}

// Link's fast path must compute exactly what the verifier's reference
// (links, over Fields, salt, Commitment, Digest, ChainHash) computes, for
// events of every shape: a difference would make every new event fail
// verification, or worse, verify under a different rule than documented.
func TestLinkMatchesReference(t *testing.T) {
	k, err := DeriveKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	c := Chain{Keys: k}
	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	var head store.AuditHead
	for i := range 500 {
		e := &store.AuditEvent{Seq: int64(i + 1), At: time.UnixMilli(rng.Int64N(1 << 45)), Actor: str(), Action: str(), Object: str(), IP: str(), UA: str(), Detail: str()}
		for range rng.IntN(4) {
			e.Addrs = append(e.Addrs, str())
		}
		wantH, wantM := c.links(head.Hash, head.MAC, e)
		c.Link(head, e)
		if !bytes.Equal(e.Hash, wantH) || !bytes.Equal(e.MAC, wantM) {
			t.Fatalf("event %d: Link gives %x/%x, reference %x/%x", i, e.Hash, e.MAC, wantH, wantM)
		}
		head = store.AuditHead{Seq: e.Seq, Hash: e.Hash, MAC: e.MAC}
	}
}
