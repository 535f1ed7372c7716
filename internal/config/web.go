package config

import (
	"net/netip"
	"os"
	"strings"
)

// Web configures the HTTP listener: portal, console, API and /metrics.
type Web struct {
	Listen    string `toml:"listen"`
	PublicURL string `toml:"public_url"`
	// TLSCert and TLSKey are PEM files; set, the listener speaks HTTPS
	// (TLS 1.2 and later, AEAD cipher suites only). They are read again on
	// SIGHUP, so a renewed certificate needs no restart.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// RedirectListen is a plain-HTTP listener that only redirects to
	// PublicURL (empty: none).
	RedirectListen string `toml:"redirect_listen"`
	// TrustedProxies are the reverse proxies in front of the listener:
	// only from these peers are X-Forwarded-For and X-Forwarded-Proto
	// believed.
	TrustedProxies []string `toml:"trusted_proxies"`
	// MetricsNetworks may read /metrics and /api/openapi.json without an
	// API token.
	MetricsNetworks []string `toml:"metrics_networks"`
	// ConsoleNetworks, when set, are the only clients that reach /console
	// and /api (others get 404); empty: no restriction here.
	ConsoleNetworks []string `toml:"console_networks"`

	// Parsed forms of the lists above.
	TrustedProxyNets []netip.Prefix `toml:"-"`
	MetricsNets      []netip.Prefix `toml:"-"`
	ConsoleNets      []netip.Prefix `toml:"-"`
}

// HTTPS reports whether the portal's public address is an https:// one:
// then cookies are Secure and __Host- prefixed and HSTS is sent, whatever
// the hop in front of the listener speaks.
func (w *Web) HTTPS() bool { return strings.HasPrefix(w.PublicURL, "https://") }

func (c *Config) validateWeb() error {
	w := &c.Web
	if (w.TLSCert == "") != (w.TLSKey == "") {
		return c.errf("web.tls_cert", "web.tls_cert and web.tls_key go together")
	}
	for key, f := range map[string]string{"web.tls_cert": w.TLSCert, "web.tls_key": w.TLSKey} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return c.errf(key, "%v", err)
		}
	}
	if w.RedirectListen != "" {
		if err := checkListen(w.RedirectListen); err != nil {
			return c.errf("web.redirect_listen", "%v", err)
		}
		if w.RedirectListen == w.Listen && !strings.HasSuffix(w.Listen, ":0") {
			return c.errf("web.redirect_listen", "is the same address as web.listen")
		}
	}
	var err error
	if w.TrustedProxyNets, err = c.parseNets("web.trusted_proxies", w.TrustedProxies); err != nil {
		return err
	}
	if w.MetricsNets, err = c.parseNets("web.metrics_networks", w.MetricsNetworks); err != nil {
		return err
	}
	w.ConsoleNets, err = c.parseNets("web.console_networks", w.ConsoleNetworks)
	return err
}

// parseNets parses a list of CIDR networks (a bare address is one host).
func (c *Config) parseNets(key string, list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, n := range list {
		n = strings.TrimSpace(n)
		p, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return nil, c.errf(key, "%q is not a network (want e.g. 192.0.2.0/24 or 2001:db8::/32)", n)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// InNets reports whether ip is in one of nets.
func InNets(nets []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
