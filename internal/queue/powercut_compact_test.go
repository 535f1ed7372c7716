package queue

import (
	"context"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sealpost/internal/fsx"
)

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	names, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range names {
		if e.IsDir() {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(dst, src)
		src.Close()
		dst.Close()
	}
}

// TestPowerCutCompaction cuts the power at every file operation of a
// compaction in turn (and, with chaos, lets each unsynced change survive
// or not by chance), then recovers: every deferred message the compaction
// was moving must be in the queue, intact, and delivered.
func TestPowerCutCompaction(t *testing.T) {
	base := memDir(t)
	ff := fsx.NewFault()
	acc := &accepted{sums: map[string][32]byte{}}
	tq := newTestQueue(t, base, SpoolOptions{FS: ff, SegmentMax: 128 << 10}, 4, func(q *Queue) { q.noCompact = true })
	r := mrand.New(mrand.NewPCG(3, 4))
	deferred := 0
	for i := 0; i < 60; i++ {
		id, rcpt := NewID(), "staff@example.test"
		if i%8 == 0 {
			rcpt = "defer@example.test"
			deferred++
		}
		b := body(r, 3000+r.IntN(9000))
		if err := tq.accept(id, rcpt, b); err != nil {
			t.Fatal(err)
		}
		if rcpt != "staff@example.test" {
			acc.add(id, b)
		}
	}
	waitFor(t, 20*time.Second, "deliveries", func() bool { return tq.sp.Live() == int64(deferred) })
	tq.stop()

	trials, cuts := 0, 0
	for cutAt := 1; ; cutAt++ {
		for _, seed := range []int64{0, 1, 2} {
			trials++
			dir := memDir(t)
			copyDir(t, base, dir)
			tf := ff.Clone()
			if seed > 0 {
				tf.Chaos = mrand.New(mrand.NewPCG(uint64(seed), uint64(cutAt)))
			}
			tq := newTestQueue(t, dir, SpoolOptions{FS: tf, SegmentMax: 128 << 10}, 0, func(q *Queue) { q.noCompact = true })
			tq.compactMu.Lock()
			tf.CutAt = tf.Ops + cutAt
			tq.noCompact = false
			tq.compactMu.Unlock()
			err := tq.CompactNow(context.Background())
			cut := tf.Cut() // before a PowerCut of our own, which sets it too
			if !cut {
				if err != nil {
					t.Fatalf("compaction without a cut failed: %v", err)
				}
				tf.PowerCut() // and cut anyway, after it finished
			}
			tq.stop()
			tf.Restore()
			tf.Chaos = nil
			checkAccepted(t, dir, tf, acc, cutAt%5 == 0 || !cut)
			if !cut {
				if seed == 0 {
					t.Logf("%d trials; the compaction did %d file operations", trials, cutAt-1)
					if cutAt < 5 {
						t.Fatal("nothing was compacted")
					}
					return
				}
			} else {
				cuts++
			}
		}
	}
}
