package gateway

import (
	"log/slog"

	"sealpost/internal/config"
	"sealpost/internal/web"
)

// webCertificates loads web.tls_cert and web.tls_key (nil, nil when the
// listener speaks plain HTTP).
func webCertificates(cfg *config.Config) (*web.Certificates, error) {
	if cfg.Web.TLSCert == "" {
		return nil, nil
	}
	certs := &web.Certificates{}
	if err := certs.Load(cfg.Web.TLSCert, cfg.Web.TLSKey); err != nil {
		return nil, &config.Error{File: cfg.File, Key: "web.tls_cert", Msg: err.Error()}
	}
	return certs, nil
}

// reloadWebTLS reads the web certificate again on SIGHUP (renewals need no
// restart). A pair that does not load refuses the whole reload, and the
// listener keeps serving the certificate it had. Turning HTTPS on or off
// needs a restart, like other listener settings.
func (g *Gateway) reloadWebTLS(old, cfg *config.Config) error {
	if g.Web == nil || g.Web.Certs == nil {
		if cfg.Web.TLSCert != "" {
			g.Log.Warn("web.tls_cert set: HTTPS on the web listener starts at the next restart")
		}
		return nil
	}
	if cfg.Web.TLSCert == "" {
		g.Log.Warn("web.tls_cert removed: the web listener speaks HTTPS until the next restart")
		cfg.Web.TLSCert, cfg.Web.TLSKey = old.Web.TLSCert, old.Web.TLSKey
	}
	if err := g.Web.Certs.Load(cfg.Web.TLSCert, cfg.Web.TLSKey); err != nil {
		return &config.Error{File: cfg.File, Key: "web.tls_cert", Msg: err.Error() + " (the certificate in use is kept)"}
	}
	g.Log.Info("web certificate loaded", "file", cfg.Web.TLSCert, "not_after", g.Web.Certs.Current().Leaf.NotAfter)
	return nil
}

// warnPlainHTTPS says so when the public address is https but nothing on
// this side makes it so: then cookies are Secure and browsers reaching the
// listener directly over HTTP will not keep them.
func warnPlainHTTPS(cfg *config.Config, log *slog.Logger) {
	if cfg.Web.HTTPS() && cfg.Web.TLSCert == "" && len(cfg.Web.TrustedProxyNets) == 0 {
		log.Warn("web.public_url is https, but the web listener speaks plain HTTP and trusts no proxy: set web.tls_cert, or web.trusted_proxies for the proxy that terminates TLS")
	}
}
