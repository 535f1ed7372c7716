package gateway

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"
	"github.com/pquerna/otp/totp"
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

// consoleSignIn adds a console user with role and signs a browser in:
// password, then enrolment of an authenticator with its first code.
func consoleSignIn(t *testing.T, e *env, user, role string) *webClient {
	t.Helper()
	pw := addConsoleUser(t, e.gw.Store, user, role)
	b := newBrowser(t, e)
	b.get("/console/login")
	st, page := b.post("/console/login", url.Values{"user": {user}, "password": {pw}})
	secret := secretRe.FindStringSubmatch(page)
	if st != 200 || secret == nil {
		t.Fatalf("%s password step: %d\n%.1500s", user, st, page)
	}
	code, _ := totp.GenerateCode(secret[1], time.Now())
	if st, page := b.post("/console/totp", url.Values{"code": {code}}); st != 200 || !strings.Contains(page, "Dashboard") {
		t.Fatalf("%s enrolment: %d\n%.1500s", user, st, page)
	}
	return b
}
