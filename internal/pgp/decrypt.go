package pgp

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strings"

	"github.com/ProtonMail/gopenpgp/v3/constants"
	"github.com/ProtonMail/gopenpgp/v3/crypto"
)

// Decryption is what Decrypt found: the signature inside the encryption,
// for the Authentication-Results-style header the caller writes.
type Decryption struct {
	// Signature: "pass" (a signature by one of the verification keys
	// verified), "fail" (a signature that does not verify), "unknown" (a
	// signature by a key not given), "none".
	Signature string
	// SignedBy is the signer's fingerprint (upper-case hex) when known.
	SignedBy string
}

// ErrNotPGPMIME: the message is not RFC 3156 multipart/encrypted.
var ErrNotPGPMIME = errors.New("pgp: not a PGP/MIME encrypted message")

// Decrypt reads a PGP/MIME message (RFC 3156 §4) encrypted to one of keys
// (unlocked private keys the organisation holds) and writes the message
// with its encrypted entity in place of the multipart/encrypted body: the
// outer header fields except the Content-* ones, then the decrypted
// entity's own header and body. A signature inside the encryption (§6.2)
// is checked against verify. Nothing is written when decryption fails.
func Decrypt(dst io.Writer, msg io.Reader, keys, verify []*crypto.Key) (*Decryption, error) {
	br := bufio.NewReaderSize(msg, 64<<10)
	fields, err := readHeader(br, 0)
	if err != nil {
		return nil, err
	}
	ct := ""
	for _, f := range fields {
		if strings.EqualFold(f.name, "content-type") {
			_, v, _ := strings.Cut(string(f.raw), ":")
			ct = strings.TrimSpace(v)
		}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/encrypted" || !strings.EqualFold(params["protocol"], "application/pgp-encrypted") || params["boundary"] == "" {
		return nil, ErrNotPGPMIME
	}
	mr := multipart.NewReader(br, params["boundary"])
	var parts [][]byte
	for len(parts) < 3 {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotPGPMIME, err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotPGPMIME, err)
		}
		parts = append(parts, b)
	}
	// §4: exactly two parts; the first says "Version: 1".
	if len(parts) != 2 || !bytes.Contains(parts[0], []byte("Version: 1")) {
		return nil, ErrNotPGPMIME
	}
	kr, err := keyRing(keys)
	if err != nil {
		return nil, err
	}
	b := crypto.PGP().Decryption().DecryptionKeys(kr)
	if len(verify) > 0 {
		vkr, err := keyRing(verify)
		if err != nil {
			return nil, err
		}
		b = b.VerificationKeys(vkr)
	}
	dec, err := b.New()
	if err != nil {
		return nil, fmt.Errorf("pgp: %w", err)
	}
	res, err := dec.Decrypt(parts[1], crypto.Auto)
	if err != nil {
		return nil, fmt.Errorf("pgp: cannot decrypt: %w", err)
	}
	out := &Decryption{Signature: "none"}
	if len(res.Signatures) > 0 {
		if fp := res.SignedByFingerprint(); len(fp) > 0 {
			out.SignedBy = strings.ToUpper(hex.EncodeToString(fp))
		}
		switch serr := res.SignatureErrorExplicit(); {
		case serr == nil:
			out.Signature = "pass"
		case serr.Status == constants.SIGNATURE_NO_VERIFIER:
			out.Signature = "unknown"
		case serr.Status == constants.SIGNATURE_NOT_SIGNED:
			out.Signature = "none"
		default:
			out.Signature = "fail"
		}
	}
	bw := bufio.NewWriter(dst)
	for _, f := range fields {
		if !isContentField(f.name) {
			bw.Write(f.raw)
		}
	}
	bw.WriteString("MIME-Version: 1.0\r\n")
	bw.Write(res.Bytes())
	return out, bw.Flush()
}

func keyRing(keys []*crypto.Key) (*crypto.KeyRing, error) {
	kr, err := crypto.NewKeyRing(nil)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return nil, fmt.Errorf("pgp: %w", err)
		}
	}
	return kr, nil
}
