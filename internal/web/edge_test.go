package web

import (
	"crypto/tls"
	"net/http/httptest"
	"net/netip"
	"testing"

	"sealpost/internal/config"
)

func TestResolveClient(t *testing.T) {
	test := func(trusted []string, publicURL, peer, xff, xfp string, tlsOn bool, wantIP string, wantHTTPS, wantSecure bool) {
		t.Helper()
		cfg := &config.Config{}
		cfg.Web.PublicURL = publicURL
		for _, p := range trusted {
			cfg.Web.TrustedProxyNets = append(cfg.Web.TrustedProxyNets, netip.MustParsePrefix(p))
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if xfp != "" {
			r.Header.Set("X-Forwarded-Proto", xfp)
		}
		if tlsOn {
			r.TLS = &tls.ConnectionState{}
		}
		c := resolveClient(r, cfg)
		if c.IP.String() != wantIP || c.HTTPS != wantHTTPS || c.Secure != wantSecure {
			t.Errorf("trusted %v, peer %s, XFF %q, XFP %q: got %s https=%v secure=%v, want %s %v %v",
				trusted, peer, xff, xfp, c.IP, c.HTTPS, c.Secure, wantIP, wantHTTPS, wantSecure)
		}
	}
	proxy := []string{"10.0.0.0/24"}
	const h = "http://x"
	// No proxies trusted: the headers mean nothing.
	test(nil, h, "192.0.2.7:5000", "203.0.113.1", "https", false, "192.0.2.7", false, false)
	test(nil, h, "[2001:db8::7]:5000", "", "", false, "2001:db8::7", false, false)
	test(nil, h, "[::ffff:192.0.2.7]:5000", "", "", false, "192.0.2.7", false, false)
	// From a trusted proxy: the rightmost untrusted address.
	test(proxy, h, "10.0.0.2:5000", "203.0.113.1", "https", false, "203.0.113.1", true, true)
	test(proxy, h, "10.0.0.2:5000", "198.51.100.9, 203.0.113.1", "https", false, "203.0.113.1", true, true)
	test(proxy, h, "10.0.0.2:5000", "203.0.113.1, 10.0.0.3", "http", false, "203.0.113.1", false, false)
	test(proxy, h, "10.0.0.2:5000", "10.0.0.4, 10.0.0.3", "", false, "10.0.0.4", false, false)
	test(proxy, h, "10.0.0.2:5000", "garbage, 10.0.0.3", "", false, "10.0.0.3", false, false)
	test(proxy, h, "10.0.0.2:5000", "", "", false, "10.0.0.2", false, false)
	test(proxy, h, "10.0.0.2:5000", "2001:db8::1", "https, http", false, "2001:db8::1", false, false)
	test(proxy, h, "10.0.0.2:5000", "203.0.113.1:4711", "", false, "203.0.113.1", false, false)
	test(proxy, h, "10.0.0.2:5000", "[2001:db8::1]:4711", "", false, "2001:db8::1", false, false)
	test(proxy, h, "10.0.0.2:5000", "[2001:db8::1]", "", false, "2001:db8::1", false, false)
	// From someone else: ignored, even with the proxy's own address in it.
	test(proxy, h, "192.0.2.7:5000", "10.0.0.2", "https", false, "192.0.2.7", false, false)
	// TLS here, or an https public URL: secure.
	test(nil, h, "192.0.2.7:5000", "", "", true, "192.0.2.7", true, true)
	test(nil, "https://portal.example", "192.0.2.7:5000", "", "", false, "192.0.2.7", false, true)
}
