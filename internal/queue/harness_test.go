package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sealpost/internal/audit"
	"sealpost/internal/fsx"
	"sealpost/internal/metrics"
	"sealpost/internal/store"
)

// fakeTransport delivers every recipient at once, except those whose
// address starts with "defer", which fail temporarily. It records the
// SHA-256 of what it delivered, per message id.
type fakeTransport struct {
	mu        sync.Mutex
	delivered map[string][32]byte
	all       atomic.Bool // the deferred recipients are reachable now
}

func (ft *fakeTransport) Deliver(_ context.Context, d *Delivery) Attempt {
	var att Attempt
	h := sha256.New()
	_, err := io.Copy(h, io.NewSectionReader(d.Body, 0, d.Size))
	ok := true
	for _, r := range d.Rcpts {
		if (strings.HasPrefix(r, "defer") && !ft.all.Load()) || err != nil {
			ok = false
		}
	}
	for range d.Rcpts {
		if ok {
			att.Rcpts = append(att.Rcpts, RcptResult{OK: true, Text: "250 ok"})
		} else {
			att.Rcpts = append(att.Rcpts, RcptResult{Text: "451 try later"})
		}
	}
	if ok {
		ft.mu.Lock()
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		ft.delivered[d.Msg.ID] = sum
		ft.mu.Unlock()
	}
	return att
}

func (ft *fakeTransport) got(id string) ([32]byte, bool) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	s, ok := ft.delivered[id]
	return s, ok
}

// testQueue is a queue on a real store in dir/db and a spool opened with o.
type testQueue struct {
	*Queue
	st     *store.Store
	c      *store.Committer
	sp     *Spool
	ft     *fakeTransport
	cancel context.CancelFunc
	m      *metrics.Metrics
}

func newTestQueue(t *testing.T, dir string, o SpoolOptions, workers int, before ...func(*Queue)) *testQueue {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(dir, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	// Accepts and results append audit events, which need the key.
	keys, err := audit.DeriveKeys(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	st.SetAuditChain(audit.Chain{Keys: keys})
	spoolDir := filepath.Join(dir, "spool")
	if _, ok := o.FS.(*fsx.Fault); ok {
		spoolDir = "/fault/spool" // the same in a Fault's clones, wherever the store is
	}
	sp, err := OpenSpoolWith(spoolDir, bytes.Repeat([]byte{7}, 32), o)
	if err != nil {
		t.Fatal(err)
	}
	c := store.NewCommitter(st, 64)
	ft := &fakeTransport{delivered: map[string][32]byte{}}
	m := metrics.New()
	q := New(Options{Hostname: "gw.test", Workers: workers, RetryInitial: time.Hour, RetryMax: time.Hour, MaxAge: 24 * time.Hour,
		PollInterval: time.Hour, KeepDelivered: time.Hour}, st, c, sp, func(string) string { return RouteMailHost },
		map[string]Transport{RouteMailHost: ft}, slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	for _, f := range before {
		f(q)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tq := &testQueue{Queue: q, st: st, c: c, sp: sp, ft: ft, cancel: cancel, m: m}
	return tq
}

// stop stops the queue and closes what it opened (a clean stop, or, after a
// Fault power cut, what is left of the process).
func (tq *testQueue) stop() {
	tq.cancel()
	tq.Wait()
	tq.c.Close()
	tq.st.Close()
	tq.sp.Close()
}

// accept spools body for rcpt and accepts it.
func (tq *testQueue) accept(id, rcpt string, body []byte) error {
	w, err := tq.sp.Create(id)
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		w.Abort()
		return err
	}
	return tq.Accept(context.Background(), &Envelope{ID: id, Direction: "in", MailFrom: "", Rcpts: []string{rcpt}}, w)
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
