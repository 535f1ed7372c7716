package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T) (*Store, *Committer) {
	t.Helper()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	c := NewCommitter(s, 16)
	t.Cleanup(func() { c.Close(); s.Close() })
	return s, c
}

func TestQueueLifecycle(t *testing.T) {
	s, c := open(t)
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	m := &Message{ID: "m1", Direction: "out", MailFrom: "a@x.example", ReceivedAt: now, Size: 10}
	rcpts := []Recipient{{Rcpt: "r1@y.example", Route: "outbound", NextAttempt: now}, {Rcpt: "r2@y.example", Route: "outbound", NextAttempt: now, LeaseUntil: now.Add(time.Hour)}}
	if err := c.Do(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.InsertMessage(ctx, tx, m, rcpts) }, "", nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.QueueDepth(ctx); n != 2 {
		t.Fatalf("depth %d", n)
	}
	// Only the unleased recipient is due; leasing it hides it from the next poll.
	due, err := s.LeaseDue(ctx, now, time.Minute, 10)
	if err != nil || len(due) != 1 || due[0].Rcpt != "r1@y.example" {
		t.Fatalf("due %v %v", due, err)
	}
	if due, _ := s.LeaseDue(ctx, now, time.Minute, 10); len(due) != 0 {
		t.Fatalf("leased recipient due again: %v", due)
	}
	// A temporary failure, then delivery of both: the message is done.
	var done []string
	apply := func(rs ...Result) {
		t.Helper()
		if err := c.Do(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
			done, err = s.ApplyResults(ctx, tx, now, rs)
			return err
		}, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	apply(Result{MsgID: "m1", Rcpt: "r1@y.example", Status: "queued", NextAttempt: now.Add(time.Minute), Error: "451 later"})
	if len(done) != 0 {
		t.Fatal("done too early")
	}
	apply(Result{MsgID: "m1", Rcpt: "r1@y.example", Status: "delivered"}, Result{MsgID: "m1", Rcpt: "r2@y.example", Status: "failed", Error: "550 no"})
	if len(done) != 1 || done[0] != "m1" {
		t.Fatalf("done %v", done)
	}
	rs, _ := s.Recipients(ctx, "m1")
	if rs[0].Attempts != 2 || rs[0].Status != "delivered" || rs[1].Status != "failed" || rs[1].LastError != "550 no" {
		t.Fatalf("%+v", rs)
	}
	if ok, _ := s.RetryNow(ctx, "m1", now); ok {
		t.Fatal("retry of a finished message")
	}
	if n, _ := s.PruneDone(ctx, now.Add(time.Hour)); n != 1 {
		t.Fatalf("pruned %d", n)
	}
	if _, err := s.Message(ctx, "m1"); err != ErrNotFound {
		t.Fatalf("after prune: %v", err)
	}
}

func TestDeleteAndRelease(t *testing.T) {
	s, c := open(t)
	ctx := context.Background()
	now := time.Now()
	m := &Message{ID: "m2", Direction: "in", MailFrom: "", ReceivedAt: now}
	c.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.InsertMessage(ctx, tx, m, []Recipient{{Rcpt: "a@b", Route: "mailhost", NextAttempt: now, LeaseUntil: now.Add(time.Hour)}})
	}, "", nil)
	if err := s.ReleaseLeases(ctx); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.LeaseDue(ctx, now, time.Minute, 10); len(due) != 1 {
		t.Fatal("lease not released")
	}
	if ok, err := s.DeleteQueued(ctx, "m2", now); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if got, _ := s.Message(ctx, "m2"); got.State != "done" {
		t.Fatalf("state %s", got.State)
	}
	if ids, _ := s.QueuedSpool(ctx); len(ids) != 0 {
		t.Fatalf("queued ids %v", ids)
	}
}

func TestCommitterFailsTheBatch(t *testing.T) {
	s, c := open(t)
	c.Sync = func(string, func() error) error { return sql.ErrConnDone }
	err := c.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
		return s.InsertMessage(ctx, tx, &Message{ID: "m3", ReceivedAt: time.Now()}, nil)
	}, "seg:1", func() error { return nil })
	if err == nil {
		t.Fatal("batch committed although the directory sync failed")
	}
	if _, err := s.Message(context.Background(), "m3"); err != ErrNotFound {
		t.Fatal("row committed")
	}
}
