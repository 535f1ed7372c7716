// Package storetest is the conformance suite of the store's interfaces:
// every backend (SQLite in package store, PostgreSQL in store/postgres)
// runs the same tests.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"sealpost/internal/store"
)

// RunLeases runs the Leases suite. newStore returns an empty store for one
// subtest; subtests run in parallel, each on its own store.
func RunLeases(t *testing.T, newStore func(t *testing.T) store.Leases) {
	tests := []struct {
		name string
		f    func(t *testing.T, s store.Leases)
	}{
		{"ClaimDueOnly", testClaimDueOnly},
		{"ExpiredLeaseTakenOver", testTakeOver},
		{"StaleOwnerFenced", testFenced},
		{"RenewKeepsLease", testRenew},
		{"CompleteFinishesMessage", testComplete},
		{"ReleaseOwner", testRelease},
		{"ConcurrentClaimsDisjoint", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, newStore(t))
		})
	}
}

var t0 = time.UnixMilli(1_800_000_000_000)

func enqueue(t *testing.T, s store.Leases, id string, due time.Time, rcpts ...string) {
	t.Helper()
	var rs []store.Recipient
	for _, r := range rcpts {
		rs = append(rs, store.Recipient{Rcpt: r, Route: "outbound", NextAttempt: due})
	}
	m := &store.Message{ID: id, Direction: "out", MailFrom: "a@example.gov.uk", ReceivedAt: due, Size: 10}
	if err := s.Enqueue(context.Background(), m, rs); err != nil {
		t.Fatal(err)
	}
}

func claim(t *testing.T, s store.Leases, owner string, now time.Time, lease time.Duration, limit int) []store.Claim {
	t.Helper()
	cs, err := s.Claim(context.Background(), owner, now, lease, limit)
	if err != nil {
		t.Fatalf("Claim by %s: %v", owner, err)
	}
	return cs
}

func keys(cs []store.Claim) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.MsgID+"/"+c.Rcpt)
	}
	slices.Sort(out)
	return out
}

func delivered(c store.Claim) store.FencedResult {
	return store.FencedResult{Result: store.Result{MsgID: c.MsgID, Rcpt: c.Rcpt, Status: "delivered", Relay: "mx.example"}, Token: c.Token}
}

func testClaimDueOnly(t *testing.T, s store.Leases) {
	enqueue(t, s, "m1", t0, "a@x.example", "b@x.example")
	enqueue(t, s, "m2", t0.Add(time.Hour), "c@x.example")
	got := claim(t, s, "n1", t0, time.Minute, 10)
	if want := []string{"m1/a@x.example", "m1/b@x.example"}; !slices.Equal(keys(got), want) {
		t.Fatalf("claimed %v, want %v", keys(got), want)
	}
	for _, c := range got {
		if !c.LeaseUntil.Equal(t0.Add(time.Minute)) || c.Route != "outbound" || c.Status != "queued" {
			t.Fatalf("claim %+v", c)
		}
	}
	if again := claim(t, s, "n2", t0, time.Minute, 10); len(again) != 0 {
		t.Fatalf("leased recipients claimed again: %v", keys(again))
	}
	if lim := claim(t, s, "n2", t0.Add(2*time.Hour), time.Minute, 1); len(lim) != 1 {
		t.Fatalf("limit 1 gave %d", len(lim))
	}
}

func testTakeOver(t *testing.T, s store.Leases) {
	enqueue(t, s, "m1", t0, "a@x.example")
	first := claim(t, s, "dead", t0, time.Minute, 10)
	if len(first) != 1 {
		t.Fatal(first)
	}
	if got := claim(t, s, "n2", t0.Add(59*time.Second), time.Minute, 10); len(got) != 0 {
		t.Fatal("claimed before the lease expired")
	}
	got := claim(t, s, "n2", t0.Add(61*time.Second), time.Minute, 10)
	if len(got) != 1 || got[0].Token == first[0].Token {
		t.Fatalf("after expiry: %+v (first token %d)", got, first[0].Token)
	}
}

func testFenced(t *testing.T, s store.Leases) {
	ctx := context.Background()
	enqueue(t, s, "m1", t0, "a@x.example")
	old := claim(t, s, "n1", t0, time.Minute, 10)
	now := claim(t, s, "n2", t0.Add(2*time.Minute), time.Minute, 10)
	if len(old) != 1 || len(now) != 1 {
		t.Fatal(old, now)
	}
	// The old owner finishes late: refused, and told so.
	done, lost, err := s.Complete(ctx, "n1", t0.Add(2*time.Minute), []store.FencedResult{delivered(old[0])})
	if err != nil || len(done) != 0 || len(lost) != 1 {
		t.Fatalf("stale Complete: done %v lost %v err %v", done, lost, err)
	}
	// Its owner name with the new token is not enough either, nor the new
	// owner with the old token.
	forged := delivered(now[0])
	if _, lost, _ := s.Complete(ctx, "n1", t0.Add(2*time.Minute), []store.FencedResult{forged}); len(lost) != 1 {
		t.Fatal("another owner's token accepted")
	}
	stale := delivered(old[0])
	if _, lost, _ := s.Complete(ctx, "n2", t0.Add(2*time.Minute), []store.FencedResult{stale}); len(lost) != 1 {
		t.Fatal("a stale token accepted from the current owner")
	}
	if l, err := s.Renew(ctx, "n1", t0.Add(2*time.Minute), time.Minute, old); err != nil || len(l) != 1 {
		t.Fatalf("stale Renew: lost %v err %v", l, err)
	}
	done, lost, err = s.Complete(ctx, "n2", t0.Add(2*time.Minute), []store.FencedResult{delivered(now[0])})
	if err != nil || len(lost) != 0 || !slices.Equal(done, []string{"m1"}) {
		t.Fatalf("current Complete: done %v lost %v err %v", done, lost, err)
	}
}

func testRenew(t *testing.T, s store.Leases) {
	ctx := context.Background()
	enqueue(t, s, "m1", t0, "a@x.example")
	cs := claim(t, s, "n1", t0, time.Minute, 10)
	if lost, err := s.Renew(ctx, "n1", t0.Add(50*time.Second), time.Minute, cs); err != nil || len(lost) != 0 {
		t.Fatalf("Renew: %v %v", lost, err)
	}
	if got := claim(t, s, "n2", t0.Add(90*time.Second), time.Minute, 10); len(got) != 0 {
		t.Fatal("a renewed lease was taken over")
	}
	if got := claim(t, s, "n2", t0.Add(111*time.Second), time.Minute, 10); len(got) != 1 {
		t.Fatal("the renewed lease did not expire")
	}
}

func testComplete(t *testing.T, s store.Leases) {
	ctx := context.Background()
	enqueue(t, s, "m1", t0, "a@x.example", "b@x.example")
	cs := claim(t, s, "n1", t0, time.Minute, 10)
	if len(cs) != 2 {
		t.Fatal(cs)
	}
	retry := store.FencedResult{Result: store.Result{MsgID: cs[1].MsgID, Rcpt: cs[1].Rcpt, Status: "queued", NextAttempt: t0.Add(10 * time.Minute), Error: "451 4.4.1 try later"}, Token: cs[1].Token}
	done, lost, err := s.Complete(ctx, "n1", t0, []store.FencedResult{delivered(cs[0]), retry})
	if err != nil || len(lost) != 0 || len(done) != 0 {
		t.Fatalf("done %v lost %v err %v", done, lost, err)
	}
	// The retried recipient is due at its next attempt, for anyone.
	if got := claim(t, s, "n2", t0.Add(5*time.Minute), time.Minute, 10); len(got) != 0 {
		t.Fatalf("due before its next attempt: %v", keys(got))
	}
	again := claim(t, s, "n2", t0.Add(10*time.Minute), time.Minute, 10)
	if want := []string{"m1/b@x.example"}; !slices.Equal(keys(again), want) || again[0].Attempts != 1 || again[0].LastError == "" {
		t.Fatalf("retry claimed %+v", again)
	}
	// A result for a recipient already delivered is refused.
	if _, lost, _ := s.Complete(ctx, "n1", t0, []store.FencedResult{delivered(cs[0])}); len(lost) != 1 {
		t.Fatal("a second result for a delivered recipient was written")
	}
	fail := delivered(again[0])
	fail.Status, fail.Error = "failed", "550 5.1.1 no such user"
	done, lost, err = s.Complete(ctx, "n2", t0.Add(10*time.Minute), []store.FencedResult{fail})
	if err != nil || len(lost) != 0 || !slices.Equal(done, []string{"m1"}) {
		t.Fatalf("done %v lost %v err %v", done, lost, err)
	}
}

func testRelease(t *testing.T, s store.Leases) {
	ctx := context.Background()
	enqueue(t, s, "m1", t0, "a@x.example")
	enqueue(t, s, "m2", t0, "b@x.example")
	a := claim(t, s, "n1", t0, time.Hour, 1)
	b := claim(t, s, "n2", t0, time.Hour, 1)
	if len(a) != 1 || len(b) != 1 {
		t.Fatal(a, b)
	}
	if err := s.ReleaseOwner(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	got := claim(t, s, "n3", t0, time.Hour, 10)
	if !slices.Equal(keys(got), keys(a)) {
		t.Fatalf("after n1 released: %v, want %v (n2's kept)", keys(got), keys(a))
	}
	if _, lost, _ := s.Complete(ctx, "n1", t0, []store.FencedResult{delivered(a[0])}); len(lost) != 1 {
		t.Fatal("a released lease still completes")
	}
}

// Several nodes claiming at once never get one recipient twice while its
// lease runs, and together they get all.
func testConcurrent(t *testing.T, s store.Leases) {
	const msgs, per = 40, 5
	for i := range msgs {
		var rs []string
		for j := range per {
			rs = append(rs, fmt.Sprintf("r%d@x.example", j))
		}
		enqueue(t, s, fmt.Sprintf("m%03d", i), t0, rs...)
	}
	var mu sync.Mutex
	seen := map[string]string{}
	done := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	report := func(err error) { // never blocks: the first few are enough
		select {
		case errs <- err:
		default:
		}
	}
	for n := range 4 {
		owner := fmt.Sprintf("node%d", n)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					cs, err := s.Claim(context.Background(), owner, t0, time.Hour, 7)
					if err != nil {
						report(err)
						return
					}
					if len(cs) == 0 {
						return
					}
					mu.Lock()
					for _, c := range cs {
						k := c.MsgID + "/" + c.Rcpt
						if prev, ok := seen[k]; ok {
							report(fmt.Errorf("%s claimed by %s and %s", k, prev, owner))
						}
						seen[k] = owner
					}
					mu.Unlock()
					var rs []store.FencedResult
					for _, c := range cs {
						rs = append(rs, delivered(c))
					}
					d, lost, err := s.Complete(context.Background(), owner, t0, rs)
					if err != nil || len(lost) != 0 {
						report(fmt.Errorf("complete by %s: lost %d, %v", owner, len(lost), err))
						return
					}
					mu.Lock()
					for _, id := range d {
						done[id]++
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != msgs*per {
		t.Fatalf("%d of %d recipients claimed", len(seen), msgs*per)
	}
	// Every message is finished once, even when its last recipients were
	// completed by different nodes at the same time.
	for i := range msgs {
		if id := fmt.Sprintf("m%03d", i); done[id] != 1 {
			t.Errorf("message %s reported done %d times", id, done[id])
		}
	}
}
