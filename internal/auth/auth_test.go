package auth

import (
	"strings"
	"testing"
	"time"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=1,p=2$") {
		t.Fatalf("hash %q", h)
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct hors": false, "": false, "Correct horse": false} {
		ok, err := CheckPassword(h, pw)
		if err != nil || ok != want {
			t.Errorf("CheckPassword(%q) = %v, %v", pw, ok, err)
		}
	}
	h2, _ := HashPassword("correct horse")
	if h == h2 {
		t.Fatal("same salt twice")
	}
	for _, bad := range []string{"", "$argon2id$", "$bcrypt$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=999999999,t=1,p=1$AA$AA"} {
		if _, err := CheckPassword(bad, "x"); err != ErrBadHash {
			t.Errorf("CheckPassword(%q): %v, want ErrBadHash", bad, err)
		}
	}
	if CheckUnknown("x") {
		t.Fatal("unknown user accepted")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(3, time.Minute, 10*time.Minute)
	l.now = func() time.Time { return now }
	test := func(wantLocked bool) {
		t.Helper()
		if locked, _ := l.Locked("k"); locked != wantLocked {
			t.Fatalf("at %v: locked=%v, want %v", now, locked, wantLocked)
		}
	}
	l.Fail("k")
	l.Fail("k")
	test(false)
	now = now.Add(2 * time.Minute) // the window passed: old failures forgotten
	l.Fail("k")
	l.Fail("k")
	test(false)
	if !l.Fail("k") {
		t.Fatal("third failure in the window did not lock")
	}
	test(true)
	now = now.Add(9 * time.Minute)
	test(true)
	now = now.Add(2 * time.Minute)
	test(false)
	// The second lock-out lasts twice as long.
	l.Fail("k")
	l.Fail("k")
	l.Fail("k")
	now = now.Add(15 * time.Minute)
	test(true)
	now = now.Add(6 * time.Minute)
	test(false)
	// Success clears the failures, not the history; other keys unaffected.
	l.Fail("k")
	l.Succeed("k")
	l.Fail("k")
	l.Fail("k")
	test(false)
	if locked, _ := l.Locked("other"); locked {
		t.Fatal("other key locked")
	}
}
