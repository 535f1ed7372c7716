// Package console is the operators' web console: dashboard, message trace,
// held and quarantined mail, usage reports. Server-rendered, no
// JavaScript. Sign-in is a password (argon2id) and, for admins, a TOTP
// code, which an admin sets up at first sign-in; failures lock the account
// and the client address out (auth.Limiter). Roles: admin (everything),
// auditor (read-only: no release, no delete, no message content); senders
// use the portal, not the console. Every admin action is an audit event.
package console

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"rsc.io/qr"

	"sealpost/internal/audit"
	"sealpost/internal/auth"
	"sealpost/internal/config"
	"sealpost/internal/dnscheck"
	"sealpost/internal/keyring"
	"sealpost/internal/ops"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
	"sealpost/internal/store"
	"sealpost/internal/web"
)

// Service is the console.
type Service struct {
	Store *store.Store
	// Recorder appends audit events (kept and retried when the store
	// refuses one); nil: straight to the store.
	Recorder *audit.Recorder
	// Evidence writes the evidence bundle of a message (nil: none offered).
	Evidence func(ctx context.Context, msgID string) ([]byte, error)
	Queue    *queue.Queue
	Ops      *ops.Service // release, delete, retry: audited once
	Config   func() *config.Config
	Log      *slog.Logger
	Key      []byte // seals TOTP secrets
	Limiter  *auth.Limiter
	// Rules, PolicyTest and DNSRecords come from the gateway.
	Rules      func() []policy.Rule
	PolicyTest func(ctx context.Context, message []byte, to []string) (*policy.Decision, error)
	DNSRecords func() ([]dnscheck.Record, error)
	// Keyring is the recipients' key store (`sealpost keys`); nil: the
	// keys page shows DNS records only.
	Keyring  *keyring.Keyring
	TLSCheck TLSCheck // nil: no outbound TLS policy (smarthost)
	Dev      bool     // link the dev outbox
	// Available says which policy actions this gateway carries out; the
	// dashboard lists no others (nil: all).
	Available func(policy.Action) bool
}

const cookie = "sp_console"

// Routes mounts the console.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /console/login", s.loginPage)
	mux.HandleFunc("POST /console/login", s.login)
	mux.HandleFunc("GET /console/totp", s.totpPage)
	mux.HandleFunc("GET /console/totp.png", s.totpQR)
	mux.HandleFunc("POST /console/totp", s.totpEnroll)
	mux.HandleFunc("POST /console/logout", s.logout)
	mux.HandleFunc("GET /console", s.dashboard)
	mux.HandleFunc("GET /console/trace", s.trace)
	mux.HandleFunc("GET /console/trace/{id}", s.timeline)
	mux.HandleFunc("GET /console/trace/{id}/evidence.json", s.evidence)
	mux.HandleFunc("GET /console/held", s.held)
	mux.HandleFunc("POST /console/held/{id}/{action}", s.resolve)
	mux.HandleFunc("GET /console/reports", s.reports)
	mux.HandleFunc("GET /console/reports/usage.csv", s.reportCSV)
	mux.HandleFunc("GET /console/rua", s.ruaPage)
	mux.HandleFunc("GET /console/queue", s.queuePage)
	mux.HandleFunc("POST /console/queue/{id}/{action}", s.queueAction)
	mux.HandleFunc("GET /console/policy", s.policyPage)
	mux.HandleFunc("POST /console/policy/test", s.policyTest)
	mux.HandleFunc("GET /console/keys", s.keysPage)
	mux.HandleFunc("POST /console/keys/add", s.keysAdd)
	mux.HandleFunc("POST /console/keys/remove", s.keysRemove)
	mux.HandleFunc("GET /console/tls", s.tlsPage)
	mux.HandleFunc("POST /console/tls/refresh", s.tlsRefresh)
	mux.HandleFunc("GET /console/users", s.usersPage)
}

// clientIP is the client's address for lock-outs and the audit: the peer,
// or what a trusted proxy says (see web.ClientOf).
func clientIP(r *http.Request) string { return web.ClientIP(r) }

func (s *Service) page(w http.ResponseWriter, status int, name string, data map[string]any) {
	data["Org"] = s.Config().Org.Name
	data["Dev"] = s.Dev
	if err := web.Render(w, status, name, data); err != nil {
		s.Log.Error("rendering console page failed", "page", name, "err", err)
	}
}

func (s *Service) fail(w http.ResponseWriter, status int, title, advice string) {
	web.ErrorPage(w, s.Config().Org.Name, status, title, advice)
}

func (s *Service) oops(w http.ResponseWriter, err error) {
	s.Log.Error("console request failed", "err", err)
	s.fail(w, http.StatusServiceUnavailable, "Something went wrong on our side", "Nothing was changed. Try again; if it keeps happening, check the gateway's log.")
}

func hashID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// startSession gives the browser a new session id at stage, ending the one
// it had: the id changes at every step of sign-in (password, TOTP
// enrolment), so an id fixed or seen before a step is worth nothing after.
func (s *Service) startSession(w http.ResponseWriter, r *http.Request, user, stage string) error {
	if c, err := r.Cookie(web.CookieName(r, cookie)); err == nil {
		if err := s.Store.DeleteConsoleSession(r.Context(), hashID(c.Value)); err != nil {
			return err
		}
	}
	b := make([]byte, 32)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	if err := s.Store.PutConsoleSession(r.Context(), hashID(id), user, stage, time.Now().Add(8*time.Hour)); err != nil {
		return err
	}
	http.SetCookie(w, web.SessionCookie(r, cookie, id, 0))
	return nil
}

// session returns the signed-in user and the session's stage.
func (s *Service) session(r *http.Request) (*store.User, string, []byte) {
	c, err := r.Cookie(web.CookieName(r, cookie))
	if err != nil || len(c.Value) != 43 {
		return nil, "", nil
	}
	h := hashID(c.Value)
	name, stage, err := s.Store.ConsoleSession(r.Context(), h, time.Now())
	if err != nil {
		return nil, "", nil
	}
	u, err := s.Store.GetUser(r.Context(), name)
	if err != nil || u.Disabled {
		return nil, "", nil
	}
	return u, stage, h
}

// need answers the request unless a fully signed-in user with one of roles
// made it.
func (s *Service) need(w http.ResponseWriter, r *http.Request, roles ...string) (*store.User, bool) {
	u, stage, _ := s.session(r)
	if u == nil || stage != "ok" {
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return nil, false
	}
	for _, role := range roles {
		if u.Role == role {
			return u, true
		}
	}
	s.fail(w, http.StatusForbidden, "Not allowed", "Your role ("+u.Role+") cannot do this. Ask an administrator.")
	return nil, false
}

func (s *Service) loginPage(w http.ResponseWriter, r *http.Request) {
	s.page(w, http.StatusOK, "console_login.html", map[string]any{"Title": "Sign in to the console", "CSRF": web.CSRFToken(w, r)})
}

var errBad = errors.New("bad credentials")

func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Reload the sign-in page and try again.")
		return
	}
	name, pw, code := r.PostFormValue("user"), r.PostFormValue("password"), r.PostFormValue("code")
	again := func(problem string, status int) {
		s.page(w, status, "console_login.html", map[string]any{"Title": "Sign in to the console", "CSRF": web.CSRFToken(w, r), "Problem": problem, "User": name})
	}
	keys := []string{"console-user:" + name, "console-ip:" + clientIP(r)}
	for _, k := range keys {
		if locked, until := s.Limiter.Locked(k); locked {
			again("Too many failed sign-ins. Try again after "+until.UTC().Format("15:04 UTC")+".", http.StatusTooManyRequests)
			return
		}
	}
	u, err := s.Store.GetUser(r.Context(), name)
	ok := false
	if err == nil && !u.Disabled && (u.Role == "admin" || u.Role == "auditor") {
		ok, _ = auth.CheckPassword(u.PasswordHash, pw)
	} else {
		auth.CheckUnknown(pw) // the same time for unknown users
	}
	stage := "ok"
	if ok {
		secret, err := s.secret(r.Context(), u.Name)
		switch {
		case err != nil:
			s.oops(w, err)
			return
		case secret != "":
			if ok, err = s.useTOTP(r.Context(), u.Name, secret, code); err != nil {
				s.oops(w, err)
				return
			}
		case u.Role == "admin":
			stage = "enroll" // TOTP is required for admins: set it up now
		}
	}
	if !ok {
		for _, k := range keys {
			s.Limiter.Fail(k)
		}
		s.audit(r, name, "console.login_failed", name, "")
		again("The user name, password or code is not right.", http.StatusUnauthorized)
		return
	}
	for _, k := range keys {
		s.Limiter.Succeed(k)
	}
	if err := s.startSession(w, r, u.Name, stage); err != nil {
		s.oops(w, err)
		return
	}
	s.audit(r, u.Name, "console.login", u.Name, stage)
	if stage == "enroll" {
		http.Redirect(w, r, "/console/totp", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console", http.StatusSeeOther)
}

func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Reload the page and try again.")
		return
	}
	if _, _, h := s.session(r); h != nil {
		s.Store.DeleteConsoleSession(r.Context(), h)
	}
	http.SetCookie(w, web.SessionCookie(r, cookie, "", -1))
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// pendingTOTP holds an admin's new secret until they prove it with a code.
func (s *Service) pendingKey(u *store.User) (*otp.Key, error) {
	// Derived from the user and the console key: stable across the two
	// requests of enrolment, unknown to anyone without the key.
	seed := sha256.Sum256(append(append([]byte("totp-enrol\x00"), s.Key...), []byte(u.Name+"\x00"+u.PasswordHash)...))
	return totp.Generate(totp.GenerateOpts{Issuer: s.Config().Org.Name, AccountName: u.Name, Secret: seed[:20]})
}

// enrolling returns the new TOTP key of an admin who must set one up,
// answering the request itself otherwise.
func (s *Service) enrolling(w http.ResponseWriter, r *http.Request) (*otp.Key, bool) {
	u, stage, _ := s.session(r)
	if u == nil || stage != "enroll" {
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return nil, false
	}
	k, err := s.pendingKey(u)
	if err != nil {
		s.oops(w, err)
		return nil, false
	}
	return k, true
}

func (s *Service) totpPage(w http.ResponseWriter, r *http.Request) {
	k, ok := s.enrolling(w, r)
	if !ok {
		return
	}
	s.page(w, http.StatusOK, "console_totp.html", map[string]any{"Title": "Set up your authenticator", "Secret": k.Secret(), "CSRF": web.CSRFToken(w, r)})
}

func (s *Service) totpQR(w http.ResponseWriter, r *http.Request) {
	k, ok := s.enrolling(w, r)
	if !ok {
		return
	}
	code, err := qr.Encode(k.URL(), qr.M)
	if err != nil {
		s.oops(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(code.PNG())
}

func (s *Service) totpEnroll(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Reload the page and try again.")
		return
	}
	u, stage, h := s.session(r)
	if u == nil || stage != "enroll" {
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return
	}
	k, err := s.pendingKey(u)
	if err != nil {
		s.oops(w, err)
		return
	}
	valid, err := s.useTOTP(r.Context(), u.Name, k.Secret(), r.PostFormValue("code"))
	if err != nil {
		s.oops(w, err)
		return
	}
	if !valid {
		if s.Limiter.Fail("console-user:" + u.Name) {
			s.Store.DeleteConsoleSession(r.Context(), h)
		}
		s.page(w, http.StatusUnprocessableEntity, "console_totp.html", map[string]any{"Title": "Set up your authenticator", "Secret": k.Secret(),
			"CSRF": web.CSRFToken(w, r), "Problem": "That code is not right. Check the time on your phone and enter the code now shown."})
		return
	}
	sealed, err := s.seal(u.Name, k.Secret())
	if err == nil {
		err = s.Store.SetTOTPSecret(r.Context(), u.Name, sealed)
	}
	if err == nil {
		err = s.startSession(w, r, u.Name, "ok")
	}
	if err != nil {
		s.oops(w, err)
		return
	}
	s.audit(r, u.Name, "console.totp_enrolled", u.Name, "")
	http.Redirect(w, r, "/console", http.StatusSeeOther)
}

func (s *Service) aead() (cipher.AEAD, error) {
	b, err := aes.NewCipher(s.Key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func (s *Service) seal(user, secret string) (string, error) {
	a, err := s.aead()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, a.NonceSize())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(a.Seal(nonce, nonce, []byte(secret), []byte("totp:"+user))), nil
}

// secret returns the user's TOTP secret ("" when not enrolled).
func (s *Service) secret(ctx context.Context, user string) (string, error) {
	v, err := s.Store.TOTPSecret(ctx, user)
	if err != nil || v == "" {
		return "", err
	}
	b, err := base64.StdEncoding.DecodeString(v)
	a, aerr := s.aead()
	if err != nil || aerr != nil || len(b) < a.NonceSize() {
		return "", errors.New("stored TOTP secret unreadable")
	}
	p, err := a.Open(nil, b[:a.NonceSize()], b[a.NonceSize():], []byte("totp:"+user))
	if err != nil {
		return "", errors.New("stored TOTP secret unreadable")
	}
	return string(bytes.TrimSpace(p)), nil
}

// audit records what an operator did. An event the store refuses is kept
// by the recorder and appended later; the error means it is lost, and the
// caller must fail what it records.
func (s *Service) audit(r *http.Request, actor, action, object, detail string) error {
	e := &store.AuditEvent{At: time.Now(), Actor: actor, Action: action, Object: object, IP: clientIP(r), UA: r.UserAgent(), Detail: detail}
	if len(e.UA) > 200 {
		e.UA = e.UA[:200]
	}
	err := audit.Record(r.Context(), s.Recorder, s.Store, e)
	if err != nil {
		s.Log.Error("audit event not recorded", "action", action, "err", err)
	}
	return err
}
