package portal

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"sealpost/internal/store"
	"sealpost/internal/web"
)

// Passkeys (WebAuthn): a returning recipient or sender who has proved their
// address once with a code may register a passkey, and then sign in with it
// instead of waiting for a code. They need JavaScript (the browser's
// WebAuthn API); everything else in the portal works without it. The
// relying party is the host of web.public_url, which must be a name, not
// an IP address (WebAuthn allows no IP addresses); otherwise passkeys are
// off. Ceremonies keep their challenge on the server for five minutes,
// bound to a cookie.

type passkeyUser struct {
	address string
	id      []byte
	creds   []webauthn.Credential
}

func (u *passkeyUser) WebAuthnID() []byte                         { return u.id }
func (u *passkeyUser) WebAuthnName() string                       { return u.address }
func (u *passkeyUser) WebAuthnDisplayName() string                { return u.address }
func (u *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

type ceremony struct {
	data    webauthn.SessionData
	address string // registration: whose; login: "" (discoverable)
	expires time.Time
}

// Passkeys holds the relying party and the ceremonies in progress.
type Passkeys struct {
	wa         *webauthn.WebAuthn
	mu         sync.Mutex
	ceremonies map[string]*ceremony
}

// NewPasskeys returns the passkey support for publicURL, or nil when the
// URL's host cannot be a WebAuthn relying party.
func NewPasskeys(publicURL, org string) *Passkeys {
	u, err := url.Parse(publicURL)
	if err != nil || u.Hostname() == "" || net.ParseIP(u.Hostname()) != nil {
		return nil
	}
	wa, err := webauthn.New(&webauthn.Config{RPID: u.Hostname(), RPDisplayName: org, RPOrigins: []string{u.Scheme + "://" + u.Host}})
	if err != nil {
		return nil
	}
	return &Passkeys{wa: wa, ceremonies: map[string]*ceremony{}}
}

const ceremonyCookie = "sp_wa"

func (p *Passkeys) put(w http.ResponseWriter, r *http.Request, c *ceremony) {
	b := make([]byte, 24)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	now := time.Now()
	c.expires = now.Add(5 * time.Minute)
	p.mu.Lock()
	for k, v := range p.ceremonies {
		if now.After(v.expires) {
			delete(p.ceremonies, k)
		}
	}
	if len(p.ceremonies) < 100000 {
		p.ceremonies[id] = c
	}
	p.mu.Unlock()
	http.SetCookie(w, web.SessionCookie(r, ceremonyCookie, id, 300))
}

func (p *Passkeys) take(r *http.Request) *ceremony {
	c, err := r.Cookie(web.CookieName(r, ceremonyCookie))
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cer := p.ceremonies[c.Value]
	delete(p.ceremonies, c.Value)
	if cer == nil || time.Now().After(cer.expires) {
		return nil
	}
	return cer
}

func (s *Service) passkeyUser(ctx context.Context, address string) (*passkeyUser, error) {
	u := &passkeyUser{address: address, id: s.mac("user", address)[:32]}
	keys, err := s.Store.Passkeys(ctx, address)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		var c webauthn.Credential
		if json.Unmarshal([]byte(k.Data), &c) == nil {
			u.creds = append(u.creds, c)
		}
	}
	return u, nil
}

func jsonReply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	jsonReply(w, status, map[string]string{"error": msg})
}

// csrfHeader checks the CSRF token that the script sends in a header.
func csrfHeader(r *http.Request) bool {
	c, err := r.Cookie(web.CookieName(r, "csrf"))
	tok := r.Header.Get("X-CSRF-Token")
	return err == nil && c.Value != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(tok)) == 1 &&
		(r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin")
}

func (s *Service) passkeyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /portal/passkey/register/begin", s.passkeyRegisterBegin)
	mux.HandleFunc("POST /portal/passkey/register/finish", s.passkeyRegisterFinish)
	mux.HandleFunc("POST /portal/passkey/login/begin", s.passkeyLoginBegin)
	mux.HandleFunc("POST /portal/passkey/login/finish", s.passkeyLoginFinish)
}

func (s *Service) passkeyRegisterBegin(w http.ResponseWriter, r *http.Request) {
	if s.Passkeys == nil || !csrfHeader(r) {
		jsonError(w, http.StatusForbidden, "not allowed")
		return
	}
	addr := s.sessionAddress(r)
	if addr == "" {
		jsonError(w, http.StatusUnauthorized, "sign in with a code first")
		return
	}
	u, err := s.passkeyUser(r.Context(), addr)
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, "try again later")
		return
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range u.creds {
		exclude = append(exclude, c.Descriptor())
	}
	opts, data, err := s.Passkeys.wa.BeginRegistration(u, webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithExclusions(exclude))
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, "try again later")
		return
	}
	s.Passkeys.put(w, r, &ceremony{data: *data, address: addr})
	jsonReply(w, http.StatusOK, opts)
}

func (s *Service) passkeyRegisterFinish(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if s.Passkeys == nil || !csrfHeader(r) {
		jsonError(w, http.StatusForbidden, "not allowed")
		return
	}
	addr := s.sessionAddress(r)
	cer := s.Passkeys.take(r)
	if addr == "" || cer == nil || cer.address != addr {
		jsonError(w, http.StatusUnauthorized, "start again")
		return
	}
	u, err := s.passkeyUser(r.Context(), addr)
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, "try again later")
		return
	}
	cred, err := s.Passkeys.wa.FinishRegistration(u, cer.data, r)
	if err != nil {
		s.Log.Info("passkey registration refused", "err", err)
		jsonError(w, http.StatusBadRequest, "the passkey was not accepted")
		return
	}
	data, _ := json.Marshal(cred)
	now := s.now()
	if err := s.Store.PutPasskey(r.Context(), &store.Passkey{CredID: cred.ID, Address: addr, Data: string(data), CreatedAt: now}); err != nil {
		jsonError(w, http.StatusServiceUnavailable, "try again later")
		return
	}
	s.audit(r.Context(), addr, "portal.passkey_added", addr, clientIP(r), r.UserAgent(), "")
	jsonReply(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Service) passkeyLoginBegin(w http.ResponseWriter, r *http.Request) {
	if s.Passkeys == nil || !csrfHeader(r) {
		jsonError(w, http.StatusForbidden, "not allowed")
		return
	}
	if !s.Limiter.Allow("passkey:"+clientIP(r), s.now()) {
		jsonError(w, http.StatusTooManyRequests, "too many attempts; wait a few minutes")
		return
	}
	opts, data, err := s.Passkeys.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, "try again later")
		return
	}
	s.Passkeys.put(w, r, &ceremony{data: *data})
	jsonReply(w, http.StatusOK, opts)
}

func (s *Service) passkeyLoginFinish(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if s.Passkeys == nil || !csrfHeader(r) {
		jsonError(w, http.StatusForbidden, "not allowed")
		return
	}
	cer := s.Passkeys.take(r)
	if cer == nil {
		jsonError(w, http.StatusUnauthorized, "start again")
		return
	}
	ctx := r.Context()
	var owner string
	user, cred, err := s.Passkeys.wa.FinishPasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
		a, err := s.Store.PasskeyOwner(ctx, rawID)
		if err != nil {
			return nil, errors.New("unknown passkey")
		}
		u, err := s.passkeyUser(ctx, a)
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare(u.id, userHandle) != 1 {
			return nil, errors.New("passkey of another user")
		}
		owner = a
		return u, nil
	}, cer.data, r)
	if err != nil || user == nil || owner == "" {
		s.audit(ctx, "unknown", "portal.passkey_failed", "", clientIP(r), r.UserAgent(), "")
		jsonError(w, http.StatusUnauthorized, "the passkey was not accepted")
		return
	}
	// Keep the signature counter (clone detection).
	data, _ := json.Marshal(cred)
	s.Store.PutPasskey(ctx, &store.Passkey{CredID: cred.ID, Address: owner, Data: string(data), LastUsed: s.now()})
	if err := s.startSession(ctx, w, r, owner, false); err != nil {
		jsonError(w, http.StatusServiceUnavailable, "try again later")
		return
	}
	s.audit(ctx, owner, "portal.signed_in", owner, clientIP(r), r.UserAgent(), "passkey")
	jsonReply(w, http.StatusOK, map[string]bool{"ok": true})
}
