package gateway

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/security"
	"github.com/chromedp/chromedp"

	"sealpost/internal/config"
)

// TestBrowserHTTPS: Chromium signs in to the console over HTTPS, straight
// to the listener and through a TLS-terminating proxy; the session and
// CSRF cookies it keeps are __Host-, Secure, Path=/, and HSTS is sent. The
// same proxy in front of a gateway that does not trust it gets neither.
func TestBrowserHTTPS(t *testing.T) {
	ctx := chromium(t)
	// The test certificates are self-signed.
	if err := chromedp.Run(ctx, security.SetIgnoreCertificateErrors(true)); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := webCert(t)
	direct := start(t, func(c *config.Config) {
		c.Web.TLSCert, c.Web.TLSKey = certFile, keyFile
		c.Web.PublicURL = "https://127.0.0.1"
	})
	trusted := start(t, func(c *config.Config) { c.Web.TrustedProxies = []string{"127.0.0.0/8"} })
	untrusted := start(t, func(c *config.Config) { c.Web.TrustedProxies = []string{"192.0.2.0/24"} })
	for _, tc := range []struct {
		name   string
		e      *env
		base   string
		secure bool
	}{
		{"HTTPS listener", direct, "https://" + direct.gw.WebAddr.String(), true},
		{"trusted proxy", trusted, proxy(t, trusted.gw.WebAddr.String()).URL, true},
		{"untrusted proxy", untrusted, proxy(t, untrusted.gw.WebAddr.String()).URL, false},
	} {
		pw := addConsoleUser(t, tc.e.gw.Store, "audrey", "auditor")
		var h1, hsts string
		var cookies []*network.Cookie
		// The pages' CSP allows no fetch(): read HSTS off the responses.
		var mu sync.Mutex
		lctx, stop := context.WithCancel(ctx)
		chromedp.ListenTarget(lctx, func(ev any) {
			if r, ok := ev.(*network.EventResponseReceived); ok && strings.HasPrefix(r.Response.URL, tc.base) {
				for k, v := range r.Response.Headers {
					if strings.EqualFold(k, "Strict-Transport-Security") {
						mu.Lock()
						hsts, _ = v.(string)
						mu.Unlock()
					}
				}
			}
		})
		err := chromedp.Run(ctx, network.Enable(), network.ClearBrowserCookies(),
			chromedp.Navigate(tc.base+"/console/login"), chromedp.WaitVisible("#user", chromedp.ByID),
			chromedp.SendKeys("#user", "audrey", chromedp.ByID), chromedp.SendKeys("#password", pw, chromedp.ByID),
			chromedp.Click("button.primary", chromedp.ByQuery), chromedp.WaitVisible("ul.stats", chromedp.ByQuery), chromedp.Text("h1", &h1),
			chromedp.ActionFunc(func(ctx context.Context) error {
				var err error
				cookies, err = network.GetCookies().WithURLs([]string{tc.base + "/"}).Do(ctx)
				return err
			}))
		stop()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		mu.Lock()
		seenHSTS := hsts
		mu.Unlock()
		if h1 != "Dashboard" {
			t.Fatalf("%s: signed in to %q", tc.name, h1)
		}
		names := map[string]*network.Cookie{}
		for _, c := range cookies {
			names[c.Name] = c
		}
		if tc.secure {
			for _, n := range []string{"__Host-sp_console", "__Host-csrf"} {
				c := names[n]
				if c == nil || !c.Secure || c.Path != "/" || !c.HTTPOnly || strings.HasPrefix(c.Domain, ".") {
					t.Errorf("%s: cookie %s: %+v (all: %v)", tc.name, n, c, keys(names))
				}
			}
			if !strings.Contains(seenHSTS, "max-age=") {
				t.Errorf("%s: no HSTS seen by the browser", tc.name)
			}
			continue
		}
		if c := names["sp_console"]; c == nil || c.Secure || names["__Host-sp_console"] != nil || seenHSTS != "" {
			t.Errorf("%s: X-Forwarded-Proto believed from an untrusted peer: cookies %v, HSTS %q", tc.name, keys(names), seenHSTS)
		}
	}
}

func keys(m map[string]*network.Cookie) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
