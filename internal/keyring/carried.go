package keyring

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"strings"

	"github.com/smallstep/pkcs7"
)

// Limits of Carried: inbound mail is hostile input.
const (
	carriedDepth   = 8
	carriedMaxKey  = 256 << 10 // one key or signature part
	carriedMaxKeys = 8
)

// Carried finds the keys an inbound message carries for Harvest: OpenPGP
// certificates attached as application/pgp-keys (RFC 3156 §7), and the
// signer's certificate of an S/MIME multipart/signed (RFC 8551 §3.5) whose
// signature verifies over the signed part. A signature that does not
// verify yields nothing: its certificate may be anyone's. Certificates
// merely included in a signature (the chain) are not taken.
func Carried(msg []byte) [][]byte {
	var out [][]byte
	carried(msg, 0, &out)
	return out
}

func carried(entity []byte, depth int, out *[][]byte) {
	if depth > carriedDepth || len(*out) >= carriedMaxKeys {
		return
	}
	h, body, err := splitEntity(entity)
	if err != nil {
		return
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return
	}
	switch {
	case mt == "application/pgp-keys":
		if b, err := decodeBody(h, body); err == nil && len(b) <= carriedMaxKey {
			*out = append(*out, b)
		}
	case mt == "multipart/signed" && (params["protocol"] == "application/pkcs7-signature" || params["protocol"] == "application/x-pkcs7-signature"):
		parts := splitMultipart(body, params["boundary"])
		if len(parts) != 2 {
			return
		}
		if c := smimeSigner(parts[0], parts[1]); c != nil {
			*out = append(*out, c)
		}
		carried(parts[0], depth+1, out)
	case strings.HasPrefix(mt, "multipart/"):
		for _, p := range splitMultipart(body, params["boundary"]) {
			carried(p, depth+1, out)
		}
	}
}

// smimeSigner is the DER of the certificate whose signature in sigPart
// verifies over signed (the first part's bytes exactly, RFC 8551 §3.5),
// or nil.
func smimeSigner(signed, sigPart []byte) []byte {
	h, body, err := splitEntity(sigPart)
	if err != nil {
		return nil
	}
	der, err := decodeBody(h, body)
	if err != nil || len(der) > carriedMaxKey {
		return nil
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil
	}
	p7.Content = signed
	if p7.Verify() != nil {
		return nil
	}
	s := p7.GetOnlySigner()
	if s == nil {
		return nil
	}
	return s.Raw
}

// splitEntity separates a MIME entity's header from its body.
func splitEntity(b []byte) (textproto.MIMEHeader, []byte, error) {
	r := bufio.NewReader(bytes.NewReader(b))
	h, err := textproto.NewReader(r).ReadMIMEHeader()
	if err != nil && !(errors.Is(err, io.EOF) && len(h) > 0) {
		return nil, nil, err
	}
	rest, _ := io.ReadAll(r)
	return h, rest, nil
}

// splitMultipart returns the raw bytes of each body part (RFC 2046 §5.1.1:
// the CRLF before a delimiter belongs to the delimiter).
func splitMultipart(body []byte, boundary string) [][]byte {
	if boundary == "" {
		return nil
	}
	delim := []byte("--" + boundary)
	var parts [][]byte
	i := bytes.Index(body, delim)
	if i < 0 {
		return nil
	}
	for {
		rest := body[i+len(delim):]
		if bytes.HasPrefix(rest, []byte("--")) {
			return parts
		}
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return parts
		}
		rest = rest[nl+1:]
		j := bytes.Index(rest, append([]byte("\n"), delim...))
		if j < 0 {
			return parts // no closing delimiter: the part is not taken
		}
		part := rest[:j]
		part = bytes.TrimSuffix(part, []byte("\r"))
		parts = append(parts, part)
		if len(parts) > 100 {
			return parts
		}
		i = len(body) - len(rest) + j + 1
	}
}

func decodeBody(h textproto.MIMEHeader, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		return io.ReadAll(base64.NewDecoder(base64.StdEncoding, &stripSpace{r: bytes.NewReader(body)}))
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	default:
		return body, nil
	}
}

// stripSpace drops the line breaks and blanks of a base64 body.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			p[j] = c
			j++
		}
	}
	return j, err
}
