package queue

import (
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// diskUsage is what the files under dir take on disk (blocks) and their
// apparent size.
func diskUsage(dir string) (blocks, apparent int64) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			apparent += info.Size()
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				blocks += st.Blocks * 512
			}
		}
		return nil
	})
	return blocks, apparent
}

// TestSpoolBoundUnderSoak passes more than 500 MB through a queue whose
// spool segments are 4 MiB while messages spread over the whole run stay
// deferred. Before compaction, each deferred message kept its segment alive
// (one 1.2 KB message, a whole segment); now the spool's files stay within
// live + 3 × SegmentMax throughout, by the spool's own count and on disk,
// and deleting the deferred messages frees their space at once.
func TestSpoolBoundUnderSoak(t *testing.T) {
	const segMax = 4 << 20
	const bound = 3 * segMax
	const slack = 2 << 20 // writes in flight between two samples
	dir := memDir(t)
	tq := newTestQueue(t, dir, SpoolOptions{SegmentMax: segMax}, 32)
	defer tq.stop()
	spoolDir := filepath.Join(dir, "spool")

	small := make([]byte, 48<<10)
	big := make([]byte, 400<<10) // over InlineMax: a file of its own
	rand.Read(small)
	rand.Read(big)

	var through atomic.Int64
	var seq atomic.Int64
	var deferred sync.Map // id -> sealed size
	var worst atomic.Int64
	stop := make(chan struct{})
	var fail atomic.Value
	sampler := make(chan struct{})
	go func() {
		defer close(sampler)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			live0, total := tq.sp.Usage()
			if total > live0+bound {
				fail.Store(fmt.Sprintf("spool files %d bytes with %d live: over live + 3 × SegmentMax", total, live0))
			}
			blocks, _ := diskUsage(spoolDir)
			live1, _ := tq.sp.Usage()
			if over := blocks - max(live0, live1); over > worst.Load() {
				worst.Store(over)
			}
			if blocks > max(live0, live1)+bound+slack {
				fail.Store(fmt.Sprintf("spool takes %d bytes on disk with %d live: over live + 3 × SegmentMax", blocks, max(live0, live1)))
			}
		}
	}()

	target := int64(520 << 20)
	if s := os.Getenv("SOAK_MB"); s != "" {
		fmt.Sscan(s, &target)
		target <<= 20
	}
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for through.Load() < target && fail.Load() == nil {
				i := seq.Add(1)
				id := NewID()
				body, rcpt := small, "staff@example.test"
				if i%50 == 0 {
					body = big
				}
				if i%400 == 7 || i == 1000 { // 1000: a large one
					rcpt = "defer@example.test"
				}
				if err := tq.accept(id, rcpt, body); err != nil {
					fail.Store("accept: " + err.Error())
					return
				}
				through.Add(int64(len(body)))
				if rcpt != "staff@example.test" {
					deferred.Store(id, true)
				}
			}
		}()
	}
	wg.Wait()
	// Let the deliveries finish.
	t.Logf("accepted in %v", time.Since(start))
	waitFor(t, 60*time.Second, "deliveries", func() bool {
		n := 0
		deferred.Range(func(any, any) bool { n++; return true })
		return tq.sp.Live() == int64(n)
	})
	t.Logf("delivered in %v", time.Since(start))
	close(stop)
	<-sampler
	if f := fail.Load(); f != nil {
		t.Fatal(f)
	}
	if err := tq.CompactNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	live, total := tq.sp.Usage()
	n := 0
	deferred.Range(func(any, any) bool { n++; return true })
	t.Logf("%d MB through in %d messages; %d deferred hold %d bytes; spool files %d bytes; worst on-disk excess over live %d bytes",
		through.Load()>>20, seq.Load(), n, live, total, worst.Load())
	if total > live+2*segMax {
		t.Fatalf("after compaction the spool holds %d bytes for %d live: over live + 2 × SegmentMax", total, live)
	}
	if g := gauge(t, tq, "sealpost_spool_bytes_live"); int64(g) != live {
		t.Fatalf("sealpost_spool_bytes_live %v, spool says %d", g, live)
	}
	if g := gauge(t, tq, "sealpost_spool_bytes_total"); int64(g) != total {
		t.Fatalf("sealpost_spool_bytes_total %v, spool says %d", g, total)
	}

	// Deleting frees at once: the live bytes, the large file, the blocks.
	before, _ := diskUsage(spoolDir)
	deferred.Range(func(k, _ any) bool {
		if ok, err := tq.DeleteQueued(context.Background(), k.(string)); !ok || err != nil {
			t.Fatalf("delete %s: %v %v", k, ok, err)
		}
		return true
	})
	live, total = tq.sp.Usage()
	after, _ := diskUsage(spoolDir)
	if live != 0 {
		t.Fatalf("%d bytes live after deleting every queued message", live)
	}
	if names, _ := os.ReadDir(filepath.Join(spoolDir, "q")); len(names) != 0 {
		t.Fatalf("large message file kept after delete: %v", names)
	}
	if before-after < int64(len(big)) {
		t.Fatalf("delete freed %d bytes on disk (had %d, now %d)", before-after, before, after)
	}
	if total > segMax || after > segMax {
		t.Fatalf("after deleting everything the spool keeps %d bytes (%d on disk)", total, after)
	}
}

// gauge reads a gauge from the queue's metrics registry, as a scrape does.
func gauge(t *testing.T, tq *testQueue, name string) float64 {
	t.Helper()
	mfs, err := tq.m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not exported", name)
	return 0
}

// memDir is a temporary directory in memory (/dev/shm) where there is one:
// the soak measures the spool's accounting and blocks, not the disk's
// fsync latency, which on a shared test machine would make 500 MB take
// minutes. Durability is the power-cut tests' business.
func memDir(t *testing.T) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "sealpost-soak-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}
