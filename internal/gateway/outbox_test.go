package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/queue"
)

// startDev starts a gateway as `serve --dev` runs it: no mail host, every
// message captured in the dev outbox. The web listener is on a port known
// in advance, so that the links in notices (web.public_url) work.
func startDev(t *testing.T, mutate func(*config.Config)) *env {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return start(t, func(c *config.Config) {
		c.Dev = true
		c.Org.MailHost = ""
		c.Outbound.Smarthost = ""
		c.Web.Listen = fmt.Sprintf("127.0.0.1:%d", port)
		c.Web.PublicURL = fmt.Sprintf("http://127.0.0.1:%d", port)
		if mutate != nil {
			mutate(c)
		}
	})
}

// captured waits for a message to rcpt whose subject contains subj in the
// dev outbox.
func captured(t *testing.T, e *env, rcpt, subj string) queue.OutboxEntry {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		es, err := e.gw.Outbox.List(context.Background(), 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range es {
			if x.Rcpts == rcpt && strings.Contains(x.Subject, subj) {
				return x
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing to %s with %q in the dev outbox", rcpt, subj)
	return queue.OutboxEntry{}
}

func httpGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// richMessage is what a mail client sends: text in quoted-printable with a
// long link wrapped by soft line breaks, HTML in base64 (with a script and
// an event handler a sanitiser must remove), a Latin-1 text attachment and
// a binary one.
func richMessage(marker string) (msg string, binary []byte) {
	link := "https://portal.example.org/a/very/long/path/that/a/quoted-printable/encoder/must/wrap/" + strings.Repeat("x", 40) + "?q=1&r=2"
	text := "Caf\xc3\xa9 menu for today. Details: " + link + ".\r\nBye."
	var qp strings.Builder
	// Hand-wrapped as an encoder does: "=" then CRLF every 76 characters.
	enc := strings.ReplaceAll(strings.ReplaceAll(text, "=", "=3D"), "\xc3\xa9", "=C3=A9")
	for len(enc) > 75 {
		cut := 75
		for enc[cut-1] == '=' || enc[cut-2] == '=' {
			cut--
		}
		qp.WriteString(enc[:cut] + "=\r\n")
		enc = enc[cut:]
	}
	qp.WriteString(enc)
	html := `<html><body><p>Hello <b>there</b>, <a href="https://example.org/read">read this</a>.</p>` +
		`<script>alert("` + marker + `")</script><img src="x" onerror="alert('` + marker + `')"><p>end</p></body></html>`
	binary = []byte{0, 1, 2, 3, 0xff, 0xfe, 'P', 'K', 3, 4}
	msg = "From: =?utf-8?q?Ren=C3=A9e_Staff?= <staff@example.gov.uk>\r\nTo: jane@citizen.example\r\nSubject: =?utf-8?b?" + b64std([]byte("Menü of the day")) + "?=\r\n" +
		"Date: Thu, 26 Nov 2026 08:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n" +
		"--mix\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n" +
		"--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + qp.String() + "\r\n" +
		"--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64lines([]byte(html)) + "\r\n" +
		"--alt--\r\n" +
		"--mix\r\nContent-Type: text/plain; charset=iso-8859-1; name=\"notes.txt\"\r\nContent-Disposition: attachment; filename=\"notes.txt\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nna=EFve\r\n" +
		"--mix\r\nContent-Type: application/octet-stream; name=\"blob.bin\"\r\nContent-Disposition: attachment; filename=\"blob.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64lines(binary) + "\r\n" +
		"--mix--\r\n"
	return msg, binary
}

var attachmentHref = regexp.MustCompile(`href="(/dev/outbox/\d+/attachment/\d+)"[^>]*>([^<]+)</a>`)

// TestDevOutboxShowsMessageAsMailClient: decoded text with its links
// clickable, sanitised HTML in a sandboxed frame under a sandbox CSP, the
// attachments downloadable, the source as a second view.
func TestDevOutboxShowsMessageAsMailClient(t *testing.T) {
	e := startDev(t, nil)
	msg, binary := richMessage("outbox-xss")
	if code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, msg); code != 250 {
		t.Fatal(reply)
	}
	x := captured(t, e, "jane@citizen.example", "Menü")
	base := fmt.Sprintf("http://%s/dev/outbox/%d", e.gw.WebAddr, x.Seq)
	resp, page := httpGet(t, base)
	if resp.StatusCode != 200 {
		t.Fatalf("%d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{"<h1>Menü of the day</h1>", "Renée Staff", "Café menu for today.",
		`<a href="https://portal.example.org/a/very/long/path/that/a/quoted-printable/encoder/must/wrap/` + strings.Repeat("x", 40) + `?q=1&amp;r=2" target="_blank" rel="noopener noreferrer">`,
		`<iframe class="body" sandbox="allow-popups allow-popups-to-escape-sandbox" src="/dev/outbox/`,
		"notes.txt", "blob.bin", `/source">Source</a>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the message page lacks %q", want)
		}
	}
	if strings.Contains(page, "allow-scripts") || strings.Contains(page, "allow-same-origin") {
		t.Error("the frame's sandbox lets scripts run or keeps the origin")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-src 'self'") || strings.Contains(csp, "script-src") {
		t.Errorf("message page CSP %q", csp)
	}

	// The HTML body: sanitised, and under a sandbox of its own even when
	// opened outside the frame.
	resp, body := httpGet(t, base+"/body")
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "sandbox allow-popups allow-popups-to-escape-sandbox;") || strings.Contains(csp, "allow-scripts") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("body CSP %q", csp)
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "onerror") || strings.Contains(body, "outbox-xss") {
		t.Errorf("the HTML body was not sanitised:\n%s", body)
	}
	if !strings.Contains(body, "<b>there</b>") || !strings.Contains(body, `href="https://example.org/read"`) || !strings.Contains(body, `target="_blank"`) {
		t.Errorf("the HTML body lost its content or links:\n%s", body)
	}

	// Attachments download decoded.
	got := map[string][]byte{}
	for _, m := range attachmentHref.FindAllStringSubmatch(page, -1) {
		resp, b := httpGet(t, "http://"+e.gw.WebAddr.String()+m[1])
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), m[2]) {
			t.Errorf("%s: %d %q", m[1], resp.StatusCode, resp.Header.Get("Content-Disposition"))
		}
		got[m[2]] = []byte(b)
	}
	if !bytes.Equal(got["blob.bin"], binary) || string(got["notes.txt"]) != "na\xefve" {
		t.Errorf("attachments %q", got)
	}

	// The source, as sent (quoted-printable soft breaks and all).
	resp, src := httpGet(t, base+"/source")
	if resp.StatusCode != 200 || !strings.Contains(src, "Content-Transfer-Encoding: quoted-printable") || !strings.Contains(src, "=\r\n") {
		t.Errorf("source view %d:\n%.400s", resp.StatusCode, src)
	}
	if resp, _ := httpGet(t, base+"/attachment/99"); resp.StatusCode != 404 {
		t.Errorf("a missing attachment: %d", resp.StatusCode)
	}
}
