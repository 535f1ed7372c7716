package gateway

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

// TestRequireTLSOfferedOnlyAfterSTARTTLS: both listeners offer REQUIRETLS
// in the EHLO after STARTTLS and never before (RFC 8689 §4.1), as swaks
// sees them; MAIL FROM with REQUIRETLS in clear is refused.
func TestRequireTLSOfferedOnlyAfterSTARTTLS(t *testing.T) {
	if _, err := exec.LookPath("swaks"); err != nil {
		testutil.Missing(t, "swaks not installed")
	}
	e := start(t, nil)
	for _, addr := range []string{e.gw.InboundAddr.String(), e.gw.OutboundAddr.String()} {
		out, err := exec.Command("swaks", "--server", addr, "--tls", "--quit-after", "HELO", "--ehlo", "client.example").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks %s: %v\n%s", addr, err, out)
		}
		// swaks prints what it sends as " -> " lines: the clear part ends
		// with its STARTTLS command.
		clear, inTLS, ok := strings.Cut(string(out), " -> STARTTLS\n")
		if !ok || strings.Contains(clear, "REQUIRETLS") {
			t.Fatalf("%s: REQUIRETLS offered before STARTTLS:\n%s", addr, out)
		}
		if !regexp.MustCompile(`(?m)^<~  250[ -]REQUIRETLS\s*$`).MatchString(inTLS) {
			t.Fatalf("%s: REQUIRETLS not offered after STARTTLS:\n%s", addr, out)
		}
	}
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	if code, msg := c.cmd("MAIL FROM:<a@outside.example> REQUIRETLS"); code != 530 || !strings.Contains(msg, "5.7.10") {
		t.Fatalf("REQUIRETLS in clear: %s, want 530 5.7.10", msg)
	}
	c.starttls()
	c.expect("EHLO client.example", 250)
	if code, msg := c.cmd("MAIL FROM:<a@outside.example> REQUIRETLS=yes"); code != 501 {
		t.Fatalf("REQUIRETLS with a value: %s, want 501", msg)
	}
	c.expect("MAIL FROM:<a@outside.example> REQUIRETLS", 250)
}

// pySend sends one message with Python's smtplib (a client written by
// others) over STARTTLS, with the given MAIL parameters, and returns the
// queue id.
func pySend(t *testing.T, addr, from, to, data string, mailOpts ...string) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		testutil.Missing(t, "python3 not installed")
	}
	host, port, _ := strings.Cut(addr, ":")
	script := `
import smtplib, sys
host, port, frm, to, opts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
s = smtplib.SMTP(host, port, timeout=20)
s.ehlo("client.example")
s.starttls()
s.ehlo("client.example")
if opts and not s.has_extn("requiretls"):
    sys.exit("REQUIRETLS not offered after STARTTLS")
s.mail(frm, opts)
code, msg = s.rcpt(to)
if code != 250: sys.exit("RCPT: %d %s" % (code, msg))
code, msg = s.data(sys.stdin.buffer.read())
print(code, msg.decode())
s.quit()
`
	cmd := exec.Command("python3", append([]string{"-c", script, host, port, from, to}, mailOpts...)...)
	cmd.Stdin = strings.NewReader(data)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python smtplib: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`queued as ([0-9a-z]{26})`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no queue id:\n%s", out)
	}
	return m[1]
}

func storedTLSRequest(t *testing.T, e *env, id string) string {
	t.Helper()
	m, err := e.gw.Store.Message(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m.TLSRequest
}

// TestRequireTLSHonouredOnEveryHop: REQUIRETLS mail from a real client
// (smtplib) is kept with its message, and goes on to the next hop (a
// go-smtp server offering REQUIRETLS over verified TLS) with REQUIRETLS.
// Outbound to a next hop without REQUIRETLS it fails with 5.7.30, and the
// DSN, itself sent with REQUIRETLS, says why. "TLS-Required: No" is kept
// only without REQUIRETLS (RFC 8689 §5).
func TestRequireTLSHonouredOnEveryHop(t *testing.T) {
	mailHost, caHost := testutil.NewRequireTLSSink(t)
	smarthost, caSmart := testutil.NewTLSSink(t) // verified TLS, no REQUIRETLS
	e := start(t, func(c *config.Config) {
		c.Org.MailHost = mailHost.Addr
		c.Outbound.Smarthost = smarthost.Addr
		c.Outbound.CAFile = caBundle(t, caHost, caSmart)
	})
	// Inbound to the mail host, which offers REQUIRETLS.
	id := pySend(t, e.gw.InboundAddr.String(), "someone@outside.example", "staff@example.gov.uk",
		message("someone@outside.example", "staff@example.gov.uk", "rtls-in", "hello"), "REQUIRETLS")
	if got := storedTLSRequest(t, e, id); got != store.TLSRequestRequire {
		t.Fatalf("stored TLS request %q, want %q", got, store.TLSRequestRequire)
	}
	m := mailHost.Wait(t, 1, 10*time.Second)[0]
	if !m.TLS || !m.RequireTLS {
		t.Fatalf("mail host got TLS=%v REQUIRETLS=%v", m.TLS, m.RequireTLS)
	}

	// Outbound to a smarthost without REQUIRETLS: bounced, 5.7.30.
	pySend(t, e.gw.OutboundAddr.String(), "staff@example.gov.uk", "citizen@gmail.example",
		message("staff@example.gov.uk", "citizen@gmail.example", "rtls-out", "hello"), "REQUIRETLS")
	dsn := mailHost.Wait(t, 2, 15*time.Second)[1]
	if len(smarthost.Messages()) != 0 {
		t.Fatal("the smarthost without REQUIRETLS got the message")
	}
	if !strings.Contains(string(dsn.Data), "5.7.30") || !strings.Contains(string(dsn.Data), "REQUIRETLS") {
		t.Fatalf("DSN does not say why:\n%s", dsn.Data)
	}
	if !dsn.RequireTLS {
		t.Fatal("the DSN of a REQUIRETLS message was sent without REQUIRETLS")
	}

	// TLS-Required: No is kept without REQUIRETLS, ignored with it.
	withNo := "TLS-Required: No\r\n" + message("staff@example.gov.uk", "citizen@gmail.example", "rtls-no", "hello")
	if got := storedTLSRequest(t, e, pySend(t, e.gw.OutboundAddr.String(), "staff@example.gov.uk", "citizen@gmail.example", withNo)); got != store.TLSRequestOptional {
		t.Fatalf("TLS-Required: No stored as %q", got)
	}
	if got := storedTLSRequest(t, e, pySend(t, e.gw.OutboundAddr.String(), "staff@example.gov.uk", "citizen@gmail.example", withNo, "REQUIRETLS")); got != store.TLSRequestRequire {
		t.Fatalf("REQUIRETLS with TLS-Required: No stored as %q", got)
	}
}

// caBundle writes the CA certificates of files into one PEM file.
func caBundle(t *testing.T, files ...string) string {
	t.Helper()
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	out := filepath.Join(t.TempDir(), "cas.pem")
	if err := os.WriteFile(out, all, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}
