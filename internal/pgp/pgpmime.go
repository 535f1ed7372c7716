// Package pgp writes OpenPGP-encrypted mail in the PGP/MIME format of
// RFC 3156, with github.com/ProtonMail/gopenpgp/v3.
//
// RFC 3156 §4: the encrypted message is a multipart/encrypted entity with
// protocol "application/pgp-encrypted" and exactly two parts: a version
// part ("Version: 1") and an application/octet-stream part holding the
// armoured OpenPGP message. What is encrypted is the original message's
// body as a MIME entity, with its own Content-* header fields, so the
// recipient's client shows it exactly as sent. Signing, when asked for,
// uses the combined method of §6.2 (one OpenPGP message that is signed and
// encrypted).
//
// Algorithms: the OpenPGP library encrypts with SEIPDv2 (AEAD, RFC 9580
// §5.13.2) only when every recipient key's self-signature advertises the
// SEIPDv2 feature, otherwise with SEIPDv1; keys sealpost generates are v4
// (GenerateKey), because v6 keys cannot be read by the OpenPGP tools of
// Debian 12 (gpg 2.2, sqop 0.27, rnp 0.16).
//
// Optional header protection (RFC 9788 §2): the inner entity carries
// copies of the outer From, To, Cc, Subject, Date and Message-ID, and its
// Content-Type has protected-headers="v1".
//
// This package knows nothing of storage or configuration.
package pgp

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/gopenpgp/v3/crypto"
	"github.com/ProtonMail/gopenpgp/v3/profile"
)

// Options of one encryption.
type Options struct {
	Recipients []*crypto.Key // public keys; every one can decrypt
	// Signer, when not nil, is an unlocked private key that signs the
	// message inside the encryption (RFC 3156 §6.2).
	Signer *crypto.Key
	// ProtectHeaders copies the outer header fields into the encrypted
	// part (RFC 9788).
	ProtectHeaders bool
	Now            func() time.Time
	// MaxHeader bounds the original message's header (default 1 MiB).
	MaxHeader int
}

// Result says what was used.
type Result struct {
	// Data: "SEIPDv1" or "SEIPDv2/<cipher>-<mode>".
	Data   string
	Signed bool
	// PKESK: the public-key algorithm of each recipient's encrypted
	// session key, e.g. "RSA", "ECDH", "X25519".
	PKESK []string
}

func (r *Result) String() string {
	s := "data=" + r.Data + " pkesk=" + strings.Join(r.PKESK, ",")
	if r.Signed {
		s += " signed"
	}
	return s
}

// isContentField: the header fields that describe the body: they move
// into the encrypted entity (RFC 3156 §4: the encrypted part is a MIME
// entity of its own).
func isContentField(name string) bool {
	switch strings.ToLower(name) {
	case "content-type", "content-transfer-encoding", "content-disposition", "content-description", "content-id",
		"content-language", "content-md5", "mime-version":
		return true
	}
	return false
}

// isProtected: the fields ProtectHeaders copies into the inner entity.
func isProtected(name string) bool {
	switch strings.ToLower(name) {
	case "from", "to", "cc", "subject", "date", "message-id", "reply-to":
		return true
	}
	return false
}

// Encrypt reads a whole message (RFC 5322) from msg and writes it to dst as
// a PGP/MIME message encrypted to opt.Recipients.
func Encrypt(dst io.Writer, msg io.Reader, opt Options) (*Result, error) {
	if len(opt.Recipients) == 0 {
		return nil, errors.New("pgp: no recipient keys")
	}
	br := bufio.NewReaderSize(msg, 64<<10)
	fields, err := readHeader(br, opt.MaxHeader)
	if err != nil {
		return nil, err
	}
	kr, err := crypto.NewKeyRing(nil)
	if err != nil {
		return nil, err
	}
	for _, k := range opt.Recipients {
		if err := kr.AddKey(k); err != nil {
			return nil, fmt.Errorf("pgp: recipient key: %w", err)
		}
	}
	h := crypto.PGPWithProfile(profile.Default())
	b := h.Encryption().Recipients(kr)
	if opt.Signer != nil {
		b = b.SigningKey(opt.Signer)
	}
	if opt.Now != nil {
		b = b.EncryptionTime(opt.Now().Unix()).SignTime(opt.Now().Unix())
	}
	enc, err := b.New()
	if err != nil {
		return nil, fmt.Errorf("pgp: %w", err)
	}
	// No ClearPrivateParams: it would wipe the caller's signing key, which
	// signs the next message too.

	boundary, err := newBoundary()
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(dst, 64<<10)
	for _, f := range fields {
		if !isContentField(f.name) {
			bw.Write(f.raw)
		}
	}
	fmt.Fprintf(bw, "MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"%s\"\r\n\r\n", boundary)
	bw.WriteString("This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n")
	fmt.Fprintf(bw, "--%s\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n", boundary)
	fmt.Fprintf(bw, "--%s\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Description: OpenPGP encrypted message\r\nContent-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n", boundary)

	aw, err := armor.EncodeWithChecksumOption(&crlfWriter{w: bw}, "PGP MESSAGE", nil, false)
	if err != nil {
		return nil, err
	}
	sniff := &prefix{max: 16 << 10}
	pw, err := enc.EncryptingWriter(io.MultiWriter(aw, sniff), crypto.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pgp: %w", err)
	}
	// The encrypted entity: the body's Content-* fields (text/plain when
	// the message had none, RFC 2045 §5.2), optionally protected headers,
	// then the body as it is.
	var inner bytes.Buffer
	ct := ""
	for _, f := range fields {
		if strings.EqualFold(f.name, "content-type") {
			ct = string(f.raw)
		}
	}
	if ct == "" {
		ct = "Content-Type: text/plain; charset=us-ascii\r\n"
	}
	if opt.ProtectHeaders {
		ct = strings.TrimRight(ct, "\r\n") + ";\r\n protected-headers=\"v1\"\r\n"
	}
	inner.WriteString(ct)
	for _, f := range fields {
		n := strings.ToLower(f.name)
		if isContentField(n) && n != "content-type" && n != "mime-version" {
			inner.Write(f.raw)
		}
	}
	if opt.ProtectHeaders {
		for _, f := range fields {
			if isProtected(f.name) {
				inner.Write(f.raw)
			}
		}
	}
	inner.WriteString("\r\n")
	if _, err := pw.Write(inner.Bytes()); err != nil {
		return nil, fmt.Errorf("pgp: %w", err)
	}
	if _, err := io.Copy(pw, br); err != nil {
		return nil, fmt.Errorf("pgp: reading the message: %w", err)
	}
	if err := pw.Close(); err != nil {
		return nil, fmt.Errorf("pgp: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	fmt.Fprintf(bw, "\r\n--%s--\r\n", boundary)
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	res := describe(sniff.buf.Bytes())
	res.Signed = opt.Signer != nil
	return res, nil
}

// describe reads the packets at the start of an OpenPGP message: the
// session-key packets and the header of the encrypted data packet.
func describe(data []byte) *Result {
	res := &Result{Data: "unknown"}
	r := packet.NewReader(bytes.NewReader(data))
	for {
		p, err := r.Next()
		if err != nil {
			return res
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			res.PKESK = append(res.PKESK, algoName(p.Algo))
		case *packet.SymmetricallyEncrypted:
			if p.Version == 2 {
				res.Data = fmt.Sprintf("SEIPDv2/%s-%s", cipherName(p.Cipher), modeName(p.Mode))
			} else {
				res.Data = fmt.Sprintf("SEIPDv%d", p.Version)
			}
			return res
		}
	}
}

func algoName(a packet.PublicKeyAlgorithm) string {
	switch a {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly:
		return "RSA"
	case packet.PubKeyAlgoECDH:
		return "ECDH"
	case packet.PubKeyAlgoX25519:
		return "X25519"
	case packet.PubKeyAlgoX448:
		return "X448"
	case packet.PubKeyAlgoElGamal:
		return "ElGamal"
	}
	return fmt.Sprintf("algo-%d", a)
}

func cipherName(c packet.CipherFunction) string {
	switch c {
	case packet.CipherAES128:
		return "AES-128"
	case packet.CipherAES192:
		return "AES-192"
	case packet.CipherAES256:
		return "AES-256"
	}
	return fmt.Sprintf("cipher-%d", c)
}

func modeName(m packet.AEADMode) string {
	switch m {
	case packet.AEADModeOCB:
		return "OCB"
	case packet.AEADModeEAX:
		return "EAX"
	case packet.AEADModeGCM:
		return "GCM"
	}
	return fmt.Sprintf("mode-%d", m)
}

// field is one header field as it was, folding and CRLF included.
type field struct {
	name string
	raw  []byte
}

// readHeader reads the header section up to and including the empty line.
// Lines may end in LF or CRLF; every field is rewritten with CRLF.
func readHeader(br *bufio.Reader, max int) ([]field, error) {
	if max <= 0 {
		max = 1 << 20
	}
	var fields []field
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, errors.New("pgp: a header line is longer than 64 KiB")
		}
		if err != nil && !(err == io.EOF && len(line) > 0) {
			if err == io.EOF {
				return fields, nil // a message with a header only
			}
			return nil, fmt.Errorf("pgp: reading the header: %w", err)
		}
		total += len(line)
		if total > max {
			return nil, errors.New("pgp: the header is too large")
		}
		text := strings.TrimRight(string(line), "\r\n")
		if text == "" {
			return fields, nil
		}
		if text[0] == ' ' || text[0] == '\t' {
			if len(fields) == 0 {
				return nil, errors.New("pgp: the header starts with a continuation line")
			}
			fields[len(fields)-1].raw = append(fields[len(fields)-1].raw, text+"\r\n"...)
			continue
		}
		name, _, ok := strings.Cut(text, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("pgp: not a header field: %.40q", text)
		}
		fields = append(fields, field{name: name, raw: []byte(text + "\r\n")})
	}
}

func newBoundary() (string, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "=_pgp_" + hex.EncodeToString(b[:]), nil
}

// prefix keeps the first max bytes written to it.
type prefix struct {
	buf bytes.Buffer
	max int
}

func (p *prefix) Write(b []byte) (int, error) {
	if room := p.max - p.buf.Len(); room > 0 {
		if len(b) < room {
			room = len(b)
		}
		p.buf.Write(b[:room])
	}
	return len(b), nil
}

// crlfWriter turns the armour's LF line ends into CRLF (RFC 5322 §2.3).
type crlfWriter struct{ w io.Writer }

func (c *crlfWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			m, err := c.w.Write(b)
			return n + m, err
		}
		if _, err := c.w.Write(b[:i]); err != nil {
			return n, err
		}
		if _, err := c.w.Write([]byte("\r\n")); err != nil {
			return n, err
		}
		n += i + 1
		b = b[i+1:]
	}
	return n, nil
}

// GenerateKey makes a v4 key pair for name <address> (for an
// organisation's signing key or a test recipient): v4 because Debian 12's
// OpenPGP tools cannot read v6 keys.
func GenerateKey(name, address string) (*crypto.Key, error) {
	h := crypto.PGPWithProfile(profile.Default())
	k, err := h.KeyGeneration().AddUserId(name, address).New().GenerateKey()
	if err != nil {
		return nil, err
	}
	if k.GetVersion() != 4 {
		return nil, fmt.Errorf("pgp: generated a v%d key, want v4", k.GetVersion())
	}
	return k, nil
}
