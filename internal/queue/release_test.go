package queue

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sealpost/internal/fsx"
	"sealpost/internal/seal"
	"sealpost/internal/store"
)

// TestDeletedMailUnrecoverable: once a message is deleted, its row holds no
// key and its sealed bytes in the segment are zeros, so neither the disk
// nor a copy of the database with the installation key gives it back.
func TestDeletedMailUnrecoverable(t *testing.T) {
	dir := t.TempDir()
	tq := newTestQueue(t, dir, SpoolOptions{}, 1)
	defer tq.stop()
	ctx := context.Background()
	secret := bytes.Repeat([]byte("the minister's private address is 1 Example Street\r\n"), 200)
	id := NewID()
	if err := tq.accept(id, "defer@example.test", secret); err != nil {
		t.Fatal(err)
	}
	keep := NewID() // a neighbour that stays
	if err := tq.accept(keep, "defer@example.test", secret); err != nil {
		t.Fatal(err)
	}
	m, err := tq.st.Message(ctx, id)
	if err != nil || len(m.Spool.Key) == 0 || m.Spool.Seg == 0 {
		t.Fatalf("message row %+v, %v: want a wrapped key and a segment", m, err)
	}
	loc := m.Spool
	seg, _ := os.ReadFile(tq.sp.segPath(loc.Seg))
	sealed := bytes.Clone(seg[loc.Off : loc.Off+loc.Len])
	if bytes.Contains(seg, []byte("minister")) {
		t.Fatal("plaintext in the segment")
	}
	waitFor(t, 10*time.Second, "the first attempt", func() bool {
		rs, _ := tq.st.Recipients(ctx, id)
		return len(rs) == 1 && rs[0].Attempts > 0
	})
	if ok, err := tq.DeleteQueued(ctx, id); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	m, _ = tq.st.Message(ctx, id)
	if m.State != "done" || m.Spool.Key != nil {
		t.Fatalf("deleted message: state %s, key %x: the key must be gone", m.State, m.Spool.Key)
	}
	seg, _ = os.ReadFile(tq.sp.segPath(loc.Seg))
	if !bytes.Equal(seg[loc.Off:loc.Off+loc.Len], make([]byte, loc.Len)) {
		t.Fatal("the deleted message's sealed bytes are still in the segment")
	}
	// Even the old bytes (a copy of the disk taken before) do not open
	// without the row's key: the installation key alone is not enough.
	if _, err := seal.NewReaderAt(bytes.NewReader(sealed), loc.Len, tq.sp.key, []byte(id)); err == nil {
		t.Fatal("the installation key opens a message sealed under its own key")
	}
	if _, err := tq.sp.Open(id, m.Spool); err == nil {
		t.Fatal("a deleted message still opens")
	}
	// The neighbour is untouched.
	km, _ := tq.st.Message(ctx, keep)
	r, err := tq.sp.Open(keep, km.Spool)
	if err != nil {
		t.Fatalf("neighbour lost: %v", err)
	}
	if !bytes.Equal(mustRead(t, r), secret) {
		t.Fatal("neighbour changed")
	}
	r.Close()
}

// TestLegacySpoolReadable: rows written before per-message keys (no key,
// bytes sealed under the installation key) still open after an upgrade.
func TestLegacySpoolReadable(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, 32)
	body := make([]byte, 5000)
	rand.Read(body)
	var sealed bytes.Buffer
	w, _ := seal.NewWriter(&sealed, key, []byte("old1"))
	w.Write(body)
	w.Close()
	// The old layout: a segment file with the record at offset 0, and a
	// large message in a file of its own.
	os.MkdirAll(filepath.Join(dir, "seg"), 0o700)
	os.MkdirAll(filepath.Join(dir, "q"), 0o700)
	os.WriteFile(filepath.Join(dir, "seg", "000000000001"), sealed.Bytes(), 0o600)
	var big bytes.Buffer
	w, _ = seal.NewWriter(&big, key, []byte("old2"))
	w.Write(bytes.Repeat(body, 60))
	w.Close()
	os.WriteFile(filepath.Join(dir, "q", "old2"), big.Bytes(), 0o600)
	sp, err := OpenSpoolWith(dir, key, SpoolOptions{FS: fsx.OS{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	locs := map[string]store.SpoolLoc{"old1": {Seg: 1, Len: int64(sealed.Len())}, "old2": {Len: int64(big.Len())}}
	if _, err := sp.Recover(locs); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string][]byte{"old1": body, "old2": bytes.Repeat(body, 60)} {
		m, err := sp.Open(id, locs[id])
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if !bytes.Equal(mustRead(t, m), want) {
			t.Fatalf("%s reads back wrong", id)
		}
		m.Close()
	}
}

// TestNoProcFallsBackToRename: on a real file system, where /proc is
// missing from the start, or vanishes between creating an O_TMPFILE inode
// and linking it, a large message is still accepted (copied to tmp/,
// fsynced, renamed), never refused with 452.
func TestNoProcFallsBackToRename(t *testing.T) {
	big := make([]byte, InlineMax+5000)
	rand.Read(big)
	t.Run("missing", func(t *testing.T) {
		sp, err := OpenSpoolWith(t.TempDir(), bytes.Repeat([]byte{7}, 32), SpoolOptions{FS: fsx.OS{ProcFD: "/nonexistent/fd"}})
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		loc := put(t, sp, "m1", big)
		if !bytes.Equal(read(t, sp, "m1", loc), big) {
			t.Fatal("read back wrong")
		}
	})
	t.Run("vanishes", func(t *testing.T) {
		proc := filepath.Join(t.TempDir(), "fd")
		if err := os.Symlink("/proc/self/fd", proc); err != nil {
			t.Fatal(err)
		}
		sp, err := OpenSpoolWith(t.TempDir(), bytes.Repeat([]byte{7}, 32), SpoolOptions{FS: fsx.OS{ProcFD: proc}})
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		w, err := sp.Create("m2")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(big)
		if !w.unnamed {
			// No /proc or no O_TMPFILE on this machine: the "missing" case
			// above is then what happens here anyway.
			if os.Getenv("SEALPOST_REQUIRE_TOOLS") == "1" {
				t.Fatal("the test needs /proc and a file system with O_TMPFILE (tmpfs, ext4, xfs, btrfs)")
			}
			t.Skip("no O_TMPFILE here")
		}
		os.Remove(proc) // /proc goes away before the link
		loc, d, err := w.Commit()
		if err != nil {
			t.Fatalf("refused where it should fall back to tmp/ and rename: %v", err)
		}
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(read(t, sp, "m2", loc), big) {
			t.Fatal("read back wrong")
		}
		if !sp.noTmpfile.Load() {
			t.Fatal("later messages should go to tmp/ directly")
		}
	})
}

// TestQuarantineDeleteFreesAtOnce: deleting a quarantined message (the
// console's, the API's and the hold pages' path, Queue.Resolve) frees its
// spool space and erases its key at once, for a large message (its own
// file) and a small one (a segment record).
func TestQuarantineDeleteFreesAtOnce(t *testing.T) {
	dir := t.TempDir()
	tq := newTestQueue(t, dir, SpoolOptions{}, 1)
	defer tq.stop()
	ctx := context.Background()
	for _, size := range []int{2000, InlineMax + 1000} {
		id := NewID()
		w, err := tq.sp.Create(id)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(make([]byte, size))
		env := &Envelope{ID: id, Direction: "out", MailFrom: "staff@example.test", Rcpts: []string{"x@outside.example"},
			Plan:     map[string]RcptPlan{"x@outside.example": {Status: "quarantined"}},
			Decision: &store.Decision{MsgID: id, CreatedAt: time.Now(), State: "quarantined", Outcome: "quarantine"}}
		if err := tq.Accept(ctx, env, w); err != nil {
			t.Fatal(err)
		}
		if live, _ := tq.sp.Usage(); live == 0 || tq.sp.Live() != 1 {
			t.Fatalf("quarantined message not held: live %d bytes", live)
		}
		if _, err := tq.Resolve(ctx, id, false, "deleted", "admin:test", "test"); err != nil {
			t.Fatal(err)
		}
		if live, _ := tq.sp.Usage(); live != 0 || tq.sp.Live() != 0 {
			t.Fatalf("size %d: quarantine delete left %d bytes live in the spool", size, live)
		}
		if names, _ := os.ReadDir(filepath.Join(dir, "spool", "q")); len(names) != 0 {
			t.Fatalf("size %d: file kept after quarantine delete: %v", size, names)
		}
		if m, _ := tq.st.Message(ctx, id); m.State != "done" || m.Spool.Key != nil {
			t.Fatalf("size %d: row after delete: state %s, key kept %v", size, m.State, m.Spool.Key != nil)
		}
	}
}

// TestReleaseBehindTheQueuesBack: a message finished by another process
// writing the store (the CLI on the same data directory) has its space
// released at the next reconcile.
func TestReleaseBehindTheQueuesBack(t *testing.T) {
	dir := t.TempDir()
	tq := newTestQueue(t, dir, SpoolOptions{}, 1)
	defer tq.stop()
	ctx := context.Background()
	id := NewID()
	if err := tq.accept(id, "defer@example.test", make([]byte, InlineMax+100)); err != nil {
		t.Fatal(err)
	}
	if ok, err := tq.st.DeleteQueued(ctx, id, time.Now()); !ok || err != nil {
		t.Fatalf("%v %v", ok, err)
	}
	if err := tq.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if live, total := tq.sp.Usage(); live != 0 || total != 0 {
		t.Fatalf("after reconcile: %d live, %d total", live, total)
	}
}

// TestCompactionAtStart: segments left mostly dead by a previous run are
// compacted when the queue starts, without waiting for traffic.
func TestCompactionAtStart(t *testing.T) {
	const segMax = 64 << 10
	dir := t.TempDir()
	tq := newTestQueue(t, dir, SpoolOptions{SegmentMax: segMax}, 2, func(q *Queue) { q.noCompact = true })
	for i := 0; i < 40; i++ {
		rcpt := "staff@example.test"
		if i%10 == 0 {
			rcpt = "defer@example.test"
		}
		if err := tq.accept(NewID(), rcpt, make([]byte, 6000)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "deliveries", func() bool { return tq.sp.Live() == 4 })
	live, total := tq.sp.Usage()
	tq.stop()
	if total < live+2*segMax {
		t.Fatalf("setup: %d total for %d live: nothing to compact", total, live)
	}
	tq = newTestQueue(t, dir, SpoolOptions{SegmentMax: segMax}, 0)
	defer tq.stop()
	waitFor(t, 10*time.Second, "compaction at start", func() bool {
		live, total := tq.sp.Usage()
		return total <= live+segMax
	})
}
