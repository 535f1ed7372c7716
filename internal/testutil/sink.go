// Package testutil has helpers shared by tests: an SMTP sink that records
// what it receives and answers as a test tells it to, and a fake DNS
// resolver.
package testutil

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Received is one message the sink accepted.
type Received struct {
	From  string
	Rcpts []string
	Data  []byte
	TLS   bool
	// RequireTLS: MAIL FROM carried REQUIRETLS (only a sink made by
	// NewRequireTLSSink offers it).
	RequireTLS bool
}

// Sink is an SMTP server on loopback that records accepted messages.
type Sink struct {
	Addr string
	// Rcpt, if set, decides a recipient's reply: nil accepts.
	Rcpt func(rcpt string) error

	mu   sync.Mutex
	msgs []Received
	cond *sync.Cond
	srv  *smtp.Server
}

// NewSink starts a sink; it stops when the test ends.
func NewSink(t testing.TB) *Sink { return newSink(t, nil) }

// NewTLSSink starts a sink that offers STARTTLS with a certificate for
// 127.0.0.1 from a CA of its own; caFile is that CA's certificate (PEM).
func NewTLSSink(t testing.TB) (s *Sink, caFile string) {
	t.Helper()
	tc, caFile := sinkTLSConfig(t)
	return newSink(t, tc), caFile
}

// NewRequireTLSSink is NewTLSSink that also offers REQUIRETLS (RFC 8689)
// after STARTTLS: go-smtp's implementation, a peer written by others.
func NewRequireTLSSink(t testing.TB) (s *Sink, caFile string) {
	t.Helper()
	tc, caFile := sinkTLSConfig(t)
	return newSinkOpts(t, tc, true), caFile
}

// sinkTLSConfig is a server TLS configuration with a certificate for
// 127.0.0.1 and localhost from a new CA, and that CA's PEM file.
func sinkTLSConfig(t testing.TB) (*tls.Config, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, caFile
}

func newSink(t testing.TB, tc *tls.Config) *Sink { return newSinkOpts(t, tc, false) }

// newSinkOpts starts a sink; requireTLS makes it offer REQUIRETLS after
// STARTTLS (set before it serves, so no session sees it change).
func newSinkOpts(t testing.TB, tc *tls.Config, requireTLS bool) *Sink {
	t.Helper()
	s := &Sink{}
	s.cond = sync.NewCond(&s.mu)
	s.srv = smtp.NewServer(sinkBackend{s})
	s.srv.Domain = "sink.test"
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	s.srv.AllowInsecureAuth = true
	s.srv.TLSConfig = tc
	s.srv.EnableREQUIRETLS = requireTLS
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	go s.srv.Serve(l)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// Messages returns a copy of what has been received.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// Wait waits until n messages have arrived or the timeout passes.
func (s *Sink) Wait(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink got %d messages, want %d within %s", len(msgs), n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type sinkBackend struct{ s *Sink }

func (b sinkBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &sinkSession{s: b.s, c: c}, nil
}

type sinkSession struct {
	s     *Sink
	c     *smtp.Conn
	from  string
	rcpts []string
	// requireTLS: this transaction's MAIL FROM had REQUIRETLS.
	requireTLS bool
}

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.from, ss.rcpts = from, nil
	ss.requireTLS = opts != nil && opts.RequireTLS
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.Rcpt != nil {
		if err := ss.s.Rcpt(to); err != nil {
			return err
		}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	_, tls := ss.c.TLSConnectionState()
	ss.s.msgs = append(ss.s.msgs, Received{From: ss.from, Rcpts: ss.rcpts, Data: b, TLS: tls, RequireTLS: ss.requireTLS})
	ss.s.mu.Unlock()
	return nil
}

func (ss *sinkSession) Reset()        {}
func (ss *sinkSession) Logout() error { return nil }

// SMTPError makes an error reply for Sink.Rcpt.
func SMTPError(code int, enh [3]int, msg string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enh), Message: msg}
}

// Resolver is a fake DNS resolver with fixed answers.
type Resolver struct {
	MX  map[string][]*net.MX
	TXT map[string][]string
}

// LookupMX implements deliver.Resolver.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if mx, ok := r.MX[name]; ok {
		return mx, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// LookupTXT answers TXT queries.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if txt, ok := r.TXT[name]; ok {
		return txt, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// Header returns the first value of a header field in a raw message,
// unfolded.
func Header(msg []byte, name string) string {
	hdr, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	unfolded := strings.NewReplacer("\r\n ", " ", "\r\n\t", " ").Replace(string(hdr))
	for _, line := range strings.Split(unfolded, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ErrTemp is a temporary failure for Sink.Rcpt.
var ErrTemp = errors.New("temporary")

// NewSinkTLSRequireTLS is NewSinkTLS with REQUIRETLS (RFC 8689) offered
// after STARTTLS.
func NewSinkTLSRequireTLS(t testing.TB, cert *tls.Certificate) *Sink {
	t.Helper()
	return newSinkOpts(t, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}, true)
}
