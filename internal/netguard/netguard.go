// Package netguard keeps fetches that a remote party names (MTA-STS policy
// hosts, Web Key Directories) away from the gateway's own network: a DNS
// name anyone can point at 127.0.0.1 or 10.0.0.5 must not turn the gateway
// into a client of its own admin interfaces or cloud metadata service
// (server-side request forgery).
//
// Dialer resolves the name itself, checks every address and dials only a
// checked one, so no second lookup between check and connect can swap the
// answer (DNS rebinding).
package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// BlockedError is a host whose address the guard refuses.
type BlockedError struct {
	Host string
	Addr netip.Addr
	Kind string // "loopback", "private", "link-local", "unspecified", …
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("%s resolves to %s, a %s address, which is never fetched from", e.Host, e.Addr, e.Kind)
}

// shared is RFC 6598's carrier-grade NAT range, private in practice.
var shared = netip.MustParsePrefix("100.64.0.0/10")

// thisNetwork is RFC 791's 0.0.0.0/8, which Linux connects to locally.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// Classify names why a is refused, "" when it is a public address.
func Classify(a netip.Addr) string {
	a = a.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified() || a.Is4() && thisNetwork.Contains(a):
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate() || a.Is4() && shared.Contains(a):
		return "private"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsMulticast() || a.IsInterfaceLocalMulticast():
		return "multicast"
	case a.Is4() && a.As4()[0] >= 240:
		return "reserved"
	}
	return ""
}

// Dialer dials public addresses only.
type Dialer struct {
	// Lookup resolves a host name (nil: the system's resolver). The
	// gateway passes outbound.resolver.
	Lookup func(ctx context.Context, host string) ([]net.IP, error)
	// Timeout bounds each connection attempt (0: none beyond ctx).
	Timeout time.Duration
	// Allow admits an address the guard would refuse; tests admit
	// loopback, production leaves it nil.
	Allow func(netip.Addr) bool
}

// DialContext resolves addr's host, refuses it if any of its addresses is
// not public (a name that lists an internal address is not trusted with
// its other ones either), and tries the checked addresses in turn.
func (d Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else if d.Lookup != nil {
		ips, err = d.Lookup(ctx, host)
	} else {
		ips, err = net.DefaultResolver.LookupIP(ctx, "ip", host)
	}
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("%s has no addresses", host)
	}
	checked := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return nil, fmt.Errorf("%s: unreadable address %v", host, ip)
		}
		a = a.Unmap()
		if kind := Classify(a); kind != "" && (d.Allow == nil || !d.Allow(a)) {
			return nil, &BlockedError{Host: host, Addr: a, Kind: kind}
		}
		checked = append(checked, a)
	}
	nd := net.Dialer{Timeout: d.Timeout}
	var last error
	for _, a := range checked {
		c, err := nd.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

// AllowLoopback is the Allow of tests whose servers listen on loopback.
func AllowLoopback(a netip.Addr) bool { return a.IsLoopback() }
