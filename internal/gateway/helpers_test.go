package gateway

import (
	"context"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// verifyDKIM checks msg's DKIM signatures with mox's verifier against the
// records the gateway says to publish.
func verifyDKIM(t *testing.T, gw *Gateway, msg []byte) {
	t.Helper()
	recs, err := gw.Signer.Records("example.gov.uk")
	if err != nil {
		t.Fatal(err)
	}
	txt := map[string][]string{}
	for _, r := range recs {
		txt[r.Name+"."] = []string{r.Value}
	}
	res := dns.MockResolver{TXT: txt}
	results, err := dkim.Verify(context.Background(), slog.Default(), res, false, dkim.DefaultPolicy, strings.NewReader(string(msg)), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatal("no DKIM results")
	}
	for _, r := range results {
		if r.Status != dkim.StatusPass {
			t.Fatalf("DKIM %s: %v", r.Status, r.Err)
		}
	}
}
