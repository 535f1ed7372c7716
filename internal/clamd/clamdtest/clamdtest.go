// Package clamdtest runs a real clamd (clamav-daemon) for tests: offline,
// with a signature database written at test time (the EICAR test file by
// its MD5, and a marker string), on a unix socket and a loopback port in
// the test's temporary directory. No freshclam, no network.
package clamdtest

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sealpost/internal/testutil"
)

// EICAR is the antivirus test file (eicar.org), built here so that no
// file in the repository is one a scanner on a developer's machine would
// quarantine.
func EICAR() []byte {
	return []byte("X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR" + "-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
}

// Marker is content the test database's second signature matches.
const Marker = "SEALPOST-AV-TEST-MARKER"

// Signature names in the test database.
const (
	EICARSignature  = "Sealpost.Test.EICAR"
	MarkerSignature = "Sealpost.Test.Marker"
)

// Daemon is a running clamd.
type Daemon struct {
	Socket string // unix socket path
	TCP    string // 127.0.0.1:port
	cmd    *exec.Cmd
	done   chan struct{}
}

// Start runs clamd until the test ends.
func Start(t testing.TB) *Daemon {
	t.Helper()
	bin, err := exec.LookPath("clamd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/clamd"); err2 == nil {
			bin = "/usr/sbin/clamd"
		} else {
			testutil.Missing(t, "clamd (clamav-daemon) not installed")
		}
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.MkdirAll(db, 0o755); err != nil {
		t.Fatal(err)
	}
	e := EICAR()
	sum := md5.Sum(e)
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(db, "test.hdb"), fmt.Sprintf("%s:%d:%s\n", hex.EncodeToString(sum[:]), len(e), EICARSignature))
	write(filepath.Join(db, "test.ndb"), fmt.Sprintf("%s:0:*:%s\n", MarkerSignature, hex.EncodeToString([]byte(Marker))))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	d := &Daemon{Socket: filepath.Join(dir, "clamd.sock"), TCP: fmt.Sprintf("127.0.0.1:%d", port), done: make(chan struct{})}
	conf := filepath.Join(dir, "clamd.conf")
	write(conf, strings.Join([]string{
		"DatabaseDirectory " + db,
		"LocalSocket " + d.Socket,
		fmt.Sprintf("TCPSocket %d", port),
		"TCPAddr 127.0.0.1",
		"Foreground yes",
		"LogFile " + filepath.Join(dir, "clamd.log"),
		"PidFile " + filepath.Join(dir, "clamd.pid"),
		"StreamMaxLength 50M",
		"Bytecode no",
		"",
	}, "\n"))
	if os.Geteuid() == 0 {
		write(conf, mustRead(t, conf)+"User root\n")
	}
	d.cmd = exec.Command(bin, "-c", conf)
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting clamd: %v", err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(d.Stop)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if c, err := net.Dial("unix", d.Socket); err == nil {
			c.Close()
			if c, err := net.Dial("tcp", d.TCP); err == nil {
				c.Close()
				return d
			}
		}
		select {
		case <-d.done:
			t.Fatalf("clamd exited at start-up; log:\n%s", mustRead(t, filepath.Join(dir, "clamd.log")))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("clamd did not start; log:\n%s", mustRead(t, filepath.Join(dir, "clamd.log")))
		}
	}
}

// Stop ends clamd (a test of "clamd down" calls it early).
func (d *Daemon) Stop() {
	if d.cmd.Process == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Kill()
	<-d.done
}

func mustRead(t testing.TB, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}
