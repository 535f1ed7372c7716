package gateway

import (
	"testing"

	"github.com/chromedp/chromedp"

	"sealpost/internal/config"
)

// TestBrowserConsoleNarrow: the console fits a 390 px wide phone screen:
// no page scrolls sideways, with real content in its tables (messages
// waiting in the queue, a held one, a trace). axe checks the dashboard.
func TestBrowserConsoleNarrow(t *testing.T) {
	src := axeSource(t)
	ctx := chromium(t)
	e := start(t, func(c *config.Config) {
		c.Outbound.Smarthost = "127.0.0.1:1" // nothing listens: mail stays queued
		c.Policy.Disable = []string{"first-contact-sensitive"}
	})
	pw := addConsoleUser(t, e.gw.Store, "audrey", "auditor")
	send := func(to, subject, body string) string {
		t.Helper()
		code, reply := outbound(t, e, "a.very.long.sender.address@example.gov.uk", []string{to}, message("a.very.long.sender.address@example.gov.uk", to, subject, body))
		if code != 250 {
			t.Fatal(reply)
		}
		return msgID(t, reply)
	}
	id := send("someone.with.a.long.name@a-rather-long-domain-name.example", "Quarterly figures for the committee meeting next week", "see attached")
	send("jane@citizen.example", "[secure] case", "NHS no. 943 476 5919, card 4111 1111 1111 1111 exp 09/27")
	send("boss@examp1e.gov.uk", "minutes", "the minutes")
	base := "http://" + e.gw.WebAddr.String()
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/console/login"), chromedp.WaitVisible("#user", chromedp.ByID),
		chromedp.SendKeys("#user", "audrey", chromedp.ByID), chromedp.SendKeys("#password", pw, chromedp.ByID),
		chromedp.Click("button.primary", chromedp.ByQuery), chromedp.WaitVisible("ul.stats", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "dashboard at 390 px")
	for _, p := range []struct{ path, wait string }{
		{"/console", "svg.chart"},
		{"/console/trace?q=example", "table a"},
		{"/console/trace/" + id, "ol.timeline"},
		{"/console/queue", "table"},
		{"/console/held", "section.sent"},
		{"/console/reports", "#csv"},
		{"/console/policy", "#message"},
		{"/console/keys", "table"},
	} {
		var width, client int
		if err := chromedp.Run(ctx, chromedp.Navigate(base+p.path), chromedp.WaitVisible(p.wait, chromedp.ByQuery),
			chromedp.Evaluate(`document.documentElement.scrollWidth`, &width),
			chromedp.Evaluate(`document.documentElement.clientWidth`, &client)); err != nil {
			t.Fatalf("%s: %v", p.path, err)
		}
		if client != 390 {
			t.Fatalf("viewport %d px wide, want 390", client)
		}
		if width > 390 {
			var wide []string
			chromedp.Run(ctx, chromedp.Evaluate(`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 391).slice(0, 8).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))`, &wide))
			t.Errorf("%s: %d px wide at a 390 px screen; too wide: %v", p.path, width, wide)
		}
	}
}
