package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"sealpost/internal/api"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

// TestAPIThroughOpenAPI exercises every endpoint the OpenAPI document
// lists (and fails if one is left out), with read and admin tokens.
func TestAPIThroughOpenAPI(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	mk := func(name, scope string) string {
		tok := "sp_test_token_" + name + "_0123456789"
		h := sha256.Sum256([]byte(tok))
		if err := e.gw.Store.AddAPIToken(ctx, &store.APIToken{Name: name, Hash: h[:], Scope: scope}); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	read, admin := mk("monitor", "read"), mk("ops", "admin")
	base := "http://" + e.gw.WebAddr.String()
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	exercised := map[string]bool{}
	call := func(method, tmpl, path, tok, ctype, body string, want int) map[string]any {
		t.Helper()
		exercised[method+" "+tmpl] = true
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d\n%s", method, path, resp.StatusCode, want, b)
		}
		var out map[string]any
		json.Unmarshal(b, &out)
		if out == nil {
			out = map[string]any{"raw": string(b)}
		}
		return out
	}
	// Some mail: a held message, a queued one (the next hop refuses it for
	// now), a rejected one.
	e.sink.Rcpt = func(r string) error {
		if strings.HasPrefix(r, "later@") {
			return testutil.SMTPError(451, [3]int{4, 2, 0}, "try later")
		}
		return nil
	}
	_, reply := outbound(t, e, "staff@example.gov.uk", []string{"boss@examp1e.gov.uk"}, message("staff@example.gov.uk", "boss@examp1e.gov.uk", "minutes", "the minutes"))
	heldID := msgID(t, reply)
	_, reply = outbound(t, e, "staff@example.gov.uk", []string{"later@busy.example"}, message("staff@example.gov.uk", "later@busy.example", "queued", "hello"))
	queuedID := msgID(t, reply)
	_, reply = outbound(t, e, "staff@example.gov.uk", []string{"later@busy.example"}, message("staff@example.gov.uk", "later@busy.example", "queued2", "hello"))
	queued2 := msgID(t, reply)
	for i := 0; i < 200; i++ {
		if rs, _ := e.gw.Store.Recipients(ctx, queued2); len(rs) == 1 && rs[0].Attempts > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	if out := call("GET", "/api/openapi.json", "/api/openapi.json", "", "", "", 200); out["openapi"] != "3.1.0" {
		t.Fatalf("%v", out)
	}
	call("GET", "/api/messages", "/api/messages", "", "", "", 401)
	call("GET", "/api/messages", "/api/messages", "sp_wrong_token_000000000000", "", "", 401)
	if out := call("GET", "/api/messages", "/api/messages?q=busy.example", read, "", "", 200); len(out["messages"].([]any)) != 2 {
		t.Fatalf("%v", out)
	}
	if out := call("GET", "/api/messages/{id}", "/api/messages/"+heldID, read, "", "", 200); out["decision"] == nil || len(out["events"].([]any)) < 2 {
		t.Fatalf("%v", out)
	}
	call("GET", "/api/messages/{id}", "/api/messages/nosuchmessage00000000000000", read, "", "", 404)
	if out := call("GET", "/api/queue", "/api/queue", read, "", "", 200); len(out["messages"].([]any)) < 2 {
		t.Fatalf("%v", out)
	}
	call("POST", "/api/queue/{id}/retry", "/api/queue/"+queuedID+"/retry", read, "", "", 403)
	call("POST", "/api/queue/{id}/retry", "/api/queue/"+queuedID+"/retry", admin, "", "", 200)
	call("DELETE", "/api/queue/{id}", "/api/queue/"+queued2, admin, "", "", 200)
	if out := call("GET", "/api/quarantine", "/api/quarantine", read, "", "", 200); len(out["messages"].([]any)) != 1 {
		t.Fatalf("%v", out)
	}
	call("POST", "/api/quarantine/{id}/release", "/api/quarantine/"+heldID+"/release", admin, "application/json", `{}`, 400)
	call("POST", "/api/quarantine/{id}/release", "/api/quarantine/"+heldID+"/release", admin, "application/json", `{"reason":"ok by the DPO"}`, 200)
	call("POST", "/api/quarantine/{id}/delete", "/api/quarantine/"+heldID+"/delete", admin, "application/json", `{"reason":"again"}`, 409)
	if out := call("GET", "/api/policy/rules", "/api/policy/rules", read, "", "", 200); len(out["rules"].([]any)) < 5 {
		t.Fatalf("%v", out)
	}
	out := call("POST", "/api/policy/test", "/api/policy/test?to=x@other.example", read, "message/rfc822", "From: a@example.gov.uk\r\nSubject: hi\r\n\r\nNHS no. 943 476 5919\r\n", 200)
	if rs := out["recipients"].([]any); rs[0].(map[string]any)["action"] != "hold" {
		t.Fatalf("%v", out)
	}
	if out := call("GET", "/api/reports/usage", "/api/reports/usage", read, "", "", 200); out["months"] == nil {
		t.Fatalf("%v", out)
	}
	if out := call("GET", "/api/reports/usage", "/api/reports/usage?format=csv", read, "", "", 200); !strings.HasPrefix(out["raw"].(string), "month,measure") {
		t.Fatalf("%v", out)
	}
	if out := call("GET", "/api/audit/events", "/api/audit/events?from=2020-01-01", read, "", "", 200); len(out["events"].([]any)) < 3 {
		t.Fatalf("%v", out)
	}
	if out := call("GET", "/api/audit/verify", "/api/audit/verify", read, "", "", 200); out["ok"] != true {
		t.Fatalf("%v", out)
	}
	if out := call("GET", "/api/dns/records", "/api/dns/records", read, "", "", 200); len(out["records"].([]any)) < 6 {
		t.Fatalf("%v", out)
	}
	addConsoleUser(t, e.gw.Store, "root", "admin")
	if out := call("GET", "/api/users", "/api/users", read, "", "", 200); len(out["users"].([]any)) != 1 {
		t.Fatalf("%v", out)
	}
	var missing []string
	for k := range documented {
		if !exercised[k] {
			missing = append(missing, k)
		}
	}
	for k := range exercised {
		if !documented[k] {
			missing = append(missing, "undocumented "+k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("endpoints not exercised or not documented: %v", missing)
	}
	// Every change went into the audit log under the token's name.
	evs, _ := e.gw.Store.AuditEvents(ctx, heldID, 100)
	found := false
	for _, ev := range evs {
		found = found || ev.Actor == "api:ops" && ev.Action == "quarantine.released"
	}
	if !found {
		t.Fatal("no audit event for the release")
	}
}
