package auth

import (
	"testing"
	"time"
)

// TestLimiterLockoutCappedAtADay: lock-outs double (15 min, 30 min, ...)
// but none lasts more than a day, so a guessing attacker can lock a user out
// for a day at most per round, not for weeks.
func TestLimiterLockoutCappedAtADay(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(1, time.Minute, 15*time.Minute)
	l.now = func() time.Time { return now }
	want := 15 * time.Minute
	for i := 1; i <= 12; i++ {
		if !l.Fail("k") {
			t.Fatalf("failure %d did not lock", i)
		}
		_, until := l.Locked("k")
		if got := until.Sub(now); got != want {
			t.Fatalf("lock-out %d lasts %v, want %v", i, got, want)
		}
		now = until.Add(time.Second)
		want = min(2*want, 24*time.Hour)
	}
}
