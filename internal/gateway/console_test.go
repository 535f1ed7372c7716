package gateway

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"sealpost/internal/auth"
	"sealpost/internal/store"
)

func addConsoleUser(t *testing.T, st *store.Store, name, role string) string {
	t.Helper()
	pw := "correct horse battery " + name
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddUser(context.Background(), &store.User{Name: name, PasswordHash: h, Role: role}); err != nil {
		t.Fatal(err)
	}
	return pw
}

// TestBrowserConsole: an admin signs in with password and sets up TOTP,
// signs in again with a code, finds a message by recipient and reads its
// timeline, releases a held message (which is then delivered), and exports
// the usage report; axe-core on every page.
func TestBrowserConsole(t *testing.T) {
	src := axeSource(t)
	ctx := chromium(t)
	e := start(t, nil)
	pw := addConsoleUser(t, e.gw.Store, "root", "admin")
	base := "http://" + e.gw.WebAddr.String()
	// A held message (a look-alike domain) and a delivered one.
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"boss@examp1e.gov.uk"}, message("staff@example.gov.uk", "boss@examp1e.gov.uk", "minutes", "the minutes"))
	if code != 250 {
		t.Fatal(reply)
	}
	heldID := msgID(t, reply)
	code, reply = outbound(t, e, "staff@example.gov.uk", []string{"friend@elsewhere.example"}, message("staff@example.gov.uk", "friend@elsewhere.example", "lunch", "lunch?"))
	if code != 250 {
		t.Fatal(reply)
	}
	plainID := msgID(t, reply)

	var h1, secret string
	if err := chromedp.Run(ctx, chromedp.Navigate(base+"/console"), chromedp.WaitVisible("#user", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "console sign-in")
	if err := chromedp.Run(ctx, chromedp.SendKeys("#user", "root", chromedp.ByID), chromedp.SendKeys("#password", pw, chromedp.ByID),
		clickThrough("button.primary", "#secret"), chromedp.Text("#secret", &secret, chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "TOTP set-up")
	c, _ := totp.GenerateCode(secret, time.Now())
	if err := chromedp.Run(ctx, chromedp.SendKeys("#code", c, chromedp.ByID), clickThrough("button.primary", "ul.stats"),
		chromedp.Text("h1", &h1)); err != nil {
		t.Fatal(err)
	}
	if h1 != "Dashboard" {
		t.Fatalf("after TOTP set-up: %q", h1)
	}
	// Sign out; without the code the password alone is refused now.
	var problem string
	if err := chromedp.Run(ctx, clickThrough("button.linklike", "#user"),
		chromedp.SendKeys("#user", "root", chromedp.ByID), chromedp.SendKeys("#password", pw, chromedp.ByID),
		clickThrough("button.primary", ".error"), chromedp.Text(".error", &problem)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(problem, "not right") {
		t.Fatalf("password without code: %q", problem)
	}
	// The enrolment's code is spent (one use per time step): sign in with
	// the next step's, which the allowed clock drift accepts.
	c, _ = totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err := chromedp.Run(ctx, chromedp.SetValue("#password", pw, chromedp.ByID), chromedp.SendKeys("#code", c, chromedp.ByID),
		clickThrough("button.primary", "ul.stats")); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "dashboard")

	// Trace by recipient, then the timeline.
	var timeline string
	if err := chromedp.Run(ctx, chromedp.Navigate(base+"/console/trace?q=friend%40elsewhere.example"), chromedp.WaitVisible("table a", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "trace")
	if err := chromedp.Run(ctx, clickThrough("table a", "ol.timeline"),
		chromedp.Text("h1", &h1), chromedp.Text("ol.timeline", &timeline)); err != nil {
		t.Fatal(err)
	}
	if h1 != "Message "+plainID || !strings.Contains(timeline, "received") || !strings.Contains(timeline, "friend@elsewhere.example: delivered") {
		t.Fatalf("timeline of %s:\n%s", h1, timeline)
	}
	axe(t, ctx, src, "timeline")

	// Release the held message with a reason; it is delivered.
	if err := chromedp.Run(ctx, chromedp.Navigate(base+"/console/held"), chromedp.WaitVisible("#r-"+heldID, chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "held and quarantined")
	n := len(e.sink.Messages())
	if err := chromedp.Run(ctx, chromedp.SendKeys("#r-"+heldID, "checked with the sender", chromedp.ByID),
		clickThrough(`form[action$="/release"] button`, ".notice")); err != nil {
		t.Fatal(err)
	}
	got := mailTo(t, e.sink, "boss@examp1e.gov.uk", "minutes", n)
	if len(got.Data) == 0 {
		t.Fatal("released message not delivered")
	}
	if d, _ := e.gw.Store.GetDecision(context.Background(), heldID); d.State != "released" || d.ResolvedBy != "admin:root" || d.Resolution != "checked with the sender" {
		t.Fatalf("%+v", d)
	}

	// The other pages: queue, policy (with a test of a pasted message),
	// keys and DNS, users.
	for _, p := range []struct{ path, wait string }{{"/console/queue", "h1"}, {"/console/keys", "table"}, {"/console/users", "table"}, {"/console/policy", "#message"}} {
		if err := chromedp.Run(ctx, chromedp.Navigate(base+p.path), chromedp.WaitVisible(p.wait, chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		axe(t, ctx, src, p.path)
	}
	var result string
	if err := chromedp.Run(ctx, chromedp.SetValue("#message", "From: a@example.gov.uk\nTo: x@other.example\nSubject: test\n\nNHS no. 943 476 5919\n", chromedp.ByID),
		clickThrough(`form[action="/console/policy/test"] button`, "#result"),
		chromedp.Text("#result ~ table", &result, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(result, "x@other.example") || !strings.Contains(result, "hold") {
		t.Fatalf("policy test result: %q", result)
	}
	axe(t, ctx, src, "policy test result")

	// The usage report, and its CSV.
	if err := chromedp.Run(ctx, chromedp.Navigate(base+"/console/reports"), chromedp.WaitVisible("#csv", chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	axe(t, ctx, src, "reports")
	b := download(t, ctx, chromedp.Click("#csv", chromedp.ByID))
	if !strings.HasPrefix(string(b), "month,measure,key,value") || !strings.Contains(string(b), "protected_messages,hold,1") {
		t.Fatalf("CSV:\n%s", b)
	}
}

// TestConsoleRoles: an auditor sees but cannot release; a sender cannot
// sign in to the console at all.
func TestConsoleRoles(t *testing.T) {
	e := start(t, nil)
	apw := addConsoleUser(t, e.gw.Store, "audrey", "auditor")
	spw := addConsoleUser(t, e.gw.Store, "sam", "sender")
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"boss@examp1e.gov.uk"}, message("staff@example.gov.uk", "boss@examp1e.gov.uk", "minutes", "the minutes"))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	sam := newBrowser(t, e)
	sam.get("/console/login")
	if st, page := sam.post("/console/login", url.Values{"user": {"sam"}, "password": {spw}}); st != 401 || !strings.Contains(page, "not right") {
		t.Fatalf("sender sign-in: %d", st)
	}
	aud := newBrowser(t, e)
	aud.get("/console/login")
	if st, page := aud.post("/console/login", url.Values{"user": {"audrey"}, "password": {apw}}); st != 200 || !strings.Contains(page, "Dashboard") {
		t.Fatalf("auditor sign-in: %d\n%s", st, page)
	}
	if st, page := aud.get("/console/held"); st != 200 || !strings.Contains(page, "minutes") || strings.Contains(page, "Release</button>") {
		t.Fatalf("auditor's held page: %d", st)
	}
	if st, _ := aud.post("/console/held/"+id+"/release", url.Values{"reason": {"because"}}); st != 403 {
		t.Fatalf("auditor release: %d", st)
	}
	if d, _ := e.gw.Store.GetDecision(context.Background(), id); d.State != "held" {
		t.Fatalf("state %s", d.State)
	}
	// Five wrong passwords lock the account.
	x := newBrowser(t, e)
	for i := 0; i < 5; i++ {
		x.get("/console/login")
		x.post("/console/login", url.Values{"user": {"audrey"}, "password": {"wrong"}})
	}
	x.get("/console/login")
	if st, page := x.post("/console/login", url.Values{"user": {"audrey"}, "password": {apw}}); st != 429 || !strings.Contains(page, "Too many") {
		t.Fatalf("after 5 failures: %d", st)
	}
}
