// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)): newline-separated VAR=VALUE assignments sent as one
// datagram to the AF_UNIX socket named by $NOTIFY_SOCKET. It needs no
// library: the protocol is one sendto(2). A gateway started outside
// systemd has no NOTIFY_SOCKET and every call is a no-op.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// States sent by the gateway (sd_notify(3), "Well-known assignments").
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
	Reloading = "RELOADING=1"
)

// Notifier sends to one notification socket. The zero value (no socket)
// sends nothing.
type Notifier struct {
	addr string // "" : not under systemd
}

// FromEnv returns the notifier for $NOTIFY_SOCKET. An address starting
// with "@" is in the abstract namespace (Go spells that with a leading
// "@" too, so it is passed through).
func FromEnv() *Notifier {
	return &Notifier{addr: os.Getenv("NOTIFY_SOCKET")}
}

// New returns a notifier for the socket at addr ("" : none).
func New(addr string) *Notifier { return &Notifier{addr: addr} }

// Enabled reports whether a notification socket is set.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != "" }

// Notify sends the assignments as one datagram. Without a socket it does
// nothing and returns nil.
func (n *Notifier) Notify(states ...string) error {
	if !n.Enabled() {
		return nil
	}
	if !strings.HasPrefix(n.addr, "/") && !strings.HasPrefix(n.addr, "@") {
		return fmt.Errorf("NOTIFY_SOCKET %q: not an AF_UNIX path or abstract name", n.addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("NOTIFY_SOCKET: %w", err)
	}
	defer conn.Close()
	_, err = conn.Write([]byte(strings.Join(states, "\n") + "\n"))
	if err != nil {
		return fmt.Errorf("NOTIFY_SOCKET: %w", err)
	}
	return nil
}

// ReloadingNow is the assignment pair systemd's Type=notify-reload wants
// for a reload (RELOADING=1 with the CLOCK_MONOTONIC time); plain
// Type=notify accepts it as well.
func ReloadingNow(monotonic time.Duration) []string {
	return []string{Reloading, "MONOTONIC_USEC=" + strconv.FormatInt(monotonic.Microseconds(), 10)}
}

// WatchdogInterval returns how often WATCHDOG=1 must arrive, from
// $WATCHDOG_USEC (set by WatchdogSec=), or 0 when no watchdog is asked
// for. $WATCHDOG_PID, when set, must be this process (sd_watchdog_enabled(3)).
func WatchdogInterval() (time.Duration, error) {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogInterval(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return 0, fmt.Errorf("WATCHDOG_PID %q: not a number", pid)
		}
		if p != self {
			return 0, nil // meant for another process
		}
	}
	u, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || u <= 0 {
		return 0, errors.New("WATCHDOG_USEC " + strconv.Quote(usec) + ": not a positive number of microseconds")
	}
	return time.Duration(u) * time.Microsecond, nil
}
