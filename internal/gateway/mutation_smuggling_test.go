package gateway

import (
	"strings"
	"testing"
)

// TestCommandsEndInCRLF: a command line ended by a bare LF is refused
// (500 5.5.2) and not run, so a client and the gateway cannot disagree on
// where a command ends (RFC 5321 §2.3.8); the session goes on in step.
func TestCommandsEndInCRLF(t *testing.T) {
	e := start(t, nil)
	c := dial(t, e.gw.InboundAddr)
	c.write("EHLO client.example\n")
	if code, msg := c.reply(); code != 500 || !strings.Contains(msg, "5.5.2") {
		t.Fatalf("EHLO with bare LF: %s, want 500 5.5.2", msg)
	}
	c.expect("EHLO client.example", 250)
	c.write("MAIL FROM:<someone@outside.example>\n")
	if code, msg := c.reply(); code != 500 {
		t.Fatalf("MAIL with bare LF: %s, want 500", msg)
	}
	// The MAIL above was not run: RCPT has no transaction to join.
	if code, msg := c.cmd("RCPT TO:<staff@example.gov.uk>"); code != 503 {
		t.Fatalf("RCPT after a refused MAIL: %s, want 503", msg)
	}
	c.expect("NOOP", 250)
}
