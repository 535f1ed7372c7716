package gateway

import (
	"log/slog"
	"strings"
	"testing"

	"sealpost/internal/config"
	"sealpost/internal/metrics"
	"sealpost/internal/pipeline"
	"sealpost/internal/smtpd"
)

// testSession is the backend's session of an AUTH login on the outbound
// listener, with no gateway running: the listener's rules, tested fast.
func testSession(t *testing.T, authUser string, sendAs ...string) *session {
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
	g := &Gateway{Log: slog.New(slog.DiscardHandler), Metrics: metrics.New()}
	g.cfg.Store(cfg)
	rs, err := g.newRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.rules.Store(rs)
	s := newBackend(g).NewSession(&smtpd.ConnInfo{Role: smtpd.RoleOutbound, Helo: "client.example", AuthUser: authUser}).(*authSession)
	s.sendAs = sendAs
	return s.session
}

func TestAuthUserMailFrom(t *testing.T) {
	t.Parallel()
	s := testSession(t, "alice", "alice@example.gov.uk", "housing@example.org")
	test := func(from, want string) {
		t.Helper()
		got := "250 2.1.0"
		if r := s.Mail(from, smtpd.MailOptions{}); r != nil {
			got = r.Error()
		}
		if !strings.HasPrefix(got, want) {
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

func TestUnauthenticatedOutboundMail(t *testing.T) {
	t.Parallel()
	s := testSession(t, "")
	if r := s.Mail("a@example.gov.uk", smtpd.MailOptions{}); r == nil || r.Code != 530 {
		t.Fatalf("MAIL without AUTH from outside the connector networks: %v, want 530", r)
	}
}

func TestAuthUserHeaderFrom(t *testing.T) {
	t.Parallel()
	test := func(authUser, header string, wantOK bool) {
		t.Helper()
		s := testSession(t, authUser, "alice@example.gov.uk", "housing@example.org")
		h := &pipeline.HeaderCapture{Max: 1 << 10}
		h.Write([]byte(header))
		r := s.checkHeaderFrom(h.Info())
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
