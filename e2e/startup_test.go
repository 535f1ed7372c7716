package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
)

// startupConfig is a config for `serve` whose start is expected to fail;
// each case changes a field.
type startupConfig struct {
	dataDir, inbound, outbound, web string
	smtpExtra, keysExtra, tail      string
}

func (c startupConfig) write(t *testing.T, dir string) string {
	t.Helper()
	b := `data_dir = "` + c.dataDir + `"
[org]
name = "Test Council"
domains = ["example.gov.uk"]
mail_host = "127.0.0.1:1"
[smtp]
hostname = "gw.example.gov.uk"
inbound_listen = "` + c.inbound + `"
outbound_listen = "` + c.outbound + `"
` + c.smtpExtra + `
[keys]
` + c.keysExtra + `
[web]
listen = "` + c.web + `"
public_url = "http://` + c.web + `"
` + c.tail
	path := filepath.Join(dir, "sealpost.toml")
	if err := os.WriteFile(path, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveFails runs `serve --config path` and checks that it fails as a
// start-up failure must: exit 2, one line "sealpost: …" naming what is
// wrong (every want), no stack trace.
func serveFails(t *testing.T, path string, want ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, "serve", "--config", path)
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	s := string(out)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, s)
	}
	if strings.Contains(s, "goroutine") || strings.Contains(s, "panic") {
		t.Fatalf("stack trace shown:\n%s", s)
	}
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "sealpost: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want one line \"sealpost: …\", got %d:\n%s", len(lines), s)
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Fatalf("error does not say %q:\n%s", w, lines[0])
		}
	}
	t.Log(lines[0])
	return lines[0]
}

// busy holds a TCP port open for the test.
func busy(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// TestStartupFailuresAreOneLine: every kind of start-up failure after the
// config loads is reported as one line naming the key (with the file's
// line), the rule or the file, exit status 2, no panic (a partly started
// gateway used to crash in closeAll and hide the error).
func TestStartupFailuresAreOneLine(t *testing.T) {
	base := func(t *testing.T) (startupConfig, string) {
		dir := t.TempDir()
		return startupConfig{dataDir: filepath.Join(dir, "data"), inbound: freePort(t), outbound: freePort(t), web: freePort(t)}, dir
	}
	for _, listener := range []string{"smtp.inbound_listen", "smtp.outbound_listen", "web.listen"} {
		t.Run("port in use: "+listener, func(t *testing.T) {
			c, dir := base(t)
			addr := busy(t)
			switch listener {
			case "smtp.inbound_listen":
				c.inbound = addr
			case "smtp.outbound_listen":
				c.outbound = addr
			default:
				c.web = addr
			}
			path := c.write(t, dir)
			line := keyLine(t, path, listener)
			serveFails(t, path, path+":"+line+": "+listener+": "+addr+": address already in use")
			// Nothing stays open: the other listeners were closed.
			for _, a := range []string{c.inbound, c.outbound, c.web} {
				if a == addr {
					continue
				}
				if conn, err := net.DialTimeout("tcp", a, 200*time.Millisecond); err == nil {
					conn.Close()
					t.Errorf("%s still listens after the failed start", a)
				}
			}
		})
	}
	t.Run("bad policy rule", func(t *testing.T) {
		c, dir := base(t)
		c.tail = "\n[[policy.rule]]\nname = \"typo\"\nwhen = 'recipient.domian == \"x\"'\naction = \"reject\"\n"
		path := c.write(t, dir)
		serveFails(t, path, path+":", `policy.rule "typo"`, "domian")
	})
	t.Run("unreadable TLS certificate", func(t *testing.T) {
		c, dir := base(t)
		cert := filepath.Join(dir, "missing-cert.pem")
		c.smtpExtra = "tls_cert = \"" + cert + "\"\ntls_key = \"" + cert + "\"\n"
		path := c.write(t, dir)
		serveFails(t, path, "smtp.tls_cert: "+cert+": cannot read: no such file or directory")
	})
	t.Run("unreadable TLS key", func(t *testing.T) {
		c, dir := base(t)
		cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		os.WriteFile(cert, []byte("not used"), 0o600)
		c.smtpExtra = "tls_cert = \"" + cert + "\"\ntls_key = \"" + key + "\"\n"
		path := c.write(t, dir)
		serveFails(t, path, "smtp.tls_key: "+key+": cannot read")
	})
	t.Run("TLS certificate that does not load", func(t *testing.T) {
		c, dir := base(t)
		cert := filepath.Join(dir, "cert.pem")
		os.WriteFile(cert, []byte("not a certificate"), 0o600)
		c.smtpExtra = "tls_cert = \"" + cert + "\"\ntls_key = \"" + cert + "\"\n"
		path := c.write(t, dir)
		serveFails(t, path, "smtp.tls_cert: ", cert)
	})
	t.Run("data directory not writable", func(t *testing.T) {
		c, dir := base(t)
		// A regular file where a directory should be: even root cannot
		// create the data directory under it.
		file := filepath.Join(dir, "file")
		os.WriteFile(file, nil, 0o600)
		c.dataDir = filepath.Join(file, "data")
		path := c.write(t, dir)
		serveFails(t, path, "data_dir: "+c.dataDir+": cannot create it: not a directory")
	})
	t.Run("database that is not one", func(t *testing.T) {
		c, dir := base(t)
		os.MkdirAll(c.dataDir, 0o700)
		db := filepath.Join(c.dataDir, "sealpost.db")
		os.WriteFile(db, []byte(strings.Repeat("not a database ", 512)), 0o600)
		path := c.write(t, dir)
		serveFails(t, path, db+": file is not a database")
	})
	t.Run("missing CA file", func(t *testing.T) {
		c, dir := base(t)
		ca := filepath.Join(dir, "ca.pem")
		c.tail = "\n[outbound]\nca_file = \"" + ca + "\"\n"
		path := c.write(t, dir)
		serveFails(t, path, path+":", "outbound.ca_file: ", ca)
	})
	t.Run("bad master key file", func(t *testing.T) {
		c, dir := base(t)
		key := filepath.Join(dir, "master.key")
		os.WriteFile(key, []byte("short"), 0o600)
		c.keysExtra = "master_key_file = \"" + key + "\"\n"
		path := c.write(t, dir)
		serveFails(t, path, "keys.master_key_file: ", key, "want 32 bytes, found 5")
	})
	t.Run("bad master key in the data directory", func(t *testing.T) {
		c, dir := base(t)
		os.MkdirAll(filepath.Join(c.dataDir, "keys"), 0o700)
		os.WriteFile(filepath.Join(c.dataDir, "keys", "master.key"), []byte("short"), 0o600)
		path := c.write(t, dir)
		serveFails(t, path, "master.key", "want 32 bytes, found 5")
	})
}

// keyLine is the line (as text) where the config file sets key.
func keyLine(t *testing.T, path, key string) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	table, leaf, _ := strings.Cut(key, ".")
	if !strings.Contains(key, ".") {
		table, leaf = "", key
	}
	current := ""
	for i, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "[") {
			current = strings.Trim(l, "[] ")
		}
		if current == table && strings.HasPrefix(l, leaf+" =") {
			return strconv.Itoa(i + 1)
		}
	}
	t.Fatalf("%s not in %s", key, path)
	return ""
}

// TestInitConfigWhileDevRuns: the README's path from dev mode to a real
// config. `init` writes dev mode's listen addresses, so starting it while
// `serve --dev` runs clashes; the clash is reported naming the key, not as
// a crash. (Dev runs on free ports here; the init config is pointed at
// the same ports, as its defaults are at dev's.)
func TestInitConfigWhileDevRuns(t *testing.T) {
	// The premise: init's listeners are dev mode's.
	initDir := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command(binPath, "init", "--data", initDir, "--domain", "council.gov.uk").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	path := filepath.Join(initDir, "sealpost.toml")
	written, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defaults := config.Dev(t.TempDir())
	if written.SMTP.InboundListen != defaults.SMTP.InboundListen || written.SMTP.OutboundListen != defaults.SMTP.OutboundListen || written.Web.Listen != defaults.Web.Listen {
		t.Logf("init's listeners no longer equal dev mode's; the clash below is then only what happens when they are made equal")
	}
	d := startDev(t, t.TempDir())
	b, _ := os.ReadFile(path)
	s := string(b)
	for from, to := range map[string]string{written.SMTP.InboundListen: d.inbound, written.SMTP.OutboundListen: d.outbound, written.Web.Listen: d.web} {
		s = regexp.MustCompile(`"`+regexp.QuoteMeta(from)+`"`).ReplaceAllString(s, `"`+to+`"`)
	}
	os.WriteFile(path, []byte(s), 0o600)
	serveFails(t, path, "smtp.inbound_listen: "+d.inbound+": address already in use", "serve --dev")
	// The dev instance is unharmed.
	waitListen(t, d.web, time.Second)
}
