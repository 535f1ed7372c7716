package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/testutil"
)

// webClient is an HTTP client with cookies that keeps the last page.
type webClient struct {
	t    *testing.T
	c    *http.Client
	base string
	page string
}

func newBrowser(t *testing.T, e *env) *webClient {
	jar, _ := cookiejar.New(nil)
	return &webClient{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}, base: "http://" + e.gw.WebAddr.String()}
}

func (b *webClient) do(req *http.Request) (int, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.page = string(body)
	return resp.StatusCode, b.page
}

func (b *webClient) get(path string) (int, string) {
	req, _ := http.NewRequest("GET", b.base+path, nil)
	return b.do(req)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formRe finds the reply form's once-only token.
var formRe = regexp.MustCompile(`name="form" value="([^"]+)"`)

// post submits a form with the CSRF token of the last page.
func (b *webClient) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	if m := csrfRe.FindStringSubmatch(b.page); m != nil && form.Get("csrf") == "" {
		form.Set("csrf", m[1])
	}
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *webClient) postFiles(path string, fields map[string]string, files map[string][]byte) (int, string) {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if m := csrfRe.FindStringSubmatch(b.page); m != nil {
		mw.WriteField("csrf", m[1])
	}
	if m := formRe.FindStringSubmatch(b.page); m != nil && fields["form"] == "" {
		mw.WriteField("form", m[1])
	}
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for name, data := range files {
		w, _ := mw.CreateFormFile("files", name)
		w.Write(data)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", b.base+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

var (
	linkRe = regexp.MustCompile(`https?://[^\s"<>]+/m/([0-9a-z]{32})`)
	codeRe = regexp.MustCompile(`code is:\s+(\d{4} \d{4})`)
)

// mailTo waits for a message to rcpt whose subject contains subj.
func mailTo(t *testing.T, s *testutil.Sink, rcpt, subj string, after int) testutil.Received {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		msgs := s.Messages()
		for i := len(msgs) - 1; i >= after; i-- {
			m := msgs[i]
			if len(m.Rcpts) == 1 && m.Rcpts[0] == rcpt && strings.Contains(testutil.Header(m.Data, "Subject"), subj) {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no mail to %s with %q", rcpt, subj)
	return testutil.Received{}
}

func signIn(t *testing.T, e *env, b *webClient, landing, rcpt string) {
	t.Helper()
	n := len(e.sink.Messages())
	if st, page := b.get(landing); st != 200 || !strings.Contains(page, "Email me a code") {
		t.Fatalf("landing %d:\n%s", st, page)
	}
	action := regexp.MustCompile(`action="(/m/[0-9a-z]{32}/code)"`).FindStringSubmatch(b.page)
	if st, page := b.post(action[1], url.Values{}); st != 200 || !strings.Contains(page, "Enter your code") {
		t.Fatalf("code page %d:\n%s", st, page)
	}
	code := codeRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, rcpt, "one-time code", n).Data))
	if code == nil {
		t.Fatal("no code in the mail")
	}
	verify := regexp.MustCompile(`action="([^"]+/verify[^"]*)"`).FindStringSubmatch(b.page)
	if st, page := b.post(verify[1], url.Values{"code": {code[1]}}); st != 200 || strings.Contains(page, "Email me a code") {
		t.Fatalf("after the code %d:\n%s", st, page)
	}
}

func TestPortalEndToEnd(t *testing.T) {
	e := start(t, nil)
	attachment := bytes.Repeat([]byte("attachment data 0123456789\n"), 50000) // 1.35 MB
	msg := withAttachment("Alice Staff <staff@example.gov.uk>", "jane@citizen.example", "[secure] Your case", "Dear Jane, NHS no. 943 476 5919 is on file.", "case.zip", attachment)
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example", "bob@other.example"}, msg)
	if code != 250 {
		t.Fatal(reply)
	}
	// First contact with personal data: held; the sender confirms.
	id := msgID(t, reply)
	if _, err := e.gw.Queue.Resolve(context.Background(), id, true, "released", "sender", "test"); err != nil {
		t.Fatal(err)
	}
	notice := mailTo(t, e.sink, "jane@citizen.example", "Secure message from Alice Staff", 0)
	text := decodeQP(notice.Data)
	if strings.Contains(text, "943 476 5919") || strings.Contains(string(notice.Data), "attachment data") || strings.Contains(text, "password:") {
		t.Fatalf("the notification carries content:\n%s", text)
	}
	if !strings.Contains(testutil.Header(notice.Data, "From"), "@example.gov.uk") || !strings.Contains(string(notice.Data), "DKIM-Signature") {
		t.Fatal("notification not from the org or not signed")
	}
	verifyDKIM(t, e.gw, notice.Data)
	link := linkRe.FindStringSubmatch(text)
	if link == nil {
		t.Fatalf("no link:\n%s", text)
	}
	landing := "/m/" + link[1]
	// The plaintext is gone from the spool once sealed.
	waitQueueEmpty(t, e)

	jane := newBrowser(t, e)
	// GETs change nothing: no code is sent by opening the link.
	before := len(e.sink.Messages())
	for i := 0; i < 3; i++ {
		jane.get(landing)
	}
	time.Sleep(200 * time.Millisecond)
	if len(e.sink.Messages()) != before {
		t.Fatal("a GET sent a mail")
	}
	// Without a session, nothing of the content.
	if st, _ := jane.get(landing + "/a/1"); st != 403 {
		t.Fatalf("download without session: %d", st)
	}
	signIn(t, e, jane, landing, "jane@citizen.example")
	st, page := jane.get(landing)
	if st != 200 || !strings.Contains(page, "943 476 5919") || !strings.Contains(page, "case.zip") || !strings.Contains(page, "Your case") {
		t.Fatalf("message page %d:\n%s", st, page)
	}
	att := regexp.MustCompile(`href="(/m/[0-9a-z]{32}/a/\d+)"`).FindStringSubmatch(page)
	st, got := jane.get(att[1])
	if st != 200 || sha256.Sum256([]byte(got)) != sha256.Sum256(attachment) {
		t.Fatalf("download %d, %d bytes (want %d)", st, len(got), len(attachment))
	}
	// Another recipient's session opens nothing of Jane's.
	bob := newBrowser(t, e)
	bobNotice := mailTo(t, e.sink, "bob@other.example", "Secure message", 0)
	bobLink := "/m/" + linkRe.FindStringSubmatch(decodeQP(bobNotice.Data))[1]
	signIn(t, e, bob, bobLink, "bob@other.example")
	if st, page := bob.get(landing); st != 200 || strings.Contains(page, "943 476 5919") || !strings.Contains(page, "Email me a code") {
		t.Fatalf("Bob sees Jane's page %d", st)
	}
	if st, _ := bob.get(landing + "/a/1"); st != 403 {
		t.Fatalf("Bob downloads Jane's attachment: %d", st)
	}

	// Jane replies with an attachment: it reaches the sender through the mail host.
	jane.get(landing)
	n := len(e.sink.Messages())
	st, page = jane.postFiles(landing+"/reply", map[string]string{"text": "Thank you, see my form."}, map[string][]byte{"form.txt": []byte("my form")})
	if st != 200 || !strings.Contains(page, "Your reply was sent securely") {
		t.Fatalf("reply %d:\n%s", st, page)
	}
	r := mailTo(t, e.sink, "staff@example.gov.uk", "Re: Your case", n)
	if !strings.Contains(decodeQP(r.Data), "Thank you, see my form.") || !strings.Contains(string(r.Data), "form.txt") {
		t.Fatalf("reply mail:\n%s", r.Data)
	}
	if st, page := jane.get(landing); st != 200 || !strings.Contains(page, "Thank you, see my form.") {
		t.Fatal("the thread does not show the reply")
	}
	if st, page := bob.get(bobLink); st != 200 || strings.Contains(page, "Thank you") {
		t.Fatal("Bob sees Jane's reply")
	}

	// The sender signs in, sees who read it, and withdraws it for Jane.
	staff := newBrowser(t, e)
	staff.get("/portal")
	n = len(e.sink.Messages())
	if st, page := staff.post("/portal/code", url.Values{"address": {"staff@example.gov.uk"}}); st != 200 || !strings.Contains(page, "Enter your code") {
		t.Fatalf("sender code page %d:\n%s", st, page)
	}
	c := codeRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "staff@example.gov.uk", "one-time code", n).Data))
	verify := regexp.MustCompile(`action="([^"]+)"`).FindAllStringSubmatch(staff.page, -1)
	var va string
	for _, v := range verify {
		if strings.Contains(v[1], "verify") {
			va = strings.ReplaceAll(v[1], "&#43;", "+")
		}
	}
	if st, page := staff.post(strings.ReplaceAll(va, "&amp;", "&"), url.Values{"code": {c[1]}}); st != 200 || !strings.Contains(page, "Messages you sent securely") || !strings.Contains(page, "jane@citizen.example") {
		t.Fatalf("sender view %d:\n%s", st, page)
	}
	if !strings.Contains(staff.page, "Withdraw for jane@citizen.example") {
		t.Fatal("no withdraw button")
	}
	sealed, _ := e.gw.Store.SealedByMsg(context.Background(), id)
	// Withdrawal asks once: the button leads to a page that asks, and only
	// its form withdraws.
	if st, page := staff.get("/portal/s/" + sealed.ID + "/withdraw?recipient=jane%40citizen.example"); st != 200 || !strings.Contains(page, "Withdraw this message for jane@citizen.example?") {
		t.Fatalf("withdraw page %d:\n%s", st, page)
	}
	if st, page := staff.post("/portal/s/"+sealed.ID+"/revoke", url.Values{"recipient": {"jane@citizen.example"}}); st != 200 || !strings.Contains(page, "Withdraw this message for jane@citizen.example?") {
		t.Fatalf("revoke without confirmation %d:\n%s", st, page)
	}
	if st, page := jane.get(landing); st != 200 || !strings.Contains(page, "943 476 5919") {
		t.Fatalf("withdrawn before it was confirmed: %d", st)
	}
	if st, page := staff.post("/portal/s/"+sealed.ID+"/revoke", url.Values{"recipient": {"jane@citizen.example"}, "confirm": {"yes"}}); st != 200 || !strings.Contains(page, "Access withdrawn") || !strings.Contains(page, "Withdrawn on ") {
		t.Fatalf("revoke %d:\n%s", st, page)
	}
	if st, page := jane.get(landing); st != 410 || !strings.Contains(page, "withdrawn") {
		t.Fatalf("after revocation Jane gets %d:\n%s", st, page)
	}
	if st, page := bob.get(bobLink); st != 200 || !strings.Contains(page, "943 476 5919") {
		t.Fatalf("Bob lost access too: %d", st)
	}
	// Withdraw for everyone: the key is destroyed.
	staff.get("/portal/s/" + sealed.ID + "/withdraw")
	if st, page := staff.post("/portal/s/"+sealed.ID+"/revoke", url.Values{"confirm": {"yes"}}); st != 200 || !strings.Contains(page, "Nobody can read it any more") || strings.Contains(page, "revoked") {
		t.Fatalf("withdraw for everyone %d:\n%s", st, page)
	}
	if st, _ := bob.get(bobLink); st != 410 {
		t.Fatalf("after full revocation Bob gets %d", st)
	}
	if m, _ := e.gw.Store.GetSealed(context.Background(), sealed.ID); m.WrappedKey != nil {
		t.Fatal("key not destroyed")
	}
	// Every access is in the audit log.
	events, _ := e.gw.Store.AuditEvents(context.Background(), sealed.ID, 100)
	seen := map[string]bool{}
	for _, ev := range events {
		seen[ev.Action] = true
	}
	for _, want := range []string{"portal.sealed", "portal.notified", "portal.view", "portal.download", "portal.reply", "portal.revoke", "portal.revoked"} {
		if !seen[want] {
			t.Errorf("no %s event (have %v)", want, seen)
		}
	}
}

func TestPortalCodeBruteForce(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, message("staff@example.gov.uk", "jane@citizen.example", "[secure] hi", "hello"))
	if code != 250 {
		t.Fatal(reply)
	}
	notice := mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0)
	landing := "/m/" + linkRe.FindStringSubmatch(decodeQP(notice.Data))[1]
	b := newBrowser(t, e)
	b.get(landing)
	b.post(landing+"/code", url.Values{})
	mailTo(t, e.sink, "jane@citizen.example", "one-time code", 0)
	for i := 1; i <= 5; i++ {
		st, page := b.post(landing+"/verify", url.Values{"code": {"00000000"}})
		if i < 5 && (st != 422 || !strings.Contains(page, "not right")) {
			t.Fatalf("try %d: %d\n%s", i, st, page)
		}
		if i == 5 && (st != 429 || !strings.Contains(page, "Too many wrong codes")) {
			t.Fatalf("try 5: %d\n%s", st, page)
		}
	}
	// Locked: even a fresh code cannot be asked for or used.
	b.get(landing)
	if st, _ := b.post(landing+"/code", url.Values{}); st != 429 {
		t.Fatalf("code while locked: %d", st)
	}
	l, _ := e.gw.Store.GetPortalLock(context.Background(), "jane@citizen.example")
	if l.Lockouts != 1 || l.LockedUntil.Before(time.Now().Add(14*time.Minute)) {
		t.Fatalf("%+v", l)
	}
	// With 8 digits and 5 tries per code, a guess succeeds with p = 5e-8 per lock-out.
	events, _ := e.gw.Store.AuditEvents(context.Background(), "jane@citizen.example", 100)
	fails, locks := 0, 0
	for _, ev := range events {
		switch ev.Action {
		case "portal.code_failed":
			fails++
		case "portal.locked_out":
			locks++
		}
	}
	if fails != 5 || locks != 1 {
		t.Fatalf("audit: %d failures, %d lock-outs", fails, locks)
	}
}

// TestPortalReferenceExpiryAndLimits: a notification without a link (the
// recipient's domain is on portal.no_link_domains) and the reference page;
// "remember this browser"; the per-address limit on codes; expiry
// destroying the message.
func TestPortalReferenceExpiryAndLimits(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Policy.Disable = []string{"first-contact-sensitive"}
		c.Portal.NoLinkDomains = []string{"careful.example"}
		c.Portal.CodesPerHour = 3
	})
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"ann@careful.example"}, message("staff@example.gov.uk", "ann@careful.example", "[secure] no link", "Hello Ann."))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	text := decodeQP(mailTo(t, e.sink, "ann@careful.example", "Secure message", 0).Data)
	if strings.Contains(text, "/m/") || strings.Contains(text, "href=") {
		t.Fatalf("notification has a link:\n%s", text)
	}
	ref := regexp.MustCompile(`\b([0-9A-Z]{5}-[0-9A-Z]{5})\b`).FindStringSubmatch(text)
	if ref == nil {
		t.Fatalf("no reference:\n%s", text)
	}
	b := newBrowser(t, e)
	b.get("/r")
	if st, page := b.post("/r", url.Values{"reference": {"ZZZZZ-ZZZZZ"}}); st != 404 || !strings.Contains(page, "no message with that reference") {
		t.Fatalf("wrong reference: %d", st)
	}
	if st, page := b.post("/r", url.Values{"reference": {strings.ToLower(strings.ReplaceAll(ref[1], "-", " "))}}); st != 200 || !strings.Contains(page, "Email me a code") {
		t.Fatalf("reference: %d\n%s", st, page)
	}
	landing := b.page
	action := regexp.MustCompile(`action="(/m/[0-9a-z]{32})/code"`).FindStringSubmatch(landing)[1]
	// Remember this browser: the session cookie outlives the browser session.
	n := len(e.sink.Messages())
	b.post(action+"/code", url.Values{})
	c := codeRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "ann@careful.example", "one-time code", n).Data))
	form := url.Values{"code": {c[1]}, "remember": {"1"}}
	if m := csrfRe.FindStringSubmatch(b.page); m != nil {
		form.Set("csrf", m[1])
	}
	req, _ := http.NewRequest("POST", b.base+action+"/verify", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := (&http.Client{Jar: b.c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "sp_session" {
			sc = ck
		}
	}
	if sc == nil || sc.MaxAge < 29*24*3600 || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", sc)
	}
	// Codes per hour for one address: the fourth is refused.
	other := newBrowser(t, e)
	for i := 1; i <= 3; i++ {
		other.get(action)
		if st, _ := other.post(action+"/code", url.Values{}); (i < 3 && st != 200) || (i == 3 && st != 429) {
			t.Fatalf("code %d (one was sent already): %d", i+1, st)
		}
	}
	// Expiry destroys the message, and the page says so.
	sealed, _ := e.gw.Store.SealedByMsg(context.Background(), id)
	e.gw.Store.SetSealedExpiry(context.Background(), sealed.ID, time.Now().Add(-time.Second))
	e.gw.Portal.Sweep(context.Background())
	if st, page := b.get(action); st != 410 || !strings.Contains(page, "has expired") {
		t.Fatalf("after expiry: %d\n%s", st, page)
	}
	if m, _ := e.gw.Store.GetSealed(context.Background(), sealed.ID); m.WrappedKey != nil || m.State != "expired" {
		t.Fatalf("%+v", m)
	}
}

func TestPortalBranding(t *testing.T) {
	logo := filepath.Join(t.TempDir(), "logo.png")
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	var pngData bytes.Buffer
	png.Encode(&pngData, img)
	os.WriteFile(logo, pngData.Bytes(), 0o600)
	e := start(t, func(c *config.Config) {
		c.Policy.Disable = []string{"first-contact-sensitive"}
		c.Portal.BrandColour = "#4c2c92"
		c.Portal.LogoFile = logo
	})
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, message("staff@example.gov.uk", "jane@citizen.example", "[secure] brand", "hello"))
	if code != 250 {
		t.Fatal(reply)
	}
	n := mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0)
	data := string(n.Data)
	if !strings.Contains(data, "multipart/related") || !strings.Contains(data, "Content-ID: <logo@brand>") || !strings.Contains(decodeQP(n.Data), "cid:logo@brand") || !strings.Contains(decodeQP(n.Data), "#4c2c92") {
		t.Fatalf("notification:\n%s", data)
	}
	verifyDKIM(t, e.gw, n.Data)
	b := newBrowser(t, e)
	if st, css := b.get("/brand.css"); st != 200 || !strings.Contains(css, "--brand: #4c2c92") || !strings.Contains(css, "/brand/logo.png") {
		t.Fatalf("brand.css %d %q", st, css)
	}
	if st, got := b.get("/brand/logo.png"); st != 200 || got != pngData.String() {
		t.Fatalf("logo %d", st)
	}
	// A colour white text cannot be read on is refused.
	cfg := config.Default()
	cfg.DataDir, cfg.Org.Domains, cfg.Org.MailHost = t.TempDir(), []string{"example.gov.uk"}, "127.0.0.1:25"
	cfg.Portal.BrandColour = "#ffd700"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "4.5:1") {
		t.Fatalf("low-contrast colour: %v", err)
	}
}

// TestPortalBadAttachment: an attachment whose base64 does not decode
// neither loses the message nor breaks the page; it is listed and its
// download gives what decodes.
func TestPortalBadAttachment(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive", "unscannable-content"} })
	msg := "From: staff@example.gov.uk\r\nTo: jane@citizen.example\r\nSubject: [secure] broken\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nThe text survives.\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=bad.bin\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n!!!not base64!!!\r\n--b--\r\n"
	if code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, msg); code != 250 {
		t.Fatal(reply)
	}
	landing := "/m/" + linkRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0).Data))[1]
	b := newBrowser(t, e)
	signIn(t, e, b, landing, "jane@citizen.example")
	st, page := b.get(landing)
	if st != 200 || !strings.Contains(page, "The text survives.") || !strings.Contains(page, "bad.bin") {
		t.Fatalf("page %d:\n%s", st, page)
	}
	att := regexp.MustCompile(`href="(/m/[0-9a-z]{32}/a/\d+)"`).FindStringSubmatch(page)
	if st, got := b.get(att[1]); st != 200 || !strings.HasPrefix(got, "hello world") {
		t.Fatalf("download %d %q", st, got)
	}
}
