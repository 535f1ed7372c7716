package gateway

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"sealpost/internal/clamd/clamdtest"
	"sealpost/internal/config"
	"sealpost/internal/ops"
	"sealpost/internal/testutil"
)

// withAttachment is an inbound message with one base64 attachment.
func inboundWithAttachment(subject, name string, data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return "From: Sender <someone@outside.example>\r\nTo: staff@example.gov.uk\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@test>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		b.String() + "--b1--\r\n"
}

func testPE() []byte {
	b := make([]byte, 512)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	return b
}

func zipped(name string, data []byte) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create(name)
	w.Write(data)
	zw.Close()
	return b.Bytes()
}

func queuedID(t *testing.T, msg string) string {
	t.Helper()
	i := strings.Index(msg, "queued as ")
	if i < 0 {
		t.Fatalf("no id in %q", msg)
	}
	return strings.Fields(msg[i+len("queued as "):])[0]
}

// TestInboundDangerousAttachmentQuarantined: a program in a zip, named as
// a PDF, is accepted (250) but held for an administrator: nothing reaches
// the mail host, the sender gets no notice (no backscatter to a forged
// sender), and a release through ops delivers it.
func TestInboundDangerousAttachmentQuarantined(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	code, msg := c.send("someone@outside.example", []string{"staff@example.gov.uk"}, inboundWithAttachment("inq1", "invoice.zip", zipped("invoice.pdf", testPE())))
	if code != 250 {
		t.Fatalf("got %d %s", code, msg)
	}
	id := queuedID(t, msg)
	ctx := context.Background()
	d, err := e.gw.Store.GetDecision(ctx, id)
	if err != nil || d.State != "quarantined" || !strings.Contains(d.Detail, "executable") {
		t.Fatalf("decision %+v %v", d, err)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := len(e.sink.Messages()); n != 0 {
		t.Fatalf("%d messages left the gateway while quarantined (mail or a notice to the sender)", n)
	}
	// A clean message on the same connection is delivered.
	if code, msg := c.send("someone@outside.example", []string{"staff@example.gov.uk"}, inboundWithAttachment("inq2", "report.txt", []byte("quarterly numbers\r\n"))); code != 250 {
		t.Fatalf("clean: %d %s", code, msg)
	}
	if m := e.sink.Wait(t, 1, 10*time.Second); !bytes.Contains(m[0].Data, []byte("Subject: inq2")) {
		t.Fatalf("delivered %s", m[0].Data)
	}
	if _, err := e.gw.Ops.Release(ctx, ops.Actor{Name: "admin"}, id, "checked with the sender by phone"); err != nil {
		t.Fatal(err)
	}
	m := e.sink.Wait(t, 2, 10*time.Second)
	if !bytes.Contains(m[1].Data, []byte("Subject: inq1")) || m[1].Rcpts[0] != "staff@example.gov.uk" {
		t.Fatalf("released: %v %s", m[1].Rcpts, m[1].Data)
	}
}

func TestInboundDangerousAttachmentRejected(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *config.Config) { c.Inbound.DangerousAttachments = "reject" })
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	code, msg := c.send("someone@outside.example", []string{"staff@example.gov.uk"}, inboundWithAttachment("inr1", "notes.txt", testPE()))
	if code != 550 || !strings.Contains(msg, "5.7.1") || !strings.Contains(msg, "attachment") {
		t.Fatalf("got %d %s", code, msg)
	}
}

// TestInboundAntivirus runs a real clamd: EICAR raw, zipped and in
// base64 MIME is refused with 550 5.7.1; with clamd stopped mail is
// deferred with 451 4.7.1 (the default) or quarantined, as configured.
func TestInboundAntivirus(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	e := start(t, func(c *config.Config) { c.Inbound.Clamd = "unix:" + d.Socket })
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	// Named .txt and sent as text, EICAR passes the attachment checks: the
	// antivirus alone must find it.
	for i, data := range []string{
		inboundWithAttachment("av1", "eicar.txt", clamdtest.EICAR()),
		inboundWithAttachment("av2", "eicar.zip", zipped("eicar.txt", clamdtest.EICAR())),
		message("someone@outside.example", "staff@example.gov.uk", "av3", "the marker "+clamdtest.Marker+" in the text"),
	} {
		code, msg := c.send("someone@outside.example", []string{"staff@example.gov.uk"}, data)
		if code != 550 || !strings.Contains(msg, "5.7.1") || !strings.Contains(msg, "malware") {
			t.Fatalf("case %d: got %d %s", i, code, msg)
		}
	}
	if code, msg := c.send("someone@outside.example", []string{"staff@example.gov.uk"}, inboundWithAttachment("av4", "report.txt", []byte("clean\r\n"))); code != 250 {
		t.Fatalf("clean: %d %s", code, msg)
	}
	e.sink.Wait(t, 1, 10*time.Second)
	d.Stop()
	code, msg := c.send("someone@outside.example", []string{"staff@example.gov.uk"}, inboundWithAttachment("av5", "report.txt", []byte("clean\r\n")))
	if code != 451 || !strings.Contains(msg, "4.7.1") {
		t.Fatalf("clamd stopped: got %d %s, want 451 4.7.1", code, msg)
	}
	cfg := *e.gw.Config()
	cfg.Inbound.ClamdUnavailable = "quarantine"
	if err := e.gw.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	code, msg = c.send("someone@outside.example", []string{"staff@example.gov.uk"}, inboundWithAttachment("av6", "report.txt", []byte("clean\r\n")))
	if code != 250 {
		t.Fatalf("clamd stopped, quarantine: %d %s", code, msg)
	}
	if dec, err := e.gw.Store.GetDecision(context.Background(), queuedID(t, msg)); err != nil || dec.State != "quarantined" {
		t.Fatalf("decision %+v %v", dec, err)
	}
}

// TestInboundImpersonationTagged: a protected display name from outside
// is delivered with the warning header; a forged warning header on clean
// mail is removed.
func TestInboundImpersonationTagged(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *config.Config) { c.Inbound.ProtectedNames = []string{"Jane Smith"} })
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	if code, msg := c.send("js@freemail.example", []string{"staff@example.gov.uk"},
		message(`"Jane Smith" <js@freemail.example>`, "staff@example.gov.uk", "imp1", "please pay this invoice today")); code != 250 {
		t.Fatalf("got %d %s", code, msg)
	}
	m := e.sink.Wait(t, 1, 10*time.Second)
	if v := testutil.Header(m[0].Data, impersonationHeader); !strings.Contains(v, "display-name") || !strings.Contains(v, "Jane Smith") {
		t.Fatalf("warning %q in\n%s", v, m[0].Data)
	}
	if code, msg := c.send("friend@outside.example", []string{"staff@example.gov.uk"},
		impersonationHeader+": none\r\n"+message("Friend <friend@outside.example>", "staff@example.gov.uk", "imp2", "hello")); code != 250 {
		t.Fatalf("got %d %s", code, msg)
	}
	m = e.sink.Wait(t, 2, 10*time.Second)
	if bytes.Contains(m[1].Data, []byte(impersonationHeader)) {
		t.Fatalf("forged warning header kept:\n%s", m[1].Data)
	}
}

// TestInboundImpersonationQuarantined: a look-alike of the organisation's
// domain is quarantined when so configured, with the reason recorded.
func TestInboundImpersonationQuarantined(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *config.Config) { c.Inbound.Impersonation = "quarantine" })
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	code, msg := c.send("ceo@examp1e.gov.uk", []string{"staff@example.gov.uk"}, message("CEO <ceo@examp1e.gov.uk>", "staff@example.gov.uk", "imp3", "urgent"))
	if code != 250 {
		t.Fatalf("got %d %s", code, msg)
	}
	d, err := e.gw.Store.GetDecision(context.Background(), queuedID(t, msg))
	if err != nil || d.State != "quarantined" || !strings.Contains(d.Detail, "lookalike-domain") {
		t.Fatalf("decision %+v %v", d, err)
	}
}

// TestConsoleQuarantineView: an admin views a quarantined inbound message
// as text (its verdict, header and text; the HTML's script not run nor
// shown as markup), the viewing is an audit event with the reason, an
// auditor may not view it, and the admin deletes it.
func TestConsoleQuarantineView(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	body := "From: Sender <someone@outside.example>\r\nTo: staff@example.gov.uk\r\nSubject: view1\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>Please open <b>the invoice</b></p><script>alert(1)</script><a href=\"https://evil.example/x\">here</a>\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(testPE()) + "\r\n--b1--\r\n"
	code, msg := c.send("someone@outside.example", []string{"staff@example.gov.uk"}, body)
	if code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	id := queuedID(t, msg)
	b := consoleSignIn(t, e, "root", "admin")
	if st, page := b.get("/console/held"); st != 200 || !strings.Contains(page, "view1") || !strings.Contains(page, "double-extension") {
		t.Fatalf("held page: %d\n%s", st, page)
	}
	if st, _ := b.post("/console/held/"+id+"/view", url.Values{"reason": {""}}); st != 422 {
		t.Fatalf("view without a reason: %d", st)
	}
	b.get("/console/held")
	st, page := b.post("/console/held/"+id+"/view", url.Values{"reason": {"user asked whether it is real"}})
	if st != 200 || !strings.Contains(page, "Please open the invoice") || !strings.Contains(page, "[link: https://evil.example/x]") ||
		strings.Contains(page, "alert(1)") || strings.Contains(page, "<b>the invoice") || !strings.Contains(page, "invoice.pdf.exe") {
		t.Fatalf("view: %d\n%s", st, page)
	}
	evs, err := e.gw.Store.AuditEvents(context.Background(), id, 100)
	if err != nil {
		t.Fatal(err)
	}
	viewed := false
	for _, ev := range evs {
		viewed = viewed || ev.Action == "quarantine.viewed" && ev.Detail == "user asked whether it is real" && ev.Actor == "admin:root"
	}
	if !viewed {
		t.Fatalf("no audit event for the viewing: %+v", evs)
	}
	apw := addConsoleUser(t, e.gw.Store, "audrey", "auditor")
	aud := newBrowser(t, e)
	aud.get("/console/login")
	aud.post("/console/login", url.Values{"user": {"audrey"}, "password": {apw}})
	aud.get("/console/held")
	if st, _ := aud.post("/console/held/"+id+"/view", url.Values{"reason": {"curious"}}); st != 403 {
		t.Fatalf("auditor view: %d", st)
	}
	b.get("/console/held")
	if st, _ := b.post("/console/held/"+id+"/delete", url.Values{"reason": {"malware"}}); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	if d, _ := e.gw.Store.GetDecision(context.Background(), id); d.State != "deleted" {
		t.Fatalf("state %s", d.State)
	}
	if n := len(e.sink.Messages()); n != 0 {
		t.Fatalf("%d messages sent (a notice to the sender?)", n)
	}
}

// TestInboundReportsShownInConsole: DMARC aggregate (gzip) and TLS reports
// mailed to the report addresses are delivered as usual and summed up per
// sending source in the console.
func TestInboundReportsShownInConsole(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *config.Config) {
		c.Inbound.ReportAddresses = []string{"dmarc-rua@example.gov.uk", "tls-rua@example.gov.uk"}
	})
	agg, err := os.ReadFile("../../testdata/rua/google.xml")
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(agg)
	zw.Close()
	tls, err := os.ReadFile("../../testdata/rua/tlsrpt.json")
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	if code, msg := c.send("noreply-dmarc-support@google.com", []string{"dmarc-rua@example.gov.uk"}, inboundWithAttachment("rua1", "google.com!example.gov.uk!1764028800!1764115199.xml.gz", gz.Bytes())); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	if code, msg := c.send("tlsrpt@company-x.example", []string{"tls-rua@example.gov.uk"}, inboundWithAttachment("rua2", "company-x.example!example.gov.uk!1764028800!1764115199.json", tls)); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	e.sink.Wait(t, 2, 10*time.Second) // delivered as usual
	apw := addConsoleUser(t, e.gw.Store, "audrey", "auditor")
	aud := newBrowser(t, e)
	aud.get("/console/login")
	aud.post("/console/login", url.Values{"user": {"audrey"}, "password": {apw}})
	st, page := aud.get("/console/rua")
	for _, want := range []string{"2 reports from 2 mail systems", "198.51.100.7", "someone else using your domain", "renew the certificate of mx1.mail.example.gov.uk", "offer STARTTLS on mx2.mail.example.gov.uk"} {
		if st != 200 || !strings.Contains(page, want) {
			t.Fatalf("%d: %q missing:\n%s", st, want, page)
		}
	}
}
