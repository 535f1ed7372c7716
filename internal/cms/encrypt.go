package cms

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Cipher is the content encryption and with it the CMS content type.
type Cipher int

const (
	// AES256GCM: AuthEnvelopedData (RFC 5083) with AES-256-GCM and a
	// 16-byte tag (RFC 5084 §3.2). S/MIME 4.0's choice (RFC 8551 §2.7).
	AES256GCM Cipher = iota
	// AES256CBC: EnvelopedData (RFC 5652 §6.1) with AES-256-CBC (RFC 3565),
	// for clients older than S/MIME 4.0. Not authenticated.
	AES256CBC
)

func (c Cipher) String() string {
	if c == AES256CBC {
		return "aes-256-cbc"
	}
	return "aes-256-gcm"
}

// Options tune Encrypt.
type Options struct {
	Cipher Cipher
	Rand   io.Reader // nil: crypto/rand
}

// chunk is how much of the content is encrypted at a time.
const chunk = 64 << 10

// Encrypt reads exactly size bytes of content and writes a DER ContentInfo
// holding it encrypted to every recipient. Content shorter or longer than
// size is an error (what was written must then be thrown away).
func Encrypt(w io.Writer, content io.Reader, size int64, rcpts []Recipient, opt Options) error {
	if len(rcpts) == 0 {
		return errors.New("cms: no recipients")
	}
	if size < 0 || (opt.Cipher == AES256GCM && size > maxGCMBytes) {
		return fmt.Errorf("cms: content of %d bytes is out of range", size)
	}
	rnd := opt.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	cek := make([]byte, 32)
	defer clear(cek)
	if _, err := io.ReadFull(rnd, cek); err != nil {
		return err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return err
	}
	ris := make([][]byte, 0, len(rcpts))
	allV0 := true
	for _, r := range rcpts {
		ri, v0, err := recipientInfo(rnd, r, cek)
		if err != nil {
			return fmt.Errorf("cms: recipient %s: %w", r.Cert.Subject, err)
		}
		allV0 = allV0 && v0
		ris = append(ris, ri)
	}
	// DER orders the members of a SET OF by their encodings (X.690 §11.6).
	sort.Slice(ris, func(i, j int) bool { return bytes.Compare(ris[i], ris[j]) < 0 })

	var iv []byte
	var ctLen int64
	var algorithm func(*cryptobyte.Builder)
	typ, version := oidAuthEnvelopedData, int64(0) // RFC 5083 §2.1: always 0
	if opt.Cipher == AES256CBC {
		iv = make([]byte, 16)
		ctLen = (size/16 + 1) * 16 // PKCS #7 padding adds 1 to 16 bytes
		algorithm = func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidAES256CBC)
				b.AddASN1OctetString(iv)
			})
		}
		typ = oidEnvelopedData
		// RFC 5652 §6.1: 0 when every RecipientInfo is version 0 and
		// there are neither originatorInfo nor unprotectedAttrs; kari is
		// version 3, so 2.
		if !allV0 {
			version = 2
		}
	} else {
		iv = make([]byte, 12)
		ctLen = size
		algorithm = func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidAES256GCM)
				// GCMParameters (RFC 5084 §3.2): aes-ICVlen is written, 16
				// not being its default of 12.
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(iv)
					b.AddASN1Int64(16)
				})
			})
		}
	}
	if _, err := io.ReadFull(rnd, iv); err != nil {
		return err
	}

	var pre cryptobyte.Builder
	pre.AddASN1Int64(version)
	pre.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, ri := range ris {
			b.AddBytes(ri)
		}
	})
	head, err := pre.Bytes()
	if err != nil {
		return err
	}
	var eci cryptobyte.Builder
	eci.AddASN1ObjectIdentifier(oidData)
	algorithm(&eci)
	eciHead, err := eci.Bytes()
	if err != nil {
		return err
	}
	var typeB cryptobyte.Builder
	typeB.AddASN1ObjectIdentifier(typ)
	typeTLV, err := typeB.Bytes()
	if err != nil {
		return err
	}

	var macLen int64
	if opt.Cipher == AES256GCM {
		macLen = 2 + 16
	}
	// The lengths from the inside out; then the headers from the outside in.
	eciContent := int64(len(eciHead)) + headerLen(ctLen) + ctLen
	edContent := int64(len(head)) + headerLen(eciContent) + eciContent + macLen
	edLen := headerLen(edContent) + edContent
	ciContent := int64(len(typeTLV)) + headerLen(edLen) + edLen

	var out []byte
	out = appendHeader(out, 0x30, ciContent)
	out = append(out, typeTLV...)
	out = appendHeader(out, 0xa0, edLen) // content [0] EXPLICIT
	out = appendHeader(out, 0x30, edContent)
	out = append(out, head...)
	out = appendHeader(out, 0x30, eciContent)
	out = append(out, eciHead...)
	out = appendHeader(out, 0x80, ctLen) // encryptedContent [0] IMPLICIT OCTET STRING
	if _, err := w.Write(out); err != nil {
		return err
	}

	if opt.Cipher == AES256CBC {
		return streamCBC(w, content, size, cipher.NewCBCEncrypter(block, iv))
	}
	g, err := newGCMStream(block, iv)
	if err != nil {
		return err
	}
	if err := streamGCM(w, content, size, g); err != nil {
		return err
	}
	_, err = w.Write(append([]byte{0x04, 16}, g.tag()...)) // mac OCTET STRING
	return err
}

// readChunk fills buf from r, allowing a short last chunk only at the end
// of the announced size.
func readChunk(r io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(r, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func streamGCM(w io.Writer, r io.Reader, size int64, g *gcmStream) error {
	buf := make([]byte, chunk)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		if _, err := readChunk(r, buf[:n]); err != nil {
			return fmt.Errorf("cms: content shorter than %d bytes: %w", size, err)
		}
		g.seal(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	return checkEnd(r, size)
}

func streamCBC(w io.Writer, r io.Reader, size int64, enc cipher.BlockMode) error {
	buf := make([]byte, chunk+16)
	for left := size; ; {
		n := int64(chunk)
		if left < n {
			n = left
		}
		if _, err := readChunk(r, buf[:n]); err != nil {
			return fmt.Errorf("cms: content shorter than %d bytes: %w", size, err)
		}
		left -= n
		out := buf[:n]
		if left == 0 {
			// RFC 5652 §6.3: k - (l mod k) octets of that value.
			pad := 16 - int(n%16)
			for i := 0; i < pad; i++ {
				out = append(out, byte(pad))
			}
		}
		enc.CryptBlocks(out, out)
		if _, err := w.Write(out); err != nil {
			return err
		}
		if left == 0 {
			return checkEnd(r, size)
		}
	}
}

// checkEnd: content longer than announced is an error too, so that a
// caller's wrong size never truncates a message silently.
func checkEnd(r io.Reader, size int64) error {
	var one [1]byte
	if n, _ := r.Read(one[:]); n > 0 {
		return fmt.Errorf("cms: content longer than %d bytes", size)
	}
	return nil
}

func headerLen(n int64) int64 {
	if n < 128 {
		return 2
	}
	l := int64(1)
	for ; n > 0; n >>= 8 {
		l++
	}
	return l + 1
}

// appendHeader writes a DER tag and definite length (X.690 §8.1.3).
func appendHeader(dst []byte, tag byte, n int64) []byte {
	dst = append(dst, tag)
	if n < 128 {
		return append(dst, byte(n))
	}
	var tmp [8]byte
	binary.BigEndian.PutUint64(tmp[:], uint64(n))
	i := 0
	for tmp[i] == 0 {
		i++
	}
	dst = append(dst, 0x80|byte(8-i))
	return append(dst, tmp[i:]...)
}
