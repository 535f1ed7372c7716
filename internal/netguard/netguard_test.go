package netguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

// TestClassify: the addresses the guard refuses, and public ones it lets by.
func TestClassify(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"127.0.0.1": "loopback", "127.9.9.9": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"10.1.2.3": "private", "172.16.0.1": "private", "172.31.255.255": "private", "192.168.1.1": "private", "fd00::1": "private", "100.64.0.1": "private",
		"169.254.169.254": "link-local", "fe80::1": "link-local",
		"0.0.0.0": "unspecified", "::": "unspecified", "0.1.2.3": "unspecified",
		"224.0.0.1": "link-local", "239.1.1.1": "multicast", "255.255.255.255": "reserved",
		"192.0.2.10": "", "8.8.8.8": "", "172.32.0.1": "", "2001:db8::1": "", "::ffff:8.8.8.8": "",
	} {
		if got := Classify(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}

// TestDialerRefuses: a name with an internal address among its answers is
// refused before any connection, so a listener there sees nothing; an
// allow-list admits loopback for tests; IP literals are checked too.
func TestDialerRefuses(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	lookup := func(_ context.Context, host string) ([]net.IP, error) {
		switch host {
		case "evil.example":
			return []net.IP{net.ParseIP("192.0.2.1"), net.ParseIP("127.0.0.1")}, nil
		case "local.example":
			return []net.IP{net.ParseIP("127.0.0.1")}, nil
		}
		return nil, errors.New("no such host")
	}
	d := Dialer{Lookup: lookup}
	for _, host := range []string{"evil.example", "local.example", "127.0.0.1", "[::ffff:127.0.0.1]"} {
		c, err := d.DialContext(context.Background(), "tcp", host+":"+port)
		var be *BlockedError
		if !errors.As(err, &be) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("%s: %v, want a BlockedError", host, err)
		}
	}
	select {
	case <-accepted:
		t.Fatal("a refused host was connected to")
	default:
	}
	d.Allow = AllowLoopback
	c, err := d.DialContext(context.Background(), "tcp", "local.example:"+port)
	if err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
	c.Close()
	<-accepted
}
