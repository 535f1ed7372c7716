package config

import (
	"errors"
	"strings"
	"testing"
)

// TestPreambleDomains: encryption.preamble_domains is read lower-cased,
// "*" matches every domain, and the key is refused (named, with a reason
// a person can act on) without the portal its link leads into.
func TestPreambleDomains(t *testing.T) {
	c, err := Parse("sp.toml", []byte(minimal+"\n[encryption]\npreamble_domains = [\"Partner.Example\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Encryption.Preamble("partner.example") || c.Encryption.Preamble("other.example") {
		t.Fatalf("preamble_domains %v", c.Encryption.PreambleDomains)
	}
	if c, err = Parse("sp.toml", []byte(minimal+"\n[encryption]\npreamble_domains = [\"*\"]\n")); err != nil || !c.Encryption.Preamble("any.example") {
		t.Fatalf("*: %v", err)
	}
	if d, _ := Parse("sp.toml", []byte(minimal)); d.Encryption.Preamble("partner.example") {
		t.Fatal("a preamble by default")
	}
	for extra, want := range map[string]string{
		"\n[encryption]\npreamble_domains = [\"bob@partner.example\"]\n":                  "want a domain",
		"\n[encryption]\npreamble_domains = [\"p.example\"]\n[portal]\nenabled = false\n": "needs portal.enabled",
	} {
		_, err := Parse("sp.toml", []byte(minimal+extra))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "encryption.preamble_domains" || !strings.Contains(ce.Error(), want) {
			t.Errorf("%q: %v, want %q", extra, err, want)
		}
	}
}
