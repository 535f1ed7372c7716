package smtpd

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"sealpost/internal/metrics"
)

// The protocol over a socket, against the fake backend: what the gateway's
// listeners do on the wire, tested without a gateway.

var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

// FuzzSMTPSession sends arbitrary bytes after EHLO to a running inbound
// listener. Whatever arrives, every line the server writes is a well-formed
// reply, and the server ends the session within its time limit.
func FuzzSMTPSession(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<a@b.example>\r\nRCPT TO:<staff@example.gov.uk>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n",
		"MAIL FROM:<a@b.example> SIZE=99999999999999999999\r\n",
		"RCPT TO:<x>\r\nDATA\r\n",
		"BDAT 10 LAST\r\n0123456789",
		"BDAT 99999999999\r\n",
		"AUTH PLAIN\r\n*\r\n",
		"MAIL FROM:<\x00>\r\nHELP\r\nVRFY root\r\nEXPN all\r\n",
		"STARTTLS\r\n\x16\x03\x01garbage",
		strings.Repeat("A", 5000) + "\r\n",
	} {
		f.Add([]byte(s))
	}
	_, addr := listen(f, RoleInbound, func(o *Options) { o.CommandTimeout = time.Second })
	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(8 * time.Second))
		go func() {
			conn.Write([]byte("EHLO fuzz.example\r\n"))
			conn.Write(in)
			conn.Write([]byte("\r\nQUIT\r\n"))
		}()
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("session not ended by the server within 8s")
				}
				return // closed
			}
			if !replyLine.MatchString(line) {
				t.Fatalf("malformed reply line %q", line)
			}
		}
	})
}

// TestCommandsEndInCRLF: a command line ended by a bare LF is refused
// (500 5.5.2) and not run, so a client and the server cannot disagree on
// where a command ends (RFC 5321 §2.3.8); the session goes on in step.
func TestCommandsEndInCRLF(t *testing.T) {
	t.Parallel()
	_, addr := listen(t, RoleInbound, nil)
	c := dial(t, addr)
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

// TestSmugglingVariantsRefused sends hannob/smtpsmug's malformed
// end-of-data sequences (testdata/smtp) over a socket, each followed by a
// smuggled transaction from a forged sender. Every variant is refused with
// 550 (a bare CR or LF, or a NUL, anywhere in DATA), the backend is given
// no message, the smuggled commands are never run, and the session stays
// in step.
func TestSmugglingVariantsRefused(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../testdata/smtp/smuggling-end-of-data-variants.json")
	if err != nil {
		t.Fatal(err)
	}
	var corpus struct {
		Variants map[string]string `json:"variants"`
	}
	if err := json.Unmarshal(b, &corpus); err != nil {
		t.Fatal(err)
	}
	if len(corpus.Variants) < 10 {
		t.Fatalf("corpus has %d variants", len(corpus.Variants))
	}
	be, addr := listen(t, RoleInbound, nil)
	for name, eod := range corpus.Variants {
		c := dial(t, addr)
		c.expect("EHLO attacker.example", 250)
		c.expect("MAIL FROM:<attacker@outside.example>", 250)
		c.expect("RCPT TO:<staff@example.gov.uk>", 250)
		c.expect("DATA", 354)
		c.write("From: attacker@outside.example\r\nSubject: first\r\n\r\nfirst" + eod +
			"MAIL FROM:<ceo@example.gov.uk>\r\nRCPT TO:<staff@example.gov.uk>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
		if code, msg := c.reply(); code != 550 {
			t.Errorf("%s: reply %s, want 550", name, msg)
		}
		c.expect("NOOP", 250) // in step: the next command gets its own reply
	}
	if got := be.got(); len(got) > 0 {
		t.Fatalf("%d messages reached the backend, the first from %q:\n%s", len(got), got[0].from, got[0].data)
	}
}

// TestDataRefusalOverridesBackend: when the DATA stream was refused, the
// answer is smtpd's, even from a backend that (wrongly) answers 250: no
// refused byte is ever acknowledged.
func TestDataRefusalOverridesBackend(t *testing.T) {
	t.Parallel()
	c, out := testConn(t, RoleInbound, false, "")
	c.sess = &eagerSession{c.sess}
	c.br = bufio.NewReader(strings.NewReader("a\nb\r\n.\r\nQUIT\r\n"))
	run(c, out, "MAIL FROM:<a@outside.example>")
	run(c, out, "RCPT TO:<staff@example.gov.uk>")
	if got := run(c, out, "DATA"); !strings.Contains(got, "550 5.5.2") || strings.Contains(got, "250") {
		t.Fatalf("DATA with a bare LF answered %q, want 550 5.5.2 only", got)
	}
}

// eagerSession answers 250 to any data, read or not.
type eagerSession struct{ Session }

func (s *eagerSession) Data(r io.Reader) *Reply {
	io.Copy(io.Discard, r)
	return Accepted("x")
}

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	be, addr := listen(t, RoleInbound, func(o *Options) { o.MaxMessageBytes = 10000 })
	c := dial(t, addr)
	ehlo := c.expect("EHLO x", 250)
	if !strings.Contains(ehlo, "250 SMTPUTF8") {
		t.Fatalf("EHLO reply ends %q", ehlo)
	}
	c.write("EHLO x\r\n")
	var sawSize bool
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		sawSize = sawSize || strings.Contains(line, "SIZE 10000")
		if line[3] == ' ' {
			break
		}
	}
	if !sawSize {
		t.Fatal("SIZE 10000 not advertised")
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
	if n := len(be.got()); n != 0 {
		t.Fatalf("%d oversized messages reached the backend", n)
	}
}

func TestSessionLimitPerIP(t *testing.T) {
	t.Parallel()
	_, addr := listen(t, RoleInbound, func(o *Options) { o.MaxSessionsPerIP = 2 })
	dial(t, addr)
	dial(t, addr)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(b), "421 4.7.0") {
		t.Fatalf("third session: %q, want 421 4.7.0", b)
	}
}

func TestSlowClientIsDisconnected(t *testing.T) {
	t.Parallel()
	_, addr := listen(t, RoleInbound, func(o *Options) { o.CommandTimeout = 500 * time.Millisecond })
	c := dial(t, addr)
	c.expect("EHLO x", 250)
	start := time.Now()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.r.ReadString('\n') // we send nothing; the server must give up
	if err == nil {
		// A 421 line before closing is fine; then EOF.
		_, err = c.r.ReadString('\n')
	}
	if err == nil || time.Since(start) > 4*time.Second {
		t.Fatalf("idle session not closed by the server (err %v after %s)", err, time.Since(start))
	}
}

// TestMessageReachesBackend: a clean message arrives dot-unstuffed, with
// the envelope, and the backend's 250 is what the client reads; Logout is
// called once per session.
func TestMessageReachesBackend(t *testing.T) {
	t.Parallel()
	be, addr := listen(t, RoleInbound, nil)
	c := dial(t, addr)
	c.expect("EHLO client.example", 250)
	c.expect("MAIL FROM:<a@outside.example>", 250)
	c.expect("RCPT TO:<staff@example.gov.uk>", 250)
	c.expect("RCPT TO:<postmaster>", 250)
	if code, msg := c.cmd("RCPT TO:<x@elsewhere.example>"); code != 550 {
		t.Fatalf("foreign recipient: %s, want the backend's 550", msg)
	}
	c.expect("DATA", 354)
	msg := c.expect("Subject: x\r\n\r\n..dot\r\nbody\r\n.", 250)
	if !strings.Contains(msg, "OK queued as 1") {
		t.Fatalf("end of data: %q", msg)
	}
	c.expect("QUIT", 221)
	got := be.got()
	if len(got) != 1 || got[0].data != "Subject: x\r\n\r\n.dot\r\nbody\r\n" || got[0].from != "a@outside.example" ||
		strings.Join(got[0].rcpts, ",") != "staff@example.gov.uk,postmaster@example.gov.uk" {
		t.Fatalf("backend got %+v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		be.mu.Lock()
		n := be.logouts
		be.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d logouts, want 1", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStartTLSRefusesPipelinedCommands: commands sent in clear after
// STARTTLS, in the same packet, must not run inside the TLS session (RFC
// 3207 §4.2, CVE-2011-0411): the server closes the connection instead of
// starting TLS.
func TestStartTLSRefusesPipelinedCommands(t *testing.T) {
	t.Parallel()
	o := testOptions()
	b := &fakeBackend{}
	srv := New(o, b, selfSigned(t), metrics.New(), slog.New(slog.DiscardHandler))
	addr, err := srv.Listen(RoleOutbound, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c := dial(t, addr.String())
	if msg := c.expect("EHLO client.example", 250); !strings.Contains(msg, "250") {
		t.Fatal(msg)
	}
	c.write("STARTTLS\r\nMAIL FROM:<injected@example.gov.uk>\r\n")
	if code, msg := c.reply(); code != 220 {
		t.Fatalf("STARTTLS: %s", msg)
	}
	// The server does not start TLS on such a connection: a handshake
	// fails, so nothing sent in clear can run as if sent under TLS.
	c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true, ServerName: "gw.example.gov.uk"})
	if err := tc.Handshake(); err == nil {
		t.Fatal("TLS started on a connection with commands pipelined after STARTTLS")
	}
}

// selfSigned is a TLS server configuration with a fresh certificate.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw.example.gov.uk"},
		DNSNames: []string{"gw.example.gov.uk"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
