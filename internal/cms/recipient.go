package cms

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// KeyTransport is how the content-encryption key reaches an RSA recipient.
type KeyTransport int

const (
	// OAEP is RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 8017 §7.1,
	// parameters as RFC 4055 §4.1).
	OAEP KeyTransport = iota
	// PKCS1v15 is RSAES-PKCS1-v1_5 (RFC 8017 §7.2), for clients that know
	// nothing else. It is open to padding-oracle attacks on the decrypting
	// side, so it is chosen only on request.
	PKCS1v15
)

// Recipient is one holder of a certificate the content is encrypted to.
type Recipient struct {
	Cert *x509.Certificate
	// KeyTransport applies to RSA keys; elliptic-curve keys always use
	// ephemeral-static ECDH (RFC 5753).
	KeyTransport KeyTransport
}

// Algorithm names how the key reaches this recipient, for the audit log.
func (r Recipient) Algorithm() string {
	switch pub := r.Cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if r.KeyTransport == PKCS1v15 {
			return "rsa-pkcs1v15"
		}
		return "rsaes-oaep-sha256"
	case *ecdsa.PublicKey:
		return "ecdh-" + pub.Curve.Params().Name + "-x963kdf-sha256-aes256wrap"
	}
	return "unsupported"
}

// Supported says whether the certificate's key is one this package can
// encrypt to (RSA of at least 2048 bits, ECDSA on P-256, P-384 or P-521).
func Supported(c *x509.Certificate) error {
	switch pub := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits (at least 2048 needed)", pub.N.BitLen())
		}
		return nil
	case *ecdsa.PublicKey:
		if _, err := pub.ECDH(); err != nil {
			return fmt.Errorf("elliptic curve %s is not supported", pub.Curve.Params().Name)
		}
		return nil
	}
	return fmt.Errorf("public key algorithm %s cannot be encrypted to", c.PublicKeyAlgorithm)
}

// recipientInfo encodes one RecipientInfo (RFC 5652 §6.2) for cek, and
// says whether it is version 0 (for EnvelopedData's version, §6.1).
func recipientInfo(rnd io.Reader, r Recipient, cek []byte) ([]byte, bool, error) {
	if err := Supported(r.Cert); err != nil {
		return nil, false, err
	}
	switch pub := r.Cert.PublicKey.(type) {
	case *rsa.PublicKey:
		b, err := keyTrans(rnd, r, pub, cek)
		return b, true, err
	case *ecdsa.PublicKey:
		b, err := keyAgree(rnd, r.Cert, pub, cek)
		return b, false, err
	}
	return nil, false, errors.New("cms: unsupported key")
}

// keyTrans is KeyTransRecipientInfo (RFC 5652 §6.2.1), version 0 with
// issuerAndSerialNumber.
func keyTrans(rnd io.Reader, r Recipient, pub *rsa.PublicKey, cek []byte) ([]byte, error) {
	var ek []byte
	var err error
	if r.KeyTransport == PKCS1v15 {
		ek, err = rsa.EncryptPKCS1v15(rnd, pub, cek)
	} else {
		ek, err = rsa.EncryptOAEP(sha256.New(), rnd, pub, cek, nil)
	}
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		issuerAndSerial(b, r.Cert)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if r.KeyTransport == PKCS1v15 {
				b.AddASN1ObjectIdentifier(oidRSAEncryption)
				b.AddASN1NULL()
				return
			}
			b.AddASN1ObjectIdentifier(oidRSAESOAEP)
			// RSAES-OAEP-params (RFC 4055 §4.1): hashFunc and maskGenFunc
			// differ from their SHA-1 defaults, so DER writes both;
			// pSourceFunc keeps its default (empty label) and is left out.
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), sha256Identifier)
				b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidMGF1)
						sha256Identifier(b)
					})
				})
			})
		})
		b.AddASN1OctetString(ek)
	})
	return b.Bytes()
}

// sha256Identifier is RFC 4055 §2.1's sha256Identifier, with NULL
// parameters as that section defines it for OAEP.
func sha256Identifier(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSHA256)
		b.AddASN1NULL()
	})
}

func issuerAndSerial(b *cryptobyte.Builder, c *x509.Certificate) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(c.RawIssuer)
		b.AddASN1BigInt(c.SerialNumber)
	})
}

// wrapAlgorithm is the KeyWrapAlgorithm: id-aes256-wrap with absent
// parameters (RFC 3565 §2.3.2).
func wrapAlgorithm(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidAES256Wrap)
	})
}

// sharedInfo is ECC-CMS-SharedInfo (RFC 5753 §7.2) without ukm: the wrap
// algorithm and the length of the key-encryption key in bits.
func sharedInfo() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		wrapAlgorithm(b)
		b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1OctetString([]byte{0, 0, 1, 0}) // 256 bits
		})
	})
	return b.Bytes()
}

// keyAgree is KeyAgreeRecipientInfo (RFC 5652 §6.2.2) for one recipient,
// dhSinglePass-stdDH-sha256kdf-scheme (RFC 5753 §3.1.1): a fresh
// ephemeral key per message, so no originator certificate is needed.
func keyAgree(rnd io.Reader, cert *x509.Certificate, pub *ecdsa.PublicKey, cek []byte) ([]byte, error) {
	rpub, err := pub.ECDH()
	if err != nil {
		return nil, err
	}
	eph, err := rpub.Curve().GenerateKey(rnd)
	if err != nil {
		return nil, err
	}
	z, err := eph.ECDH(rpub)
	if err != nil {
		return nil, err
	}
	si, err := sharedInfo()
	if err != nil {
		return nil, err
	}
	kek := x963KDF(z, si, 32)
	wrapped, err := wrapKey(kek, cek)
	clear(kek)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	// kari is [1] IMPLICIT in the RecipientInfo CHOICE.
	b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			// originatorKey [1] OriginatorPublicKey; id-ecPublicKey with
			// absent parameters: the curve is the recipient's.
			b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidECPublicKey)
				})
				b.AddASN1BitString(eph.PublicKey().Bytes())
			})
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidDHSinglePassSHA256)
			wrapAlgorithm(b)
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				issuerAndSerial(b, cert)
				b.AddASN1OctetString(wrapped)
			})
		})
	})
	return b.Bytes()
}

// ecdhPrivate converts an ECDSA private key for ECDH.
func ecdhPrivate(k *ecdsa.PrivateKey) (*ecdh.PrivateKey, error) { return k.ECDH() }
