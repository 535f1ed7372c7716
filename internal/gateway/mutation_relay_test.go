package gateway

import (
	"strings"
	"testing"

	"sealpost/internal/config"
)

// TestInboundRefusesEveryForeignRecipient: the inbound listener takes mail
// only for the organisation's own domains. Domains that merely look like
// them (a suffix, a prefix, a subdomain) are foreign too, and one foreign
// recipient among good ones is refused on its own.
func TestInboundRefusesEveryForeignRecipient(t *testing.T) {
	e := start(t, nil)
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	c.expect("MAIL FROM:<someone@outside.example>", 250)
	c.expect("RCPT TO:<staff@example.gov.uk>", 250)
	for _, rcpt := range []string{
		"victim@elsewhere.example",
		"staff@example.gov.uk.evil.example",
		"staff@notexample.gov.uk",
		"staff@sub.example.gov.uk",
		"staff@gov.uk",
	} {
		if code, msg := c.cmd("RCPT TO:<" + rcpt + ">"); code != 550 || !strings.Contains(msg, "5.7.1") {
			t.Errorf("RCPT TO:<%s>: got %s, want 550 5.7.1", rcpt, msg)
		}
	}
	c.expect("RSET", 250)
}

// TestOutboundRefusesStrangers: outside the connector networks, no relay
// without AUTH; AUTH itself is refused over a clear connection even with
// the right password and even when the client sends it unasked (it is not
// offered in clear); and a connector may not send as a foreign domain.
func TestOutboundRefusesStrangers(t *testing.T) {
	t.Run("not a connector", func(t *testing.T) {
		e := start(t, func(c *config.Config) { c.Org.ConnectorNetworks = []string{"192.0.2.0/24"} })
		addUser(t, e.gw.Store, "alice", "correct horse battery", "sender")
		c := dial(t, e.gw.OutboundAddr)
		c.expect("EHLO laptop", 250)
		if code, msg := c.cmd(plain("alice", "correct horse battery")); code != 538 || !strings.Contains(msg, "5.7.11") {
			t.Fatalf("AUTH with the right password in clear: %s, want 538 5.7.11", msg)
		}
		if code, msg := c.cmd("MAIL FROM:<alice@example.gov.uk>"); code != 530 || !strings.Contains(msg, "5.7.0") {
			t.Fatalf("MAIL after refused AUTH: %s, want 530 5.7.0", msg)
		}
		if code, _ := c.cmd("RCPT TO:<x@partner.example>"); code == 250 {
			t.Fatal("a recipient was accepted without a sender")
		}
		// Over TLS, the same user relays: the refusals above are about TLS.
		c2 := dial(t, e.gw.OutboundAddr)
		c2.expect("EHLO laptop", 250)
		c2.starttls()
		c2.expect("EHLO laptop", 250)
		c2.expect(plain("alice", "correct horse battery"), 235)
		c2.expect("MAIL FROM:<alice@example.gov.uk>", 250)
		c2.expect("RCPT TO:<x@partner.example>", 250)
	})
	t.Run("connector sending as a foreign domain", func(t *testing.T) {
		e := start(t, nil) // loopback is a connector network by default
		c := dial(t, e.gw.OutboundAddr)
		c.expect("EHLO exchange.example", 250)
		for _, from := range []string{"ceo@elsewhere.example", "ceo@example.gov.uk.evil.example", "ceo@notexample.gov.uk"} {
			if code, msg := c.cmd("MAIL FROM:<" + from + ">"); code != 550 || !strings.Contains(msg, "5.7.1") {
				t.Errorf("MAIL FROM:<%s> from a connector: %s, want 550 5.7.1", from, msg)
			}
		}
		c.expect("MAIL FROM:<staff@example.gov.uk>", 250)
	})
}
