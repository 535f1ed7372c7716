package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen opens the systemd side of the protocol: a unixgram socket.
func listen(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(b[:n])
}

func TestNotifyDatagram(t *testing.T) {
	t.Parallel()
	c, path := listen(t)
	n := New(path)
	for _, tc := range [][]string{{Ready, "STATUS=accepting mail"}, {Watchdog}, {Stopping}, ReloadingNow(1500 * time.Microsecond)} {
		if err := n.Notify(tc...); err != nil {
			t.Fatal(err)
		}
		got := recv(t, c)
		want := strings.Join(tc, "\n") + "\n"
		if got != want {
			t.Fatalf("datagram %q, want %q", got, want)
		}
	}
	if got := ReloadingNow(1500 * time.Microsecond)[1]; got != "MONOTONIC_USEC=1500" {
		t.Fatalf("got %q", got)
	}
}

func TestNotifyAbstract(t *testing.T) {
	t.Parallel()
	name := "@sealpost-test-" + filepath.Base(t.TempDir())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := New(name).Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "READY=1\n" {
		t.Fatalf("got %q", got)
	}
}

func TestNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n.Enabled() {
		t.Fatal("enabled without NOTIFY_SOCKET")
	}
	if err := n.Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if err := New("relative.sock").Notify(Ready); err == nil {
		t.Fatal("a relative socket path was accepted")
	}
	if err := New(filepath.Join(t.TempDir(), "absent")).Notify(Ready); err == nil {
		t.Fatal("sending to an absent socket reported success")
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		bad       bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"30000000", "42", 30 * time.Second, false},
		{"30000000", "43", 0, false}, // another process's watchdog
		{"0", "", 0, true},
		{"x", "", 0, true},
		{"30000000", "x", 0, true},
	} {
		got, err := watchdogInterval(tc.usec, tc.pid, 42)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("watchdogInterval(%q, %q) = %v, %v; want %v, bad=%v", tc.usec, tc.pid, got, err, tc.want, tc.bad)
		}
	}
}
