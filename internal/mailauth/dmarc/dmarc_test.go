package dmarc

import (
	"context"
	"net"
	"reflect"
	"testing"

	"sealpost/internal/dns"
)

func TestWalkNames(t *testing.T) {
	// RFC 9989 §4.10: at most eight queries; a long name jumps to its last
	// seven labels.
	got := walkNames("a.b.c.d.e.f.g.h.i.example.com")
	want := []string{"a.b.c.d.e.f.g.h.i.example.com", "e.f.g.h.i.example.com", "f.g.h.i.example.com",
		"g.h.i.example.com", "h.i.example.com", "i.example.com", "example.com", "com"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("walk %v\nwant %v", got, want)
	}
	if got := walkNames("mail.example.com"); !reflect.DeepEqual(got, []string{"mail.example.com", "example.com", "com"}) {
		t.Fatal(got)
	}
}

func resolver() dns.MockResolver {
	return dns.MockResolver{
		TXT: map[string][]string{
			"_dmarc.example.com":         {"v=DMARC1; p=reject; sp=quarantine; np=reject"},
			"_dmarc.test.example":        {"v=DMARC1; p=reject; t=y"},
			"_dmarc.strict.example":      {"v=DMARC1; p=reject; adkim=s; aspf=s"},
			"_dmarc.gov.uk":              {"v=DMARC1; p=none; psd=y"},
			"_dmarc.council.gov.uk":      {"v=DMARC1; p=reject; pct=0"},
			"_dmarc.dup.example":         {"v=DMARC1; p=none", "v=DMARC1; p=reject"},
			"_dmarc.psdn.example":        {"v=DMARC1; p=quarantine; psd=n"},
			"_dmarc.sub.psdn.example":    {"v=DMARC1; p=none"},
			"_dmarc.broken.example":      nil,
			"mail.example.com":           {"x"},
			"_dmarc.nopolicy.example":    {"v=DMARC1; rua=mailto:a@nopolicy.example"},
			"_dmarc.notdmarc.example":    {"v=spf1 -all"},
			"_dmarc.case.example":        {"v=DMARC1; P=Reject"},
			"_dmarc.other-org.example":   {"v=DMARC1; p=reject"},
			"_dmarc.second.council.test": {"v=DMARC1; p=reject"},
		},
		IP:   map[string][]net.IP{"exists.example.com": {net.ParseIP("192.0.2.1")}},
		Fail: map[string]error{"_dmarc.tempfail.example": dns.ErrTemporary},
	}
}

func TestEvaluate(t *testing.T) {
	ctx := context.Background()
	e := &Evaluator{Resolver: resolver()}
	cases := []struct {
		name      string
		in        Input
		status    string
		policy    Policy
		recDomain string
		orgDomain string
	}{
		{"dkim aligned relaxed", Input{From: "example.com", DKIMDomains: []string{"mail.example.com"}}, "pass", PolicyReject, "example.com", "example.com"},
		{"spf aligned relaxed", Input{From: "mail.example.com", SPFDomain: "example.com"}, "pass", PolicyQuarantine, "example.com", "example.com"},
		{"unaligned fails with p", Input{From: "example.com", SPFDomain: "attacker.example"}, "fail", PolicyReject, "example.com", "example.com"},
		{"existing subdomain uses sp", Input{From: "exists.example.com"}, "fail", PolicyQuarantine, "example.com", "example.com"},
		{"non-existent subdomain uses np", Input{From: "nx.example.com"}, "fail", PolicyReject, "example.com", "example.com"},
		{"t=y lowers reject to quarantine", Input{From: "test.example"}, "fail", PolicyQuarantine, "test.example", "test.example"},
		{"strict alignment refuses subdomain", Input{From: "strict.example", DKIMDomains: []string{"mail.strict.example"}}, "fail", PolicyReject, "strict.example", "strict.example"},
		{"strict alignment exact match", Input{From: "strict.example", SPFDomain: "STRICT.example."}, "pass", PolicyReject, "strict.example", "strict.example"},
		{"psd=y: org is one below the PSD", Input{From: "www.council.gov.uk", DKIMDomains: []string{"council.gov.uk"}}, "pass", PolicyReject, "council.gov.uk", "council.gov.uk"},
		{"psd=y: sibling under PSD is another org", Input{From: "council.gov.uk", DKIMDomains: []string{"other.gov.uk"}}, "fail", PolicyReject, "council.gov.uk", "council.gov.uk"},
		{"pct is ignored", Input{From: "council.gov.uk"}, "fail", PolicyReject, "council.gov.uk", "council.gov.uk"},
		{"psd=n names the org above a subdomain record", Input{From: "x.sub.psdn.example", DKIMDomains: []string{"psdn.example"}}, "pass", PolicyNone, "sub.psdn.example", "psdn.example"},
		{"two records: none applies", Input{From: "dup.example"}, "none", "", "", ""},
		{"no record", Input{From: "nothing.example"}, "none", "", "", ""},
		{"record without p is none", Input{From: "nopolicy.example"}, "fail", PolicyNone, "nopolicy.example", "nopolicy.example"},
		{"not a DMARC record", Input{From: "notdmarc.example"}, "none", "", "", ""},
		{"tag names are case-insensitive", Input{From: "case.example"}, "fail", PolicyReject, "case.example", "case.example"},
		{"DNS failure is temperror, not none", Input{From: "tempfail.example"}, "temperror", "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.Evaluate(ctx, c.in)
			if r.Status != c.status || r.Policy != c.policy || r.RecordDomain != c.recDomain || r.OrgDomain != c.orgDomain {
				t.Fatalf("got %+v", r)
			}
		})
	}
}

// TestLegacySwitch: RFC 7489 uses the public suffix list, so gov.uk's
// psd=y record is never consulted and t= is not honoured.
func TestLegacySwitch(t *testing.T) {
	ctx := context.Background()
	e := &Evaluator{Resolver: resolver(), Legacy: true}
	r := e.Evaluate(ctx, Input{From: "www.council.gov.uk", DKIMDomains: []string{"council.gov.uk"}})
	if r.Status != "pass" || r.OrgDomain != "council.gov.uk" {
		t.Fatalf("legacy relaxed: %+v", r)
	}
	if r := e.Evaluate(ctx, Input{From: "test.example"}); r.Policy != PolicyReject {
		t.Fatalf("legacy ignores t=: %+v", r)
	}
	if r := e.Evaluate(ctx, Input{From: "nx.example.com"}); r.Policy != PolicyQuarantine {
		t.Fatalf("legacy has no np=: %+v", r)
	}
}
