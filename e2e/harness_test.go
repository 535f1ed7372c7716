// Package e2e drives the built sealpost binary with real programs: swaks,
// Postfix's smtp-source and smtp-sink, openssl. `make test` installs them;
// with SEALPOST_REQUIRE_TOOLS=1 a missing tool fails the test instead of
// skipping it.
package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sealpost/internal/testutil"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sealpost-e2e")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "sealpost")
	out, err := exec.Command("go", "build", "-o", binPath, "../cmd/sealpost").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building sealpost: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.Missing(t, "%s is not installed", tool)
		}
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListen(t testing.TB, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after %s", addr, d)
}

// syncBuffer is a bytes.Buffer safe for a process's output and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gw is a sealpost process.
var current *gw // the gateway of the running test, for failure logs

type gw struct {
	t        testing.TB
	cfgPath  string
	dir      string
	inbound  string
	outbound string
	web      string
	cmd      *exec.Cmd
	out      *syncBuffer
	done     chan error
}

type gwOptions struct {
	mailHost  string
	smarthost string
	extra     string // appended TOML
	// inbound is the [inbound] section's body; empty: authentication off
	// (these tests have no DNS; inbound_test.go brings its own).
	inbound  string
	dkim     string // dkim.algorithm; empty: ed25519 (fast key generation)
	resolver string // outbound.resolver; empty: none set
}

// newGW writes a config in a temp dir; start runs it.
func newGW(t testing.TB, o gwOptions) *gw {
	t.Helper()
	g := &gw{t: t, dir: t.TempDir(), inbound: freePort(t), outbound: freePort(t), web: freePort(t)}
	if o.mailHost == "" {
		o.mailHost = freePort(t) // nothing there
	}
	if o.inbound == "" {
		o.inbound = "authenticate = false"
	}
	if o.dkim == "" {
		o.dkim = "ed25519"
	}
	// outbound.resolver only when given: a test may add its own.
	resolverLine := ""
	if o.resolver != "" {
		resolverLine = fmt.Sprintf("resolver = %q", o.resolver)
	}
	// [web] comes last: o.extra adds keys to it.
	cfg := fmt.Sprintf(`data_dir = %q
[org]
name = "Test Council"
domains = ["example.gov.uk"]
mail_host = %q
connector_networks = ["127.0.0.0/8"]
[smtp]
hostname = "gw.example.gov.uk"
inbound_listen = %q
outbound_listen = %q
max_message_bytes = 1048576
[outbound]
smarthost = %q
retry_initial = "1s"
%s
[queue]
poll_interval = "200ms"
[dkim]
algorithm = %q
[inbound]
%s
[web]
listen = %q
public_url = "http://%s"
%s`, g.dir, o.mailHost, g.inbound, g.outbound, o.smarthost, resolverLine, o.dkim, o.inbound, g.web, g.web, o.extra)
	g.cfgPath = filepath.Join(g.dir, "sealpost.toml")
	if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.stop)
	current = g
	return g
}

func (g *gw) start() {
	g.t.Helper()
	g.out = &syncBuffer{}
	g.cmd = exec.Command(binPath, "serve", "--config", g.cfgPath)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.done = make(chan error, 1)
	go func() { g.done <- g.cmd.Wait() }()
	waitListen(g.t, g.outbound, 20*time.Second)
	waitListen(g.t, g.inbound, 5*time.Second)
}

func (g *gw) kill9() {
	g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.done
	g.cmd = nil
}

func (g *gw) stop() {
	if g.cmd == nil {
		return
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
		g.t.Errorf("sealpost did not stop within 20s of SIGTERM")
	}
	g.cmd = nil
}

// cli runs a sealpost subcommand against this gateway's config.
func (g *gw) cli(args ...string) (string, int) {
	cmd := exec.Command(binPath, append(args, "--config", g.cfgPath)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		g.t.Fatal(err)
	}
	return string(out), code
}

// sink is Postfix's smtp-sink, dumping every message to a file.
type sink struct {
	addr string
	dir  string
	cmd  *exec.Cmd
}

func startSink(t testing.TB) *sink {
	t.Helper()
	need(t, "smtp-sink")
	// smtp-sink writes as the postfix user: its directory must be reachable
	// by that user (t.TempDir's parent is mode 0700).
	dir, err := os.MkdirTemp("", "sealpost-sink")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &sink{addr: freePort(t), dir: dir}
	s.cmd = exec.Command("smtp-sink", "-u", "postfix", "-d", s.dir+"/%M.", s.addr, "512")
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	waitListen(t, s.addr, 5*time.Second)
	return s
}

// messages returns the dumped messages (LF line endings, as smtp-sink
// writes them).
func (s *sink) messages() []string {
	entries, _ := os.ReadDir(s.dir)
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

func (s *sink) wait(t testing.TB, n int, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := s.messages()
		if len(m) >= n {
			return m
		}
		if time.Now().After(deadline) {
			if current != nil && current.out != nil {
				t.Logf("gateway log:\n%s", current.out.String())
			}
			t.Fatalf("sink has %d messages, want %d after %s", len(m), n, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func swaks(t testing.TB, args ...string) (string, int) {
	t.Helper()
	need(t, "swaks")
	cmd := exec.Command("swaks", append([]string{"--timeout", "20"}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return string(out), code
}

// waitFor waits for a complete message containing substr and returns it.
func (s *sink) waitFor(t testing.TB, substr string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, m := range s.messages() {
			if strings.Contains(m, substr) {
				return m
			}
		}
		if time.Now().After(deadline) {
			if current != nil && current.out != nil {
				t.Logf("gateway log:\n%s", current.out.String())
			}
			t.Fatalf("no message with %q after %s; the sink has:\n%s", substr, d, strings.Join(s.messages(), "\n---\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
