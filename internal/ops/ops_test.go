package ops

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os/user"
	"path/filepath"
	"testing"

	"sealpost/internal/store"
)

// fakeQueue records the state changes asked of it.
type fakeQueue struct {
	resolved []string // id:state
	pending  map[string]bool
	queued   map[string]bool
	err      error
}

func (q *fakeQueue) Resolve(ctx context.Context, id string, release bool, state, by, reason string) ([]string, error) {
	if q.err != nil {
		return nil, q.err
	}
	p, ok := q.pending[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	if !p {
		return nil, store.ErrResolved
	}
	q.pending[id] = false
	q.resolved = append(q.resolved, id+":"+state)
	return []string{"a@x.example"}, nil
}

func (q *fakeQueue) RetryNow(ctx context.Context, id string) (bool, error) {
	return q.queued[id], q.err
}

func (q *fakeQueue) DeleteQueued(ctx context.Context, id string) (bool, error) {
	ok := q.queued[id]
	q.queued[id] = false
	return ok, q.err
}

type fakeDecisions map[string]*store.Decision

func (d fakeDecisions) GetDecision(ctx context.Context, id string) (*store.Decision, error) {
	if r, ok := d[id]; ok {
		return r, nil
	}
	return nil, store.ErrNotFound
}

func newService(t *testing.T) (*Service, *fakeQueue, *[]*store.AuditEvent) {
	q := &fakeQueue{pending: map[string]bool{"held1": true, "quar1": true}, queued: map[string]bool{"q1": true}}
	var events []*store.AuditEvent
	s := &Service{Queue: q, Decisions: fakeDecisions{
		"held1": {MsgID: "held1", State: "held", MailFrom: "staff@example.gov.uk"},
		"quar1": {MsgID: "quar1", State: "quarantined", MailFrom: "staff@example.gov.uk"},
	}, Audit: func(ctx context.Context, e *store.AuditEvent) error {
		events = append(events, e)
		return nil
	}}
	return s, q, &events
}

// TestEachActionAuditedOnce: every action that changes something writes
// exactly one audit event, naming who, what and why; one that changes
// nothing writes none.
func TestEachActionAuditedOnce(t *testing.T) {
	ctx := context.Background()
	admin := Actor{Name: "admin:alice", IP: "192.0.2.1", UA: "test"}
	test := func(name string, do func(s *Service) error, wantErr error, wantAction, wantActor, wantDetail string) {
		t.Run(name, func(t *testing.T) {
			s, _, events := newService(t)
			err := do(s)
			if !errors.Is(err, wantErr) {
				t.Fatalf("err = %v, want %v", err, wantErr)
			}
			if wantAction == "" {
				if len(*events) != 0 {
					t.Fatalf("audited %+v for an action that changed nothing", (*events)[0])
				}
				return
			}
			if len(*events) != 1 {
				t.Fatalf("%d audit events, want 1", len(*events))
			}
			e := (*events)[0]
			if e.Action != wantAction || e.Actor != wantActor || e.Detail != wantDetail || e.At.IsZero() {
				t.Fatalf("audit event %+v, want %s by %s (%q)", e, wantAction, wantActor, wantDetail)
			}
		})
	}
	test("release", func(s *Service) error { _, err := s.Release(ctx, admin, "quar1", "checked"); return err }, nil, "quarantine.released", "admin:alice", "checked")
	test("delete", func(s *Service) error { _, err := s.Delete(ctx, admin, "quar1", "spam"); return err }, nil, "quarantine.deleted", "admin:alice", "spam")
	// The second release changes nothing: still only the first's event.
	test("release twice", func(s *Service) error {
		s.Release(ctx, admin, "quar1", "checked")
		_, err := s.Release(ctx, admin, "quar1", "again")
		return err
	}, ErrResolved, "quarantine.released", "admin:alice", "checked")
	test("release unknown", func(s *Service) error { _, err := s.Release(ctx, admin, "nope", "x"); return err }, ErrNotFound, "", "", "")
	test("sender confirms", func(s *Service) error { _, err := s.ResolveHold(ctx, "held1", true); return err }, nil, "hold.confirmed", "staff@example.gov.uk", "through the link in the notice")
	test("sender cancels", func(s *Service) error { _, err := s.ResolveHold(ctx, "held1", false); return err }, nil, "hold.cancelled", "staff@example.gov.uk", "through the link in the notice")
	test("sender cannot release a quarantined message", func(s *Service) error { _, err := s.ResolveHold(ctx, "quar1", true); return err }, ErrResolved, "", "", "")
	test("expire", func(s *Service) error { _, _, err := s.Expire(ctx, "held1", "not confirmed within 3 days"); return err }, nil, "held.expired", "gateway", "not confirmed within 3 days")
	test("retry", func(s *Service) error { return s.Retry(ctx, admin, "q1") }, nil, "queue.retry", "admin:alice", "")
	test("retry nothing", func(s *Service) error { return s.Retry(ctx, admin, "q2") }, ErrNothingQueued, "", "", "")
	test("delete queued", func(s *Service) error { return s.DeleteQueued(ctx, admin, "q1") }, nil, "queue.delete", "admin:alice", "")
	test("delete queued nothing", func(s *Service) error { return s.DeleteQueued(ctx, admin, "q2") }, ErrNothingQueued, "", "", "")
}

// TestAuditFailureIsAnError: an action whose audit event cannot be written
// reports it (*AuditError), for every action.
func TestAuditFailureIsAnError(t *testing.T) {
	ctx := context.Background()
	a := Actor{Name: "cli:root"}
	for name, do := range map[string]func(s *Service) error{
		"release":       func(s *Service) error { _, err := s.Release(ctx, a, "quar1", "x"); return err },
		"delete":        func(s *Service) error { _, err := s.Delete(ctx, a, "quar1", "x"); return err },
		"hold":          func(s *Service) error { _, err := s.ResolveHold(ctx, "held1", true); return err },
		"expire":        func(s *Service) error { _, _, err := s.Expire(ctx, "held1", "x"); return err },
		"retry":         func(s *Service) error { return s.Retry(ctx, a, "q1") },
		"delete queued": func(s *Service) error { return s.DeleteQueued(ctx, a, "q1") },
	} {
		s, _, _ := newService(t)
		disk := errors.New("disk I/O error")
		s.Audit = func(context.Context, *store.AuditEvent) error { return disk }
		err := do(s)
		var ae *AuditError
		if !errors.As(err, &ae) || !errors.Is(err, disk) {
			t.Errorf("%s: err = %v, want an AuditError", name, err)
		}
	}
}

// TestControlSocket: the CLI's requests reach the Service through the
// socket, errors keep their meaning, and the actor is the peer's user.
func TestControlSocket(t *testing.T) {
	s, q, events := newService(t)
	path := filepath.Join(t.TempDir(), ControlSocket)
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ControlHandler(s), ConnContext: func(ctx context.Context, c net.Conn) context.Context {
		return WithPeer(ctx, PeerActor(c))
	}}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := NewClient(path)
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := c.Release(ctx, Actor{Name: "admin:forged"}, "quar1", "checked")
	if err != nil || res.State != "released" || len(res.Recipients) != 1 {
		t.Fatalf("release: %+v, %v", res, err)
	}
	if _, err := c.Release(ctx, Actor{}, "quar1", "again"); !errors.Is(err, ErrResolved) {
		t.Fatalf("second release: %v", err)
	}
	if _, err := c.Delete(ctx, Actor{}, "nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := c.Delete(ctx, Actor{}, "held1", ""); err == nil {
		t.Fatal("a resolution without a reason was accepted")
	}
	if err := c.Retry(ctx, Actor{}, "q1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteQueued(ctx, Actor{}, "q2"); !errors.Is(err, ErrNothingQueued) {
		t.Fatalf("delete of nothing: %v", err)
	}
	if len(q.resolved) != 1 || len(*events) != 2 {
		t.Fatalf("resolved %v, %d events", q.resolved, len(*events))
	}
	want := "cli"
	if u, err := user.Current(); err == nil {
		want = "cli:" + u.Username
	}
	for _, e := range *events {
		if e.Actor != want {
			t.Fatalf("actor %q, want %q (from the peer, not the request)", e.Actor, want)
		}
	}
	s.Audit = func(context.Context, *store.AuditEvent) error { return errors.New("disk I/O error") }
	q.queued["q3"] = true
	if err := c.Retry(ctx, Actor{}, "q3"); err == nil || errors.Is(err, ErrNothingQueued) {
		t.Fatalf("retry with a failing audit log: %v", err)
	}
}
