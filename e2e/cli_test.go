package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestInitWritesAWorkingConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out, err := exec.Command(binPath, "init", "--data", dir, "--domain", "council.gov.uk").CombinedOutput()
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`s\d{6}\._domainkey\.council\.gov\.uk TXT "v=DKIM1;h=sha256;p=`).Match(out) {
		t.Fatalf("init does not print the DKIM record:\n%s", out)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "sealpost.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"data_dir", "[org]", "domains = [\"council.gov.uk\"]", "mail_host", "connector_networks", "[smtp]", "hostname", "inbound_listen", "outbound_listen", "max_message_bytes", "[outbound]", "smarthost", "[web]", "listen", "public_url"} {
		if !strings.Contains(string(cfg), key) {
			t.Errorf("config lacks %s", key)
		}
	}
	for _, f := range []string{"keys/master.key", "keys/tls-cert.pem", "keys/tls-key.pem", "keys/dkim-rsa-2048.pem"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("init did not write %s", f)
		}
		if strings.Contains(filepath.Base(f), "key") && st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is readable by others: %v", f, st.Mode())
		}
	}
	if out, err := exec.Command(binPath, "init", "--data", dir, "--domain", "council.gov.uk").CombinedOutput(); err == nil {
		t.Fatalf("init overwrote an existing config:\n%s", out)
	}
	// The written config starts (on free ports).
	b := string(cfg)
	for _, k := range []string{"inbound_listen", "outbound_listen"} {
		b = regexp.MustCompile(k+` = "[^"]*"`).ReplaceAllString(b, k+` = "`+freePort(t)+`"`)
	}
	web := freePort(t)
	b = regexp.MustCompile(`(?m)^listen = "[^"]*"`).ReplaceAllString(b, `listen = "`+web+`"`)
	os.WriteFile(filepath.Join(dir, "sealpost.toml"), []byte(b), 0o600)
	cmd := exec.Command(binPath, "serve", "--config", filepath.Join(dir, "sealpost.toml"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitListen(t, web, 20*time.Second)
}

func TestBadConfigExits2WithKeyAndLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	os.WriteFile(path, []byte("data_dir = \"/tmp/x\"\n[org]\ndomains = [\"example.gov.uk\"]\nmail_host = \"no-port\"\n"), 0o600)
	cmd := exec.Command(binPath, "serve", "--config", path)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2:\n%s", err, out)
	}
	if !strings.Contains(string(out), "bad.toml:4: org.mail_host:") {
		t.Fatalf("error does not name file, line and key:\n%s", out)
	}
	if strings.Contains(string(out), "goroutine") || strings.Contains(string(out), "panic") {
		t.Fatalf("stack trace shown:\n%s", out)
	}
	out, err = exec.Command(binPath, "queue", "frobnicate").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("unknown subcommand: exit %v, want 2:\n%s", err, out)
	}
}

func TestQueueCommands(t *testing.T) {
	need(t, "swaks")
	g := newGW(t, gwOptions{}) // the mail host is down: mail waits
	g.start()
	out, code := swaks(t, "--server", g.inbound, "--from", "a@outside.example", "--to", "staff@example.gov.uk", "--header", "Subject: waiting")
	if code != 0 {
		t.Fatal(out)
	}
	id := regexp.MustCompile(`queued as (\w+)`).FindStringSubmatch(out)[1]
	time.Sleep(1500 * time.Millisecond) // at least one failed attempt

	out, code = g.cli("queue", "list")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "a@outside.example") {
		t.Fatalf("queue list (exit %d):\n%s", code, out)
	}
	out, code = g.cli("queue", "list", "--json")
	var list struct {
		Messages []struct {
			ID         string `json:"id"`
			Recipients []struct {
				Address   string `json:"address"`
				Status    string `json:"status"`
				Attempts  int    `json:"attempts"`
				LastError string `json:"last_error"`
			} `json:"recipients"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Messages) != 1 {
		t.Fatalf("queue list --json: %v\n%s", err, out)
	}
	r := list.Messages[0].Recipients[0]
	if r.Address != "staff@example.gov.uk" || r.Status != "queued" || r.Attempts < 1 || !strings.Contains(r.LastError, "4.4.1") {
		t.Fatalf("recipient %+v", r)
	}
	out, code = g.cli("queue", "show", id)
	if code != 0 || !strings.Contains(out, "staff@example.gov.uk  queued via mailhost") {
		t.Fatalf("queue show:\n%s", out)
	}
	if out, code = g.cli("queue", "show", "nosuchid"); code != 1 {
		t.Fatalf("show of an unknown id: exit %d\n%s", code, out)
	}
	if out, code = g.cli("queue", "retry", id); code != 0 {
		t.Fatalf("retry: %s", out)
	}
	if out, code = g.cli("queue", "delete", id); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %s", out)
	}
	out, _ = g.cli("queue", "list")
	if !strings.Contains(out, "empty") {
		t.Fatalf("after delete:\n%s", out)
	}
	out, _ = g.cli("queue", "show", id, "--json")
	if !strings.Contains(out, `"status":"deleted"`) {
		t.Fatalf("deleted message:\n%s", out)
	}
}

func TestUserCommands(t *testing.T) {
	g := newGW(t, gwOptions{})
	out, code := g.cli("user", "add", "bob", "--role", "auditor")
	if code != 0 || !regexp.MustCompile(`Password \(shown once\): \S{20}`).MatchString(out) {
		t.Fatalf("user add (exit %d):\n%s", code, out)
	}
	if out, code = g.cli("user", "add", "bob"); code != 1 || !strings.Contains(out, "exists") {
		t.Fatalf("duplicate add (exit %d): %s", code, out)
	}
	if out, code = g.cli("user", "add", "eve", "--role", "root"); code != 2 {
		t.Fatalf("bad role (exit %d): %s", code, out)
	}
	if out, code = g.cli("user", "disable", "bob"); code != 0 {
		t.Fatal(out)
	}
	out, _ = g.cli("user", "list", "--json")
	if !strings.Contains(out, `{"name":"bob","role":"auditor","disabled":true`) {
		t.Fatalf("user list --json:\n%s", out)
	}
	if strings.Contains(out, "argon2") {
		t.Fatal("password hash printed")
	}
}

func TestDevModeOutbox(t *testing.T) {
	need(t, "swaks")
	dir := t.TempDir()
	// Dev mode's listeners are fixed (INTERFACE.md); the hidden --dev-*
	// flags move them to free ports so this runs beside other tests.
	d := startDev(t, dir)
	outbound, webAddr, out := d.outbound, d.web, d.out
	for deadline := time.Now().Add(10 * time.Second); !regexp.MustCompile(`user admin, password \S{20}`).MatchString(out.String()); {
		if time.Now().After(deadline) {
			t.Fatalf("first admin not printed:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if o, code := swaks(t, "--server", outbound, "--from", "staff@example.gov.uk", "--to", "someone@example.org", "--header", "Subject: dev outbox test"); code != 0 {
		t.Fatal(o)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + webAddr + "/dev/outbox")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("security headers missing: %v", resp.Header)
		}
		if strings.Contains(string(b), "dev outbox test") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message not in the dev outbox:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The message as a mail client shows it; its source, signed.
	resp, err := http.Get("http://" + webAddr + "/dev/outbox/1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "<h1>dev outbox test</h1>") || !strings.Contains(string(b), "/dev/outbox/1/source") {
		t.Fatalf("captured message not shown:\n%s", b)
	}
	resp, err = http.Get("http://" + webAddr + "/dev/outbox/1/source")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "DKIM-Signature: v=1;") || !strings.Contains(string(b), " d=example.gov.uk;") {
		t.Fatalf("captured message source not shown signed:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "sealpost-data", "sealpost.db")); err != nil {
		t.Fatal("dev data not in ./sealpost-data")
	}
}

// dev is a `sealpost serve --dev` process on free ports.
type dev struct {
	inbound, outbound, web string
	out                    *syncBuffer
	cmd                    *exec.Cmd
}

// startDev runs dev mode in dir (its data in dir/sealpost-data) and waits
// for its web listener.
func startDev(t *testing.T, dir string) *dev {
	t.Helper()
	d := &dev{inbound: freePort(t), outbound: freePort(t), web: freePort(t), out: &syncBuffer{}}
	d.cmd = exec.Command(binPath, "serve", "--dev", "--dev-inbound", d.inbound, "--dev-outbound", d.outbound, "--dev-web", d.web)
	d.cmd.Dir = dir
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cmd.Process.Signal(syscall.SIGTERM); d.cmd.Wait() })
	waitListen(t, d.web, 20*time.Second)
	return d
}
