package spf

import (
	"context"
	"net"
	"testing"

	"sealpost/internal/dns"
)

// A record that redirects to itself recursed inside mox v0.0.17 until the
// stack overflowed (a fatal error, not a recoverable panic): any sender
// could have stopped the gateway. It must end as permerror.
func TestRedirectLoopIsPermerror(t *testing.T) {
	t.Parallel()
	r := dns.MockResolver{TXT: map[string][]string{
		"loop.example": {"v=spf1 redirect=loop.example"},
		"a.example":    {"v=spf1 redirect=b.example"},
		"b.example":    {"v=spf1 redirect=a.example"},
		"inc.example":  {"v=spf1 include:inc.example -all"},
	}}
	v := &Verifier{Resolver: r, Hostname: "mx.sealpost.test"}
	for _, d := range []string{"loop.example", "a.example", "inc.example"} {
		res := v.Verify(context.Background(), net.ParseIP("192.0.2.1"), "h.example", "x@"+d)
		if res.Status != Permerror {
			t.Errorf("%s: %s (%s), want permerror", d, res.Status, res.Reason)
		}
	}
}

// A DNS failure is temperror, never none: "none" would let DMARC treat a
// domain whose servers are down as unauthenticated-but-unprotected.
func TestDNSFailureIsTemperror(t *testing.T) {
	t.Parallel()
	r := dns.MockResolver{Fail: map[string]error{"down.example": dns.ErrTemporary}}
	v := &Verifier{Resolver: r}
	res := v.Verify(context.Background(), net.ParseIP("192.0.2.1"), "h.example", "x@down.example")
	if res.Status != Temperror {
		t.Fatalf("%s (%s), want temperror", res.Status, res.Reason)
	}
	res = v.Verify(context.Background(), net.ParseIP("192.0.2.1"), "h.example", "x@nx.example")
	if res.Status != None || res.Domain != "nx.example" || res.Identity != "mailfrom" {
		t.Fatalf("%+v, want none for nx.example by mailfrom", res)
	}
}

func TestNullSenderChecksHelo(t *testing.T) {
	t.Parallel()
	r := dns.MockResolver{TXT: map[string][]string{"mta.example": {"v=spf1 ip4:192.0.2.0/24 -all"}}}
	v := &Verifier{Resolver: r}
	res := v.Verify(context.Background(), net.ParseIP("192.0.2.9"), "mta.example", "")
	if res.Status != Pass || res.Identity != "helo" || res.Domain != "mta.example" {
		t.Fatalf("%+v, want pass for helo mta.example", res)
	}
	res = v.Verify(context.Background(), net.ParseIP("198.51.100.1"), "mta.example", "")
	if res.Status != Fail {
		t.Fatalf("%+v, want fail", res)
	}
}

// FuzzSPFVerify: any record, MAIL FROM and HELO give a result, never a
// crash (the redirect loop above was one).
func FuzzSPFVerify(f *testing.F) {
	f.Add("v=spf1 redirect=a.example", "x@a.example", "h.example")
	f.Add("v=spf1 a:%{h} mx/24 ptr exists:%{ir}.x.example -all", "@a.example", "[192.0.2.1]")
	f.Fuzz(func(t *testing.T, record, mailFrom, helo string) {
		r := dns.MockResolver{TXT: map[string][]string{"a.example": {record}, "b.example": {record}}}
		res := (&Verifier{Resolver: r}).Verify(context.Background(), net.ParseIP("192.0.2.1"), helo, mailFrom)
		if res.Status == "" {
			t.Fatal("empty status")
		}
	})
}
