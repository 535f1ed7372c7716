package web

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"sealpost/internal/config"
)

// The edge: who a request comes from and over what.
//
// Behind a reverse proxy the TCP peer is the proxy, and the client's
// address and scheme arrive in X-Forwarded-For and X-Forwarded-Proto.
// Anyone can send those headers, so they are believed only when the peer
// is one of web.trusted_proxies; then the client is the rightmost address
// in X-Forwarded-For that is not itself a trusted proxy (each proxy
// appends the address it saw, so everything left of that was written by
// the client and proves nothing). Rate limits, lock-outs, the audit's IP
// addresses, the metrics allow-list and the Secure/HSTS decision all read
// the one answer computed here, once per request.

// Client is the resolved origin of a request.
type Client struct {
	IP     netip.Addr // the client's address (the peer, or what a trusted proxy says)
	HTTPS  bool       // the client's hop is HTTPS (this listener's TLS, or a trusted proxy's)
	Secure bool       // cookies Secure and __Host-, HSTS: HTTPS, or public_url is https
}

type clientKey struct{}

// resolveClient computes the Client of r under cfg.
func resolveClient(r *http.Request, cfg *config.Config) Client {
	var c Client
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, _ := netip.ParseAddr(host)
	peer = peer.Unmap()
	c.IP = peer
	c.HTTPS = r.TLS != nil
	if cfg == nil {
		c.Secure = c.HTTPS
		return c
	}
	trusted := cfg.Web.TrustedProxyNets
	if peer.IsValid() && config.InNets(trusted, peer) {
		c.IP = forwardedFor(r.Header.Values("X-Forwarded-For"), trusted, peer)
		if p := lastToken(r.Header.Values("X-Forwarded-Proto")); p != "" {
			c.HTTPS = strings.EqualFold(p, "https")
		}
	}
	c.Secure = c.HTTPS || cfg.Web.HTTPS()
	return c
}

// forwardedFor walks X-Forwarded-For from the right, skipping trusted
// proxies; the first other address is the client. If every hop is trusted
// the leftmost is taken; an entry that does not parse ends the walk at the
// last address that did (the hop that vouched for it).
func forwardedFor(values []string, trusted []netip.Prefix, peer netip.Addr) netip.Addr {
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := hopAddr(hops[i])
		if err != nil {
			return client
		}
		client = a.Unmap()
		if !config.InNets(trusted, client) {
			return client
		}
	}
	return client
}

// hopAddr parses one X-Forwarded-For entry: an address, bracketed or not,
// or address:port as some load balancers write it.
func hopAddr(h string) (netip.Addr, error) {
	h = strings.TrimSpace(h)
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr(), nil
	}
	return netip.ParseAddr(strings.Trim(h, "[]"))
}

func lastToken(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// withClient resolves the client once and keeps it in the request.
func withClient(cfg func() *config.Config, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c *config.Config
		if cfg != nil {
			c = cfg()
		}
		cl := resolveClient(r, c)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, cl)))
	})
}

// ClientOf returns the resolved client of a request served by the web
// listener (for a request that did not pass through it, the TCP peer).
func ClientOf(r *http.Request) Client {
	if c, ok := r.Context().Value(clientKey{}).(Client); ok {
		return c
	}
	return resolveClient(r, nil)
}

// ClientIP is the client's address as text, for limits and the audit.
func ClientIP(r *http.Request) string {
	c := ClientOf(r)
	if !c.IP.IsValid() {
		return r.RemoteAddr
	}
	return c.IP.String()
}

// Secure reports whether cookies must be Secure and __Host- prefixed.
func Secure(r *http.Request) bool { return ClientOf(r).Secure }

// CookieName is name, with the __Host- prefix when the request is secure
// (RFC 6265bis §4.1.3.2: the browser then insists on Secure, Path=/ and no
// Domain, so a sibling host cannot plant or shadow the cookie).
func CookieName(r *http.Request, name string) string {
	if Secure(r) {
		return "__Host-" + name
	}
	return name
}

// SessionCookie is a cookie for name=value as every sign-in and CSRF
// cookie is set: HttpOnly, SameSite=Strict, Path=/, no Domain, Secure and
// __Host- when the request is secure. maxAge 0 is a browser-session
// cookie, negative deletes it.
func SessionCookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: CookieName(r, name), Value: value, Path: "/", HttpOnly: true, Secure: Secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: maxAge}
}

// fromNetworks answers 404 unless the client is in the networks cfg
// names, or tokenOK accepts the request's bearer token: what only
// monitoring should see (metrics name the software, the OpenAPI document
// maps the API) is not shown to the internet.
func (s *Server) fromNetworks(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var nets []netip.Prefix
		if s.Config != nil {
			nets = s.Config().Web.MetricsNets
		} else {
			nets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		}
		if ip := ClientOf(r).IP; ip.IsValid() && config.InNets(nets, ip) || s.TokenOK != nil && s.TokenOK(r) {
			h.ServeHTTP(w, r)
			return
		}
		s.notFound(w, r)
	})
}
