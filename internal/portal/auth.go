package portal

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"time"

	"sealpost/internal/store"
	"sealpost/internal/web"
)

var (
	errLocked  = errors.New("locked")
	errTooMany = errors.New("too many requests")
	errNoCode  = errors.New("no code")
	errBadCode = errors.New("wrong code")
)

// lockout is how long the n-th lock-out of an address lasts: 15 minutes,
// doubling, at most a day.
func lockout(n int) time.Duration {
	d := 15 * time.Minute
	for i := 1; i < n && d < 24*time.Hour; i++ {
		d *= 2
	}
	return min(d, 24*time.Hour)
}

func newCode() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(100_000_000))
	s := n.String()
	return strings.Repeat("0", 8-len(s)) + s
}

func normalizeCode(c string) string {
	var b strings.Builder
	for _, r := range c {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// requestCode mails a new code to address, within the limits.
func (s *Service) requestCode(ctx context.Context, address, ip, ua string) (time.Time, error) {
	cfg := s.Config()
	now := s.now()
	if !s.Limiter.Allow("code:"+ip, now) {
		s.audit(ctx, address, "portal.rate_limited", address, ip, ua, "codes asked for from one client address")
		return time.Time{}, errTooMany
	}
	l, err := s.auth().GetPortalLock(ctx, address)
	if err != nil {
		return time.Time{}, err
	}
	if now.Before(l.LockedUntil) {
		return l.LockedUntil, errLocked
	}
	if now.Sub(l.WindowStart) > time.Hour {
		l.WindowStart, l.CodesSent = now, 0
	}
	if l.CodesSent >= cfg.Portal.CodesPerHour {
		s.audit(ctx, address, "portal.rate_limited", address, ip, ua, "codes per hour for the address")
		return l.WindowStart.Add(time.Hour), errTooMany
	}
	l.CodesSent++
	if err := s.auth().PutPortalLock(ctx, l); err != nil {
		return time.Time{}, err
	}
	code := newCode()
	if err := s.auth().PutPortalCode(ctx, &store.PortalCode{Address: address, Hash: s.mac("code", address, code), ExpiresAt: now.Add(cfg.Portal.CodeValidity.Duration)}); err != nil {
		return time.Time{}, err
	}
	if err := s.sendCode(ctx, address, code); err != nil {
		return time.Time{}, err
	}
	s.audit(ctx, address, "portal.code_sent", address, ip, ua, "")
	return time.Time{}, nil
}

// verifyCode checks a code for address; it returns how many tries are left
// after a wrong one.
func (s *Service) verifyCode(ctx context.Context, address, code, ip, ua string) (left int, until time.Time, err error) {
	cfg := s.Config()
	now := s.now()
	if !s.Limiter.Allow("verify:"+ip, now) {
		s.audit(ctx, address, "portal.rate_limited", address, ip, ua, "codes tried from one client address")
		return 0, time.Time{}, errTooMany
	}
	l, err := s.auth().GetPortalLock(ctx, address)
	if err != nil {
		return 0, time.Time{}, err
	}
	if now.Before(l.LockedUntil) {
		return 0, l.LockedUntil, errLocked
	}
	c, err := s.auth().GetPortalCode(ctx, address)
	if errors.Is(err, store.ErrNotFound) || err == nil && now.After(c.ExpiresAt) {
		return 0, time.Time{}, errNoCode
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	if hmac.Equal(s.mac("code", address, normalizeCode(code)), c.Hash) {
		s.auth().DeletePortalCode(ctx, address)
		l.Failures = 0
		s.auth().PutPortalLock(ctx, l)
		s.audit(ctx, address, "portal.signed_in", address, ip, ua, "")
		return 0, time.Time{}, nil
	}
	n, err := s.auth().BumpPortalCode(ctx, address)
	if err != nil {
		return 0, time.Time{}, err
	}
	l.Failures++
	s.audit(ctx, address, "portal.code_failed", address, ip, ua, "")
	if n >= cfg.Portal.CodeAttempts {
		s.auth().DeletePortalCode(ctx, address)
		l.Lockouts++
		l.LockedUntil = now.Add(lockout(l.Lockouts))
		s.audit(ctx, address, "portal.locked_out", address, ip, ua, "until "+l.LockedUntil.UTC().Format(time.RFC3339))
		s.auth().PutPortalLock(ctx, l)
		return 0, l.LockedUntil, errLocked
	}
	s.auth().PutPortalLock(ctx, l)
	return cfg.Portal.CodeAttempts - n, time.Time{}, errBadCode
}

const sessionCookie = "sp_session"

func cookieName(r *http.Request) string { return web.CookieName(r, sessionCookie) }

// startSession sets a session cookie for address. A session the browser
// already had ends: every sign-in gets a new id, so an id planted or seen
// before sign-in (session fixation) is worth nothing after it.
func (s *Service) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, address string, remember bool) error {
	cfg := s.Config()
	if c, err := r.Cookie(cookieName(r)); err == nil {
		h := sha256.Sum256([]byte(c.Value))
		if err := s.auth().DeletePortalSession(ctx, h[:]); err != nil {
			return err
		}
	}
	b := make([]byte, 32)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	life := cfg.Portal.Session.Duration
	if remember {
		life = cfg.Portal.Remember.Duration
	}
	now := s.now()
	h := sha256.Sum256([]byte(id))
	if err := s.auth().PutPortalSession(ctx, h[:], address, now, now.Add(life)); err != nil {
		return err
	}
	maxAge := 0
	if remember {
		maxAge = int(life.Seconds())
	}
	http.SetCookie(w, web.SessionCookie(r, sessionCookie, id, maxAge))
	return nil
}

// sessionAddress is the address the request's session proved, or "".
func (s *Service) sessionAddress(r *http.Request) string {
	c, err := r.Cookie(cookieName(r))
	if err != nil || len(c.Value) != 43 {
		return ""
	}
	h := sha256.Sum256([]byte(c.Value))
	a, err := s.auth().PortalSession(r.Context(), h[:], s.now())
	if err != nil {
		return ""
	}
	return a
}

func (s *Service) endSession(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName(r)); err == nil {
		h := sha256.Sum256([]byte(c.Value))
		s.auth().DeletePortalSession(r.Context(), h[:])
	}
	http.SetCookie(w, web.SessionCookie(r, sessionCookie, "", -1))
}

// masked shows an address without giving it all away: j•••@example.org.
func masked(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i <= 0 {
		return a
	}
	return a[:1] + "•••" + a[i:]
}
