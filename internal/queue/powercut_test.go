package queue

import (
	"context"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sealpost/internal/fsx"
)

// The power-cut tests run the queue's spool on fsx.Fault, which at a
// simulated power cut forgets every write and every directory entry not
// yet fsynced. The store is SQLite in WAL mode with synchronous=FULL,
// whose commits survive a power cut by SQLite's own guarantee, so its file
// is left as it is at the cut. Each test loops accept → cut → recover and
// checks that every message whose Accept returned nil (the 250) is in the
// queue after recovery, reads back intact, and is delivered.
//
// Mutations tried by hand, each making these tests fail (see
// docs/operations.md, "Spool: disk bound and durability"): removing the
// segment fsync, the segment directory fsync, the large file's fsync
// before linking, the q/ directory fsync, the fsync of the copy made where
// /proc is missing, and the fsync of compaction's copies before their rows
// move.

type accepted struct {
	mu    sync.Mutex
	sums  map[string][32]byte
	large int // over InlineMax
}

func (a *accepted) add(id string, body []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sums[id] = sha256.Sum256(body)
	if len(body) > InlineMax {
		a.large++
	}
}

// sizes picks message sizes: segment records, files of their own, or both.
type sizes func(r *mrand.Rand) int

func smallSizes(r *mrand.Rand) int { return 200 + r.IntN(40<<10) }
func largeSizes(r *mrand.Rand) int { return InlineMax + 1 + r.IntN(300<<10) }
func mixedSizes(r *mrand.Rand) int {
	if r.IntN(4) == 0 {
		return largeSizes(r)
	}
	return smallSizes(r)
}

func body(r *mrand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// powerCutRounds runs rounds of concurrent accepts, each ended by a power
// cut (in the middle of accepts in odd rounds, after the last one returned
// in even rounds), then recovers and checks every accepted message.
func powerCutRounds(t *testing.T, ff *fsx.Fault, size sizes, rounds int) *accepted {
	dir := memDir(t)
	acc := &accepted{sums: map[string][32]byte{}}
	r := mrand.New(mrand.NewPCG(1, 2))
	for round := 0; round < rounds; round++ {
		tq := newTestQueue(t, dir, SpoolOptions{FS: ff, SegmentMax: 1 << 20}, 0)
		var ok atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < 6; g++ {
			wg.Add(1)
			gr := mrand.New(mrand.NewPCG(uint64(round), uint64(g)))
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if round%2 == 0 && i >= 4 {
						return // a quiet cut: every accept has returned
					}
					id := NewID()
					b := body(gr, size(gr))
					if tq.accept(id, "staff@example.test", b) == nil {
						acc.add(id, b)
						ok.Add(1)
					}
				}
			}()
		}
		if round%2 == 1 {
			want := int64(3 + r.IntN(20))
			waitFor(t, 60*time.Second, fmt.Sprintf("%d accepted messages", want), func() bool { return ok.Load() >= want })
		} else {
			wg.Wait()
		}
		ff.PowerCut()
		close(stop)
		wg.Wait()
		tq.stop()
		ff.Restore()
		checkAccepted(t, dir, ff, acc, false)
	}
	checkAccepted(t, dir, ff, acc, true)
	t.Logf("%d rounds, %d messages accepted (%d over 256 KiB), %d fsyncs, %d directory fsyncs", rounds, len(acc.sums), acc.large, ff.Syncs, ff.DirSyncs)
	if len(acc.sums) < rounds {
		t.Fatalf("only %d messages accepted in %d rounds: the test proves nothing", len(acc.sums), rounds)
	}
	return acc
}

// mustLarge fails unless messages over InlineMax were accepted.
func mustLarge(t *testing.T, acc *accepted) {
	if acc.large == 0 {
		t.Fatal("no message over 256 KiB was accepted: the large-message path failed or was not tried")
	}
}

// checkAccepted recovers the queue on what survived and checks that every
// accepted message is queued and intact; with deliver, that each is
// delivered with the bytes that were accepted.
func checkAccepted(t *testing.T, dir string, ff *fsx.Fault, acc *accepted, deliver bool) {
	t.Helper()
	workers := 0
	if deliver {
		workers = 4
	}
	tq := newTestQueue(t, dir, SpoolOptions{FS: ff, SegmentMax: 1 << 20}, workers)
	defer tq.stop()
	ctx := context.Background()
	queued, err := tq.st.QueuedSpool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	acc.mu.Lock()
	defer acc.mu.Unlock()
	for id, sum := range acc.sums {
		loc, ok := queued[id]
		if !ok {
			t.Fatalf("message %s was accepted (250) but is not in the queue after the power cut", id)
		}
		m, err := tq.sp.Open(id, loc)
		if err != nil {
			t.Fatalf("message %s was accepted (250) but is lost after the power cut: %v", id, err)
		}
		h := sha256.New()
		_, err = h.Write(mustRead(t, m))
		m.Close()
		if err != nil || [32]byte(h.Sum(nil)) != sum {
			t.Fatalf("message %s reads back changed after the power cut", id)
		}
	}
	if !deliver {
		return
	}
	tq.ft.all.Store(true)
	for id := range acc.sums {
		if _, err := tq.st.RetryNow(ctx, id, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	tq.Kick()
	waitFor(t, 30*time.Second, fmt.Sprintf("delivery of %d messages", len(acc.sums)), func() bool {
		for id := range acc.sums {
			if _, ok := tq.ft.got(id); !ok {
				return false
			}
		}
		return true
	})
	for id, sum := range acc.sums {
		if got, _ := tq.ft.got(id); got != sum {
			t.Fatalf("message %s delivered with other bytes than were accepted", id)
		}
	}
}

func mustRead(t *testing.T, m *Message) []byte {
	b := make([]byte, m.Size())
	if _, err := m.ReadAt(b, 0); err != nil && m.Size() > 0 {
		t.Fatalf("reading: %v", err)
	}
	return b
}

// TestPowerCutSegments: messages in segments (up to InlineMax sealed).
func TestPowerCutSegments(t *testing.T) {
	powerCutRounds(t, fsx.NewFault(), smallSizes, 12)
}

// TestPowerCutLargeMessages: messages over 256 KiB, each a file of its own
// made with O_TMPFILE and linked into q/.
func TestPowerCutLargeMessages(t *testing.T) {
	mustLarge(t, powerCutRounds(t, fsx.NewFault(), largeSizes, 8))
}

// TestPowerCutNoTmpfile: where O_TMPFILE is missing, tmp/ and rename.
func TestPowerCutNoTmpfile(t *testing.T) {
	ff := fsx.NewFault()
	ff.NoUnnamed = true
	mustLarge(t, powerCutRounds(t, ff, mixedSizes, 8))
}

// TestPowerCutNoProc: where /proc is missing, the unnamed inode cannot be
// linked; its bytes are copied to tmp/ and renamed, and the message is
// accepted, not refused.
func TestPowerCutNoProc(t *testing.T) {
	ff := fsx.NewFault()
	ff.NoProc = true
	mustLarge(t, powerCutRounds(t, ff, mixedSizes, 8))
}

// TestPowerCutChaos: the same with a file system that keeps each unsynced
// change by chance (as a journaling file system may), over both paths.
func TestPowerCutChaos(t *testing.T) {
	ff := fsx.NewFault()
	ff.Chaos = mrand.New(mrand.NewPCG(5, 6))
	mustLarge(t, powerCutRounds(t, ff, mixedSizes, 10))
}
