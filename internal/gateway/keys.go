package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"sealpost/internal/fsx"
	"sealpost/internal/seal"
)

// LoadOrCreateMasterKey returns the installation's at-rest key from path,
// creating it (32 random bytes, mode 0600) on first use. The spool and every
// sealed blob are encrypted under keys derived from it: keep it off backups
// of the data, or the backups can be read.
func LoadOrCreateMasterKey(path string) ([]byte, error) {
	return loadOrCreateMasterKey(fsx.OS{}, path)
}

// loadOrCreateMasterKey writes a new key durably (fsynced, renamed into
// place, directory fsynced) before returning it: a key lost to a power cut
// after the spool used it would leave every spooled message unreadable.
func loadOrCreateMasterKey(fsys fsx.FS, path string) ([]byte, error) {
	b, err := fsx.ReadFile(fsys, path)
	if err == nil {
		if len(b) != seal.KeyLen {
			return nil, fmt.Errorf("master key %s: want %d bytes, found %d", path, seal.KeyLen, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := fsys.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	key := make([]byte, seal.KeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := fsx.WriteFile(fsys, path, key, 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// LoadOrCreateTLS loads the certificate pair, or, when both paths are the
// defaults in the keys directory and absent, makes a self-signed one for
// hostname (ECDSA P-256, 2 years).
func LoadOrCreateTLS(certPath, keyPath, hostname string, create bool) (*tls.Config, error) {
	if _, err := os.Stat(certPath); errors.Is(err, os.ErrNotExist) && create {
		if err := selfSigned(certPath, keyPath, hostname); err != nil {
			return nil, fmt.Errorf("making a self-signed certificate: %w", err)
		}
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate %s: %w", certPath, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func selfSigned(certPath, keyPath, hostname string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(2 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{hostname},
	}
	if ip := net.ParseIP(hostname); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
		tmpl.DNSNames = nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return err
	}
	if err := fsx.WriteFile(fsx.OS{}, keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return fsx.WriteFile(fsx.OS{}, certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
