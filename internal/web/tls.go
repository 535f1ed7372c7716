package web

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Certificates holds the web listener's certificate. Load swaps it
// atomically, so a renewed certificate is picked up on SIGHUP by new
// handshakes while open connections keep the one they began with.
type Certificates struct {
	cert atomic.Pointer[tls.Certificate]
}

// Load reads a PEM certificate chain and key; on error the one in use is
// kept.
func (c *Certificates) Load(certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("web.tls_cert %s / web.tls_key %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("web.tls_cert %s: %w", certFile, err)
	}
	cert.Leaf = leaf
	c.cert.Store(&cert)
	return nil
}

// Current is the certificate in use (nil before the first Load).
func (c *Certificates) Current() *tls.Certificate { return c.cert.Load() }

// aeadSuites are the TLS 1.2 suites offered: ECDHE key exchange (forward
// secrecy) with an AEAD cipher only. No CBC (Lucky13, POODLE-style padding
// oracles), no SHA-1 MACs, no static RSA key exchange. TLS 1.3's suites
// are all AEAD and not configurable. This is the "intermediate" profile
// of Mozilla's server-side TLS guidance.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// TLSConfig is the web listener's TLS configuration over certs.
func TLSConfig(certs *Certificates) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: aeadSuites,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := certs.Current(); c != nil {
				return c, nil
			}
			return nil, fmt.Errorf("no certificate loaded")
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
}

// rotateTickets gives cfg fresh session-ticket keys at every tick, keeping
// the previous key to decrypt tickets issued before the last rotation. A
// key that is never changed lets whoever obtains it decrypt every session
// resumed with it (RFC 8446 §8 and RFC 5077 §5.5 on ticket key lifetime),
// which undoes forward secrecy; so keys live at most two periods.
func rotateTickets(ctx context.Context, wg *sync.WaitGroup, cfg *tls.Config, tick <-chan time.Time) error {
	var prev [32]byte
	if _, err := rand.Read(prev[:]); err != nil {
		return err
	}
	cfg.SetSessionTicketKeys([][32]byte{prev})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick:
				var next [32]byte
				if _, err := rand.Read(next[:]); err != nil {
					continue
				}
				cfg.SetSessionTicketKeys([][32]byte{next, prev})
				prev = next
			}
		}
	}()
	return nil
}
