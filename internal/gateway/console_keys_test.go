package gateway

import (
	"context"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"sealpost/internal/testutil"
)

// TestConsoleRecipientKeys: the keys page lists the key store as `sealpost
// keys list` does, looks an address up with the whole ladder, and lets an
// admin add (a key sqop made) and remove keys, each audited with the
// admin's name; an auditor sees the list but cannot change it.
func TestConsoleRecipientKeys(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sqop"); err != nil {
		testutil.Missing(t, "sqop is not installed")
	}
	e := start(t, nil)
	ctx := context.Background()
	apw := addConsoleUser(t, e.gw.Store, "root", "admin")
	upw := addConsoleUser(t, e.gw.Store, "audrey", "auditor")
	cert := runTool(t, runTool(t, nil, "sqop", "generate-key", "Bob <bob@partner.example>"), "sqop", "extract-cert")

	admin := newBrowser(t, e)
	admin.get("/console/login")
	st, page := admin.post("/console/login", url.Values{"user": {"root"}, "password": {apw}})
	secret := regexp.MustCompile(`id="secret">([A-Z2-7]+)<`).FindStringSubmatch(page)
	if st != 200 || secret == nil {
		t.Fatalf("admin sign-in %d:\n%.1500s", st, page)
	}
	code, _ := totp.GenerateCode(secret[1], time.Now())
	if st, page := admin.post("/console/totp", url.Values{"code": {code}}); st != 200 || !strings.Contains(page, "Dashboard") {
		t.Fatalf("TOTP %d:\n%.1500s", st, page)
	}
	admin.get("/console/keys")
	if st, page := admin.post("/console/keys/add", url.Values{"key": {string(cert)}}); st != 200 || !strings.Contains(page, "Added ") || !strings.Contains(page, "bob@partner.example") {
		t.Fatalf("add %d:\n%.3000s", st, page)
	}
	keys, err := e.gw.Keyring.List(ctx)
	if err != nil || len(keys) != 1 || keys[0].Source != "operator" {
		t.Fatalf("key store after add: %v %+v", err, keys)
	}
	fpr := keys[0].Fingerprint
	if st, page := admin.post("/console/keys/add", url.Values{"key": {"not a key"}}); st != 422 || !strings.Contains(page, "was not added") {
		t.Fatalf("bad key: %d", st)
	}
	st, page = admin.get("/console/keys?lookup=bob%40partner.example")
	if st != 200 || !strings.Contains(page, fpr) || !strings.Contains(page, "Answer: operator") || !strings.Contains(page, "<strong>wkd</strong>") {
		t.Fatalf("lookup %d:\n%.4000s", st, page)
	}
	if _, page := admin.get("/console/keys?lookup=carol%40nokey.example"); !strings.Contains(page, "Answer: none") {
		t.Fatalf("lookup of carol:\n%.3000s", page)
	}

	aud := newBrowser(t, e)
	aud.get("/console/login")
	aud.post("/console/login", url.Values{"user": {"audrey"}, "password": {upw}})
	if st, page := aud.get("/console/keys"); st != 200 || !strings.Contains(page, fpr) || strings.Contains(page, "/console/keys/remove") {
		t.Fatalf("auditor's keys page %d", st)
	}
	if st, _ := aud.post("/console/keys/remove", url.Values{"fingerprint": {fpr}}); st != 403 {
		t.Fatalf("auditor remove: %d", st)
	}
	if st, _ := aud.post("/console/keys/add", url.Values{"key": {string(cert)}}); st != 403 {
		t.Fatalf("auditor add: %d", st)
	}

	admin.get("/console/keys")
	if st, page := admin.post("/console/keys/remove", url.Values{"fingerprint": {strings.ToLower(fpr)}}); st != 200 || !strings.Contains(page, "Removed "+fpr) {
		t.Fatalf("remove %d:\n%.2000s", st, page)
	}
	if keys, _ := e.gw.Keyring.List(ctx); len(keys) != 0 {
		t.Fatal("the key is still there")
	}
	events, err := e.gw.Store.AuditEvents(ctx, fpr, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ev := range events {
		got[ev.Action] = ev.Actor
	}
	if got["key.added"] != "admin:root" || got["key.removed"] != "admin:root" {
		t.Fatalf("audit %v", got)
	}
}
