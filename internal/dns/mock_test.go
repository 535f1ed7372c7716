package dns

import (
	"context"
	"net"
	"testing"
)

func TestMockResolverClassifiesErrors(t *testing.T) {
	ctx := context.Background()
	m := MockResolver{
		TXT:       map[string][]string{"example.org": {"v=spf1 -all"}},
		IP:        map[string][]net.IP{"mx.example.org": {net.ParseIP("192.0.2.1")}},
		TLSA:      map[string][]TLSA{"_25._tcp.mx.example.org": {{Usage: 3, Selector: 1, MatchingType: 1}}},
		Fail:      map[string]error{"broken.example": ErrTemporary},
		Authentic: map[string]bool{"_25._tcp.mx.example.org": true},
	}
	if txt, _, err := m.LookupTXT(ctx, "Example.ORG."); err != nil || len(txt) != 1 {
		t.Fatalf("TXT: %v %v", txt, err)
	}
	_, _, err := m.LookupMX(ctx, "example.org")
	if !IsNotFound(err) || IsNXDomain(err) || IsTemporary(err) {
		t.Fatalf("MX on existing name must be NODATA, got %v", err)
	}
	_, _, err = m.LookupTXT(ctx, "nope.example.org")
	if !IsNotFound(err) || !IsNXDomain(err) {
		t.Fatalf("absent name must be NXDOMAIN, got %v", err)
	}
	_, _, err = m.LookupTXT(ctx, "broken.example")
	if !IsTemporary(err) || IsNotFound(err) {
		t.Fatalf("injected failure must be temporary, got %v", err)
	}
	recs, res, err := m.LookupTLSA(ctx, 25, "tcp", "MX.example.org")
	if err != nil || len(recs) != 1 || !res.Authentic {
		t.Fatalf("TLSA: %v %v %v", recs, res, err)
	}
	if _, res, _ := m.LookupIP(ctx, "mx.example.org"); res.Authentic {
		t.Fatal("unlisted name must not be authentic")
	}
}
