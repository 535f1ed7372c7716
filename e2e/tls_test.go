package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"sealpost/internal/testutil"
)

// TestTLSCheckCommand: `sealpost tls check` against a zone signed by knotd
// and validated by unbound: DANE where the TLSA records are authentic, the
// require-TLS list where there are none, an MTA-STS record whose policy
// cannot be fetched reported (mail still goes), a null MX exits 1.
func TestTLSCheckCommand(t *testing.T) {
	zone := `$ORIGIN dane.test.
$TTL 300
@	SOA	ns hostmaster 1 3600 900 604800 300
@	NS	ns
ns	A	127.0.0.1
good	MX	10 mx
plain	MX	10 mx3
sts	MX	10 mx3
_mta-sts.sts	TXT	"v=STSv1; id=5"
nomail	MX	0 .
mx	A	127.0.0.1
mx3	A	127.0.0.1
_25._tcp.mx	TLSA	3 1 1 ` + strings.Repeat("ab", 32) + `
`
	res := testutil.DNSSEC(t, "dane.test", zone, "_25._tcp.mx.dane.test", mdns.TypeTLSA)
	if res == "" {
		return
	}
	g := newGW(t, gwOptions{})
	cfg, _ := os.ReadFile(g.cfgPath)
	cfg = []byte(strings.Replace(string(cfg), "retry_initial = \"1s\"\n", "retry_initial = \"1s\"\ndnssec_trust = true\nrequire_tls_domains = [\"*.dane.test\", \"!sts.dane.test\"]\nresolver = \""+res+"\"\n", 1))
	os.WriteFile(g.cfgPath, cfg, 0o600)
	type report struct {
		Mode, Why, Failure, Fail, ListEntry string
		ListEntryJSON                       string `json:"list_entry"`
		MXAuthentic                         bool   `json:"mx_authentic"`
		MX                                  []struct {
			Host, TLSA, Mode string
			Allowed          bool
		}
	}
	check := func(domain string, wantCode int) report {
		t.Helper()
		out, code := g.cli("tls", "check", domain, "--json")
		var r report
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "{") {
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("%s: %v\n%s", domain, err, out)
				}
			}
		}
		if code != wantCode || r.Mode == "" {
			t.Fatalf("tls check %s: exit %d, want %d:\n%s", domain, code, wantCode, out)
		}
		return r
	}
	if r := check("good.dane.test", 0); r.Mode != "dane" || !r.MXAuthentic || len(r.MX) != 1 || !strings.HasPrefix(r.MX[0].TLSA, "3 1 1 abab") || !r.MX[0].Allowed {
		t.Fatalf("good: %+v", r)
	}
	if r := check("plain.dane.test", 0); r.Mode != "required" || r.ListEntryJSON != "*.dane.test" {
		t.Fatalf("plain: %+v", r)
	}
	if r := check("sts.dane.test", 0); r.Mode != "opportunistic" || r.Failure != "sts-policy-fetch-error" {
		t.Fatalf("sts: %+v", r)
	}
	if r := check("nomail.dane.test", 1); !strings.Contains(r.Fail, "5.1.10") {
		t.Fatalf("null MX: %+v", r)
	}
	out, code := g.cli("tls", "check", "good.dane.test")
	if code != 0 || !strings.Contains(out, "good.dane.test: dane") || !strings.Contains(out, "mx.dane.test") {
		t.Fatalf("text output (exit %d):\n%s", code, out)
	}
	if out, code = g.cli("tls", "refresh", "sts.dane.test"); code != 0 || !strings.Contains(out, "dropped the cached MTA-STS policy") {
		t.Fatalf("refresh (exit %d):\n%s", code, out)
	}
	if out, code = g.cli("tls", "check", "not a domain"); code != 2 {
		t.Fatalf("bad domain (exit %d):\n%s", code, out)
	}
}
