package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"
)

// hashChain is a stand-in AuditChain: H = SHA-256(prev H || action), MAC = H.
type hashChain struct{}

func (hashChain) Link(head AuditHead, e *AuditEvent) {
	h := sha256.Sum256(append(append([]byte(nil), head.Hash...), e.Action...))
	e.Hash, e.MAC = h[:], h[:]
}

// Events appended inside Committer ops are written with their ops' rows,
// in one chain without gaps or forks, however the ops were batched.
func TestCommitterWritesAuditEventsWithRows(t *testing.T) {
	t.Parallel()
	s, c := open(t)
	s.SetAuditChain(hashChain{})
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	const n = 150 // more than one batch of 16, and chunks of 64, 16, 4 and 1
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("m%03d", i)
			errs <- c.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
				m := &Message{ID: id, Direction: "out", MailFrom: "a@x.example", ReceivedAt: now, Size: 10}
				if err := s.InsertMessage(ctx, tx, m, []Recipient{{Rcpt: "r@y.example", Route: "outbound", NextAttempt: now}}); err != nil {
					return err
				}
				if err := s.AppendAuditTx(ctx, tx, &AuditEvent{At: now, Actor: "t", Action: "received " + id, Object: id}); err != nil {
					return err
				}
				return s.AppendAuditTx(ctx, tx, &AuditEvent{At: now, Actor: "t", Action: "decision " + id, Object: id})
			}, "", nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.AuditEvents(ctx, "", 10*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2*n {
		t.Fatalf("%d audit events for %d ops of two; want %d", len(evs), n, 2*n)
	}
	var prev []byte
	for i, e := range evs {
		if e.Seq != int64(i+1) || !bytes.Equal(e.Prev, prev) {
			t.Fatalf("event %d: seq %d prev %x; want seq %d prev %x", i, e.Seq, e.Prev, i+1, prev)
		}
		want := sha256.Sum256(append(append([]byte(nil), prev...), e.Action...))
		if !bytes.Equal(e.Hash, want[:]) {
			t.Fatalf("event %d not linked to the one before it", e.Seq)
		}
		prev = e.Hash
	}
	// Each message's two events are adjacent (one op's appends are not
	// interleaved with another's).
	for i := 0; i < len(evs); i += 2 {
		if evs[i].Object != evs[i+1].Object {
			t.Fatalf("events %d and %d belong to %s and %s", i+1, i+2, evs[i].Object, evs[i+1].Object)
		}
	}
}

// An audit row that cannot be written fails the whole batch: the ops' rows
// are rolled back with it and every op gets the error, so nothing is
// acknowledged without its audit events.
func TestCommitterAuditWriteFailureFailsBatch(t *testing.T) {
	t.Parallel()
	s, c := open(t)
	s.SetAuditChain(hashChain{})
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	err := c.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		m := &Message{ID: "m1", Direction: "out", MailFrom: "a@x.example", ReceivedAt: now, Size: 10}
		if err := s.InsertMessage(ctx, tx, m, []Recipient{{Rcpt: "r@y.example", Route: "outbound", NextAttempt: now}}); err != nil {
			return err
		}
		if err := s.AppendAuditTx(ctx, tx, &AuditEvent{At: now, Actor: "t", Action: "received", Object: "m1"}); err != nil {
			return err
		}
		// Something else takes seq 1 inside the transaction: the batched
		// insert at commit must then fail.
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_events (seq, at, actor, action, object) VALUES (1, 0, 'x', 'x', 'x')`)
		return err
	}, "", nil)
	if err == nil {
		t.Fatal("batch committed although its audit rows could not be written")
	}
	if n, _ := s.QueueDepth(ctx); n != 0 {
		t.Fatalf("queue depth %d after a failed batch; want its rows rolled back", n)
	}
	if evs, _ := s.AuditEvents(ctx, "", 10); len(evs) != 0 {
		t.Fatalf("%d audit events after a failed batch", len(evs))
	}
}
