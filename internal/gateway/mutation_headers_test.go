package gateway

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"sealpost/internal/config"
)

// TestSecurityHeadersOnEveryPage fetches every kind of page the web
// listener serves (portal, console, hold pages, errors, static files, the
// API, the framed message body) and checks the headers that keep a page
// from being framed, sniffed, scripted from elsewhere or leaking its URL:
// a CSP with default-src 'none' and frame-ancestors, nosniff, no-referrer,
// X-Frame-Options; and that no header names the product.
func TestSecurityHeadersOnEveryPage(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	msg := "From: staff@example.gov.uk\r\nTo: jane@citizen.example\r\nSubject: [secure] headers\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hello</p>\r\n"
	if code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, msg); code != 250 {
		t.Fatal(reply)
	}
	landing := "/m/" + linkRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0).Data))[1]
	anon := newBrowser(t, e)
	jane := newBrowser(t, e)
	signIn(t, e, jane, landing, "jane@citizen.example")

	check := func(b *webClient, path string, framedBySelf bool) {
		t.Helper()
		req, _ := http.NewRequest("GET", b.base+path, nil)
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s (%d): CSP %q lacks default-src 'none'", path, resp.StatusCode, csp)
		}
		fa, xfo := "frame-ancestors 'none'", "DENY"
		if framedBySelf {
			fa, xfo = "frame-ancestors 'self'", "SAMEORIGIN"
		}
		if !strings.Contains(csp, fa) {
			t.Errorf("%s (%d): CSP %q lacks %s", path, resp.StatusCode, csp, fa)
		}
		if regexp.MustCompile(`script-src[^;]*('unsafe-inline'|'unsafe-eval'|\*|https?:)`).MatchString(csp) {
			t.Errorf("%s: CSP %q allows inline or foreign script", path, csp)
		}
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": xfo} {
			if got := h.Get(k); got != want {
				t.Errorf("%s (%d): %s is %q, want %q", path, resp.StatusCode, k, got, want)
			}
		}
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(strings.ToLower(v), "sealpost") {
					t.Errorf("%s: header %s names the product: %q", path, k, v)
				}
			}
		}
	}
	for _, p := range []string{"/", "/portal", "/r", "/console/login", "/console", "/no/such/page", "/m/0123456789abcdefghijklmnopqrstuv",
		landing, "/hold/01JDZQ0000000000000000000A?t=x", "/static/style.css", "/brand.css", "/healthz", "/api/messages"} {
		check(anon, p, false)
	}
	check(jane, landing, false)
	check(jane, landing+"/body", true)
}
