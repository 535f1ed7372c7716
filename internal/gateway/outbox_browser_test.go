package gateway

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// TestBrowserDevOutbox: a newcomer's first hour in Chromium. A message
// held for its sender puts a notice in the dev outbox; the notice is opened
// there, its link clicked (it opens the hold page in a new tab), the
// message sent, and it is released: the recipient's notification lands in
// the outbox. A message whose HTML carries scripts is shown without any of
// them running. axe checks every outbox page.
func TestBrowserDevOutbox(t *testing.T) {
	src := axeSource(t)
	ctx := chromium(t)
	e := startDev(t, nil)
	var hits, dialogs atomic.Int64
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev.(type) {
		case *runtime.EventBindingCalled:
			hits.Add(1)
		case *page.EventJavascriptDialogOpening:
			dialogs.Add(1)
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(false))
		}
	})
	hook := `for (const f of ["alert", "confirm", "prompt", "print"]) { try { window[f] = function () { __xssHit(f + " in " + location.href); }; } catch (e) {} }`
	if err := chromedp.Run(ctx, runtime.AddBinding("__xssHit"), chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(hook).WithRunImmediately(true).Do(ctx)
		return err
	})); err != nil {
		t.Fatal(err)
	}

	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"gp@surgery.example"},
		message("Staff <staff@example.gov.uk>", "gp@surgery.example", "[secure] Referral", "Referral for patient, NHS no. 943 476 5919, please see attached."))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	captured(t, e, "staff@example.gov.uk", "Held for your confirmation")
	base := "http://" + e.gw.WebAddr.String()

	// The outbox, then the notice as a mail client shows it.
	var h1 string
	if err := chromedp.Run(ctx, chromedp.Navigate(base+"/dev/outbox"), chromedp.WaitVisible("table", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "dev outbox list")
	if err := chromedp.Run(ctx, chromedp.Click(`//a[contains(., "Held for your confirmation")]`, chromedp.BySearch),
		chromedp.WaitVisible("pre.body", chromedp.ByQuery), chromedp.Text("h1", &h1)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h1, "Held for your confirmation") {
		t.Fatalf("notice h1 %q", h1)
	}
	axe(t, ctx, src, "dev outbox message (text)")

	// Its send link, clicked inside the rendered text, opens the hold page.
	opened := chromedp.WaitNewTarget(ctx, func(i *target.Info) bool { return strings.Contains(i.URL, "/hold/"+id) })
	if err := chromedp.Run(ctx, chromedp.Click(`pre.body a[href*="do=confirm"]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	var tab target.ID
	select {
	case tab = <-opened:
	case <-time.After(20 * time.Second):
		t.Fatal("the hold link did not open a tab")
	}
	tctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(tab))
	defer cancel()
	if err := chromedp.Run(tctx, chromedp.WaitVisible(`button.primary`, chromedp.ByQuery), chromedp.Text("h1", &h1)); err != nil {
		t.Fatal(err)
	}
	if h1 != "Your message is waiting for you" {
		t.Fatalf("hold page h1 %q", h1)
	}
	if err := chromedp.Run(tctx, chromedp.Click(`button.primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`//h1[contains(., "being sent")]`, chromedp.BySearch)); err != nil {
		t.Fatal(err)
	}
	// Released: sealed into the portal, its notification captured.
	captured(t, e, "gp@surgery.example", "Secure message")
	if d, err := e.gw.Store.GetDecision(context.Background(), id); err != nil || d.State != "released" {
		t.Fatalf("decision after sending: %+v %v", d, err)
	}

	// HTML with scripts: shown, sanitised, in the sandboxed frame; nothing runs.
	msg, _ := richMessage("outbox-xss")
	if code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, msg); code != 250 {
		t.Fatal(reply)
	}
	x := captured(t, e, "jane@citizen.example", "Menü")
	var sandbox string
	if err := chromedp.Run(ctx, chromedp.Navigate(base+"/dev/outbox/"+itoa64(x.Seq)), chromedp.WaitVisible("iframe.body", chromedp.ByQuery),
		chromedp.AttributeValue("iframe.body", "sandbox", &sandbox, nil, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the frame load and any script run
	if sandbox != "allow-popups allow-popups-to-escape-sandbox" {
		t.Errorf("frame sandbox %q", sandbox)
	}
	axe(t, ctx, src, "dev outbox message (HTML)")
	if err := chromedp.Run(ctx, chromedp.Navigate(base+"/dev/outbox/"+itoa64(x.Seq)+"/source"), chromedp.WaitVisible("pre.source", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "dev outbox source")
	if hits.Load() != 0 || dialogs.Load() != 0 {
		t.Fatalf("a script in a message ran: %d hooks, %d dialogs", hits.Load(), dialogs.Load())
	}
	// The outbox fits a 390 px phone screen too.
	for _, p := range []string{"/dev/outbox", "/dev/outbox/" + itoa64(x.Seq), "/dev/outbox/" + itoa64(x.Seq) + "/source"} {
		var width int
		if err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+p), chromedp.WaitVisible("h1", chromedp.ByQuery),
			chromedp.Evaluate(`document.documentElement.scrollWidth`, &width)); err != nil {
			t.Fatal(err)
		}
		if width > 390 {
			t.Errorf("%s: %d px wide at a 390 px screen", p, width)
		}
	}
	// The watch works: a script served raw is caught.
	if err := chromedp.Run(ctx, chromedp.Navigate(`data:text/html,<script>alert("control")</script>`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if hits.Load() != 1 {
		t.Fatalf("the control page fired %d hooks, want 1", hits.Load())
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
