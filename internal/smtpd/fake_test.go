package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sealpost/internal/metrics"
)

// fakeBackend stands for the gateway: it takes mail for the org's two
// domains, checks one login (alice/secret) and keeps what DATA delivered.
// It is all smtpd's tests need to test the protocol on its own.
type fakeBackend struct {
	mu       sync.Mutex
	messages []fakeMessage
	logouts  int
}

type fakeMessage struct {
	from  string
	rcpts []string
	data  string
}

func (b *fakeBackend) NewSession(c *ConnInfo) Session {
	s := &fakeSession{b: b, c: c}
	if c.Role == RoleOutbound {
		return &fakeAuthSession{s}
	}
	return s
}

func (b *fakeBackend) got() []fakeMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]fakeMessage(nil), b.messages...)
}

type fakeSession struct {
	b     *fakeBackend
	c     *ConnInfo
	from  string
	rcpts []string
}

func (s *fakeSession) Mail(from string, _ MailOptions) *Reply {
	if s.c.Role == RoleOutbound && s.c.AuthUser == "" {
		return ReplyAuthRequired
	}
	s.from, s.rcpts = from, nil
	return nil
}

func (s *fakeSession) Rcpt(to string) *Reply {
	if d := strings.ToLower(DomainOf(to)); d != "example.gov.uk" && d != "example.org" && s.c.Role == RoleInbound {
		return ReplyRelayDenied
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) *Reply {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.messages = append(s.b.messages, fakeMessage{from: s.from, rcpts: s.rcpts, data: string(b)})
	return Accepted(strconv.Itoa(len(s.b.messages)))
}

func (s *fakeSession) Reset() { s.from, s.rcpts = "", nil }

func (s *fakeSession) Logout() {
	s.b.mu.Lock()
	s.b.logouts++
	s.b.mu.Unlock()
}

type fakeAuthSession struct{ *fakeSession }

func (s *fakeAuthSession) Auth(user, pass string) *Reply {
	if user == "alice" && pass == "secret" {
		return nil
	}
	return ReplyAuthInvalid
}

func testOptions() Options {
	return Options{Hostname: "gw.example.gov.uk", MaxMessageBytes: 1 << 20, MaxLineLength: 998, MaxRecipients: 100,
		MaxSessions: 50, MaxSessionsPerIP: 20, CommandTimeout: 5 * time.Second, DataTimeout: 5 * time.Second,
		SessionTimeout: time.Minute, PostmasterDomain: "example.gov.uk"}
}

// testConn is a session on no socket: commands go in as lines, replies
// come out of a buffer. Enough for the command rules that need no DATA.
func testConn(t *testing.T, role string, tls bool, authUser string) (*conn, *bytes.Buffer) {
	t.Helper()
	srv := New(testOptions(), &fakeBackend{}, nil, metrics.New(), slog.New(slog.DiscardHandler))
	var out bytes.Buffer
	c := srv.newConn(role, nopConn{}, &ConnInfo{Role: role, Helo: "client.example", AuthUser: authUser})
	c.bw, c.br = bufio.NewWriter(&out), bufio.NewReader(strings.NewReader(""))
	c.helo, c.tls = "client.example", tls
	c.sess = srv.backend.NewSession(c.info)
	return c, &out
}

// run sends one command and returns the reply line.
func run(c *conn, out *bytes.Buffer, line string) string {
	out.Reset()
	c.command(line)
	c.bw.Flush()
	return strings.TrimRight(out.String(), "\r\n")
}

// listen starts a server with the fake backend on a loopback port.
func listen(t testing.TB, role string, edit func(*Options)) (*fakeBackend, string) {
	t.Helper()
	o := testOptions()
	if edit != nil {
		edit(&o)
	}
	b := &fakeBackend{}
	srv := New(o, b, nil, metrics.New(), slog.New(slog.DiscardHandler))
	addr, err := srv.Listen(role, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return b, addr.String()
}

// client is a raw SMTP client for the socket tests.
type client struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &client{t: t, nc: nc, r: bufio.NewReader(nc)}
	if code, msg := c.reply(); code != 220 {
		t.Fatalf("greeting %q", msg)
	}
	return c
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads one (possibly multi-line) reply: its code and last line.
func (c *client) reply() (int, string) {
	c.t.Helper()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v", err)
		}
		if len(line) < 4 {
			c.t.Fatalf("short reply line %q", line)
		}
		if line[3] == ' ' {
			code, _ := strconv.Atoi(line[:3])
			return code, strings.TrimRight(line, "\r\n")
		}
	}
}

func (c *client) cmd(line string) (int, string) {
	c.t.Helper()
	c.write(line + "\r\n")
	return c.reply()
}

func (c *client) expect(line string, code int) string {
	c.t.Helper()
	got, msg := c.cmd(line)
	if got != code {
		c.t.Fatalf("%s: %q, want %d", line, msg, code)
	}
	return msg
}

// nopConn is the socket of a testConn: deadlines are accepted and ignored,
// and nothing is read or written through it (testConn's buffers are).
type nopConn struct{ net.Conn }

func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }
func (nopConn) Close() error                     { return nil }
