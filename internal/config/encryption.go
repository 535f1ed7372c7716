package config

import (
	"strings"
	"time"
)

// Encryption configures recipient-key encryption: the actions encrypt,
// encrypt-pgp and encrypt-smime, the key store and its discovery ladder
// (`sealpost keys`), and the Web Key Directory sealpost serves.
type Encryption struct {
	// Enabled: off, the encrypt actions fall back to the portal (or hold).
	Enabled bool `toml:"enabled"`
	// Prefer: for action encrypt, which kind wins when a recipient has
	// both an OpenPGP key and an S/MIME certificate ("pgp" or "smime").
	Prefer string `toml:"prefer"`
	// WKD: ask a recipient domain's Web Key Directory when the operator
	// has no key for the address.
	WKD        bool     `toml:"wkd"`
	WKDTimeout Duration `toml:"wkd_timeout"`
	// KeyMaxAge: discovered keys fetched longer ago are fetched again
	// before use.
	KeyMaxAge Duration `toml:"key_max_age"`
	// ServeWKD publishes the staff keys the operator added with
	// `keys add --staff` at /.well-known/openpgpkey/.
	ServeWKD bool `toml:"serve_wkd"`
	// ProtectHeaders copies From, To, Subject … into the encrypted part
	// (RFC 9788).
	ProtectHeaders bool `toml:"protect_headers"`
	// SignDomains: organisation domains whose encrypted mail is signed
	// with the domain's own OpenPGP key (v4, made at first use under
	// data_dir/keys).
	SignDomains []string `toml:"sign_domains"`
	// PreambleDomains: recipient domains ("*": all) whose encrypted mail
	// (OpenPGP and S/MIME) is also sealed into the portal and carries a
	// short plaintext preamble with the portal link, so a recipient whose
	// client cannot decrypt still reads it ("never unreadable").
	PreambleDomains []string `toml:"preamble_domains"`
}

// Preamble reports whether encrypted mail to recipient domain gets the
// plaintext preamble with a portal link (preamble_domains).
func (e *Encryption) Preamble(domain string) bool {
	for _, d := range e.PreambleDomains {
		if d == "*" || strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

func defaultEncryption() Encryption {
	return Encryption{Enabled: true, Prefer: "pgp", WKD: true, WKDTimeout: Duration{10 * time.Second},
		KeyMaxAge: Duration{24 * time.Hour}, ServeWKD: true}
}

func (c *Config) validateEncryption() error {
	e := &c.Encryption
	if e.Prefer != "pgp" && e.Prefer != "smime" {
		return c.errf("encryption.prefer", "%q: want pgp or smime", e.Prefer)
	}
	if e.WKDTimeout.Duration <= 0 || e.WKDTimeout.Duration > time.Minute {
		return c.errf("encryption.wkd_timeout", "want more than 0 and at most 1m")
	}
	if e.KeyMaxAge.Duration < time.Minute {
		return c.errf("encryption.key_max_age", "want at least 1m")
	}
	for i, d := range e.SignDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if !c.IsOrgDomain(d) {
			return c.errf("encryption.sign_domains", "%q is not one of org.domains", d)
		}
		e.SignDomains[i] = d
	}
	for i, d := range e.PreambleDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" || strings.ContainsAny(d, "@ ") {
			return c.errf("encryption.preamble_domains", "%q: want a domain such as partner.example, or \"*\"", d)
		}
		e.PreambleDomains[i] = d
	}
	// The preamble's link leads into the portal: without it there would
	// be a promise of a copy nobody can open.
	if len(e.PreambleDomains) > 0 && !c.Portal.Enabled {
		return c.errf("encryption.preamble_domains", "needs portal.enabled = true (the preamble links to the message sealed there)")
	}
	return nil
}
