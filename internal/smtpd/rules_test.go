package smtpd

import (
	"strings"
	"testing"
)

func TestRecipientSyntax(t *testing.T) {
	test := func(role, rcpt, want string) {
		t.Helper()
		c, out := testConn(t, role, false, "")
		if r := run(c, out, "MAIL FROM:<a@outside.example>"); role == RoleInbound && !strings.HasPrefix(r, "250") {
			t.Fatalf("MAIL: %s", r)
		}
		c.hasFrom = true
		if got := run(c, out, "RCPT TO:<"+rcpt+">"); !strings.HasPrefix(got, want) {
			t.Errorf("%s RCPT TO:<%s>: %q, want %q", role, rcpt, got, want)
		}
	}
	in := RoleInbound
	test(in, "staff@example.gov.uk", "250 2.1.5")
	test(in, `"odd@local"@example.gov.uk`, "250 2.1.5")     // quoted @ is a mailbox name
	test(in, `"per%cent!bang"@example.gov.uk`, "250 2.1.5") // quoted: passed on as is
	test(in, "postmaster", "250 2.1.5")                     // RFC 5321 §4.5.1
	test(in, "PostMaster", "250 2.1.5")
	test(in, "a@b@example.gov.uk", "553 5.1.3")
	test(in, "a%elsewhere.example@example.gov.uk", "553 5.1.3")
	test(in, "elsewhere.example!a@example.gov.uk", "553 5.1.3")
	test(in, `a\@b@example.gov.uk`, "553 5.1.3")
	test(in, `a\b@example.gov.uk`, "553 5.1.3")
	test(in, `a@ex!ample.gov.uk`, "553 5.1.3")
	test(in, `"unterminated@example.gov.uk`, "553 5.1.3")
	test(in, "x@elsewhere.example", "550 5.7.1") // the backend's answer is sent as it is
}

func TestPostmasterGoesToTheOrg(t *testing.T) {
	c, out := testConn(t, RoleInbound, false, "")
	run(c, out, "MAIL FROM:<a@outside.example>")
	if r := run(c, out, "RCPT TO:<postmaster>"); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	if got := c.sess.(*fakeSession).rcpts; len(got) != 1 || got[0] != "postmaster@example.gov.uk" {
		t.Fatalf("recipients %v, want postmaster at the first org domain", got)
	}
}

func TestUnadvertisedParameters(t *testing.T) {
	test := func(role string, tls bool, line, want string) {
		t.Helper()
		c, out := testConn(t, role, tls, "")
		if strings.HasPrefix(line, "RCPT") {
			run(c, out, "MAIL FROM:<a@outside.example>")
		}
		if got := run(c, out, line); !strings.HasPrefix(got, want) {
			t.Errorf("%s (tls %v) %s: %q, want %q", role, tls, line, got, want)
		}
	}
	in, out := RoleInbound, RoleOutbound
	test(in, false, "MAIL FROM:<a@outside.example> SIZE=100 BODY=8BITMIME SMTPUTF8", "250 2.1.0")
	test(in, false, "MAIL FROM:<a@outside.example> RET=HDRS", "555 5.5.4")
	test(in, false, "MAIL FROM:<a@outside.example> ENVID=x", "555 5.5.4")
	test(in, false, "MAIL FROM:<a@outside.example> AUTH=<>", "555 5.5.4") // no AUTH on the MX
	test(out, false, "MAIL FROM:<a@example.gov.uk> AUTH=<>", "555 5.5.4") // no AUTH before TLS
	test(out, true, "MAIL FROM:<a@example.gov.uk> AUTH=<>", "530 5.7.0")  // parameter fine, session not authenticated
	test(in, false, "MAIL FROM:<a@outside.example> BODY=BINARYMIME", "555 5.5.4")
	test(in, false, "MAIL FROM:<a@outside.example> XFOO=1", "555 5.5.4")
	test(in, false, "RCPT TO:<staff@example.gov.uk> NOTIFY=NEVER", "555 5.5.4")
	test(in, false, "RCPT TO:<staff@example.gov.uk> ORCPT=rfc822;staff@example.gov.uk", "555 5.5.4")
	test(in, false, "RCPT TO:<staff@example.gov.uk>", "250 2.1.5")
}

func TestRoutingForm(t *testing.T) {
	for a, ok := range map[string]bool{
		"a@b.example": true, `"a@b"@c.example`: true, `"a\"b"@c.example`: true, "a.b+c@d.example": true,
		"a@b@c.example": false, "a%b@c.example": false, "b!a@c.example": false, `a\b@c.example`: false, `"a"b@c.example`: false,
	} {
		if got := routingForm(a) == nil; got != ok {
			t.Errorf("routingForm(%q) ok=%v, want %v", a, got, ok)
		}
	}
}
