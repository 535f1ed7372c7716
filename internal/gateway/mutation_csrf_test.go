package gateway

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
)

// csrfRoutes is every state-changing route of the browser surfaces (portal,
// console, hold pages) with a path to try it on. The REST API is left out:
// it takes a bearer token, never a cookie, so a cross-site page cannot
// spend the caller's authority. TestCSRFOnEveryPost fails when a POST route
// is added to the code and not to this table.
var csrfRoutes = map[string]string{
	"POST /hold/{id}":                      "/hold/01JDZQ0000000000000000000A",
	"POST /m/{token}/code":                 "/m/0123456789abcdefghijklmnopqrstuv/code",
	"POST /m/{token}/verify":               "/m/0123456789abcdefghijklmnopqrstuv/verify",
	"POST /m/{token}/reply":                "/m/0123456789abcdefghijklmnopqrstuv/reply",
	"POST /r":                              "/r",
	"POST /portal/code":                    "/portal/code",
	"POST /portal/verify":                  "/portal/verify",
	"POST /portal/logout":                  "/portal/logout",
	"POST /portal/s/{id}/revoke":           "/portal/s/x/revoke",
	"POST /portal/s/{id}/expiry":           "/portal/s/x/expiry",
	"POST /portal/passkey/register/begin":  "/portal/passkey/register/begin",
	"POST /portal/passkey/register/finish": "/portal/passkey/register/finish",
	"POST /portal/passkey/login/begin":     "/portal/passkey/login/begin",
	"POST /portal/passkey/login/finish":    "/portal/passkey/login/finish",
	"POST /console/login":                  "/console/login",
	"POST /console/totp":                   "/console/totp",
	"POST /console/logout":                 "/console/logout",
	"POST /console/held/{id}/{action}":     "/console/held/x/release",
	"POST /console/queue/{id}/{action}":    "/console/queue/x/retry",
	"POST /console/policy/test":            "/console/policy/test",
	"POST /console/tls/refresh":            "/console/tls/refresh",
	"POST /console/keys/add":               "/console/keys/add",
	"POST /console/keys/remove":            "/console/keys/remove",
}

// postRoutes finds the POST routes registered in the browser surfaces'
// source, so that a new form cannot escape the sweep below.
func postRoutes(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`HandleFunc\("(POST [^"]+)"`)
	var found []string
	for _, dir := range []string{"../portal", "../console", "../web", "../ops", "../hold"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			// The control socket (ops/control.go) is served only on a Unix
			// socket of mode 0600 in the data directory, never on the web
			// listener, so no browser can reach it (TestOperationsGoThroughOps
			// checks the web listener does not answer its paths).
			if strings.HasSuffix(f, "_test.go") || f == filepath.Join("..", "ops", "control.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				found = append(found, m[1])
			}
		}
	}
	sort.Strings(found)
	return found
}

// TestCSRFOnEveryPost sends every state-changing route the ways a forged
// cross-site request can arrive: without the cookie, without the form's
// token, with a wrong token, and with the right token but a cross-site
// Sec-Fetch-Site or a foreign Origin (a browser that sends them). Each is
// refused. The same request from the same origin with the token is not
// refused (the control: the refusals are the CSRF check's, not a missing
// route or sign-in).
func TestCSRFOnEveryPost(t *testing.T) {
	routes := postRoutes(t)
	if len(routes) < 15 {
		t.Fatalf("found only %d POST routes in the source: %v", len(routes), routes)
	}
	for _, r := range routes {
		if _, ok := csrfRoutes[r]; !ok {
			t.Errorf("POST route %q is not in csrfRoutes: add it so its CSRF check is tested", r)
		}
	}
	// A host name, not an IP address, so that passkeys are on.
	e := start(t, func(c *config.Config) { c.Web.PublicURL = "http://localhost" })
	base := "http://" + e.gw.WebAddr.String()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// A page with a form sets the cookie and shows its token.
	resp, err := client.Get(base + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRe.FindStringSubmatch(string(page))
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page:\n%s", page)
	}
	token := m[1]
	wrong := strings.Repeat("A", len(token))

	type attempt struct {
		name   string
		cookie bool   // send the CSRF cookie
		token  string // the form field (and X-CSRF-Token for the passkey calls)
		header map[string]string
	}
	attempts := []attempt{
		{"no cookie", false, token, nil},
		{"no token", true, "", nil},
		{"wrong token", true, wrong, nil},
		{"cross-site fetch", true, token, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"same-site fetch", true, token, map[string]string{"Sec-Fetch-Site": "same-site"}},
		{"foreign origin", true, token, map[string]string{"Origin": "http://evil.example"}},
	}
	refused := func(st int, body string) bool {
		return st == http.StatusForbidden && (strings.Contains(body, "has expired") || strings.Contains(body, "not allowed"))
	}
	do := func(path string, a attempt) (int, string) {
		form := url.Values{"csrf": {a.token}, "user": {"nobody"}, "password": {"x"}, "code": {"00000000"},
			"address": {"x@citizen.example"}, "reference": {"ABCDE-FGHIJ"}, "action": {"confirm"}, "t": {"x"}, "reason": {"x"}}
		if a.token == "" {
			form.Del("csrf")
		}
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if strings.HasSuffix(path, "/reply") {
			// The reply form carries files: multipart, as the browser sends it.
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			for k, vs := range form {
				mw.WriteField(k, vs[0])
			}
			mw.Close()
			req, _ = http.NewRequest("POST", base+path, &buf)
			req.Header.Set("Content-Type", mw.FormDataContentType())
		}
		if strings.Contains(path, "/passkey/") && a.token != "" {
			req.Header.Set("X-CSRF-Token", a.token)
		}
		for k, v := range a.header {
			req.Header.Set(k, v)
		}
		c := client
		if !a.cookie {
			c = &http.Client{Timeout: 10 * time.Second, CheckRedirect: client.CheckRedirect}
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, route := range routes {
		path, ok := csrfRoutes[route]
		if !ok {
			continue
		}
		for _, a := range attempts {
			if a.name == "foreign origin" && strings.Contains(path, "/passkey/") {
				// The passkey calls take the token in a header, which a page
				// of another origin cannot set without a CORS preflight that
				// is never granted; they do not check Origin.
				continue
			}
			if st, body := do(path, a); !refused(st, body) {
				t.Errorf("%s (%s): %s was not refused: %d %.200s", route, path, a.name, st, body)
			}
		}
		ok1 := attempt{"same origin", true, token, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": base}}
		if st, body := do(path, ok1); refused(st, body) {
			t.Errorf("%s (%s): the control, a same-origin POST with the token, was refused too: %d", route, path, st)
		} else if strings.Contains(body, "There is no page at this address") {
			t.Errorf("%s (%s): no such route is mounted", route, path)
		}
	}
}
