package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
)

// CSRF protection for every form: a random token in a cookie (SameSite
// Strict, HttpOnly) that the form must echo (double submit), and a refusal
// of cross-site POSTs by Origin or Sec-Fetch-Site where the browser sends
// them. The token is compared in constant time.

const csrfField = "csrf"

func csrfCookieName(r *http.Request) string { return CookieName(r, "csrf") }

// csrfToken returns the request's CSRF token, setting the cookie if new.
func csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookieName(r)); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, SessionCookie(r, "csrf", tok, 0))
	return tok
}

// csrfOK checks a POST: same origin, and the form's token matches the cookie.
func csrfOK(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	c, err := r.Cookie(csrfCookieName(r))
	if err != nil || c.Value == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue(csrfField))) == 1
}

// CSRFToken returns the request's CSRF token for a form, setting its cookie.
func CSRFToken(w http.ResponseWriter, r *http.Request) string { return csrfToken(w, r) }

// CSRFOK checks a form POST (see csrfOK).
func CSRFOK(r *http.Request) bool { return csrfOK(r) }
