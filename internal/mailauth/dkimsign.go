// Package mailauth signs outbound mail with DKIM (RFC 6376) and will verify
// inbound mail (SPF, DKIM, DMARC, ARC). The cryptography and canonicalisation
// are mox's (github.com/mjl-/mox/dkim, MIT); this package owns the keys, the
// choice of algorithm and headers, and the DNS records to publish.
//
// Keys are made at first start in the data directory. The selector names a
// date, never the product (a selector such as "sealpost" would tell an
// attacker what guards the domain). RSA 2048 is what every verifier accepts;
// Ed25519 (RFC 8463) is much cheaper to sign with but not verified by some
// large providers, so "rsa-2048+ed25519" signs with both.
package mailauth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/smtp"
)

// SignedHeaders are the header fields signed, each over-signed so that a
// second copy cannot be added after signing (RFC 6376 §8.15).
var SignedHeaders = strings.Split("From,To,Cc,Reply-To,References,In-Reply-To,Subject,Date,Message-ID,MIME-Version,Content-Type,Content-Transfer-Encoding", ",")

// Key is one DKIM key and its selector.
type Key struct {
	Selector  string
	Algorithm string // "rsa" or "ed25519"
	Signer    crypto.Signer
}

// Signer signs messages for the organisation's domains.
type Signer struct {
	keys []Key
	log  *slog.Logger
}

// LoadOrCreate loads the DKIM keys for algorithm ("rsa-2048", "rsa-3072",
// "ed25519", "rsa-2048+ed25519" or "off") from dir, creating them on first
// use. selector overrides the stored selector when not empty.
func LoadOrCreate(dir, algorithm, selector string, log *slog.Logger) (*Signer, error) {
	s := &Signer{log: log}
	if algorithm == "off" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	selFile := filepath.Join(dir, "dkim-selector")
	if selector == "" {
		b, err := os.ReadFile(selFile)
		switch {
		case err == nil:
			selector = strings.TrimSpace(string(b))
		case errors.Is(err, os.ErrNotExist):
			selector = "s" + time.Now().UTC().Format("200601")
			if err := os.WriteFile(selFile, []byte(selector+"\n"), 0o600); err != nil {
				return nil, err
			}
		default:
			return nil, err
		}
	}
	var want []string
	switch algorithm {
	case "rsa-2048", "rsa-3072":
		want = []string{algorithm}
	case "ed25519":
		want = []string{"ed25519"}
	case "rsa-2048+ed25519":
		want = []string{"rsa-2048", "ed25519"}
	default:
		return nil, fmt.Errorf("dkim: unknown algorithm %q", algorithm)
	}
	for _, alg := range want {
		k, err := loadOrCreateKey(filepath.Join(dir, "dkim-"+alg+".pem"), alg)
		if err != nil {
			return nil, err
		}
		key := Key{Selector: selector, Algorithm: "rsa", Signer: k}
		if alg == "ed25519" {
			key.Algorithm = "ed25519"
			if len(want) > 1 {
				key.Selector = selector + "e" // one key per selector
			}
		}
		s.keys = append(s.keys, key)
	}
	return s, nil
}

func loadOrCreateKey(path, alg string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("dkim key %s: no PEM block", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("dkim key %s: %v", path, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("dkim key %s: not a signing key", path)
		}
		return signer, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var k crypto.Signer
	switch alg {
	case "rsa-2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa-3072":
		k, err = rsa.GenerateKey(rand.Reader, 3072)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return k, os.Rename(tmp, path)
}

// Enabled reports whether any key is configured.
func (s *Signer) Enabled() bool { return len(s.keys) > 0 }

// Keys returns the keys in use.
func (s *Signer) Keys() []Key { return s.keys }

// Sign returns DKIM-Signature header lines (CRLF-terminated) for msg, signed
// for domain; localpart (of the From address) goes into the i= identity.
func (s *Signer) Sign(ctx context.Context, localpart, domain string, msg io.ReaderAt) (string, error) {
	if len(s.keys) == 0 {
		return "", nil
	}
	d, err := dns.ParseDomain(domain)
	if err != nil {
		return "", err
	}
	sels := make([]dkim.Selector, len(s.keys))
	for i, k := range s.keys {
		sd, err := dns.ParseDomain(k.Selector)
		if err != nil {
			return "", err
		}
		sels[i] = dkim.Selector{
			Hash: "sha256", HeaderRelaxed: true, BodyRelaxed: true,
			Headers: SignedHeaders, SealHeaders: true, PrivateKey: k.Signer, Domain: sd,
		}
	}
	return dkim.Sign(ctx, s.log, smtp.Localpart(localpart), d, sels, false, msg)
}

// Record is one DNS TXT record to publish for a key.
type Record struct {
	Name  string // e.g. s202611._domainkey.example.gov.uk
	Value string // v=DKIM1;k=...;p=...
}

// Records returns the TXT records to publish for domain.
func (s *Signer) Records(domain string) ([]Record, error) {
	var out []Record
	for _, k := range s.keys {
		r := dkim.Record{Version: "DKIM1", Key: k.Algorithm, PublicKey: k.Signer.Public()}
		if k.Algorithm == "rsa" {
			r.Hashes = []string{"sha256"}
		}
		v, err := r.Record()
		if err != nil {
			return nil, err
		}
		out = append(out, Record{Name: k.Selector + "._domainkey." + domain, Value: v})
	}
	return out, nil
}
