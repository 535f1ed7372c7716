package packaging

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sealpost/internal/testutil"
)

// buildDeb packages the once-built binary with scripts/build-deb.sh.
func buildDeb(t *testing.T) string {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, nil, "../scripts/build-deb.sh", t.TempDir(), bin)
	return strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
}

// newRoot makes an empty system root dpkg can install into, with the
// account files useradd --prefix edits.
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"var/lib/dpkg/status": "", "var/lib/dpkg/available": "",
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n",
		"etc/shadow": "root:*:19000:0:99999:7:::\n", "etc/gshadow": "root:*::\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The package's user must reach its files below the test's directory.
	for d := root; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return root
}

func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	a := append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends", "--log=/dev/null"}, args...)
	return run(t, []string{"SEALPOST_DOMAIN=example.test"}, "dpkg", a...)
}

// notifications listens as systemd does and passes each datagram on.
func notifications(t *testing.T) (string, <-chan string) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	t.Cleanup(func() { c.Close() })
	ch := make(chan string, 64)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(b[:n])
		}
	}()
	return path, ch
}

func expect(t *testing.T, ch <-chan string, want string, d time.Duration, logs func() string) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-ch:
			if strings.Contains(m, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s from the gateway within %v; its log:\n%s", want, d, logs())
		}
	}
}

func TestDebInstall(t *testing.T) {
	need(t, "dpkg-deb", "dpkg", "lintian", "useradd", "swaks")
	if os.Geteuid() != 0 {
		testutil.Missing(t, "installing the package and running it as its user needs root")
	}
	deb := buildDeb(t)

	// lintian: errors and warnings fail; each override is explained in
	// packaging/debian/lintian-overrides.
	if out, err := exec.Command("lintian", "--fail-on", "error,warning", "--allow-root", deb).CombinedOutput(); err != nil {
		t.Fatalf("lintian: %v\n%s", err, out)
	}

	root := newRoot(t)
	dpkg(t, root, "-i", deb)
	conf := filepath.Join(root, "etc/sealpost/sealpost.toml")
	data := filepath.Join(root, "var/lib/sealpost")
	uid, gid := ids(t, root)
	st, err := os.Stat(conf)
	if err != nil {
		t.Fatalf("postinst wrote no configuration: %v", err)
	}
	if st.Mode().Perm() != 0o640 || st.Sys().(*syscall.Stat_t).Gid != gid || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("%s: mode %v owner %d:%d, want 0640 root:sealpost", conf, st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid, st.Sys().(*syscall.Stat_t).Gid)
	}
	if st, err := os.Stat(filepath.Join(data, "keys")); err != nil || st.Sys().(*syscall.Stat_t).Uid != uid {
		t.Fatalf("state directory keys not made for the sealpost user: %v", err)
	}

	// Loopback listeners on free ports; outbound mail to a sink.
	sink := testutil.NewSink(t)
	b, _ := os.ReadFile(conf)
	outAddr := freeAddr(t)
	c := strings.NewReplacer(
		`"127.0.0.1:10025"`, `"`+freeAddr(t)+`"`,
		`"127.0.0.1:10587"`, `"`+outAddr+`"`,
		`listen = "127.0.0.1:9080"`, `listen = "`+freeAddr(t)+`"`,
		`smarthost = ""`, `smarthost = "`+sink.Addr+`"`,
	).Replace(string(b))
	if err := os.WriteFile(conf, []byte(c), 0o640); err != nil {
		t.Fatal(err)
	}

	// Upgrade (the same version again): configuration and data stay.
	marker := filepath.Join(data, "admin-file")
	os.WriteFile(marker, []byte("x"), 0o600)
	dpkg(t, root, "-i", deb)
	if b, _ := os.ReadFile(conf); string(b) != c {
		t.Fatal("reinstalling changed the configuration")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("reinstalling lost the state directory's contents")
	}

	// Start it as the unit does: ExecStart's command line, as sealpost,
	// with systemd's notification socket and watchdog.
	args := execStart(t)
	for i, a := range args {
		if strings.HasPrefix(a, "/") {
			args[i] = filepath.Join(root, a)
		}
	}
	sock, notes := notifications(t)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=500000", "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	expect(t, notes, "READY=1", 90*time.Second, logs.String)
	expect(t, notes, "WATCHDOG=1", 5*time.Second, logs.String)

	out, err := exec.Command("swaks", "--server", outAddr, "--from", "alice@example.test", "--to", "bob@remote.test",
		"--h-Subject", "packaged", "--body", "from the packaged binary", "--timeout", "60").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s\ngateway log:\n%s", err, out, logs.String())
	}
	if got := sink.Wait(t, 1, 90*time.Second); !strings.Contains(string(got[0].Data), "from the packaged binary") {
		t.Fatalf("delivered message lacks the body:\n%s", got[0].Data)
	}

	cmd.Process.Signal(syscall.SIGHUP)
	expect(t, notes, "RELOADING=1", 10*time.Second, logs.String)
	expect(t, notes, "READY=1", 10*time.Second, logs.String)
	cmd.Process.Signal(syscall.SIGTERM)
	expect(t, notes, "STOPPING=1", 10*time.Second, logs.String)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("gateway exited with %v:\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("gateway did not stop on SIGTERM")
	}

	// Remove keeps configuration and data; purge removes what the
	// package made and leaves what the admin added to /etc/sealpost.
	dpkg(t, root, "--remove", "sealpost")
	if _, err := os.Stat(conf); err != nil {
		t.Fatal("remove deleted the configuration")
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/sealpost")); err == nil {
		t.Fatal("remove left the binary")
	}
	own := filepath.Join(root, "etc/sealpost/admin-cert.pem")
	os.WriteFile(own, []byte("x"), 0o600)
	dpkg(t, root, "--purge", "sealpost")
	for _, gone := range []string{conf, data} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("purge left %s", gone)
		}
	}
	if _, err := os.Stat(own); err != nil {
		t.Error("purge deleted a file the admin put in /etc/sealpost")
	}
}
