// Package mailauth signs outbound mail with DKIM (RFC 6376) and will verify
// inbound mail (SPF, DKIM, DMARC, ARC). Signing is our own streaming
// implementation (relaxed/relaxed, SHA-256): a body of any size is hashed as
// it is read, with constant memory. Its output is checked in the tests by two
// independent verifiers, mox's (github.com/mjl-/mox/dkim) and dkimpy. This
// package also owns the keys and the DNS records to publish.
//
// Keys are made at first start in the data directory. The selector names a
// date, never the product (a selector such as "sealpost" would tell an
// attacker what guards the domain). RSA 2048 is what every verifier accepts;
// Ed25519 (RFC 8463) is much cheaper to sign with but not verified by some
// large providers, so "rsa-2048+ed25519" signs with both.
package mailauth

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mjl-/mox/dkim"
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
// for domain with every key (RFC 6376 §5; relaxed/relaxed canonicalisation,
// SHA-256; Ed25519 per RFC 8463). localpart is accepted for the i= tag but
// not used: i= defaults to "@domain", which says no more than we know.
//
// The body is hashed as it streams, so signing needs little memory whatever
// the message size.
func (s *Signer) Sign(ctx context.Context, localpart, domain string, msg io.ReaderAt) (string, error) {
	if len(s.keys) == 0 {
		return "", nil
	}
	br := bufio.NewReaderSize(io.NewSectionReader(msg, 0, 1<<62), 32<<10)
	fields, err := readHeader(br, 1<<20)
	if err != nil {
		return "", err
	}
	froms := 0
	counts := map[string]int{}
	for _, f := range fields {
		counts[f.lname]++
		if f.lname == "from" {
			froms++
		}
	}
	if froms != 1 {
		return "", fmt.Errorf("dkim: message has %d From fields, need exactly 1 (RFC 6376 §5.4)", froms)
	}
	rb := newRelaxedBody(sha256.New())
	if _, err := io.Copy(rb, br); err != nil {
		return "", err
	}
	bh := base64.StdEncoding.EncodeToString(rb.Sum())

	// h=: every listed field present, once per occurrence, and each listed
	// name once more (over-signing: no instance may be added later,
	// RFC 6376 §8.15).
	var names []string
	for _, h := range SignedHeaders {
		for i := 0; i < counts[strings.ToLower(h)]; i++ {
			names = append(names, h)
		}
		names = append(names, h)
	}
	// The fields hashed, in h= order, each name taking its instances from
	// the bottom up (RFC 6376 §5.4.2).
	used := map[string]int{}
	var signed strings.Builder
	for _, n := range names {
		ln := strings.ToLower(n)
		used[ln]++
		k := 0
		for i := len(fields) - 1; i >= 0; i-- {
			if fields[i].lname == ln {
				if k++; k == used[ln] {
					signed.WriteString(relaxedHeader(fields[i].raw))
					break
				}
			}
		}
	}
	now := time.Now().Unix()
	var out strings.Builder
	for _, k := range s.keys {
		alg := "rsa-sha256"
		if k.Algorithm == "ed25519" {
			alg = "ed25519-sha256"
		}
		tags := []string{"v=1", "a=" + alg, "c=relaxed/relaxed", "d=" + domain, "s=" + k.Selector, "t=" + strconv.FormatInt(now, 10), "h=" + strings.Join(names, ":"), "bh=" + bh}
		hdr := fold("DKIM-Signature:", tags) + "\r\n\tb="
		// RFC 6376 §3.7: the signature covers the signed fields and this
		// field with an empty b=, canonicalised, without its final CRLF.
		canon := relaxedHeader(hdr)
		data := sha256.Sum256([]byte(signed.String() + strings.TrimSuffix(canon, "\r\n")))
		var sig []byte
		switch key := k.Signer.(type) {
		case *rsa.PrivateKey:
			sig, err = rsa.SignPKCS1v15(nil, key, crypto.SHA256, data[:])
		case ed25519.PrivateKey:
			sig = ed25519.Sign(key, data[:]) // RFC 8463 §3: Ed25519 over the SHA-256 digest
		default:
			err = fmt.Errorf("dkim: unsupported key %T", k.Signer)
		}
		if err != nil {
			return "", err
		}
		out.WriteString(hdr)
		b64 := base64.StdEncoding.EncodeToString(sig)
		for len(b64) > 0 {
			n := min(len(b64), 72)
			out.WriteString(b64[:n])
			b64 = b64[n:]
			if len(b64) > 0 {
				out.WriteString("\r\n\t ")
			}
		}
		out.WriteString("\r\n")
	}
	return out.String(), nil
}

// fold joins tags with "; ", breaking lines before they pass 78 characters.
func fold(name string, tags []string) string {
	var b strings.Builder
	b.WriteString(name)
	lineLen := len(name)
	for i, t := range tags {
		sep := " "
		if i > 0 {
			b.WriteByte(';')
			lineLen++
		}
		for len(t) > 0 {
			room := 78 - lineLen - len(sep)
			if room < 10 {
				b.WriteString("\r\n\t")
				lineLen, sep = 1, ""
				room = 76
			}
			n := min(len(t), room)
			if n < len(t) && !strings.HasPrefix(t, "h=") && !strings.HasPrefix(t, "bh=") {
				n = len(t) // only long lists and hashes are split
			}
			if strings.HasPrefix(t, "h=") && n < len(t) {
				// split h= only after a colon
				if j := strings.LastIndexByte(t[:n], ':'); j > 0 {
					n = j + 1
				}
			}
			b.WriteString(sep + t[:n])
			lineLen += len(sep) + n
			t, sep = t[n:], ""
			if len(t) > 0 {
				b.WriteString("\r\n\t")
				lineLen = 1
			}
		}
	}
	b.WriteByte(';')
	return b.String()
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
