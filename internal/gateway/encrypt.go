package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ProtonMail/gopenpgp/v3/crypto"

	"sealpost/internal/config"
	"sealpost/internal/dns"
	"sealpost/internal/encrypt"
	"sealpost/internal/keyring"
	"sealpost/internal/pgp"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
	"sealpost/internal/smime"
	"sealpost/internal/store"
)

// NewKeyring is the key store and discovery ladder of cfg over st (also
// used by `sealpost keys`).
func NewKeyring(cfg *config.Config, st *store.Store) *keyring.Keyring {
	kr := &keyring.Keyring{Store: st, MaxAge: cfg.Encryption.KeyMaxAge.Duration}
	if cfg.Encryption.WKD {
		// The directory host is found with outbound.resolver, like the rest
		// of outbound DNS, and only public addresses are fetched from.
		var lookup func(ctx context.Context, host string) ([]net.IP, error)
		if res, err := dns.FromConfig(cfg.Outbound.Resolver, cfg.Outbound.DNSSECTrust); err == nil {
			lookup = func(ctx context.Context, host string) ([]net.IP, error) {
				ips, _, err := res.LookupIP(ctx, host)
				return ips, err
			}
		}
		kr.WKD = &keyring.WKD{Client: keyring.NewWKDClient(lookup, cfg.Encryption.WKDTimeout.Duration, nil), Timeout: cfg.Encryption.WKDTimeout.Duration}
	}
	return kr
}

// addEncryptTransports registers the transports of the encrypt actions:
// each encrypts and hands the copy to the outbound transport, or gives the
// recipient to the portal when it has no usable key.
// encryptTransports returns the transports of the actions encrypt and
// encrypt-pgp by route (queue.ActionEncrypt, queue.ActionPGP); smimeT takes
// the recipients of action encrypt whose key is an S/MIME certificate
// (route smime, the S/MIME transport).
//
// Inbound PGP/MIME mail to a staff key the organisation holds (secret
// keys in data_dir/keys/openpgp-staff) is decrypted in front of the mail
// host (encrypt.Decrypter).
func (g *Gateway) encryptTransports(cfg *config.Config, transports map[string]queue.Transport, smimeT queue.Transport) (map[string]queue.Transport, error) {
	staffDir := cfg.Path(filepath.Join("keys", "openpgp-staff"))
	staff, err := encrypt.LoadSecretKeys(staffDir)
	if err != nil {
		return nil, fmt.Errorf("the staff OpenPGP keys in %s: %w", staffDir, err)
	}
	if len(staff) > 0 {
		transports[queue.RouteMailHost] = &encrypt.Decrypter{Next: transports[queue.RouteMailHost], Keys: staff, Keyring: g.Keyring,
			AuthServ: cfg.SMTP.Hostname, TempDir: cfg.Path("spool"), Audit: g.audit.recorder.Record, Log: g.Log}
	}
	if st, ok := smimeT.(*smimeTransport); ok {
		st.preamble = g.preamble
	}
	signers := &orgSigners{dir: cfg.Path("keys"), keys: map[string]*crypto.Key{}}
	out := map[string]queue.Transport{}
	for _, action := range []string{encrypt.Any, encrypt.PGP} {
		var portalT queue.Transport
		if g.Portal != nil && cfg.Portal.Enabled {
			portalT = g.Portal
		}
		out[action] = &encrypt.Transport{
			Action: action, Keyring: g.Keyring, Next: transports[queue.RouteOutbound], Portal: portalT,
			SMIME:  smimeTransportIf(cfg.SMIME.Enabled, smimeT),
			Prefer: cfg.Encryption.Prefer, ProtectHeaders: cfg.Encryption.ProtectHeaders, TempDir: cfg.Path("spool"),
			Audit: g.audit.recorder.Record, Log: g.Log, Preamble: g.preamble,
			Signer: func(ctx context.Context, headerFrom string) (*crypto.Key, error) {
				c := g.Config()
				d := strings.ToLower(domainOf(headerFrom))
				for _, s := range c.Encryption.SignDomains {
					if s == d {
						return signers.get(d)
					}
				}
				return nil, nil
			},
		}
	}
	return out, nil
}

func smimeTransportIf(on bool, t queue.Transport) queue.Transport {
	if !on {
		return nil
	}
	return t
}

// addKeyring makes the operator's key store the first source of S/MIME
// certificates (`sealpost keys add` of an X.509 certificate); the chooser
// then validates them as any other.
func (t *smimeTransport) addKeyring(kr *keyring.Keyring) {
	if t.chooser != nil {
		t.chooser.Sources = append([]smime.CertSource{keyringCerts{kr}}, t.chooser.Sources...)
	}
}

// keyringCerts is the key store as an S/MIME certificate source.
type keyringCerts struct{ kr *keyring.Keyring }

func (k keyringCerts) Name() string { return "store" }

func (k keyringCerts) Certificates(ctx context.Context, address string) ([]*x509.Certificate, error) {
	rows, err := k.kr.Store.KeysFor(ctx, address)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, r := range rows {
		if r.Kind != keyring.KindX509 {
			continue
		}
		c, err := x509.ParseCertificate(r.Raw)
		if err != nil {
			continue // the chooser only sees what parses; keys add checked it
		}
		out = append(out, c)
	}
	return out, nil
}

// orgSigners are the organisation's per-domain OpenPGP signing keys, made
// (v4) at first use and kept in data_dir/keys.
type orgSigners struct {
	dir  string
	mu   sync.Mutex
	keys map[string]*crypto.Key
}

func (o *orgSigners) get(domain string) (*crypto.Key, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k := o.keys[domain]; k != nil {
		return k, nil
	}
	path := filepath.Join(o.dir, "openpgp-"+domain+".key")
	b, err := os.ReadFile(path)
	var k *crypto.Key
	switch {
	case err == nil:
		if k, err = crypto.NewKeyFromArmored(string(b)); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if k, err = pgp.GenerateKey(domain, "mail-gateway@"+domain); err != nil {
			return nil, err
		}
		arm, err := k.Armor()
		if err != nil {
			return nil, err
		}
		pub, err := k.GetArmoredPublicKey()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(o.dir, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(arm), 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(o.dir, "openpgp-"+domain+".asc"), []byte(pub), 0o644); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	o.keys[domain] = k
	return k, nil
}

// ResolveKeys is resolveKeys for `sealpost policy test`.
func ResolveKeys(ctx context.Context, kr *keyring.Keyring, cfg *config.Config, d *policy.Decision) error {
	return resolveKeys(ctx, kr, cfg, cfg.SMIME.Enabled, d)
}

// resolveKeys checks, for each recipient the policy wants encrypted, that
// a usable key exists; one without goes to the portal (or, with the portal
// off, is held for the sender), and the decision says why. The transport
// checks again at delivery: a key revoked in between sends that recipient
// to the portal too.
func resolveKeys(ctx context.Context, kr *keyring.Keyring, cfg *config.Config, smime bool, d *policy.Decision) error {
	if kr == nil || !cfg.Encryption.Enabled {
		return nil
	}
	for i := range d.Recipients {
		r := &d.Recipients[i]
		if r.Action != encrypt.Any && r.Action != encrypt.PGP && r.Action != encrypt.SMIME {
			continue
		}
		if r.Action == encrypt.SMIME {
			continue // the S/MIME transport chooses and validates certificates itself
		}
		ch, err := encrypt.Choose(ctx, kr, r.Action, cfg.Encryption.Prefer, smime, r.Address)
		if err != nil {
			return fmt.Errorf("looking up recipient keys: %w", err)
		}
		if ch.Kind != "" {
			r.Reasons = append(r.Reasons, r.Action+": encrypted to "+encrypt.Describe(ch.Keys))
			continue
		}
		if cfg.Portal.Enabled {
			r.Reasons = append(r.Reasons, r.Action+": "+ch.Why+"; sealed into the portal instead")
			r.Action = policy.Portal.String()
		} else {
			r.Reasons = append(r.Reasons, r.Action+": "+ch.Why+"; the portal is off, so held for the sender to confirm; once confirmed it is delivered only over verified TLS")
			r.Action, r.Then = policy.Hold.String(), policy.RequireTLS.String()
		}
	}
	return nil
}
