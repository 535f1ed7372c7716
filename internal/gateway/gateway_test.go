package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sealpost/internal/auth"
	"sealpost/internal/config"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

type env struct {
	t    testing.TB
	gw   *Gateway
	sink *testutil.Sink
	cfg  *config.Config
}

// start runs a gateway on a temp dir whose mail host and smarthost are one
// recording sink.
func start(t testing.TB, mutate func(*config.Config)) *env {
	t.Helper()
	sink := testutil.NewSink(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Org.Domains = []string{"example.gov.uk"}
	cfg.Org.MailHost = sink.Addr
	cfg.Outbound.Smarthost = sink.Addr
	cfg.SMTP.Hostname = "gw.example.gov.uk"
	cfg.SMTP.InboundListen = "127.0.0.1:0"
	cfg.SMTP.OutboundListen = "127.0.0.1:0"
	cfg.Web.Listen = "127.0.0.1:0"
	cfg.Outbound.RetryInitial.Duration = 200 * time.Millisecond
	cfg.Outbound.Workers = 4
	cfg.Queue.PollInterval.Duration = 100 * time.Millisecond
	cfg.DKIM.Algorithm = "ed25519" // fast key generation; RSA is tested in mailauth
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gw, err := Start(cfg, log, &testutil.Resolver{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
	})
	return &env{t: t, gw: gw, sink: sink, cfg: cfg}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client is a raw SMTP dialogue for tests.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr net.Addr) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	if code, msg := c.reply(); code != 220 {
		t.Fatalf("greeting %d %s", code, msg)
	}
	return c
}

func (c *client) reply() (int, string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, "read error: " + err.Error()
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			var code int
			fmt.Sscanf(line, "%d", &code)
			return code, strings.Join(lines, "\n")
		}
	}
}

func (c *client) cmd(line string) (int, string) {
	c.t.Helper()
	c.write(line + "\r\n")
	return c.reply()
}

func (c *client) write(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) expect(line string, want int) string {
	c.t.Helper()
	code, msg := c.cmd(line)
	if code != want {
		c.t.Fatalf("%q: got %s, want %d", line, msg, want)
	}
	return msg
}

func (c *client) starttls() {
	c.t.Helper()
	c.expect("STARTTLS", 220)
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

func message(from, to, subject, body string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\nDate: Thu, 26 Nov 2026 08:00:00 +0000\r\nMessage-ID: <" + subject + "@test>\r\n\r\n" + body + "\r\n"
}

// send runs one transaction and returns the reply to the end of DATA.
func (c *client) send(from string, to []string, data string) (int, string) {
	c.t.Helper()
	c.expect("MAIL FROM:<"+from+">", 250)
	for _, r := range to {
		c.expect("RCPT TO:<"+r+">", 250)
	}
	c.expect("DATA", 354)
	c.write(data + ".\r\n")
	return c.reply()
}

func TestInboundRelaysToMailHostAndRefusesOthers(t *testing.T) {
	e := start(t, nil)
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	c.expect("MAIL FROM:<someone@outside.example>", 250)
	if code, msg := c.cmd("RCPT TO:<victim@elsewhere.example>"); code != 550 || !strings.Contains(msg, "5.7.1") {
		t.Fatalf("relay to a foreign domain: got %s, want 550 5.7.1", msg)
	}
	c.expect("RSET", 250)
	code, msg := c.send("someone@outside.example", []string{"staff@example.gov.uk", "Other@EXAMPLE.gov.uk"}, message("someone@outside.example", "staff@example.gov.uk", "inbound1", "hello"))
	if code != 250 || !strings.Contains(msg, "queued as") {
		t.Fatalf("got %s", msg)
	}
	msgs := e.sink.Wait(t, 1, 10*time.Second)
	m := msgs[0]
	if m.From != "someone@outside.example" || len(m.Rcpts) != 2 {
		t.Fatalf("envelope %q %v", m.From, m.Rcpts)
	}
	if !bytes.HasPrefix(m.Data, []byte("Received: from client.example ([127.0.0.1])\r\n\tby gw.example.gov.uk with ESMTP id ")) {
		t.Fatalf("no Received header first:\n%s", m.Data)
	}
	if bytes.Contains(bytes.ToLower(m.Data), []byte("sealpost")) {
		t.Fatal("product name in the relayed message")
	}
	if testutil.Header(m.Data, "DKIM-Signature") != "" {
		t.Fatal("inbound mail must not be DKIM-signed")
	}
	if !bytes.HasSuffix(m.Data, []byte("\r\nhello\r\n")) {
		t.Fatalf("body changed:\n%q", m.Data)
	}
}

func TestGreetingNamesNoProduct(t *testing.T) {
	e := start(t, nil)
	conn, err := net.Dial("tcp", e.gw.InboundAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "EHLO x\r\nQUIT\r\n")
	b, _ := io.ReadAll(conn)
	s := strings.ToLower(string(b))
	for _, bad := range []string{"sealpost", "go-smtp", "golang", "version"} {
		if strings.Contains(s, bad) {
			t.Fatalf("dialogue names %q:\n%s", bad, b)
		}
	}
	if !strings.HasPrefix(string(b), "220 gw.example.gov.uk ESMTP") {
		t.Fatalf("greeting: %s", b)
	}
	for _, ext := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "STARTTLS", "SIZE 157286400"} {
		if !strings.Contains(string(b), ext) {
			t.Errorf("EHLO does not offer %s", ext)
		}
	}
}

func TestOutboundFromConnectorIsSignedAndRelayed(t *testing.T) {
	e := start(t, nil)
	c := dial(t, e.gw.OutboundAddr)
	c.expect("EHLO exchange.example", 250)
	code, msg := c.send("staff@example.gov.uk", []string{"citizen@gmail.example"}, message("Staff <staff@example.gov.uk>", "citizen@gmail.example", "out1", "the body"))
	if code != 250 {
		t.Fatal(msg)
	}
	m := e.sink.Wait(t, 1, 10*time.Second)[0]
	sig := testutil.Header(m.Data, "DKIM-Signature")
	if !strings.Contains(sig, "d=example.gov.uk") || !strings.Contains(sig, "a=ed25519-sha256") {
		t.Fatalf("DKIM-Signature %q", sig)
	}
	verifyDKIM(t, e.gw, m.Data)
}

func TestOutboundRefusesForeignSenderAndUnauthenticated(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Org.ConnectorNetworks = []string{"192.0.2.0/24"} })
	c := dial(t, e.gw.OutboundAddr)
	ehlo := c.expect("EHLO laptop", 250)
	if strings.Contains(ehlo, "AUTH") {
		t.Fatalf("AUTH offered before TLS:\n%s", ehlo)
	}
	if code, msg := c.cmd("MAIL FROM:<staff@example.gov.uk>"); code != 530 || !strings.Contains(msg, "5.7.0") {
		t.Fatalf("unauthenticated MAIL: %s", msg)
	}
	if code, _ := c.cmd("AUTH PLAIN AHN0YWZmAHBhc3N3b3Jk"); code < 500 {
		t.Fatalf("AUTH accepted without TLS")
	}
}

func addUser(t *testing.T, st *store.Store, name, pw, role string) {
	t.Helper()
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddUser(context.Background(), &store.User{Name: name, PasswordHash: h, Role: role}); err != nil {
		t.Fatal(err)
	}
}

func plain(user, pw string) string {
	return "AUTH PLAIN " + b64("\x00"+user+"\x00"+pw)
}

func TestAuthOverTLSAndLockout(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Org.ConnectorNetworks = nil })
	addUser(t, e.gw.Store, "alice", "correct horse battery", "sender")
	addUser(t, e.gw.Store, "bob", "another long password", "sender")
	e.gw.Store.SetUserDisabled(context.Background(), "bob", true)

	c := dial(t, e.gw.OutboundAddr)
	c.expect("EHLO laptop", 250)
	c.starttls()
	ehlo := c.expect("EHLO laptop", 250)
	if !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Fatalf("AUTH not offered over TLS:\n%s", ehlo)
	}
	if code, msg := c.cmd(plain("alice", "wrong")); code != 535 || !strings.Contains(msg, "5.7.8") {
		t.Fatalf("bad password: %s", msg)
	}
	if code, _ := c.cmd(plain("bob", "another long password")); code != 535 {
		t.Fatal("disabled user authenticated")
	}
	c.expect(plain("alice", "correct horse battery"), 235)
	code, msg := c.send("alice@example.gov.uk", []string{"x@partner.example"}, message("alice@example.gov.uk", "x@partner.example", "auth1", "hi"))
	if code != 250 {
		t.Fatal(msg)
	}
	m := e.sink.Wait(t, 1, 10*time.Second)[0]
	if !strings.Contains(string(m.Data), "with ESMTPSA id") {
		t.Fatalf("Received does not show ESMTPSA:\n%s", m.Data)
	}

	// Five failures lock the address out, even for the right password.
	c2 := dial(t, e.gw.OutboundAddr)
	c2.expect("EHLO laptop", 250)
	c2.starttls()
	c2.expect("EHLO laptop", 250)
	for i := 0; i < 5; i++ {
		c2.cmd(plain("alice", fmt.Sprintf("guess%d", i)))
	}
	if code, msg := c2.cmd(plain("alice", "correct horse battery")); code != 454 {
		t.Fatalf("after 5 failures: %s, want 454 lock-out", msg)
	}
}

func TestLoginMechanism(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Org.ConnectorNetworks = nil })
	addUser(t, e.gw.Store, "carol", "a very good password", "sender")
	c := dial(t, e.gw.OutboundAddr)
	c.expect("EHLO laptop", 250)
	c.starttls()
	c.expect("EHLO laptop", 250)
	c.expect("AUTH LOGIN", 334)
	c.expect(b64("carol"), 334)
	c.expect(b64("a very good password"), 235)
}

func TestSizeLimit(t *testing.T) {
	e := start(t, func(c *config.Config) { c.SMTP.MaxMessageBytes = 10000 })
	c := dial(t, e.gw.InboundAddr)
	ehlo := c.expect("EHLO x", 250)
	if !strings.Contains(ehlo, "SIZE 10000") {
		t.Fatalf("SIZE not advertised:\n%s", ehlo)
	}
	if code, msg := c.cmd("MAIL FROM:<a@b.example> SIZE=20000"); code != 552 || !strings.Contains(msg, "5.3.4") {
		t.Fatalf("declared size: %s", msg)
	}
	c.expect("MAIL FROM:<a@b.example>", 250)
	c.expect("RCPT TO:<staff@example.gov.uk>", 250)
	c.expect("DATA", 354)
	big := strings.Repeat(strings.Repeat("x", 98)+"\r\n", 200)
	c.write("Subject: big\r\n\r\n" + big + ".\r\n")
	if code, msg := c.reply(); code != 552 || !strings.Contains(msg, "5.3.4") {
		t.Fatalf("oversized DATA: %s", msg)
	}
	c.expect("NOOP", 250)
	assertSpoolEmpty(t, e.cfg)
}

// assertSpoolEmpty: no message file in the spool (segments, which hold
// several messages, are checked through Spool.Live).
func assertSpoolEmpty(t *testing.T, cfg *config.Config) {
	t.Helper()
	var files []string
	filepath.WalkDir(cfg.Path("spool"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) != "seg" {
			files = append(files, p)
		}
		return nil
	})
	if len(files) > 0 {
		t.Fatalf("spool files left: %v", files)
	}
}

func TestPermanentFailureSendsDSN(t *testing.T) {
	e := start(t, nil)
	e.sink.Rcpt = func(r string) error {
		if strings.HasPrefix(r, "nobody@") {
			return testutil.SMTPError(550, [3]int{5, 1, 1}, "no such user")
		}
		return nil
	}
	c := dial(t, e.gw.OutboundAddr)
	c.expect("EHLO x", 250)
	code, msg := c.send("staff@example.gov.uk", []string{"nobody@partner.example", "ok@partner.example"}, message("staff@example.gov.uk", "nobody@partner.example", "dsn1", "secret body text"))
	if code != 250 {
		t.Fatal(msg)
	}
	msgs := e.sink.Wait(t, 2, 10*time.Second)
	var dsnMsg *testutil.Received
	for i := range msgs {
		if msgs[i].From == "" {
			dsnMsg = &msgs[i]
		}
	}
	if dsnMsg == nil {
		t.Fatalf("no DSN among %d messages", len(msgs))
	}
	d := string(dsnMsg.Data)
	if dsnMsg.Rcpts[0] != "staff@example.gov.uk" {
		t.Fatalf("DSN to %v", dsnMsg.Rcpts)
	}
	for _, want := range []string{"report-type=delivery-status", "Final-Recipient: rfc822; nobody@partner.example", "Status: 5.1.1", "Action: failed", "Diagnostic-Code: smtp; 550 5.1.1 no such user", "Subject: dsn1"} {
		if !strings.Contains(d, want) {
			t.Errorf("DSN lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, "secret body text") || strings.Contains(d, "ok@partner.example") {
		t.Errorf("DSN carries the body or a delivered recipient:\n%s", d)
	}
	waitQueueEmpty(t, e)
}

func waitQueueEmpty(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := e.gw.Store.QueueDepth(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d recipients", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		var files int
		filepath.WalkDir(e.cfg.Path("spool"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) != "seg" {
				files++
			}
			return nil
		})
		if files == 0 && e.gw.Queue.Spool().Live() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spool files left after delivery", files)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTemporaryFailureIsRetried(t *testing.T) {
	e := start(t, nil)
	var mu sync.Mutex
	tries := 0
	e.sink.Rcpt = func(r string) error {
		mu.Lock()
		defer mu.Unlock()
		tries++
		if tries <= 2 {
			return testutil.SMTPError(451, [3]int{4, 3, 0}, "try later")
		}
		return nil
	}
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO x", 250)
	if code, msg := c.send("a@outside.example", []string{"staff@example.gov.uk"}, message("a@outside.example", "staff@example.gov.uk", "retry1", "x")); code != 250 {
		t.Fatal(msg)
	}
	e.sink.Wait(t, 1, 15*time.Second)
	rs := waitRecipients(t, e)
	if rs[0].Status != "delivered" || rs[0].Attempts != 3 {
		t.Fatalf("recipient %+v, want delivered on the third attempt", rs[0])
	}
}

func waitRecipients(t *testing.T, e *env) []store.Recipient {
	t.Helper()
	waitQueueEmpty(t, e)
	var id string
	e.gw.Store.DB.QueryRow(`SELECT id FROM messages ORDER BY received_at DESC LIMIT 1`).Scan(&id)
	rs, err := e.gw.Store.Recipients(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestExpiryBouncesWithDSN(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Outbound.MaxAge.Duration = 300 * time.Millisecond })
	e.sink.Rcpt = func(r string) error {
		if r == "slow@partner.example" {
			return testutil.SMTPError(451, [3]int{4, 2, 0}, "mailbox busy")
		}
		return nil
	}
	c := dial(t, e.gw.OutboundAddr)
	c.expect("EHLO x", 250)
	if code, msg := c.send("staff@example.gov.uk", []string{"slow@partner.example"}, message("staff@example.gov.uk", "slow@partner.example", "exp1", "x")); code != 250 {
		t.Fatal(msg)
	}
	m := e.sink.Wait(t, 1, 15*time.Second)[0]
	if m.From != "" || !strings.Contains(string(m.Data), "Status: 4.4.7") {
		t.Fatalf("want an expiry DSN, got from %q:\n%s", m.From, m.Data)
	}
}

func TestStoreFailureAnswers451AndKeepsNothing(t *testing.T) {
	e := start(t, nil)
	e.gw.Committer.Sync = func(string, func() error) error { return fmt.Errorf("injected: disk gone") }
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO x", 250)
	code, msg := c.send("a@outside.example", []string{"staff@example.gov.uk"}, message("a@outside.example", "staff@example.gov.uk", "fail1", "x"))
	if code != 451 || !strings.Contains(msg, "4.3.0") {
		t.Fatalf("got %s, want 451 4.3.0", msg)
	}
	assertSpoolEmpty(t, e.cfg)
	if n := e.gw.Queue.Spool().Live(); n != 0 {
		t.Fatalf("%d messages held in spool segments after a failed commit", n)
	}
	var n int
	e.gw.Store.DB.QueryRow(`SELECT count(*) FROM messages`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d queue rows after a failed commit", n)
	}
}

func TestRecoveryAfterRestart(t *testing.T) {
	// A message accepted while the next hop is down is delivered by the next
	// run of the gateway on the same data.
	sink := testutil.NewSink(t)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	dir := t.TempDir()
	mk := func(mailHost string) *env {
		return start(t, func(c *config.Config) { c.DataDir = dir; c.Org.MailHost = mailHost })
	}
	e1 := mk(deadAddr)
	c := dial(t, e1.gw.InboundAddr)
	c.expect("EHLO x", 250)
	if code, msg := c.send("a@outside.example", []string{"staff@example.gov.uk"}, message("a@outside.example", "staff@example.gov.uk", "restart1", "x")); code != 250 {
		t.Fatal(msg)
	}
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	e1.gw.Shutdown(ctx)
	cancel()
	// Leave an orphan spool file as a crash between rename and commit would.
	orphan := filepath.Join(dir, "spool", "q", "00000000000000000000000000")
	os.WriteFile(orphan, []byte("junk"), 0o600)

	e2 := start(t, func(c *config.Config) { c.DataDir = dir; c.Org.MailHost = sink.Addr })
	m := sink.Wait(t, 1, 15*time.Second)[0]
	if !strings.Contains(string(m.Data), "Subject: restart1") {
		t.Fatalf("wrong message:\n%s", m.Data)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatal("orphan spool file not swept at start")
	}
	waitQueueEmpty(t, e2)
}

func TestSpoolIsEncryptedAtRest(t *testing.T) {
	e := start(t, func(c *config.Config) {
		dead, _ := net.Listen("tcp", "127.0.0.1:0")
		c.Org.MailHost = dead.Addr().String()
		dead.Close()
	})
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO x", 250)
	secret := "NHS number 943 476 5919 for the patient"
	if code, msg := c.send("a@outside.example", []string{"staff@example.gov.uk"}, message("a@outside.example", "staff@example.gov.uk", "enc1", secret)); code != 250 {
		t.Fatal(msg)
	}
	found := 0
	filepath.WalkDir(e.cfg.DataDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("943 476 5919")) {
			t.Errorf("plaintext found in %s", p)
		}
		if strings.Contains(p, string(filepath.Separator)+"spool"+string(filepath.Separator)) {
			found++
		}
		return nil
	})
	if found != 1 {
		t.Fatalf("%d spool files, want 1", found)
	}
}

// TestMasterKeyElsewhere: with keys.master_key_file on another volume, the
// data directory alone holds no key, and the spool still works.
func TestMasterKeyElsewhere(t *testing.T) {
	keyDir := t.TempDir()
	e := start(t, func(c *config.Config) { c.Keys.MasterKeyFile = filepath.Join(keyDir, "at-rest.key") })
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO x", 250)
	if code, msg := c.send("a@outside.example", []string{"staff@example.gov.uk"}, message("a@outside.example", "staff@example.gov.uk", "key1", "x")); code != 250 {
		t.Fatal(msg)
	}
	e.sink.Wait(t, 1, 10*time.Second)
	if _, err := os.Stat(filepath.Join(keyDir, "at-rest.key")); err != nil {
		t.Fatal("key not made where configured")
	}
	if _, err := os.Stat(e.cfg.Path("keys", "master.key")); !os.IsNotExist(err) {
		t.Fatal("a master key was made in the data directory too")
	}
}
