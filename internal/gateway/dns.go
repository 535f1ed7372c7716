package gateway

import (
	"crypto/sha256"
	"encoding/hex"

	"sealpost/internal/config"
	"sealpost/internal/dnscheck"
	"sealpost/internal/mailauth"
)

// DNSSettings are the records' inputs for one org domain.
func DNSSettings(cfg *config.Config, signer *mailauth.Signer, domain string) (dnscheck.Settings, error) {
	s := dnscheck.Settings{Domain: domain, Gateway: cfg.SMTP.Hostname, SPFExtra: cfg.DNS.SPFExtra,
		DMARCPolicy: cfg.DNS.DMARCPolicy, DMARCRUA: cfg.DNS.DMARCRUA, TLSRPTRUA: cfg.DNS.TLSRPTRUA, MTASTSMode: cfg.DNS.MTASTSMode}
	if signer != nil {
		recs, err := signer.Records(domain)
		if err != nil {
			return s, err
		}
		for _, r := range recs {
			s.DKIM = append(s.DKIM, dnscheck.KeyRecord{Name: r.Name, Value: r.Value})
		}
	}
	s.MTASTSID = MTASTSID(cfg)
	return s, nil
}

// MTASTSPolicy is the policy file served at /.well-known/mta-sts.txt.
func MTASTSPolicy(cfg *config.Config) string {
	return dnscheck.MTASTSPolicy(cfg.DNS.MTASTSMode, []string{cfg.SMTP.Hostname})
}

// MTASTSID changes whenever the policy does (RFC 8461 §3.1).
func MTASTSID(cfg *config.Config) string {
	h := sha256.Sum256([]byte(MTASTSPolicy(cfg)))
	return hex.EncodeToString(h[:8])
}
