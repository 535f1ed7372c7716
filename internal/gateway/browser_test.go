package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"sealpost/internal/config"
	"sealpost/internal/testutil"
)

// Browser tests: Debian's Chromium, driven over the DevTools protocol, with
// axe-core (npm) checking every portal page for accessibility problems.
// make test installs both; without them these tests skip, unless
// SEALPOST_REQUIRE_TOOLS is set.

func chromium(t *testing.T) context.Context {
	t.Helper()
	exe := "/usr/bin/chromium"
	if _, err := os.Stat(exe); err != nil {
		testutil.Missing(t, "chromium is not installed")
	}
	dir, err := os.MkdirTemp("", "sealpost-chromium")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(dir),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(func() {
		cancel() // waits for the browser to exit
		os.RemoveAll(dir)
	})
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// A browser test is bounded by the test binary's -timeout, less a
	// margin to report what it was doing; not by a guess at the machine's
	// speed (the XSS corpus opens 223 pages, slow on a loaded machine).
	limit := 10 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d)-30*time.Second < limit {
		limit = max(time.Until(d)-30*time.Second, time.Minute)
	}
	ctx, cancel3 := context.WithTimeout(ctx, limit)
	t.Cleanup(cancel3)
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

func axeSource(t *testing.T) string {
	t.Helper()
	p := os.Getenv("SEALPOST_AXE")
	if p == "" {
		p = "/opt/sealpost-test/node_modules/axe-core/axe.min.js"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		testutil.Missing(t, "axe-core is not installed at %s", p)
	}
	return string(b)
}

// axe runs axe-core on the current page and fails on serious or critical
// violations of WCAG 2.x A/AA (and best practice).
func axe(t *testing.T, ctx context.Context, src, what string) {
	t.Helper()
	for _, v := range axeViolations(t, ctx, src, what) {
		t.Errorf("axe, %s: %s", what, v)
	}
}

func axeViolations(t *testing.T, ctx context.Context, src, what string) []string {
	t.Helper()
	var out []string
	err := chromedp.Run(ctx,
		chromedp.Evaluate(src, nil),
		chromedp.Evaluate(`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]}}).then(r =>
			r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => v.impact + " " + v.id + ": " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", ")))`,
			&out, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if err != nil {
		t.Fatalf("axe on %s: %v", what, err)
	}
	return out
}

func TestBrowserPortal(t *testing.T) {
	src := axeSource(t)
	ctx := chromium(t)
	// axe itself finds problems: an image without a text alternative.
	if err := chromedp.Run(ctx, chromedp.Navigate(`data:text/html,<html><body><img src="x.png"></body></html>`)); err != nil {
		t.Fatal(err)
	}
	if v := axeViolations(t, ctx, src, "self-test"); len(v) == 0 {
		t.Fatal("axe found nothing wrong with a bad page")
	}
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	var notes strings.Builder
	for i := 0; notes.Len() < 400<<10; i++ {
		fmt.Fprintf(&notes, "Visit %d on day %d: seen at %d:%02d, next review in %d weeks. ", i, i*7%365, 9+i%8, i*13%60, 1+i%6)
	}
	attachment := docxInZip(t, notes.String())
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"},
		withAttachment("Alice Staff <staff@example.gov.uk>", "jane@citizen.example", "[secure] Your case", "Dear Jane, your NHS number 943 476 5919 is on file.", "notes.zip", attachment))
	if code != 250 {
		t.Fatal(reply)
	}
	link := linkRe.FindString(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0).Data))
	link = strings.Replace(link, e.cfg.Web.PublicURL, "http://"+e.gw.WebAddr.String(), 1)
	base := "http://" + e.gw.WebAddr.String()

	// The landing page: sender and a button, nothing sent yet.
	var h1 string
	if err := chromedp.Run(ctx, chromedp.Navigate(link), chromedp.Text("h1", &h1)); err != nil {
		t.Fatal(err)
	}
	if h1 != "You have a secure message" {
		t.Fatalf("landing h1 %q", h1)
	}
	axe(t, ctx, src, "landing page")
	n := len(e.sink.Messages())
	if err := chromedp.Run(ctx, chromedp.Click("button.primary", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "code page")
	c := codeRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "one-time code", n).Data))
	if err := chromedp.Run(ctx, chromedp.SendKeys("#code", c[1], chromedp.ByID), chromedp.Click("button.primary", chromedp.ByQuery),
		chromedp.WaitVisible("ul.files", chromedp.ByQuery), chromedp.Text("h1", &h1)); err != nil {
		t.Fatal(err)
	}
	if h1 != "Your case" {
		t.Fatalf("message h1 %q (the keyword must be gone)", h1)
	}
	var body string
	chromedp.Run(ctx, chromedp.Text("pre.body", &body))
	if !strings.Contains(body, "943 476 5919") {
		t.Fatalf("body %q", body)
	}
	axe(t, ctx, src, "message page")

	// Download the attachment and compare.
	got := download(t, ctx, chromedp.Click("ul.files a", chromedp.ByQuery))
	if sha256.Sum256(got) != sha256.Sum256(attachment) {
		t.Fatalf("downloaded %d bytes, want %d", len(got), len(attachment))
	}

	// Reply with an attachment; it reaches the mail host.
	form := filepath.Join(t.TempDir(), "consent.txt")
	os.WriteFile(form, []byte("I consent."), 0o600)
	n = len(e.sink.Messages())
	var notice string
	if err := chromedp.Run(ctx, chromedp.Navigate(link), chromedp.SendKeys("#text", "Thank you. My signed form is attached.", chromedp.ByID),
		chromedp.SetUploadFiles("#files", []string{form}, chromedp.ByID),
		chromedp.Click(`form[enctype] button`, chromedp.ByQuery), chromedp.WaitVisible(".notice", chromedp.ByQuery), chromedp.Text(".notice", &notice)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(notice, "Your reply was sent securely") {
		t.Fatalf("notice %q", notice)
	}
	var where string
	chromedp.Run(ctx, chromedp.Location(&where))
	if !strings.HasSuffix(where, "/sent") {
		t.Fatalf("after the reply the browser is at %s, not the page that says it was sent", where)
	}
	axe(t, ctx, src, "reply-sent page")
	// Reloading that page sends nothing again.
	if err := chromedp.Run(ctx, chromedp.Reload(), chromedp.WaitVisible(".notice", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	r := mailTo(t, e.sink, "staff@example.gov.uk", "Re: Your case", n)
	if !strings.Contains(decodeQP(r.Data), "My signed form is attached.") || !strings.Contains(string(r.Data), "consent.txt") {
		t.Fatalf("reply at the mail host:\n%s", r.Data)
	}
	// The staff answer it from their mail client: it appears in the
	// conversation.
	replyID := testutil.Header(r.Data, "Message-ID")
	n = len(e.sink.Messages())
	if code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, "From: Alice Staff <staff@example.gov.uk>\r\nTo: jane@citizen.example\r\nSubject: RE: Your case\r\n"+
		"In-Reply-To: "+replyID+"\r\nReferences: "+replyID+"\r\n\r\nThank you, Jane: received.\r\n"); code != 250 {
		t.Fatal(reply)
	}
	mailTo(t, e.sink, "jane@citizen.example", "New secure message", n)
	var thread string
	if err := chromedp.Run(ctx, chromedp.Navigate(link), chromedp.WaitVisible("section.reply", chromedp.ByQuery), chromedp.Text("main", &thread)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(thread, "Thank you, Jane: received.") || !strings.Contains(thread, "My signed form is attached.") {
		t.Fatalf("conversation: %q", thread)
	}
	axe(t, ctx, src, "message page with a conversation")
	if count(e, "staff@example.gov.uk", "Re: Your case") != 1 {
		t.Fatal("the reply was sent twice")
	}

	// Jane signs out; the sender signs in, sees the reading, revokes.
	if err := chromedp.Run(ctx, chromedp.Click(".signout button", chromedp.ByQuery), chromedp.WaitVisible("#address", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "sign-in page")
	n = len(e.sink.Messages())
	if err := chromedp.Run(ctx, chromedp.SendKeys("#address", "staff@example.gov.uk", chromedp.ByID), chromedp.Click("button.primary", chromedp.ByQuery),
		chromedp.WaitVisible("#code", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	c = codeRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "staff@example.gov.uk", "one-time code", n).Data))
	var table string
	if err := chromedp.Run(ctx, chromedp.SendKeys("#code", c[1], chromedp.ByID), chromedp.Click("button.primary", chromedp.ByQuery),
		chromedp.WaitVisible("section.sent table", chromedp.ByQuery), chromedp.Text("section.sent table", &table)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table, "jane@citizen.example") || !strings.Contains(table, "127.0.0.1") {
		t.Fatalf("sender's table: %q", table)
	}
	axe(t, ctx, src, "sender's view")
	// Withdrawing asks once.
	var ask string
	if err := chromedp.Run(ctx, chromedp.Click(`section.sent td form button`, chromedp.ByQuery), chromedp.WaitVisible("form button.primary", chromedp.ByQuery), chromedp.Text("h1", &ask)); err != nil {
		t.Fatal(err)
	}
	if ask != "Withdraw this message for jane@citizen.example?" {
		t.Fatalf("confirmation page h1 %q", ask)
	}
	axe(t, ctx, src, "withdrawal confirmation page")
	if err := chromedp.Run(ctx, chromedp.Click("form button.primary", chromedp.ByQuery), chromedp.WaitVisible(".notice", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	// The recipient's next view says it is withdrawn.
	if err := chromedp.Run(ctx, chromedp.Navigate(link), chromedp.Text("h1", &h1)); err != nil {
		t.Fatal(err)
	}
	if h1 != "This message has been withdrawn" {
		t.Fatalf("after revocation: %q", h1)
	}
	axe(t, ctx, src, "withdrawn page")
	if err := chromedp.Run(ctx, chromedp.Navigate(base+"/r"), chromedp.WaitVisible("#reference", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "reference page")
}

// TestBrowserXSSCorpus sends every DOMPurify vector as an HTML body and
// opens it in the portal in Chromium with alert, confirm, prompt and print
// hooked in every frame: none may fire, and no dialog may open.
func TestBrowserXSSCorpus(t *testing.T) {
	ctx := chromium(t)
	b, err := os.ReadFile("../../testdata/html-xss/dompurify/expect.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct{ Title, Payload string }
	json.Unmarshal(b, &cases)
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	smtp := dial(t, e.gw.OutboundAddr)
	smtp.expect("EHLO exchange.example", 250)
	for i, c := range cases {
		msg := fmt.Sprintf("From: staff@example.gov.uk\r\nTo: jane@citizen.example\r\nSubject: [secure] vector %d\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n",
			i, b64lines([]byte("<html><body>"+c.Payload+`<img src="x" onerror="alert(1)"><p>end</p></body></html>`)))
		if code, reply := smtp.send("staff@example.gov.uk", []string{"jane@citizen.example"}, msg); code != 250 {
			t.Fatalf("vector %d: %s", i, reply)
		}
	}
	// One link per vector, from the notifications.
	links := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(links) < len(cases) && time.Now().Before(deadline) {
		for _, m := range e.sink.Messages() {
			if l := linkRe.FindString(decodeQP(m.Data)); l != "" {
				links[strings.Replace(l, e.cfg.Web.PublicURL, "http://"+e.gw.WebAddr.String(), 1)] = true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(links) != len(cases) {
		t.Fatalf("%d notifications for %d vectors", len(links), len(cases))
	}
	var hits, dialogs atomic.Int64
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventBindingCalled:
			hits.Add(1)
			t.Logf("hook fired: %s", ev.Payload)
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
	// Sign in once (the session is the address's), then open every message.
	var first string
	for l := range links {
		first = l
		break
	}
	n := len(e.sink.Messages())
	if err := chromedp.Run(ctx, chromedp.Navigate(first), chromedp.Click("button.primary", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	c := codeRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "one-time code", n).Data))
	if err := chromedp.Run(ctx, chromedp.SendKeys("#code", c[1], chromedp.ByID), chromedp.Click("button.primary", chromedp.ByQuery),
		chromedp.WaitVisible("iframe.body", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	for l := range links {
		if err := chromedp.Run(ctx, chromedp.Navigate(l), chromedp.WaitVisible("iframe.body", chromedp.ByQuery)); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("%d hooks fired in the portal", hits.Load())
	}
	// The watch works: one of the vectors, served unsanitised and
	// unsandboxed, is caught.
	if err := chromedp.Run(ctx, chromedp.Navigate(`data:text/html,<img src="x" onerror="alert(1)">`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if hits.Load() != 1 {
		t.Fatalf("the control page fired %d hooks, want 1; dialogs %d", hits.Load(), dialogs.Load())
	}
	if dialogs.Load() != 0 {
		t.Fatalf("%d dialogs opened", dialogs.Load())
	}
}

// download runs click, which starts a download, and returns the file.
func download(t *testing.T, ctx context.Context, click chromedp.Action) []byte {
	t.Helper()
	dir := t.TempDir()
	done := make(chan string, 1)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chromedp.ListenTarget(lctx, func(ev any) {
		if p, ok := ev.(*browser.EventDownloadProgress); ok && p.State == browser.DownloadProgressStateCompleted {
			select {
			case done <- p.GUID:
			default:
			}
		}
	})
	if err := chromedp.Run(ctx, browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllowAndName).WithDownloadPath(dir).WithEventsEnabled(true), click); err != nil {
		t.Fatal(err)
	}
	select {
	case guid := <-done:
		b, err := os.ReadFile(filepath.Join(dir, guid))
		if err != nil {
			t.Fatal(err)
		}
		return b
	case <-time.After(30 * time.Second):
		t.Fatal("the download did not complete")
	}
	return nil
}

var b64re = regexp.MustCompile(`.{1,76}`)

func b64lines(b []byte) string {
	return strings.Join(b64re.FindAllString(b64std(b), -1), "\r\n")
}

func b64std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestBrowserPasskey: a recipient who signed in with a code adds a passkey
// (Chromium's virtual authenticator, over the DevTools protocol), signs
// out, and signs in again with the passkey: no code is mailed.
func TestBrowserPasskey(t *testing.T) {
	src := axeSource(t)
	ctx := chromium(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	e := start(t, func(c *config.Config) {
		c.Policy.Disable = []string{"first-contact-sensitive"}
		c.Web.Listen = fmt.Sprintf("127.0.0.1:%d", port)
		c.Web.PublicURL = fmt.Sprintf("http://localhost:%d", port) // WebAuthn needs a name, not an IP address
	})
	if e.gw.Portal.Passkeys == nil {
		t.Fatal("passkeys off for a localhost URL")
	}
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, message("staff@example.gov.uk", "jane@citizen.example", "[secure] Passkey test", "Hello Jane."))
	if code != 250 {
		t.Fatal(reply)
	}
	link := linkRe.FindString(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0).Data))
	if !strings.HasPrefix(link, "http://localhost:") {
		t.Fatalf("link %q", link)
	}
	if err := chromedp.Run(ctx, webauthn.Enable(), chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := webauthn.AddVirtualAuthenticator(&webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		}).Do(ctx)
		return err
	})); err != nil {
		t.Fatal(err)
	}
	// Sign in with a code, then add a passkey.
	n := len(e.sink.Messages())
	if err := chromedp.Run(ctx, chromedp.Navigate(link), chromedp.Click("button.primary", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	c := codeRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "one-time code", n).Data))
	var status string
	if err := chromedp.Run(ctx, chromedp.SendKeys("#code", c[1], chromedp.ByID), chromedp.Click("button.primary", chromedp.ByQuery),
		chromedp.WaitVisible(`[data-passkey="register"]`, chromedp.ByQuery),
		chromedp.Click(`[data-passkey="register"]`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("pk-status").textContent.length > 0`, nil, chromedp.WithPollingTimeout(15*time.Second)),
		chromedp.Text("#pk-status", &status, chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, "Passkey added") {
		t.Fatalf("registration: %q", status)
	}
	axe(t, ctx, src, "message page with passkeys")
	if keys, _ := e.gw.Store.Passkeys(context.Background(), "jane@citizen.example"); len(keys) != 1 {
		t.Fatalf("%d passkeys stored", len(keys))
	}
	// Sign out; sign in with the passkey: the message shows, no code is sent.
	n = len(e.sink.Messages())
	var h1 string
	if err := chromedp.Run(ctx, chromedp.Click(".signout button", chromedp.ByQuery), chromedp.WaitVisible("#address", chromedp.ByID),
		chromedp.Navigate(link), chromedp.WaitVisible(`[data-passkey="login"]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "landing page with passkeys")
	if err := chromedp.Run(ctx, chromedp.Click(`[data-passkey="login"]`, chromedp.ByQuery),
		chromedp.WaitVisible("pre.body", chromedp.ByQuery), chromedp.Text("h1", &h1)); err != nil {
		t.Fatal(err)
	}
	if h1 != "Passkey test" {
		t.Fatalf("after passkey sign-in: %q", h1)
	}
	time.Sleep(200 * time.Millisecond)
	for _, m := range e.sink.Messages()[n:] {
		if strings.Contains(testutil.Header(m.Data, "Subject"), "one-time code") {
			t.Fatal("a code was mailed for a passkey sign-in")
		}
	}
	events, _ := e.gw.Store.AuditEvents(context.Background(), "jane@citizen.example", 100)
	var passkeyLogin bool
	for _, ev := range events {
		passkeyLogin = passkeyLogin || ev.Action == "portal.signed_in" && ev.Detail == "passkey"
	}
	if !passkeyLogin {
		t.Fatal("no audit event for the passkey sign-in")
	}
}
