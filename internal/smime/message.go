package smime

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/smallstep/pkcs7"

	"sealpost/internal/cms"
)

// maxHeaderBytes bounds the header section held in memory.
const maxHeaderBytes = 1 << 20

// MaxSignBytes bounds what is signed: PKCS #7 signing holds the whole
// entity in memory.
const MaxSignBytes = 64 << 20

// Signer signs with the organisation's certificate (RFC 8551 §3.5).
type Signer struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate // intermediates to include
}

// Options tune EncryptMessage.
type Options struct {
	Cipher cms.Cipher
	Signer *Signer   // nil: encrypted only
	Rand   io.Reader // nil: crypto/rand
}

// message is a message split into header fields and body.
type message struct {
	outer, content []string // raw header fields (with folding), CRLF-terminated
	body           io.Reader
	bodySize       int64
}

// split reads the header section of msg (RFC 5322 §2.1) and sorts its
// fields into those that describe the content (Content-*, RFC 8551 §3.1:
// they move inside the protected entity) and the rest. MIME-Version is
// dropped and written anew.
func split(msg io.ReaderAt, size int64) (*message, error) {
	br := bufio.NewReader(io.NewSectionReader(msg, 0, size))
	m := &message{}
	var read int64
	var cur *[]string
	for {
		line, err := br.ReadString('\n')
		read += int64(len(line))
		if read > maxHeaderBytes {
			return nil, fmt.Errorf("smime: header section larger than %d bytes", maxHeaderBytes)
		}
		if line == "\r\n" || line == "\n" || (err == io.EOF && line == "") {
			break
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		if !strings.HasSuffix(line, "\n") {
			line += "\r\n"
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur != nil && len(*cur) > 0 {
				(*cur)[len(*cur)-1] += line
			}
		} else {
			name, _, _ := strings.Cut(line, ":")
			name = strings.ToLower(strings.TrimSpace(name))
			switch {
			case name == "mime-version":
				cur = nil
				continue
			case strings.HasPrefix(name, "content-"):
				cur = &m.content
			default:
				cur = &m.outer
			}
			*cur = append(*cur, line)
		}
		if err == io.EOF {
			break
		}
	}
	if read > size {
		read = size
	}
	m.body = io.NewSectionReader(msg, read, size-read)
	m.bodySize = size - read
	return m, nil
}

// inner is the MIME entity that gets protected: the content fields, an
// empty line, the body.
func (m *message) inner() (io.Reader, int64) {
	head := strings.Join(m.content, "") + "\r\n"
	return io.MultiReader(strings.NewReader(head), m.body), int64(len(head)) + m.bodySize
}

// EncryptMessage writes msg (an RFC 5322 message with CRLF line ends) as
// an S/MIME application/pkcs7-mime message encrypted to rcpts (RFC 8551
// §3.3): the other header fields stay outside, readable by every hop.
func EncryptMessage(w io.Writer, msg io.ReaderAt, size int64, rcpts []cms.Recipient, opt Options) error {
	m, err := split(msg, size)
	if err != nil {
		return err
	}
	content, n := m.inner()
	if opt.Signer != nil {
		signed, err := signEntity(content, n, opt.Signer, opt.Rand)
		if err != nil {
			return err
		}
		content, n = bytes.NewReader(signed), int64(len(signed))
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, f := range m.outer {
		bw.WriteString(f)
	}
	smimeType := "authEnveloped-data" // RFC 8551 §3.2.2
	if opt.Cipher == cms.AES256CBC {
		smimeType = "enveloped-data"
	}
	fmt.Fprintf(bw, "MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=%s; name=\"smime.p7m\"\r\n"+
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n", smimeType)
	lw := &lineWriter{w: bw}
	enc := base64.NewEncoder(base64.StdEncoding, lw)
	if err := cms.Encrypt(enc, content, n, rcpts, cms.Options{Cipher: opt.Cipher, Rand: opt.Rand}); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if err := lw.end(); err != nil {
		return err
	}
	return bw.Flush()
}

// SignMessage writes msg as multipart/signed (RFC 8551 §3.5.3), not
// encrypted.
func SignMessage(w io.Writer, msg io.ReaderAt, size int64, s *Signer) error {
	m, err := split(msg, size)
	if err != nil {
		return err
	}
	content, n := m.inner()
	signed, err := signEntity(content, n, s, nil)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	for _, f := range m.outer {
		bw.WriteString(f)
	}
	bw.WriteString("MIME-Version: 1.0\r\n")
	bw.Write(signed)
	return bw.Flush()
}

// signEntity returns a multipart/signed entity (its own Content-Type
// field first) over the entity in r.
func signEntity(r io.Reader, n int64, s *Signer, rnd io.Reader) ([]byte, error) {
	if n > MaxSignBytes {
		return nil, fmt.Errorf("smime: %d bytes is more than can be signed (%d)", n, MaxSignBytes)
	}
	entity := make([]byte, n)
	if _, err := io.ReadFull(r, entity); err != nil {
		return nil, err
	}
	sd, err := pkcs7.NewSignedData(entity)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(s.Cert, s.Key, s.Chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	sd.Detach()
	sig, err := sd.Finish()
	if err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	var bnd [18]byte
	if _, err := io.ReadFull(rnd, bnd[:]); err != nil {
		return nil, err
	}
	boundary := "----=_sealpost_" + hex.EncodeToString(bnd[:])
	if bytes.Contains(entity, []byte(boundary)) {
		return nil, errors.New("smime: boundary collision")
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;\r\n\tboundary=\"%s\"\r\n\r\n", boundary)
	fmt.Fprintf(&out, "This is an S/MIME signed message.\r\n\r\n--%s\r\n", boundary)
	out.Write(entity)
	// The boundary's CRLF belongs to the boundary (RFC 2046 §5.1.1), so
	// the signed entity is exactly what was hashed.
	fmt.Fprintf(&out, "\r\n--%s\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"+
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n", boundary)
	lw := &lineWriter{w: &out}
	enc := base64.NewEncoder(base64.StdEncoding, lw)
	enc.Write(sig)
	enc.Close()
	lw.end()
	fmt.Fprintf(&out, "\r\n--%s--\r\n", boundary)
	return out.Bytes(), nil
}

// lineWriter breaks base64 into lines of 76 characters (RFC 2045 §6.8).
type lineWriter struct {
	w   io.Writer
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(76-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
		l.col += k
		p = p[k:]
		if l.col == 76 {
			if _, err := l.w.Write([]byte("\r\n")); err != nil {
				return 0, err
			}
			l.col = 0
		}
	}
	return n, nil
}

func (l *lineWriter) end() error {
	if l.col > 0 {
		l.col = 0
		_, err := l.w.Write([]byte("\r\n"))
		return err
	}
	return nil
}
