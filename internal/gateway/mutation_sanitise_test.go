package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"sealpost/internal/config"
	"sealpost/internal/testutil"
)

// TestPortalHTMLBodyOverHTTP checks the three walls around a message's HTML
// as a browser receives them, each on its own, so that removing any one is
// caught even while the others still stop the script (the Chromium test
// sees only that nothing ran, which any one wall ensures):
//  1. the body is sanitised: hostile markup from the DOMPurify corpus
//     (testdata/html-xss) comes back without script, handlers or
//     dangerous URLs;
//  2. the body's response carries a CSP sandbox without allow-scripts or
//     allow-same-origin, and nothing may be fetched but images;
//  3. the message page frames it in an iframe whose sandbox attribute
//     grants neither scripts nor the portal's origin.
func TestPortalHTMLBodyOverHTTP(t *testing.T) {
	b, err := os.ReadFile("../../testdata/html-xss/dompurify/expect.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct{ Title, Payload string }
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	var hostile strings.Builder
	hostile.WriteString(`<p>start</p><script>alert(1)</script><img src="x" onerror="alert(2)"><a href="javascript:alert(3)">x</a>` +
		`<iframe src="https://evil.example/"></iframe><form action="https://evil.example/"><input name="pw"></form><svg onload="alert(4)"></svg>`)
	for _, c := range cases {
		hostile.WriteString("<div>" + c.Payload + "</div>\n")
	}
	// The judge works: the input it is given is unsafe.
	if testutil.UnsafeHTML(hostile.String()) == "" {
		t.Fatal("the checker finds nothing unsafe in the raw corpus")
	}

	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	msg := fmt.Sprintf("From: staff@example.gov.uk\r\nTo: jane@citizen.example\r\nSubject: [secure] html walls\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n",
		b64lines([]byte("<html><body>"+hostile.String()+"</body></html>")))
	if code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, msg); code != 250 {
		t.Fatal(reply)
	}
	notice := mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0)
	landing := "/m/" + linkRe.FindStringSubmatch(decodeQP(notice.Data))[1]
	jane := newBrowser(t, e)
	signIn(t, e, jane, landing, "jane@citizen.example")

	// 3. The frame on the message page.
	st, page := jane.get(landing)
	if st != 200 {
		t.Fatalf("message page %d", st)
	}
	frame := regexp.MustCompile(`<iframe[^>]*class="body"[^>]*>`).FindString(page)
	if frame == "" {
		t.Fatalf("no body frame on the message page:\n%s", page)
	}
	sb := regexp.MustCompile(`\ssandbox="([^"]*)"`).FindStringSubmatch(frame)
	if sb == nil {
		t.Fatalf("the body frame has no sandbox attribute: %s", frame)
	}
	for _, bad := range []string{"allow-scripts", "allow-same-origin", "allow-forms", "allow-top-navigation"} {
		if strings.Contains(sb[1], bad) {
			t.Errorf("the body frame's sandbox grants %s: %s", bad, frame)
		}
	}

	// 2 and 1. The body itself, as the frame loads it.
	src := regexp.MustCompile(`\ssrc="([^"]+)"`).FindStringSubmatch(frame)
	if src == nil {
		t.Fatalf("frame without src: %s", frame)
	}
	req, _ := http.NewRequest("GET", jane.base+strings.ReplaceAll(src[1], "&amp;", "&"), nil)
	resp, err := jane.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	if _, ok := directives["sandbox"]; !ok {
		t.Errorf("the body's CSP has no sandbox: %q", csp)
	}
	for _, bad := range []string{"allow-scripts", "allow-same-origin", "allow-forms", "allow-top-navigation"} {
		if strings.Contains(directives["sandbox"], bad) {
			t.Errorf("the body's CSP sandbox grants %s: %q", bad, csp)
		}
	}
	if directives["default-src"] != "'none'" || directives["script-src"] != "" || directives["frame-ancestors"] == "" {
		t.Errorf("the body's CSP lets more in than images and inline style: %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("the body is served without nosniff")
	}
	st, body := jane.get(strings.ReplaceAll(src[1], "&amp;", "&"))
	if st != 200 || !strings.Contains(body, "<p>start</p>") {
		t.Fatalf("body %d:\n%.2000s", st, body)
	}
	// The page's own head (a <base target="_blank"> with no href, so that
	// links open outside the frame) is the portal's, not the message's.
	const head = `<base target="_blank">`
	if i := strings.Index(body, head); i >= 0 && i < 100 {
		body = body[i+len(head):]
	}
	if why := testutil.UnsafeHTML(body); why != "" {
		t.Errorf("the served body is not sanitised (%s)", why)
	}
}
