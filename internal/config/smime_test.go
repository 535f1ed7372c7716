package config

import (
	"strings"
	"testing"
)

// TestSMIMEKeys: defaults, and each bad [smime] value is an error naming
// its key and line.
func TestSMIMEKeys(t *testing.T) {
	c, err := Parse("sealpost.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.SMIME; s.Enabled || s.Cipher != "aes-256-gcm" || s.RSAKeyTransport != "oaep" || s.Revocation != "require" || s.Offline {
		t.Fatalf("defaults: %+v", s)
	}
	for _, tc := range []struct{ toml, key string }{
		{"enabled = true", "smime.trust_anchors"},
		{`cipher = "3des"`, "smime.cipher"},
		{`rsa_key_transport = "raw"`, "smime.rsa_key_transport"},
		{`revocation = "maybe"`, "smime.revocation"},
		{`sign_cert = "a.pem"`, "smime.sign_cert"},
	} {
		_, err := Parse("sealpost.toml", []byte(minimal+"\n[smime]\n"+tc.toml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v", tc.toml, err)
		}
		if e, ok := err.(*Error); ok && e.Line == 0 && tc.key != "smime.trust_anchors" && tc.key != "smime.sign_cert" {
			t.Errorf("%s: no line in %v", tc.toml, err)
		}
	}
	if _, err := Parse("sealpost.toml", []byte(minimal+"\n[smime]\nenabled = true\ntrust_anchors = \"anchors.pem\"\ncipher = \"aes-256-cbc\"\n")); err != nil {
		t.Fatal(err)
	}
}
