package cms

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrNotForKey: no RecipientInfo names the certificate.
var ErrNotForKey = errors.New("cms: the message is not encrypted to this certificate")

var errMalformed = errors.New("cms: malformed or unsupported structure")

// Decrypt reads a DER ContentInfo of EnvelopedData or AuthEnvelopedData
// and returns the content, decrypted with key, the private key of cert.
// Indefinite-length (BER) encodings are refused, as are unauthenticated
// ciphers other than AES-CBC. AuthEnvelopedData's tag is checked before
// anything is returned.
func Decrypt(der []byte, cert *x509.Certificate, key crypto.PrivateKey) ([]byte, error) {
	in := cryptobyte.String(der)
	var ci, content cryptobyte.String
	var typ asn1.ObjectIdentifier
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !in.Empty() {
		if len(der) > 1 && der[1] == 0x80 {
			return nil, errors.New("cms: indefinite-length (BER) encoding is not supported")
		}
		return nil, errMalformed
	}
	if !ci.ReadASN1ObjectIdentifier(&typ) || !ci.ReadASN1(&content, cbasn1.Tag(0).ContextSpecific().Constructed()) {
		return nil, errMalformed
	}
	auth := typ.Equal(oidAuthEnvelopedData)
	if !auth && !typ.Equal(oidEnvelopedData) {
		return nil, fmt.Errorf("cms: content type %s is not enveloped data", typ)
	}
	var ed, ris, eci cryptobyte.String
	var version int64
	if !content.ReadASN1(&ed, cbasn1.SEQUENCE) || !ed.ReadASN1Integer(&version) ||
		!ed.SkipOptionalASN1(cbasn1.Tag(0).ContextSpecific().Constructed()) || // originatorInfo
		!ed.ReadASN1(&ris, cbasn1.SET) || !ed.ReadASN1(&eci, cbasn1.SEQUENCE) {
		return nil, errMalformed
	}
	var authAttrs, mac []byte
	if auth {
		var attrs cryptobyte.String
		var present bool
		if !ed.ReadOptionalASN1(&attrs, &present, cbasn1.Tag(1).ContextSpecific().Constructed()) {
			return nil, errMalformed
		}
		if present {
			// RFC 5083 §2.2: the MAC covers the DER of authAttrs with its
			// SET OF tag, not the [1] of the encoding.
			var b cryptobyte.Builder
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(attrs) })
			authAttrs = b.BytesOrPanic()
		}
		if !ed.ReadASN1Bytes(&mac, cbasn1.OCTET_STRING) {
			return nil, errMalformed
		}
	}
	keyLen, _, err := contentAlgorithm(eci)
	if err != nil {
		return nil, err
	}
	var cek []byte
	for !ris.Empty() {
		var ri cryptobyte.String
		var tag cbasn1.Tag
		if !ris.ReadAnyASN1(&ri, &tag) {
			return nil, errMalformed
		}
		switch tag {
		case cbasn1.SEQUENCE:
			cek, err = openKeyTrans(ri, cert, key, keyLen)
		case cbasn1.Tag(1).ContextSpecific().Constructed():
			cek, err = openKeyAgree(ri, cert, key)
		default:
			continue // kekri, pwri, ori: not for a certificate
		}
		if err != nil || cek != nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if cek == nil {
		return nil, ErrNotForKey
	}
	defer clear(cek)
	return openContent(eci, cek, auth, authAttrs, mac)
}

// readRID reads an issuerAndSerialNumber or a [0] subjectKeyIdentifier and
// says whether it names cert.
func readRID(s *cryptobyte.String, cert *x509.Certificate) (bool, error) {
	var rid cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1Element(&rid, &tag) {
		return false, errMalformed
	}
	switch tag {
	case cbasn1.SEQUENCE:
		var body, issuer cryptobyte.String
		var serial []byte
		if !rid.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!body.ReadASN1Bytes(&serial, cbasn1.INTEGER) {
			return false, errMalformed
		}
		var want cryptobyte.Builder
		want.AddASN1BigInt(cert.SerialNumber)
		w := want.BytesOrPanic()
		return bytes.Equal(issuer, cert.RawIssuer) && bytes.Equal(serial, w[2:]) && len(w) < 130, nil
	case cbasn1.Tag(0).ContextSpecific():
		var ski []byte
		if !rid.ReadASN1Bytes(&ski, cbasn1.Tag(0).ContextSpecific()) {
			return false, errMalformed
		}
		return len(cert.SubjectKeyId) > 0 && bytes.Equal(ski, cert.SubjectKeyId), nil
	}
	return false, errMalformed
}

func openKeyTrans(ri cryptobyte.String, cert *x509.Certificate, key crypto.PrivateKey, keyLen int) ([]byte, error) {
	var version int64
	var alg cryptobyte.String
	var ek []byte
	if !ri.ReadASN1Integer(&version) {
		return nil, errMalformed
	}
	mine, err := readRID(&ri, cert)
	if err != nil {
		return nil, err
	}
	if !ri.ReadASN1(&alg, cbasn1.SEQUENCE) || !ri.ReadASN1Bytes(&ek, cbasn1.OCTET_STRING) {
		return nil, errMalformed
	}
	if !mine {
		return nil, nil
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("cms: key transport needs an RSA key")
	}
	var oid asn1.ObjectIdentifier
	if !alg.ReadASN1ObjectIdentifier(&oid) {
		return nil, errMalformed
	}
	switch {
	case oid.Equal(oidRSAEncryption):
		// A random key on bad padding, and the same time either way
		// (RFC 3218 §2.3.2): the tag or padding check then fails, and
		// no oracle tells PKCS #1 v1.5 errors apart.
		cek := make([]byte, keyLen)
		if _, err := rand.Read(cek); err != nil {
			return nil, err
		}
		if err := rsa.DecryptPKCS1v15SessionKey(nil, priv, ek, cek); err != nil {
			return nil, err
		}
		return cek, nil
	case oid.Equal(oidRSAESOAEP):
		h, err := oaepHash(alg)
		if err != nil {
			return nil, err
		}
		return rsa.DecryptOAEP(h, nil, priv, ek, nil)
	}
	return nil, fmt.Errorf("cms: key transport %s is not supported", oid)
}

// oaepHash reads RSAES-OAEP-params (RFC 4055 §4.1): the hash and MGF1 hash
// must agree (SHA-1 when absent, the default); a label is refused.
func oaepHash(params cryptobyte.String) (hash.Hash, error) {
	hashOID, mgfOID := oidSHA1, oidSHA1
	var p cryptobyte.String
	if !params.Empty() {
		if !params.ReadASN1(&p, cbasn1.SEQUENCE) {
			return nil, errMalformed
		}
		var h, m cryptobyte.String
		var hp, mp bool
		if !p.ReadOptionalASN1(&h, &hp, cbasn1.Tag(0).ContextSpecific().Constructed()) ||
			!p.ReadOptionalASN1(&m, &mp, cbasn1.Tag(1).ContextSpecific().Constructed()) {
			return nil, errMalformed
		}
		if !p.Empty() {
			return nil, errors.New("cms: RSAES-OAEP with a label is not supported")
		}
		if hp {
			var a cryptobyte.String
			if !h.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&hashOID) {
				return nil, errMalformed
			}
		}
		if mp {
			var a, inner cryptobyte.String
			var mgf asn1.ObjectIdentifier
			if !m.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&mgf) || !mgf.Equal(oidMGF1) ||
				!a.ReadASN1(&inner, cbasn1.SEQUENCE) || !inner.ReadASN1ObjectIdentifier(&mgfOID) {
				return nil, errMalformed
			}
		}
	}
	if !hashOID.Equal(mgfOID) {
		return nil, errors.New("cms: RSAES-OAEP with different hash and MGF1 hash is not supported")
	}
	switch {
	case hashOID.Equal(oidSHA256):
		return sha256.New(), nil
	case hashOID.Equal(oidSHA1):
		return sha1.New(), nil
	}
	return nil, fmt.Errorf("cms: RSAES-OAEP hash %s is not supported", hashOID)
}

// kdfHashes: the dhSinglePass-stdDH schemes of RFC 5753 §7.1.4 read here.
var kdfHashes = map[string]crypto.Hash{
	oidDHSinglePassSHA256.String(): crypto.SHA256,
	"1.3.132.1.11.2":               crypto.SHA384,
	"1.3.132.1.11.3":               crypto.SHA512,
	"1.3.133.16.840.63.0.2":        crypto.SHA1,
}

func openKeyAgree(ri cryptobyte.String, cert *x509.Certificate, key crypto.PrivateKey) ([]byte, error) {
	var version int64
	var orig, origKey, keyAlg, wrapAlg, reks cryptobyte.String
	var ukm []byte
	var hasUKM bool
	var pointBits asn1.BitString
	if !ri.ReadASN1Integer(&version) || !ri.ReadASN1(&orig, cbasn1.Tag(0).ContextSpecific().Constructed()) {
		return nil, errMalformed
	}
	if !orig.ReadASN1(&origKey, cbasn1.Tag(1).ContextSpecific().Constructed()) {
		return nil, errors.New("cms: key agreement without an ephemeral originator key is not supported")
	}
	var origAlg cryptobyte.String
	if !origKey.ReadASN1(&origAlg, cbasn1.SEQUENCE) || !origKey.ReadASN1BitString(&pointBits) {
		return nil, errMalformed
	}
	var ukmS cryptobyte.String
	if !ri.ReadOptionalASN1(&ukmS, &hasUKM, cbasn1.Tag(1).ContextSpecific().Constructed()) {
		return nil, errMalformed
	}
	if hasUKM && !ukmS.ReadASN1Bytes(&ukm, cbasn1.OCTET_STRING) {
		return nil, errMalformed
	}
	var kaOID, wrapOID asn1.ObjectIdentifier
	if !ri.ReadASN1(&keyAlg, cbasn1.SEQUENCE) || !keyAlg.ReadASN1ObjectIdentifier(&kaOID) ||
		!keyAlg.ReadASN1(&wrapAlg, cbasn1.SEQUENCE) || !wrapAlg.ReadASN1ObjectIdentifier(&wrapOID) ||
		!ri.ReadASN1(&reks, cbasn1.SEQUENCE) {
		return nil, errMalformed
	}
	var wrapped []byte
	for !reks.Empty() {
		var rek cryptobyte.String
		if !reks.ReadASN1(&rek, cbasn1.SEQUENCE) {
			return nil, errMalformed
		}
		mine, err := readRID(&rek, cert)
		if err != nil {
			return nil, err
		}
		var ek []byte
		if !rek.ReadASN1Bytes(&ek, cbasn1.OCTET_STRING) {
			return nil, errMalformed
		}
		if mine {
			wrapped = ek
			break
		}
	}
	if wrapped == nil {
		return nil, nil
	}
	h, ok := kdfHashes[kaOID.String()]
	if !ok || h == 0 {
		return nil, fmt.Errorf("cms: key agreement %s is not supported", kaOID)
	}
	kekLen := map[string]int{oidAES128Wrap.String(): 16, oidAES192Wrap.String(): 24, oidAES256Wrap.String(): 32}[wrapOID.String()]
	if kekLen == 0 {
		return nil, fmt.Errorf("cms: key wrap %s is not supported", wrapOID)
	}
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("cms: key agreement needs an EC key")
	}
	epriv, err := priv.ECDH()
	if err != nil {
		return nil, err
	}
	eph, err := epriv.Curve().NewPublicKey(pointBits.RightAlign())
	if err != nil {
		return nil, fmt.Errorf("cms: originator key: %w", err)
	}
	z, err := epriv.ECDH(eph)
	if err != nil {
		return nil, err
	}
	// ECC-CMS-SharedInfo (RFC 5753 §7.2) as the sender built it.
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(wrapOID) })
		if hasUKM {
			b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { b.AddASN1OctetString(ukm) })
		}
		b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1OctetString([]byte{0, 0, byte(kekLen * 8 >> 8), byte(kekLen * 8)})
		})
	})
	si, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	kek := kdf(h, z, si, kekLen)
	defer clear(kek)
	return unwrapKey(kek, wrapped)
}

// kdf is the ANSI X9.63 KDF for any hash (x963KDF is its SHA-256 case).
func kdf(h crypto.Hash, z, sharedInfo []byte, size int) []byte {
	if h == crypto.SHA256 {
		return x963KDF(z, sharedInfo, size)
	}
	var out []byte
	for counter := uint32(1); len(out) < size; counter++ {
		d := h.New()
		d.Write(z)
		d.Write([]byte{byte(counter >> 24), byte(counter >> 16), byte(counter >> 8), byte(counter)})
		d.Write(sharedInfo)
		out = d.Sum(out)
	}
	return out[:size]
}

// contentAlgorithm reads the key length of EncryptedContentInfo's cipher.
func contentAlgorithm(eci cryptobyte.String) (keyLen int, gcm bool, err error) {
	var ctype, encAlg asn1.ObjectIdentifier
	var alg cryptobyte.String
	if !eci.ReadASN1ObjectIdentifier(&ctype) || !eci.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&encAlg) {
		return 0, false, errMalformed
	}
	keyLen = map[string]int{
		oidAES128CBC.String(): 16, oidAES192CBC.String(): 24, oidAES256CBC.String(): 32,
		oidAES128GCM.String(): 16, oidAES192GCM.String(): 24, oidAES256GCM.String(): 32,
	}[encAlg.String()]
	if keyLen == 0 {
		return 0, false, fmt.Errorf("cms: content encryption %s is not supported", encAlg)
	}
	gcm = encAlg.Equal(oidAES128GCM) || encAlg.Equal(oidAES192GCM) || encAlg.Equal(oidAES256GCM)
	return keyLen, gcm, nil
}

func openContent(eci cryptobyte.String, cek []byte, auth bool, authAttrs, mac []byte) ([]byte, error) {
	keyLen, gcm, err := contentAlgorithm(eci)
	if err != nil {
		return nil, err
	}
	var ctype, encAlg asn1.ObjectIdentifier
	var alg cryptobyte.String
	var ct []byte
	if !eci.ReadASN1ObjectIdentifier(&ctype) || !eci.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&encAlg) ||
		!eci.ReadASN1Bytes(&ct, cbasn1.Tag(0).ContextSpecific()) {
		return nil, errMalformed
	}
	if gcm != auth {
		// GCM outside AuthEnvelopedData has no place for its tag
		// (RFC 5084 §1), CBC inside it none for authentication: refused.
		return nil, fmt.Errorf("cms: content encryption %s does not belong in this content type", encAlg)
	}
	if len(cek) != keyLen {
		return nil, errors.New("cms: content-encryption key has the wrong length")
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	if gcm {
		var params cryptobyte.String
		var nonce []byte
		icv := int64(12)
		if !alg.ReadASN1(&params, cbasn1.SEQUENCE) || !params.ReadASN1Bytes(&nonce, cbasn1.OCTET_STRING) {
			return nil, errMalformed
		}
		// aes-ICVlen INTEGER DEFAULT 12 (RFC 5084 §3.2), untagged.
		if params.PeekASN1Tag(cbasn1.INTEGER) && !params.ReadASN1Integer(&icv) {
			return nil, errMalformed
		}
		if icv < 12 || icv > 16 || int64(len(mac)) != icv || len(nonce) == 0 {
			return nil, errMalformed
		}
		aead, err := cipher.NewGCMWithNonceSize(block, len(nonce))
		if icv != 16 && err == nil {
			aead, err = cipher.NewGCMWithTagSize(block, int(icv))
		}
		if err != nil {
			return nil, err
		}
		if len(nonce) != aead.NonceSize() {
			return nil, errors.New("cms: GCM nonce of an unsupported size")
		}
		out, err := aead.Open(nil, nonce, append(append([]byte(nil), ct...), mac...), authAttrs)
		if err != nil {
			return nil, errors.New("cms: authentication failed: the message was changed or the key is wrong")
		}
		return out, nil
	}
	var iv []byte
	if !alg.ReadASN1Bytes(&iv, cbasn1.OCTET_STRING) || len(iv) != 16 || len(ct) == 0 || len(ct)%16 != 0 {
		return nil, errMalformed
	}
	out := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, ct)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > 16 {
		return nil, errors.New("cms: bad padding")
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, errors.New("cms: bad padding")
		}
	}
	return out[:len(out)-pad], nil
}
