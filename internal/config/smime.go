package config

// SMIME is the [smime] table: encryption to recipients' S/MIME
// certificates (policy action encrypt-smime). Off until trust anchors are
// configured: S/MIME never trusts the system's web roots.
type SMIME struct {
	Enabled bool `toml:"enabled"`
	// TrustAnchors is a PEM file of the CA certificates recipients'
	// certificates must chain to (relative paths: under data_dir).
	TrustAnchors string `toml:"trust_anchors"`
	// Intermediates is an optional PEM file of intermediate CA certificates.
	Intermediates string `toml:"intermediates"`
	// CertificatesDir holds recipients' certificates (PEM or DER), read
	// beside the key store.
	CertificatesDir string `toml:"certificates_dir"`
	// Cipher: aes-256-gcm (AuthEnvelopedData, S/MIME 4.0) or aes-256-cbc
	// (EnvelopedData, for clients older than S/MIME 4.0).
	Cipher string `toml:"cipher"`
	// RSAKeyTransport: oaep (RSAES-OAEP SHA-256) or pkcs1v15 (legacy).
	RSAKeyTransport string `toml:"rsa_key_transport"`
	// Revocation: require (status unknown: not used), best-effort (used,
	// and the audit says unknown) or off.
	Revocation string `toml:"revocation"`
	// Offline: never fetch CRLs or OCSP; only what is in crl_dir counts.
	Offline bool `toml:"offline"`
	// CRLDir holds CRLs (PEM or DER) and OCSP responses (*.ocsp), placed
	// by the operator or fetched.
	CRLDir string `toml:"crl_dir"`
	// MatchSubjectEmail also matches the subject's emailAddress of
	// certificates that have no subjectAltName rfc822Name (older CAs).
	MatchSubjectEmail bool `toml:"match_subject_email"`
	// SignCert and SignKey (PEM) sign every encrypted message first.
	SignCert string `toml:"sign_cert"`
	SignKey  string `toml:"sign_key"`
}

func (c *Config) validateSMIME() error {
	s := &c.SMIME
	if s.Cipher == "" {
		s.Cipher = "aes-256-gcm"
	}
	if s.RSAKeyTransport == "" {
		s.RSAKeyTransport = "oaep"
	}
	if s.Revocation == "" {
		s.Revocation = "require"
	}
	if s.CertificatesDir == "" {
		s.CertificatesDir = "smime/certs"
	}
	if s.CRLDir == "" {
		s.CRLDir = "smime/crls"
	}
	switch s.Cipher {
	case "aes-256-gcm", "aes-256-cbc":
	default:
		return c.errf("smime.cipher", "%q: want aes-256-gcm or aes-256-cbc", s.Cipher)
	}
	switch s.RSAKeyTransport {
	case "oaep", "pkcs1v15":
	default:
		return c.errf("smime.rsa_key_transport", "%q: want oaep or pkcs1v15", s.RSAKeyTransport)
	}
	switch s.Revocation {
	case "require", "best-effort", "off":
	default:
		return c.errf("smime.revocation", "%q: want require, best-effort or off", s.Revocation)
	}
	if s.Enabled && s.TrustAnchors == "" {
		return c.errf("smime.trust_anchors", "must be set when smime.enabled is true: the CA certificates recipients' certificates chain to")
	}
	if (s.SignCert == "") != (s.SignKey == "") {
		return c.errf("smime.sign_cert", "sign_cert and sign_key are set together")
	}
	return nil
}
