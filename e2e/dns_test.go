package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestDNSCommands: the records to publish, the MTA-STS policy file served
// by the running gateway, and a check against a resolver that does not
// answer: every record "could not query" (never "missing"), exit 1.
func TestDNSCommands(t *testing.T) {
	g := newGW(t, gwOptions{})
	out, code := g.cli("dns", "records", "--json")
	var r struct {
		Records []struct{ Name, Type, Value string }
		Policy  string `json:"mta_sts_policy"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("dns records (exit %d):\n%s", code, out)
	}
	want := map[string]string{"example.gov.uk.": "v=spf1 a:gw.example.gov.uk -all", "_dmarc.example.gov.uk.": "v=DMARC1; p=reject; rua=mailto:dmarc-rua@dmarc.service.gov.uk"}
	seen := map[string]bool{}
	for _, rec := range r.Records {
		if v, ok := want[rec.Name]; ok && rec.Type == "TXT" && rec.Value == v {
			seen[rec.Name] = true
		}
		if strings.HasSuffix(rec.Name, "._domainkey.example.gov.uk.") && strings.HasPrefix(rec.Value, "v=DKIM1;k=ed25519;p=") {
			seen["dkim"] = true
		}
	}
	if len(seen) != 3 || !strings.Contains(r.Policy, "mx: gw.example.gov.uk") {
		t.Fatalf("records: %v\n%s", seen, out)
	}
	g.start()
	resp, err := http.Get("http://" + g.web + "/.well-known/mta-sts.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != r.Policy {
		t.Fatalf("served policy %q, want %q", body, r.Policy)
	}
	out, code = g.cli("dns", "check", "example.gov.uk", "--resolver", freePort(t))
	if code != 1 || strings.Contains(out, "MISSING") || strings.Count(out, "COULD NOT QUERY") != 6 || !strings.Contains(out, "could not query any record") {
		t.Fatalf("dns check (exit %d):\n%s", code, out)
	}
}
