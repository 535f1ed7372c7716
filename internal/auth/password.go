// Package auth checks passwords and limits guessing. Passwords are stored as
// argon2id hashes (RFC 9106, second recommended option: m=64 MiB, t=3, p=4
// is the first; we use m=64 MiB, t=1, p=2 to keep a login under 100 ms on
// two cores) in the PHC string format; comparisons are constant-time.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

const (
	argonTime    = 1
	argonMemory  = 64 * 1024
	argonThreads = 2
	argonKeyLen  = 32
)

var b64 = base64.RawStdEncoding

// HashPassword returns an argon2id PHC string for password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// ErrBadHash is returned for a stored hash that cannot be parsed.
var ErrBadHash = errors.New("auth: malformed password hash")

// CheckPassword reports whether password matches the PHC string hash.
func CheckPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, ErrBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 100 {
		return false, ErrBadHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, ErrBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, ErrBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is checked against when a user does not exist, so that the time
// taken does not tell whether a name is known.
var dummyHash, _ = HashPassword("no such user")

// CheckUnknown spends the time of a password check and returns false.
func CheckUnknown(password string) bool {
	CheckPassword(dummyHash, password)
	return false
}

// Limiter counts failures per key (an address, a user name) and locks a
// key out after too many in a window, for a lock-out period that doubles
// with each lock-out up to a day.
type Limiter struct {
	mu      sync.Mutex
	max     int
	window  time.Duration
	lockout time.Duration
	entries map[string]*limitEntry
	now     func() time.Time
}

type limitEntry struct {
	failures    []time.Time
	lockedUntil time.Time
	lockouts    int
}

// NewLimiter allows max failures per window; then the key is locked out.
func NewLimiter(max int, window, lockout time.Duration) *Limiter {
	return &Limiter{max: max, window: window, lockout: lockout, entries: map[string]*limitEntry{}, now: time.Now}
}

// Locked reports whether key is locked out now, and until when.
func (l *Limiter) Locked(key string) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		return false, time.Time{}
	}
	return l.now().Before(e.lockedUntil), e.lockedUntil
}

// Fail records a failure for key and reports whether it is now locked out.
func (l *Limiter) Fail(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e := l.entries[key]
	if e == nil {
		if len(l.entries) > 100000 {
			l.gcLocked(now)
		}
		e = &limitEntry{}
		l.entries[key] = e
	}
	keep := e.failures[:0]
	for _, t := range e.failures {
		if now.Sub(t) < l.window {
			keep = append(keep, t)
		}
	}
	e.failures = append(keep, now)
	if len(e.failures) >= l.max {
		d := l.lockout << min(e.lockouts, 10)
		d = min(d, 24*time.Hour)
		e.lockedUntil = now.Add(d)
		e.lockouts++
		e.failures = e.failures[:0]
		return true
	}
	return false
}

// Succeed clears the failures of key (not its lock-out history).
func (l *Limiter) Succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[key]; e != nil {
		e.failures = e.failures[:0]
	}
}

func (l *Limiter) gcLocked(now time.Time) {
	for k, e := range l.entries {
		if now.After(e.lockedUntil) && (len(e.failures) == 0 || now.Sub(e.failures[len(e.failures)-1]) > l.window) {
			delete(l.entries, k)
		}
	}
}
