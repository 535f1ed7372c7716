package gateway

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

// docxInZip returns a ZIP archive holding a DOCX whose text is text.
func docxInZip(t testing.TB, text string) []byte {
	var docx bytes.Buffer
	zw := zip.NewWriter(&docx)
	w, _ := zw.Create("[Content_Types].xml")
	io.WriteString(w, `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`)
	w, _ = zw.Create("word/document.xml")
	io.WriteString(w, `<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>`+text+`</w:t></w:r></w:p></w:body></w:document>`)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var outer bytes.Buffer
	zw = zip.NewWriter(&outer)
	w, _ = zw.Create("cases/referral.docx")
	w.Write(docx.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return outer.Bytes()
}

func withAttachment(from, to, subject, body, name string, data []byte) string {
	b64 := base64.StdEncoding.EncodeToString(data)
	var lines []string
	for len(b64) > 76 {
		lines, b64 = append(lines, b64[:76]), b64[76:]
	}
	lines = append(lines, b64)
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n" + body + "\r\n" +
		"--b1\r\nContent-Type: application/zip; name=\"" + name + "\"\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + strings.Join(lines, "\r\n") + "\r\n--b1--\r\n"
}

func outbound(t *testing.T, e *env, from string, to []string, data string) (int, string) {
	t.Helper()
	c := dial(t, e.gw.OutboundAddr)
	c.expect("EHLO exchange.example", 250)
	return c.send(from, to, data)
}

func decision(t *testing.T, e *env, id string) *store.Decision {
	t.Helper()
	d, err := e.gw.Store.GetDecision(context.Background(), id)
	if err != nil {
		t.Fatalf("decision %s: %v", id, err)
	}
	return d
}

var queuedAs = regexp.MustCompile(`queued as ([0-9a-z]{26})`)

func msgID(t *testing.T, reply string) string {
	t.Helper()
	m := queuedAs.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("no id in %q", reply)
	}
	return m[1]
}

func TestPolicyRejectsPrivateKeyWithReference(t *testing.T) {
	e := start(t, nil)
	body := "here is the key\r\n-----BEGIN OPENSSH PRIVATE KEY-----\r\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\r\n-----END OPENSSH PRIVATE KEY-----"
	code, msg := outbound(t, e, "staff@example.gov.uk", []string{"colleague@example.gov.uk"}, message("staff@example.gov.uk", "colleague@example.gov.uk", "key", body))
	if code != 550 || !strings.Contains(msg, "5.7.1") || !strings.Contains(msg, "reference") {
		t.Fatalf("got %d %s", code, msg)
	}
	ref := regexp.MustCompile(`reference ([0-9a-z]{26})`).FindStringSubmatch(msg)
	if ref == nil {
		t.Fatalf("no reference in %q", msg)
	}
	d := decision(t, e, ref[1])
	if d.State != "rejected" || !strings.Contains(d.Detail, "private-key") {
		t.Fatalf("%+v", d)
	}
	if strings.Contains(msg, "private") {
		t.Fatalf("the reply names the finding: %q", msg)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(e.sink.Messages()); n != 0 {
		t.Fatalf("sink got %d messages", n)
	}
	assertSpoolEmpty(t, e.cfg)
}

// holdLink finds the confirm link in a notice.
var holdLinkRe = regexp.MustCompile(`https?://[^\s]+/hold/[0-9a-z]{26}\?t=[A-Za-z0-9_-]+&do=confirm`)

func noticeTo(t *testing.T, e *env, rcpt string) testutil.Received {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range e.sink.Messages() {
			if len(m.Rcpts) == 1 && m.Rcpts[0] == rcpt && m.From == "" {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no notice to %s", rcpt)
	return testutil.Received{}
}

func decodeQP(b []byte) string {
	return strings.NewReplacer("=\r\n", "", "=3D", "=").Replace(string(b))
}

// TestHeldMessageConfirmedBySender: held for the first contact, confirmed
// through the signed link, then sealed into the portal (the policy's
// choice for personal data): the outside recipient gets only a notification.
func TestHeldMessageConfirmedBySender(t *testing.T) {
	sink, ca := testutil.NewTLSSink(t)
	e := start(t, func(c *config.Config) {
		c.Outbound.Smarthost = sink.Addr
		c.Outbound.CAFile = ca
	})
	body := "Referral for patient, NHS no. 943 476 5919, please see attached."
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"gp@surgery.example", "colleague@example.gov.uk"},
		message("Staff <staff@example.gov.uk>", "gp@surgery.example, colleague@example.gov.uk", "[secure] Referral", body))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	// The internal colleague gets it at once (mail host = e.sink), the
	// sender a notice; the external recipient nothing.
	notice := noticeTo(t, e, "staff@example.gov.uk")
	text := decodeQP(notice.Data)
	for _, want := range []string{"Held for your confirmation: [secure] Referral", "gp@surgery.example", "uk-nhs-number", "personal-data", "sender-asked", id} {
		if !strings.Contains(text, want) {
			t.Errorf("notice lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "943 476 5919") {
		t.Fatal("the notice repeats the NHS number")
	}
	link := holdLinkRe.FindString(text)
	if link == "" {
		t.Fatalf("no link in notice:\n%s", text)
	}
	if d := decision(t, e, id); d.State != "held" {
		t.Fatalf("state %s", d.State)
	}
	if len(sink.Messages()) != 0 {
		t.Fatal("external recipient got the held message")
	}

	// The link must point at this gateway's web listener.
	u, _ := url.Parse(link)
	u.Host = e.gw.WebAddr.String()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(u string) (int, string) {
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// GET shows, and changes nothing (link scanners).
	for i := 0; i < 3; i++ {
		st, page := get(u.String())
		if st != 200 || !strings.Contains(page, "Send the message") || !strings.Contains(page, "gp@surgery.example") {
			t.Fatalf("GET %d:\n%s", st, page)
		}
	}
	if d := decision(t, e, id); d.State != "held" {
		t.Fatalf("a GET changed the state to %s", d.State)
	}
	// A forged token fails.
	bad := *u
	q := bad.Query()
	q.Set("t", "AAAAAAAAAAAAAAAAAAAAAAAA")
	bad.RawQuery = q.Encode()
	if st, _ := get(bad.String()); st != 404 {
		t.Fatalf("forged link: %d", st)
	}
	// POST without the CSRF token is refused.
	post := func(form url.Values) (int, string) {
		resp, err := hc.PostForm("http://"+e.gw.WebAddr.String()+"/hold/"+id, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tok := u.Query().Get("t")
	if st, _ := post(url.Values{"t": {tok}, "action": {"confirm"}}); st != 403 {
		t.Fatalf("POST without CSRF: %d", st)
	}
	_, page := get(u.String())
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no csrf field")
	}
	if st, page := post(url.Values{"t": {tok}, "action": {"confirm"}, "csrf": {csrf[1]}}); st != 200 || !strings.Contains(page, "being sent") {
		t.Fatalf("confirm: %d\n%s", st, page)
	}
	m := sink.Wait(t, 1, 10*time.Second)[0]
	if !m.TLS || m.Rcpts[0] != "gp@surgery.example" {
		t.Fatalf("notification to %v, TLS %v", m.Rcpts, m.TLS)
	}
	if strings.Contains(string(m.Data), "943 476 5919") || !strings.Contains(decodeQP(m.Data), "/m/") {
		t.Fatalf("notification:\n%s", m.Data)
	}
	sealed, err := e.gw.Store.SealedByMsg(context.Background(), id)
	if err != nil || sealed.Subject != "Referral" {
		t.Fatalf("sealed %+v, %v: the keyword must go", sealed, err)
	}
	if d := decision(t, e, id); d.State != "released" || d.ResolvedBy != "sender" {
		t.Fatalf("%+v", d)
	}
	// Confirming twice does nothing more.
	post(url.Values{"t": {tok}, "action": {"confirm"}, "csrf": {csrf[1]}})
	time.Sleep(300 * time.Millisecond)
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d deliveries", n)
	}
	// The sender's answer is recorded and counted once (internal/ops),
	// however often the button is pressed.
	evs, _ := e.gw.Store.AuditEvents(context.Background(), id, 100)
	confirmed := 0
	for _, ev := range evs {
		if ev.Action == "hold.confirmed" {
			confirmed++
		}
	}
	if confirmed != 1 || holdsCounted(t, e.gw, "confirmed") != 1 {
		t.Fatalf("%d hold.confirmed events, metric %v; want 1 each", confirmed, holdsCounted(t, e.gw, "confirmed"))
	}
}

func TestRequireTLSNeverFallsBackToClear(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Policy.TLSAssuredDomains = []string{"nhs.example"}
		c.Policy.Disable = []string{"first-contact-sensitive"}
	})
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"gp@nhs.example"}, message("staff@example.gov.uk", "gp@nhs.example", "r", "NHS number 943 476 5919"))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs, _ := e.gw.Store.Recipients(context.Background(), id)
		if len(rs) == 1 && rs[0].Attempts > 0 {
			if rs[0].Status != "queued" || !strings.Contains(rs[0].LastError, "STARTTLS") || rs[0].Action != "require-tls" {
				t.Fatalf("%+v", rs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no attempt")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(e.sink.Messages()); n != 0 {
		t.Fatal("delivered in clear")
	}
}

func TestDocxInZipQuarantinedByOperatorRule(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Policy.Rules = []config.PolicyRule{{Name: "health-data-out", When: `"uk-nhs-number" in findings && recipient.external`, Action: "quarantine", Reason: "health data"}}
	})
	z := docxInZip(t, "Patients: 943 476 5919, 401 023 2137 and 943 476 5870.")
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"x@partner.example"}, withAttachment("staff@example.gov.uk", "x@partner.example", "cases", "see attached", "cases.zip", z))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	d := decision(t, e, id)
	if d.State != "quarantined" || !strings.Contains(d.Detail, `attachment:cases.zip/cases/referral.docx`) || !strings.Contains(d.Detail, "health-data-out") {
		t.Fatalf("%+v", d)
	}
	notice := decodeQP(noticeTo(t, e, "staff@example.gov.uk").Data)
	if !strings.Contains(notice, "Kept for review") {
		t.Fatal(notice)
	}
	// Released by the operator: delivered (then-action: the rest of the policy).
	if _, err := e.gw.Queue.Resolve(context.Background(), id, true, "released", "admin", "checked with the sender"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := e.gw.Store.Recipients(context.Background(), id)
		if r[0].Attempts > 0 {
			// personal data to a first contact, not TLS-assured: after the
			// quarantine, the policy's portal.
			if r[0].Route != "portal" || r[0].Status != "delivered" {
				t.Fatalf("%+v", r[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no attempt after release")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := e.gw.Queue.Resolve(context.Background(), id, true, "released", "admin", ""); err != store.ErrResolved {
		t.Fatalf("second release: %v", err)
	}
}

func TestBulkAndLookalikeHeld(t *testing.T) {
	e := start(t, nil)
	var to []string
	for i := 0; i < 12; i++ {
		to = append(to, "person"+string(rune('a'+i))+"@public.example")
	}
	code, reply := outbound(t, e, "staff@example.gov.uk", to[:1], message("staff@example.gov.uk", strings.Join(to, ", "), "newsletter", "hello all"))
	if code != 250 {
		t.Fatal(reply)
	}
	d := decision(t, e, msgID(t, reply))
	if d.State != "held" || !strings.Contains(d.Detail, "12 external addresses are visible") {
		t.Fatalf("%+v", d)
	}
	code, reply = outbound(t, e, "staff@example.gov.uk", []string{"boss@examp1e.gov.uk"}, message("staff@example.gov.uk", "boss@examp1e.gov.uk", "minutes", "the minutes"))
	if code != 250 {
		t.Fatal(reply)
	}
	d = decision(t, e, msgID(t, reply))
	if d.State != "held" || !strings.Contains(d.Detail, "looks like example.gov.uk") {
		t.Fatalf("%+v", d)
	}
	// Cancelled by the sender: dropped, spool emptied.
	if _, err := e.gw.Queue.Resolve(context.Background(), d.MsgID, false, "cancelled", "sender", ""); err != nil {
		t.Fatal(err)
	}
	rs, _ := e.gw.Store.Recipients(context.Background(), d.MsgID)
	if rs[0].Status != "cancelled" {
		t.Fatalf("%+v", rs)
	}
}

func TestHoldExpires(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.HoldTimeout.Duration = time.Millisecond })
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"boss@examp1e.gov.uk"}, message("staff@example.gov.uk", "boss@examp1e.gov.uk", "late", "x"))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	noticeTo(t, e, "staff@example.gov.uk")
	time.Sleep(5 * time.Millisecond)
	e.gw.expire(context.Background(), id)
	if d := decision(t, e, id); d.State != "expired" {
		t.Fatalf("%+v", d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := false
		for _, m := range e.sink.Messages() {
			if strings.Contains(string(m.Data), "Subject: Not sent: late") {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no expiry notice")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRewriteSubject(t *testing.T) {
	kws := []string{"[secure]", "[encrypt]"}
	test := func(in, want string) {
		t.Helper()
		out := rewriteSubject([]byte(in), kws)
		if out == nil {
			out = []byte(in)
		}
		if got := string(out); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
	test("From: a\r\nSubject: [secure] Hello\r\nTo: b\r\n", "From: a\r\nSubject: Hello\r\nTo: b\r\n")
	test("Subject: Hello [SECURE]\r\n", "Subject: Hello\r\n")
	test("Subject: Re: [Encrypt]\r\n  folded part\r\nX: y\r\n", "Subject: Re: folded part\r\nX: y\r\n")
	test("Subject: =?utf-8?q?=5Bsecure=5D_Caf=C3=A9?=\r\n", "Subject: =?utf-8?q?Caf=C3=A9?=\r\n")
	test("Subject: nothing here\r\n", "Subject: nothing here\r\n")
	test("X-Subject: [secure]\r\n", "X-Subject: [secure]\r\n")
}

func TestPolicyErrorsAtStartAndReload(t *testing.T) {
	data := []byte("data_dir = \"/tmp/x\"\n[org]\ndomains = [\"example.gov.uk\"]\nmail_host = \"127.0.0.1:25\"\n\n[[policy.rule]]\nname = \"ok\"\nwhen = \"true\"\naction = \"deliver\"\n\n[[policy.rule]]\nname = \"bad\"\nwhen = \"recipient.externl\"\naction = \"hold\"\n")
	cfg, err := config.Parse("test.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&Gateway{}).newRules(cfg)
	if err == nil || !strings.Contains(err.Error(), "test.toml:11:") || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), "externl") {
		t.Fatalf("got %v", err)
	}
	e := start(t, nil)
	if err := e.gw.Reload(cfg); err == nil {
		t.Fatal("reload accepted a bad policy")
	}
	if len(e.gw.rules.Load().policy.Rules()) == 0 {
		t.Fatal("running policy lost")
	}
}

func TestBulkSplit(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.BulkAction = "split" })
	var to []string
	for i := 0; i < 12; i++ {
		to = append(to, "person"+string(rune('a'+i))+"@public.example")
	}
	rcpts := []string{to[0], to[1], "colleague@example.gov.uk"}
	code, reply := outbound(t, e, "staff@example.gov.uk", rcpts, message("staff@example.gov.uk", strings.Join(to, ", "), "newsletter", "hello all"))
	if code != 250 {
		t.Fatal(reply)
	}
	msgs := e.sink.Wait(t, 3, 10*time.Second)
	seen := map[string]bool{}
	for _, m := range msgs {
		toHdr := testutil.Header(m.Data, "To")
		if len(m.Rcpts) != 1 {
			t.Fatalf("a copy for %v", m.Rcpts)
		}
		if m.Rcpts[0] == "colleague@example.gov.uk" {
			if !strings.Contains(toHdr, "personl@public.example") {
				t.Fatalf("internal copy was changed: To %q", toHdr)
			}
			continue
		}
		if toHdr != "<"+m.Rcpts[0]+">" || testutil.Header(m.Data, "Cc") != "" {
			t.Fatalf("copy for %s has To %q", m.Rcpts[0], toHdr)
		}
		verifyDKIM(t, e.gw, m.Data)
		seen[m.Rcpts[0]] = true
	}
	if len(seen) != 2 {
		t.Fatalf("external copies: %v", seen)
	}
}

// TestPolicySeesMessageSize: message.size is the size of the message as
// received (a rule on it once saw 0 on the SMTP path).
func TestPolicySeesMessageSize(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Policy.Rules = []config.PolicyRule{{Name: "big", When: `message.size > 20000`, Action: "quarantine"}}
	})
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"x@other.example"}, message("staff@example.gov.uk", "x@other.example", "big", strings.Repeat("some words on a line\r\n", 1200)))
	if code != 250 {
		t.Fatal(reply)
	}
	if d := decision(t, e, msgID(t, reply)); d.State != "quarantined" {
		t.Fatalf("%+v", d)
	}
	code, reply = outbound(t, e, "staff@example.gov.uk", []string{"x@other.example"}, message("staff@example.gov.uk", "x@other.example", "small", "hello"))
	if code != 250 {
		t.Fatal(reply)
	}
	// Every decision is recorded (the dashboard, /metrics and the report
	// count them): this one passed.
	if d := decision(t, e, msgID(t, reply)); d.State != "passed" || d.Outcome != "deliver" {
		t.Fatalf("small message: %+v", d)
	}
}
