package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"sealpost/internal/store"
)

// RunPortalAuth runs the PortalAuth suite.
func RunPortalAuth(t *testing.T, newStore func(t *testing.T) store.PortalAuth) {
	tests := []struct {
		name string
		f    func(t *testing.T, s store.PortalAuth)
	}{
		{"Codes", testCodes},
		{"ConcurrentBumpsAllCount", testConcurrentBumps},
		{"Locks", testLocks},
		{"Sessions", testSessions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, newStore(t))
		})
	}
}

func testCodes(t *testing.T, s store.PortalAuth) {
	ctx := context.Background()
	if _, err := s.GetPortalCode(ctx, "a@x.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no code: %v", err)
	}
	if _, err := s.BumpPortalCode(ctx, "a@x.example"); err == nil {
		t.Fatal("bumped a code that does not exist")
	}
	if err := s.PutPortalCode(ctx, &store.PortalCode{Address: "a@x.example", Hash: []byte("h1"), ExpiresAt: t0.Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		if n, err := s.BumpPortalCode(ctx, "a@x.example"); err != nil || n != want {
			t.Fatalf("bump %d: %d %v", want, n, err)
		}
	}
	c, err := s.GetPortalCode(ctx, "a@x.example")
	if err != nil || string(c.Hash) != "h1" || c.Attempts != 3 || !c.ExpiresAt.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("code %+v %v", c, err)
	}
	// A new code replaces the old one and its count.
	if err := s.PutPortalCode(ctx, &store.PortalCode{Address: "a@x.example", Hash: []byte("h2"), ExpiresAt: t0.Add(20 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.GetPortalCode(ctx, "a@x.example"); err != nil || string(c.Hash) != "h2" || c.Attempts != 0 {
		t.Fatalf("replaced code %+v %v", c, err)
	}
	if err := s.DeletePortalCode(ctx, "a@x.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPortalCode(ctx, "a@x.example"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted code: %v", err)
	}
}

// Wrong codes entered at once (on several nodes) are each counted: no
// attempt is lost to a read-modify-write race, which would let a guesser
// past the limit.
func testConcurrentBumps(t *testing.T, s store.PortalAuth) {
	ctx := context.Background()
	if err := s.PutPortalCode(ctx, &store.PortalCode{Address: "b@x.example", Hash: []byte("h"), ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	got := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.BumpPortalCode(ctx, "b@x.example")
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		}()
	}
	wg.Wait()
	slices.Sort(got)
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("concurrent bumps returned %v, want 1..%d each once", got, n)
		}
	}
}

func testLocks(t *testing.T, s store.PortalAuth) {
	ctx := context.Background()
	l, err := s.GetPortalLock(ctx, "c@x.example")
	if err != nil || l.Failures != 0 || l.Lockouts != 0 || !l.LockedUntil.IsZero() || l.Address != "c@x.example" {
		t.Fatalf("unseen address: %+v %v", l, err)
	}
	want := &store.PortalLock{Address: "c@x.example", Failures: 5, Lockouts: 2, LockedUntil: t0.Add(30 * time.Minute), CodesSent: 3, WindowStart: t0}
	if err := s.PutPortalLock(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetPortalLock(ctx, "c@x.example")
	if err != nil || got.Failures != 5 || got.Lockouts != 2 || !got.LockedUntil.Equal(want.LockedUntil) || got.CodesSent != 3 || !got.WindowStart.Equal(t0) {
		t.Fatalf("lock %+v %v", got, err)
	}
	want.Failures, want.LockedUntil = 0, time.Time{}
	if err := s.PutPortalLock(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetPortalLock(ctx, "c@x.example"); got.Failures != 0 || !got.LockedUntil.IsZero() || got.Lockouts != 2 {
		t.Fatalf("overwritten lock %+v", got)
	}
}

func testSessions(t *testing.T, s store.PortalAuth) {
	ctx := context.Background()
	if err := s.PutPortalSession(ctx, []byte("s1"), "d@x.example", t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if a, err := s.PortalSession(ctx, []byte("s1"), t0.Add(59*time.Minute)); err != nil || a != "d@x.example" {
		t.Fatalf("live session: %q %v", a, err)
	}
	if _, err := s.PortalSession(ctx, []byte("s1"), t0.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
	if _, err := s.PortalSession(ctx, []byte("nope"), t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	if err := s.DeletePortalSession(ctx, []byte("s1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PortalSession(ctx, []byte("s1"), t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
}
