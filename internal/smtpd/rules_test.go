package smtpd

import (
	"bufio"
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"sealpost/internal/config"
	"sealpost/internal/metrics"
)

// testConn is a session on no socket: commands go in as lines, replies
// come out of a buffer. Enough for the command rules that need no DATA.
func testConn(t *testing.T, role string, tls bool, authUser string, sendAs ...string) (*conn, *bytes.Buffer) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Org.Domains = []string{"example.gov.uk", "example.org"}
	cfg.Org.ConnectorNetworks = nil
	cfg.Org.MailHost = "127.0.0.1:1"
	cfg.SMTP.Hostname = "gw.example.gov.uk"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := &Server{metrics: metrics.New(), log: slog.New(slog.DiscardHandler)}
	srv.cfg.Store(cfg)
	var out bytes.Buffer
	c := &conn{srv: srv, bw: bufio.NewWriter(&out), br: bufio.NewReader(strings.NewReader("")), helo: "client.example", tls: tls}
	c.sess = &session{s: srv, role: role, conn: c, cfg: cfg, authUser: authUser, sendAs: sendAs}
	return c, &out
}

// run sends one command and returns the reply line.
func run(c *conn, out *bytes.Buffer, line string) string {
	out.Reset()
	c.command(line)
	c.bw.Flush()
	return strings.TrimRight(out.String(), "\r\n")
}

func TestRecipientSyntax(t *testing.T) {
	test := func(role, rcpt, want string) {
		t.Helper()
		c, out := testConn(t, role, false, "")
		if r := run(c, out, "MAIL FROM:<a@outside.example>"); role == RoleInbound && !strings.HasPrefix(r, "250") {
			t.Fatalf("MAIL: %s", r)
		}
		c.sess.hasFrom = true
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
	test(in, "x@elsewhere.example", "550 5.7.1") // still no open relay
	test(in, "postmaster@elsewhere.example", "550 5.7.1")
}

func TestPostmasterGoesToTheOrg(t *testing.T) {
	c, out := testConn(t, RoleInbound, false, "")
	run(c, out, "MAIL FROM:<a@outside.example>")
	if r := run(c, out, "RCPT TO:<postmaster>"); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	if got := c.sess.rcpts; len(got) != 1 || got[0] != "postmaster@example.gov.uk" {
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

func TestAuthUserMailFrom(t *testing.T) {
	test := func(from, want string) {
		t.Helper()
		c, out := testConn(t, RoleOutbound, true, "alice", "alice@example.gov.uk", "housing@example.org")
		if got := run(c, out, "MAIL FROM:<"+from+">"); !strings.HasPrefix(got, want) {
			t.Errorf("alice MAIL FROM:<%s>: %q, want %q", from, got, want)
		}
	}
	test("alice@example.gov.uk", "250 2.1.0")
	test("Alice@EXAMPLE.gov.uk", "250 2.1.0")
	test("housing@example.org", "250 2.1.0") // an alias the operator granted
	test("bob@example.gov.uk", "550 5.7.1 Sender address not permitted for this login")
	test("", "550 5.7.1 Sender address not permitted for this login")
	test("alice@outside.example", "550 5.7.1")
}

func TestAuthUserHeaderFrom(t *testing.T) {
	test := func(authUser, header string, wantOK bool) {
		t.Helper()
		c, _ := testConn(t, RoleOutbound, true, authUser, "alice@example.gov.uk", "housing@example.org")
		h := &headerCapture{max: 1 << 10}
		h.Write([]byte(header))
		r := c.sess.checkHeaderFrom(h.info())
		if (r == nil) != wantOK {
			t.Errorf("user %q, header %q: %v, want ok=%v", authUser, header, r, wantOK)
		}
		if r != nil && (r.Code != 550 || r.Enh != "5.7.1" || !strings.Contains(r.Text, "permitted for this login")) {
			t.Errorf("refusal %v does not name the rule", r)
		}
	}
	test("alice", "From: Alice <alice@example.gov.uk>\r\nSubject: x\r\n\r\nbody", true)
	test("alice", "From: =?utf-8?q?Housing_Team?= <HOUSING@example.org>\r\n\r\n", true)
	test("alice", "From: alice@example.gov.uk, housing@example.org\r\n\r\n", true)
	test("alice", "From: Alice <bob@example.gov.uk>\r\n\r\n", false)
	test("alice", "From: alice@example.gov.uk, bob@example.gov.uk\r\n\r\n", false) // every author counts
	test("alice", "From: alice@example.gov.uk\r\nFrom: bob@example.gov.uk\r\n\r\n", false)
	test("alice", "Subject: no author\r\n\r\n", false)
	test("alice", "From: <<not an address\r\n\r\n", false)
	test("alice", "From: alice@example.gov.uk\r\nX-Pad: "+strings.Repeat("x", 2000)+"\r\nFrom: bob@example.gov.uk\r\n\r\n", false) // past the capture
	test("", "From: anyone@example.gov.uk\r\n\r\n", true)                                                                          // connector mail: not checked
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
