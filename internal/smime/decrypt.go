package smime

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"sealpost/internal/cms"
)

// KeyPair is a staff member's certificate and private key, held by the
// organisation for decrypting inbound mail.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.PrivateKey
}

// ErrNotEncrypted: the message is not application/pkcs7-mime enveloped.
var ErrNotEncrypted = errors.New("smime: not an S/MIME encrypted message")

// maxInbound bounds what DecryptMessage holds: inbound mail is already
// bounded by smtp.max_message_bytes; this is a second fence.
const maxInbound = 256 << 20

// DecryptMessage reverses EncryptMessage for inbound mail (RFC 8551 §3.3):
// msg is an RFC 5322 message whose top level is application/pkcs7-mime
// with smime-type enveloped-data or authEnveloped-data (or none, as old
// clients send); the result is the message with the decrypted entity in
// place of the encrypted one, and the key that opened it. A message for
// none of keys is ErrNotForKey-wrapped; anything that cannot be parsed or
// fails authentication is an error, never content.
func DecryptMessage(msg []byte, keys []KeyPair) ([]byte, *KeyPair, error) {
	if len(msg) > maxInbound {
		return nil, nil, fmt.Errorf("smime: message larger than %d bytes", maxInbound)
	}
	m, err := split(bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		return nil, nil, err
	}
	var ctype, cte string
	for _, f := range m.content {
		name, value, _ := strings.Cut(f, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-type":
			ctype = value
		case "content-transfer-encoding":
			cte = strings.ToLower(strings.TrimSpace(value))
		}
	}
	mt, params, err := mime.ParseMediaType(strings.TrimSpace(ctype))
	if err != nil || (mt != "application/pkcs7-mime" && mt != "application/x-pkcs7-mime") {
		return nil, nil, ErrNotEncrypted
	}
	switch strings.ToLower(params["smime-type"]) {
	case "", "enveloped-data", "authenveloped-data":
	default:
		return nil, nil, ErrNotEncrypted // signed-data, compressed-data, certs-only
	}
	body, err := io.ReadAll(m.body)
	if err != nil {
		return nil, nil, err
	}
	var der []byte
	switch cte {
	case "base64":
		der, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, &stripSpace{r: bytes.NewReader(body)}))
		if err != nil {
			return nil, nil, fmt.Errorf("smime: base64: %w", err)
		}
	case "binary", "", "7bit", "8bit":
		der = body
	default:
		return nil, nil, fmt.Errorf("smime: transfer encoding %q is not supported", cte)
	}
	for i := range keys {
		content, err := cms.Decrypt(der, keys[i].Cert, keys[i].Key)
		if errors.Is(err, cms.ErrNotForKey) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		var out bytes.Buffer
		for _, f := range m.outer {
			out.WriteString(f)
		}
		out.WriteString("MIME-Version: 1.0\r\n")
		out.Write(content)
		return out.Bytes(), &keys[i], nil
	}
	return nil, nil, fmt.Errorf("smime: %w", cms.ErrNotForKey)
}

// stripSpace drops line breaks and spaces from base64 (RFC 2045 §6.8).
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		k := 0
		for _, b := range p[:n] {
			if b != '\r' && b != '\n' && b != ' ' && b != '\t' {
				p[k] = b
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}
