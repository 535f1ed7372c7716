package keyring

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// Kinds of key.
const (
	KindPGP  = "pgp"
	KindX509 = "x509"
)

// Sources of a key, most authoritative first (the discovery ladder).
const (
	SourceOperator  = "operator"  // added by the operator (`sealpost keys add`)
	SourceWKD       = "wkd"       // the recipient domain's Web Key Directory, over verified HTTPS
	SourceHarvested = "harvested" // from signed inbound mail that passed DMARC
)

// Key is one recipient key with its provenance. Raw holds the binary
// OpenPGP certificate (transferable public key, RFC 9580 §10.1) or the
// DER of an X.509 certificate.
type Key struct {
	Kind        string    `json:"kind"`
	Fingerprint string    `json:"fingerprint"`
	Addresses   []string  `json:"addresses"`
	Source      string    `json:"source"`
	Fetched     time.Time `json:"fetched"`
	Expires     time.Time `json:"expires,omitzero"`
	Trust       string    `json:"trust"`
	Staff       bool      `json:"staff,omitempty"`
	// Algorithm of the key that encrypts, e.g. "RSA-3072" or "ECDH-X25519".
	Algorithm string `json:"algorithm"`
	// Version of an OpenPGP key (4 or 6); 0 for X.509.
	Version int `json:"version,omitempty"`
	// SEIPDv2: the OpenPGP key's primary self-signature advertises the
	// SEIPDv2 feature (RFC 9580 §5.2.3.32), so AEAD encryption may be used.
	SEIPDv2 bool   `json:"seipdv2,omitempty"`
	Raw     []byte `json:"-"`
}

// ErrNotAKey is returned for data that is neither an OpenPGP certificate
// nor an X.509 certificate.
var ErrNotAKey = errors.New("neither an OpenPGP certificate nor an X.509 certificate")

// Parse reads every key in data: OpenPGP certificates, armoured or binary
// (one or several), or X.509 certificates, PEM (one or several) or DER.
// Secret key material is refused: the key store holds public keys only.
func Parse(data []byte) ([]Key, error) {
	trimmed := bytes.TrimSpace(data)
	switch {
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN PGP")):
		return parsePGP(data, true)
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		return parsePEM(data)
	}
	if len(data) > 0 && data[0]&0x80 != 0 && data[0] != 0x30 {
		return parsePGP(data, false)
	}
	if c, err := x509.ParseCertificate(data); err == nil {
		return []Key{fromX509(c)}, nil
	}
	if ks, err := parsePGP(data, false); err == nil {
		return ks, nil
	}
	return nil, ErrNotAKey
}

// ParseBinaryPGP reads binary OpenPGP certificates only (a WKD answer,
// draft-koch-openpgp-webkey-service §3.1: "the key needs to be in binary
// format"); armour is refused.
func ParseBinaryPGP(data []byte) ([]Key, error) {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		return nil, errors.New("armoured answer: a Web Key Directory serves binary keys only")
	}
	return parsePGP(data, false)
}

func parsePGP(data []byte, armoured bool) ([]Key, error) {
	var el openpgp.EntityList
	var err error
	if armoured {
		blk, aerr := armor.Decode(bytes.NewReader(data))
		if aerr != nil {
			return nil, fmt.Errorf("reading the armour: %w", aerr)
		}
		if blk.Type == "PGP PRIVATE KEY BLOCK" {
			return nil, errors.New("a secret key: add the public certificate only")
		}
		el, err = openpgp.ReadKeyRing(blk.Body)
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("reading the OpenPGP certificate: %w", err)
	}
	if len(el) == 0 {
		return nil, errors.New("no OpenPGP certificate")
	}
	var out []Key
	for _, e := range el {
		if e.PrivateKey != nil {
			return nil, errors.New("a secret key: add the public certificate only")
		}
		var buf bytes.Buffer
		if err := e.Serialize(&buf); err != nil {
			return nil, fmt.Errorf("re-encoding the certificate: %w", err)
		}
		out = append(out, fromEntity(e, buf.Bytes()))
	}
	return out, nil
}

func fromEntity(e *openpgp.Entity, raw []byte) Key {
	k := Key{Kind: KindPGP, Fingerprint: strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint)),
		Version: e.PrimaryKey.Version, Raw: raw}
	seen := map[string]bool{}
	for _, id := range e.Identities {
		a := identityAddress(id)
		if a != "" && !seen[a] {
			seen[a] = true
			k.Addresses = append(k.Addresses, a)
		}
	}
	sort.Strings(k.Addresses)
	now := time.Now()
	if sig, err := e.PrimarySelfSignature(time.Time{}, nil); err == nil {
		k.SEIPDv2 = sig.SEIPDv2
		if sig.KeyLifetimeSecs != nil && *sig.KeyLifetimeSecs != 0 {
			k.Expires = e.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
		}
	}
	pk := e.PrimaryKey
	if ek, ok := e.EncryptionKey(now, nil); ok {
		pk = ek.PublicKey
	}
	k.Algorithm = pgpAlgorithm(pk)
	return k
}

// identityAddress is the lower-cased address of a user ID, "" if it has
// none or it does not parse as one address.
func identityAddress(id *openpgp.Identity) string {
	if id.UserId == nil {
		return ""
	}
	email := id.UserId.Email
	if email == "" {
		if a, err := mail.ParseAddress(id.Name); err == nil {
			email = a.Address
		} else if strings.Count(id.Name, "@") == 1 && !strings.ContainsAny(id.Name, " <>") {
			email = id.Name
		}
	}
	return strings.ToLower(strings.TrimSpace(email))
}

func pgpAlgorithm(pk *packet.PublicKey) string {
	bits, _ := pk.BitLength()
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly:
		return fmt.Sprintf("RSA-%d", bits)
	case packet.PubKeyAlgoECDH, packet.PubKeyAlgoECDSA:
		name := "ECDH"
		if pk.PubKeyAlgo == packet.PubKeyAlgoECDSA {
			name = "ECDSA"
		}
		if c, err := pk.Curve(); err == nil {
			return name + "-" + string(c)
		}
		return name
	case packet.PubKeyAlgoX25519:
		return "X25519"
	case packet.PubKeyAlgoX448:
		return "X448"
	case packet.PubKeyAlgoElGamal:
		return fmt.Sprintf("ElGamal-%d", bits)
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoEd25519:
		return "Ed25519"
	}
	return fmt.Sprintf("algorithm-%d", pk.PubKeyAlgo)
}

func parsePEM(data []byte) ([]Key, error) {
	var out []Key
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("reading the X.509 certificate: %w", err)
			}
			out = append(out, fromX509(c))
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("a private key: add the certificate only")
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block in the PEM data")
	}
	return out, nil
}

// fromX509 takes the addresses of a certificate from its SAN rfc822Name
// entries only (RFC 8550 §3: the subject's emailAddress attribute is
// deprecated in favour of the SAN).
func fromX509(c *x509.Certificate) Key {
	sum := sha256.Sum256(c.Raw)
	k := Key{Kind: KindX509, Fingerprint: strings.ToUpper(hex.EncodeToString(sum[:])), Raw: c.Raw, Expires: c.NotAfter}
	seen := map[string]bool{}
	for _, a := range c.EmailAddresses {
		a = strings.ToLower(a)
		if !seen[a] {
			seen[a] = true
			k.Addresses = append(k.Addresses, a)
		}
	}
	sort.Strings(k.Addresses)
	switch c.PublicKeyAlgorithm {
	case x509.RSA:
		if p, ok := c.PublicKey.(interface{ Size() int }); ok {
			k.Algorithm = fmt.Sprintf("RSA-%d", p.Size()*8)
		} else {
			k.Algorithm = "RSA"
		}
	default:
		k.Algorithm = c.PublicKeyAlgorithm.String()
	}
	return k
}

// Unusable says why k must not be used to encrypt to address at now
// ("" when it may be): revoked, expired, not yet valid, no encryption
// key, or the address is not one of the key's (valid) user IDs.
func (k *Key) Unusable(address string, now time.Time) string {
	address = strings.ToLower(address)
	switch k.Kind {
	case KindPGP:
		el, err := openpgp.ReadKeyRing(bytes.NewReader(k.Raw))
		if err != nil || len(el) != 1 {
			return "the stored certificate cannot be read"
		}
		e := el[0]
		if e.Revoked(now) {
			return "revoked"
		}
		if _, err := e.VerifyPrimaryKey(now, nil); err != nil {
			if !k.Expires.IsZero() && now.After(k.Expires) {
				return "expired " + k.Expires.UTC().Format(time.DateOnly)
			}
			return "no valid self-signature (" + err.Error() + ")"
		}
		if _, ok := e.EncryptionKey(now, nil); !ok {
			return "no valid encryption subkey (expired, revoked or missing)"
		}
		for _, id := range e.Identities {
			if identityAddress(id) != address {
				continue
			}
			if _, err := id.Verify(now, nil); err == nil {
				return ""
			}
		}
		return "no valid user ID for " + address
	case KindX509:
		c, err := x509.ParseCertificate(k.Raw)
		if err != nil {
			return "the stored certificate cannot be read"
		}
		if now.After(c.NotAfter) {
			return "expired " + c.NotAfter.UTC().Format(time.DateOnly)
		}
		if now.Before(c.NotBefore) {
			return "not valid before " + c.NotBefore.UTC().Format(time.DateOnly)
		}
		for _, a := range c.EmailAddresses {
			if strings.EqualFold(a, address) {
				return ""
			}
		}
		return "no SAN rfc822Name for " + address
	}
	return "unknown kind " + k.Kind
}
