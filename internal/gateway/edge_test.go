package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"sealpost/internal/config"
	"sealpost/internal/store"
)

// The web listener on the internet: HTTPS, trusted proxies, cookies,
// what monitoring alone may read, TOTP codes spent once.

// webCert makes a self-signed pair for 127.0.0.1 in a temp dir.
func webCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "web-cert.pem"), filepath.Join(dir, "web-key.pem")
	if err := selfSigned(certFile, keyFile, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// fetch does one request with extra headers and returns the response
// (body read into the second value).
func fetch(t *testing.T, c *http.Client, method, u string, hdr map[string]string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func noRedirect() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// cookieAttrs returns the Set-Cookie line for a cookie named name, "" if none.
func cookieAttrs(resp *http.Response, name string) string {
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, name+"=") {
			return c
		}
	}
	return ""
}

// assertSecureCookies: the CSRF cookie is __Host- prefixed, Secure, Path=/,
// no Domain; HSTS is sent (or, with want false, none of it).
func assertSecureCookies(t *testing.T, resp *http.Response, want bool, what string) {
	t.Helper()
	hsts := resp.Header.Get("Strict-Transport-Security")
	host := cookieAttrs(resp, "__Host-csrf")
	plain := cookieAttrs(resp, "csrf")
	if want {
		if !strings.Contains(hsts, "max-age=") {
			t.Errorf("%s: no Strict-Transport-Security", what)
		}
		if host == "" || !strings.Contains(host, "; Secure") || !strings.Contains(host, "Path=/;") || strings.Contains(host, "Domain=") || plain != "" {
			t.Errorf("%s: CSRF cookie not __Host-, Secure, Path=/: %q %q", what, host, plain)
		}
		return
	}
	if hsts != "" || host != "" || strings.Contains(plain, "Secure") || plain == "" {
		t.Errorf("%s: secure cookie or HSTS where the client's hop is plain HTTP: hsts %q, cookies %q %q", what, hsts, host, plain)
	}
}

func TestHTTPSListenerCookiesAndHSTS(t *testing.T) {
	certFile, keyFile := webCert(t)
	e := start(t, func(c *config.Config) {
		c.Web.TLSCert, c.Web.TLSKey = certFile, keyFile
		c.Web.PublicURL = "https://127.0.0.1"
	})
	base := "https://" + e.gw.WebAddr.String()
	c := noRedirect()
	for _, p := range []string{"/console/login", "/portal"} {
		resp, _ := fetch(t, c, "GET", base+p, nil, nil)
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Fatalf("%s: not TLS 1.2+", p)
		}
		assertSecureCookies(t, resp, true, p)
	}
	// Signing in sets the console session cookie the same way.
	pw := addConsoleUser(t, e.gw.Store, "audrey", "auditor")
	resp, page := fetch(t, c, "GET", base+"/console/login", nil, nil)
	csrf := csrfRe.FindStringSubmatch(page)[1]
	resp, _ = fetch(t, c, "POST", base+"/console/login", map[string]string{"Cookie": "__Host-csrf=" + csrf},
		url.Values{"user": {"audrey"}, "password": {pw}, "csrf": {csrf}})
	sess := cookieAttrs(resp, "__Host-sp_console")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(sess, "; Secure") || !strings.Contains(sess, "Path=/;") || !strings.Contains(sess, "HttpOnly") {
		t.Fatalf("console sign-in over HTTPS: %d, session cookie %q", resp.StatusCode, sess)
	}
	// Plain HTTP on the HTTPS port gets nothing.
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + e.gw.WebAddr.String() + "/portal"); err == nil {
		// Go's server answers a plain request on a TLS port with a 400; it
		// must carry no page.
		r, body := fetch(t, &http.Client{Timeout: 5 * time.Second}, "GET", "http://"+e.gw.WebAddr.String()+"/portal", nil, nil)
		if r.StatusCode != http.StatusBadRequest || strings.Contains(body, "csrf") {
			t.Fatalf("plain HTTP on the HTTPS listener: %d %q", r.StatusCode, body)
		}
	}
}

func TestPublicURLHTTPSMakesCookiesSecure(t *testing.T) {
	// TLS ends at a proxy that does not say so: public_url decides.
	e := start(t, func(c *config.Config) { c.Web.PublicURL = "https://portal.example.gov.uk" })
	resp, _ := fetch(t, noRedirect(), "GET", "http://"+e.gw.WebAddr.String()+"/portal", nil, nil)
	assertSecureCookies(t, resp, true, "public_url https, plain hop")
	e2 := start(t, nil)
	resp, _ = fetch(t, noRedirect(), "GET", "http://"+e2.gw.WebAddr.String()+"/portal", nil, nil)
	assertSecureCookies(t, resp, false, "public_url http")
}

// proxy is a TLS-terminating reverse proxy in front of the gateway that
// sets X-Forwarded-For and X-Forwarded-Proto as nginx does.
func proxy(t *testing.T, backend string) *httptest.Server {
	t.Helper()
	target, _ := url.Parse("http://" + backend)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
		r.SetXForwarded()
	}}
	s := httptest.NewTLSServer(rp)
	t.Cleanup(s.Close)
	return s
}

func TestForwardedProtoOnlyFromTrustedProxy(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		e := start(t, func(c *config.Config) {
			if trusted {
				c.Web.TrustedProxies = []string{"127.0.0.0/8"}
			} else {
				c.Web.TrustedProxies = []string{"192.0.2.0/24"}
			}
		})
		p := proxy(t, e.gw.WebAddr.String())
		resp, _ := fetch(t, noRedirect(), "GET", p.URL+"/console/login", nil, nil)
		assertSecureCookies(t, resp, trusted, "through a TLS proxy, trusted="+map[bool]string{true: "yes", false: "no"}[trusted])
		// Straight to the listener with a forged header.
		resp, _ = fetch(t, noRedirect(), "GET", "http://"+e.gw.WebAddr.String()+"/console/login", map[string]string{"X-Forwarded-Proto": "https"}, nil)
		assertSecureCookies(t, resp, trusted, "forged X-Forwarded-Proto")
	}
}

// consoleFail posts one failed console sign-in as user, with headers.
func consoleFail(t *testing.T, base, user string, hdr map[string]string) int {
	t.Helper()
	c := noRedirect()
	_, page := fetch(t, c, "GET", base+"/console/login", hdr, nil)
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page:\n%s", page)
	}
	h := map[string]string{"Cookie": "csrf=" + m[1]}
	for k, v := range hdr {
		h[k] = v
	}
	resp, _ := fetch(t, c, "POST", base+"/console/login", h, url.Values{"user": {user}, "password": {"wrong"}, "csrf": {m[1]}})
	return resp.StatusCode
}

func lastAuditIP(t *testing.T, e *env, action string) string {
	t.Helper()
	ev, err := e.gw.Store.LastAuditEvent(context.Background())
	if err != nil || ev.Action != action {
		t.Fatalf("the last audit event is not %s: %+v %v", action, ev, err)
	}
	return ev.IP
}

func sha(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// TestLockoutKeyedByForwardedAddress: behind a trusted proxy, the console
// lock-out counts per forwarded client address; from anyone else the
// header is ignored, so rotating it does not escape the lock-out.
func TestLockoutKeyedByForwardedAddress(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Web.TrustedProxies = []string{"127.0.0.0/8"} })
	base := "http://" + e.gw.WebAddr.String()
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": "198.51.100.9, " + ip} }
	for i := 0; i < 5; i++ {
		consoleFail(t, base, "user"+string(rune('a'+i)), from("203.0.113.5"))
	}
	if st := consoleFail(t, base, "other", from("203.0.113.5")); st != http.StatusTooManyRequests {
		t.Fatalf("sixth failure from one forwarded address: %d, want 429", st)
	}
	if st := consoleFail(t, base, "other", from("203.0.113.6")); st != http.StatusUnauthorized {
		t.Fatalf("another forwarded address was locked out too: %d", st)
	}
	if ip := lastAuditIP(t, e, "console.login_failed"); ip != "203.0.113.6" {
		t.Fatalf("audit IP %q, want the forwarded client 203.0.113.6 (the leftmost entry was the client's own claim)", ip)
	}

	u := start(t, nil) // no trusted proxies: the peer is the client
	base = "http://" + u.gw.WebAddr.String()
	for i := 0; i < 5; i++ {
		consoleFail(t, base, "user"+string(rune('a'+i)), map[string]string{"X-Forwarded-For": "203.0.113." + string(rune('1'+i))})
	}
	if st := consoleFail(t, base, "other", map[string]string{"X-Forwarded-For": "203.0.113.99"}); st != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For escaped the lock-out: %d, want 429", st)
	}
	if ip := lastAuditIP(t, u, "console.login_failed"); ip != "127.0.0.1" {
		t.Fatalf("audit IP %q from an untrusted peer, want 127.0.0.1", ip)
	}
}

func TestMetricsOnlyToMonitoring(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Web.TrustedProxies = []string{"127.0.0.0/8"} })
	base := "http://" + e.gw.WebAddr.String()
	tok := "tok_" + strings.Repeat("x", 40)
	if err := e.gw.Store.AddAPIToken(context.Background(), &store.APIToken{Name: "mon", Hash: sha(tok), Scope: "read"}); err != nil {
		t.Fatal(err)
	}
	c := noRedirect()
	outside := map[string]string{"X-Forwarded-For": "203.0.113.5"}
	for _, p := range []string{"/metrics", "/api/openapi.json"} {
		resp, body := fetch(t, c, "GET", base+p, outside, nil)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(strings.ToLower(body), "sealpost") || strings.Contains(body, "go_") {
			t.Errorf("%s from the internet: %d\n%s", p, resp.StatusCode, body)
		}
		if resp, _ := fetch(t, c, "GET", base+p, nil, nil); resp.StatusCode != 200 {
			t.Errorf("%s from loopback: %d", p, resp.StatusCode)
		}
		withTok := map[string]string{"X-Forwarded-For": "203.0.113.5", "Authorization": "Bearer " + tok}
		if resp, _ := fetch(t, c, "GET", base+p, withTok, nil); resp.StatusCode != 200 {
			t.Errorf("%s with a token: %d", p, resp.StatusCode)
		}
		bad := map[string]string{"X-Forwarded-For": "203.0.113.5", "Authorization": "Bearer " + tok + "x"}
		if resp, _ := fetch(t, c, "GET", base+p, bad, nil); resp.StatusCode != 404 {
			t.Errorf("%s with a wrong token: %d", p, resp.StatusCode)
		}
	}
	_, body := fetch(t, c, "GET", base+"/metrics", nil, nil)
	if strings.Contains(body, "go_info") || regexp.MustCompile(`go1\.\d`).MatchString(body) {
		t.Errorf("/metrics publishes the Go version")
	}
	// Nothing names the product: no Server header, the API's realm and errors.
	resp, body := fetch(t, c, "GET", base+"/api/messages", outside, nil)
	for _, s := range append(resp.Header.Values("Server"), resp.Header.Get("WWW-Authenticate"), body) {
		if strings.Contains(strings.ToLower(s), "sealpost") {
			t.Errorf("the API names the product: %q", s)
		}
	}

	// metrics_networks without loopback: loopback is refused too.
	n := start(t, func(c *config.Config) { c.Web.MetricsNetworks = []string{"192.0.2.0/24"} })
	if resp, _ := fetch(t, c, "GET", "http://"+n.gw.WebAddr.String()+"/metrics", nil, nil); resp.StatusCode != 404 {
		t.Errorf("/metrics outside metrics_networks: %d", resp.StatusCode)
	}
}

var secretRe = regexp.MustCompile(`id="secret">([A-Z2-7]+)<`)

// TestConsoleTOTPSpentOnceAndSessionRotates: the enrolment step gives a new
// session id (the old one is dead), and a TOTP code works once in its
// time step.
func TestConsoleTOTPSpentOnceAndSessionRotates(t *testing.T) {
	e := start(t, nil)
	pw := addConsoleUser(t, e.gw.Store, "root", "admin")
	b := newBrowser(t, e)
	b.get("/console/login")
	if st, page := b.post("/console/login", url.Values{"user": {"root"}, "password": {pw}}); st != 200 || !secretRe.MatchString(page) {
		t.Fatalf("password step: %d", st)
	}
	secret := secretRe.FindStringSubmatch(b.page)[1]
	u, _ := url.Parse(b.base)
	before := sessionCookie(b, u)
	code, _ := totp.GenerateCode(secret, time.Now())
	if st, page := b.post("/console/totp", url.Values{"code": {code}}); st != 200 || !strings.Contains(page, "Dashboard") {
		t.Fatalf("enrolment: %d", st)
	}
	after := sessionCookie(b, u)
	if before == "" || after == "" || before == after {
		t.Fatalf("session id not rotated at TOTP enrolment: %q -> %q", before, after)
	}
	old := noRedirect()
	if resp, _ := fetch(t, old, "GET", b.base+"/console", map[string]string{"Cookie": "sp_console=" + before}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the pre-enrolment session id still works: %d", resp.StatusCode)
	}

	signIn := func(code string) int {
		x := newBrowser(t, e)
		x.get("/console/login")
		st, _ := x.post("/console/login", url.Values{"user": {"root"}, "password": {pw}, "code": {code}})
		return st
	}
	// The enrolment code is spent; the next step's code works once.
	if st := signIn(code); st != http.StatusUnauthorized {
		t.Fatalf("enrolment code replayed: %d, want 401", st)
	}
	next, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if st := signIn(next); st != 200 {
		t.Fatalf("fresh code: %d", st)
	}
	if st := signIn(next); st != http.StatusUnauthorized {
		t.Fatalf("the same code accepted twice: %d, want 401", st)
	}
}

func sessionCookie(b *webClient, u *url.URL) string {
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "sp_console" {
			return c.Value
		}
	}
	return ""
}

func TestRedirectListener(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Web.RedirectListen = "127.0.0.1:0"
		c.Web.PublicURL = "https://portal.example.gov.uk"
	})
	resp, _ := fetch(t, noRedirect(), "GET", "http://"+e.gw.RedirectAddr.String()+"/portal?x=1", map[string]string{"Host": "evil.example"}, nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "https://portal.example.gov.uk/portal?x=1" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, loc)
	}
}

// TestPortalSessionRotates: signing in again in the same browser (here, as
// a second recipient) ends the session the browser had; the new id is
// another.
func TestPortalSessionRotates(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example", "bob@other.example"},
		message("Alice Staff <staff@example.gov.uk>", "jane@citizen.example", "[secure] Your case", "Dear Jane"))
	if code != 250 {
		t.Fatal(reply)
	}
	landing := func(rcpt string) string {
		link := linkRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, rcpt, "Secure message", 0).Data))
		if link == nil {
			t.Fatalf("no link for %s", rcpt)
		}
		return "/m/" + link[1]
	}
	jane, bob := landing("jane@citizen.example"), landing("bob@other.example")
	b := newBrowser(t, e)
	u, _ := url.Parse(b.base)
	portalSession := func() string {
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == "sp_session" {
				return c.Value
			}
		}
		return ""
	}
	signIn(t, e, b, jane, "jane@citizen.example")
	first := portalSession()
	signIn(t, e, b, bob, "bob@other.example")
	second := portalSession()
	if first == "" || second == "" || first == second {
		t.Fatalf("session id not renewed at sign-in: %q -> %q", first, second)
	}
	if resp, page := fetch(t, noRedirect(), "GET", b.base+jane, map[string]string{"Cookie": "sp_session=" + first}, nil); resp.StatusCode != 200 || !strings.Contains(page, "Email me a code") {
		t.Fatalf("the session before the second sign-in still opens the message: %d", resp.StatusCode)
	}
}

func TestConsoleNetworks(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Web.TrustedProxies = []string{"127.0.0.0/8"}
		c.Web.ConsoleNetworks = []string{"10.0.0.0/8", "127.0.0.0/8"}
	})
	base := "http://" + e.gw.WebAddr.String()
	c := noRedirect()
	outside := map[string]string{"X-Forwarded-For": "203.0.113.5"}
	inside := map[string]string{"X-Forwarded-For": "10.1.2.3"}
	for _, p := range []string{"/console/login", "/console", "/api/messages"} {
		if resp, _ := fetch(t, c, "GET", base+p, outside, nil); resp.StatusCode != 404 {
			t.Errorf("%s from outside console_networks: %d", p, resp.StatusCode)
		}
		if resp, _ := fetch(t, c, "GET", base+p, inside, nil); resp.StatusCode == 404 {
			t.Errorf("%s from inside console_networks: 404", p)
		}
	}
	if resp, _ := fetch(t, c, "GET", base+"/portal", outside, nil); resp.StatusCode != 200 {
		t.Errorf("the portal from outside: %d", resp.StatusCode)
	}
}
