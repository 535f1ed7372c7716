package portal

import (
	"testing"
	"time"
)

// TestLockoutDoubles: the n-th lock-out of an address lasts 15 minutes,
// doubling each time, and never more than a day.
func TestLockoutDoubles(t *testing.T) {
	want := []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 16 * time.Hour, 24 * time.Hour, 24 * time.Hour}
	for i, w := range want {
		if got := lockout(i + 1); got != w {
			t.Errorf("lock-out %d lasts %v, want %v", i+1, got, w)
		}
	}
	if got := lockout(1000); got != 24*time.Hour {
		t.Errorf("lock-out 1000 lasts %v, want a day", got)
	}
}

// TestIPLimiter: max events per address per window; then refused until the
// window has passed; other addresses unaffected.
func TestIPLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewIPLimiter(3, time.Minute)
	for i := 1; i <= 3; i++ {
		if !l.Allow("a", now) {
			t.Fatalf("event %d refused", i)
		}
	}
	if l.Allow("a", now.Add(30*time.Second)) {
		t.Fatal("event 4 in the window allowed")
	}
	if !l.Allow("b", now) {
		t.Fatal("another address refused")
	}
	if !l.Allow("a", now.Add(61*time.Second)) {
		t.Fatal("refused after the window passed")
	}
}
