package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPolicyThroughOutboundListener: a message with NHS numbers in a DOCX
// inside a ZIP, sent by swaks to the outbound listener, gets the configured
// action (quarantine); the sender is told; the operator sees why with
// `quarantine show`, releases it, and it is delivered. A private key is
// refused with 550 5.7.1 and a reference the operator can look up. A new
// rule arrives with SIGHUP.
func TestPolicyThroughOutboundListener(t *testing.T) {
	need(t, "swaks")
	mailHost := startSink(t)
	internet := startSink(t)
	g := newGW(t, gwOptions{mailHost: mailHost.addr, smarthost: internet.addr, extra: `
[policy]
disable = ["personal-data", "personal-data-tls", "first-contact-sensitive"]

[[policy.rule]]
name = "health-data-out"
when = '"uk-nhs-number" in findings && recipient.external'
action = "quarantine"
reason = "health records leave only after review"
`})
	g.start()

	docx := zipBytes(t, map[string]string{
		"[Content_Types].xml": `<Types/>`,
		"word/document.xml":   `<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>NHS no. 943 476 5919</w:t></w:r></w:p><w:p><w:r><w:t>NHS no. 401 023 2137</w:t></w:r></w:p></w:body></w:document>`,
	})
	zipFile := filepath.Join(t.TempDir(), "cases.zip")
	os.WriteFile(zipFile, zipBytes(t, map[string]string{"referral.docx": string(docx)}), 0o600)
	out, code := swaks(t, "--server", g.outbound, "--from", "staff@example.gov.uk", "--to", "partner@agency.example",
		"--header", "Subject: referrals", "--body", "Please see the attached.", "--attach-type", "application/zip", "--attach-name", "cases.zip", "--attach", "@"+zipFile)
	if code != 0 {
		t.Fatalf("swaks:\n%s", out)
	}
	id := regexp.MustCompile(`queued as ([0-9a-z]{26})`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no id:\n%s", out)
	}
	// The sender's notice reaches the mail host; nothing reaches the internet.
	notice := mailHost.waitFor(t, "Kept for review: referrals", 20*time.Second)
	if !strings.Contains(notice, id[1]) {
		t.Fatalf("notice:\n%s", notice)
	}
	list, code := g.cli("quarantine", "list", "--json")
	var l struct {
		Messages []struct {
			ID, State string
			Findings  []struct{ Detector, Where string }
		}
	}
	if code != 0 || json.Unmarshal([]byte(list), &l) != nil || len(l.Messages) != 1 {
		t.Fatalf("quarantine list (exit %d):\n%s", code, list)
	}
	m := l.Messages[0]
	if m.ID != id[1] || m.State != "quarantined" || len(m.Findings) != 1 || m.Findings[0].Where != "attachment:cases.zip/referral.docx" {
		t.Fatalf("%+v", m)
	}
	show, _ := g.cli("quarantine", "show", id[1])
	if !strings.Contains(show, "health-data-out: health records leave only after review") {
		t.Fatalf("show:\n%s", show)
	}
	if out, code := g.cli("quarantine", "release", "06h1nosuchmessage000000000"); code != 1 || !strings.Contains(out, "no held or quarantined message") {
		t.Fatalf("release of an unknown id: exit %d\n%s", code, out)
	}
	if out, code := g.cli("quarantine", "release", id[1], "--reason", "checked with the DPO"); code != 0 {
		t.Fatalf("release: exit %d\n%s", code, out)
	}
	got := internet.waitFor(t, "Subject: referrals", 20*time.Second)
	if !strings.Contains(got, "DKIM-Signature") {
		t.Fatalf("released message:\n%s", got)
	}
	if out, code := g.cli("quarantine", "release", id[1], "--reason", "again"); code != 1 || !strings.Contains(out, "already") {
		t.Fatalf("second release: exit %d\n%s", code, out)
	}

	// A private key: refused, with a reference.
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	os.WriteFile(keyFile, []byte("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA3ZrR0xq\n-----END RSA PRIVATE KEY-----\n"), 0o600)
	out, code = swaks(t, "--server", g.outbound, "--from", "staff@example.gov.uk", "--to", "colleague@example.gov.uk",
		"--header", "Subject: key", "--body", "@"+keyFile)
	ref := regexp.MustCompile(`550 5\.7\.1 .*reference ([0-9a-z]{26})`).FindStringSubmatch(out)
	if code == 0 || ref == nil {
		t.Fatalf("private key not refused (exit %d):\n%s", code, out)
	}
	if show, code := g.cli("quarantine", "show", ref[1]); code != 0 || !strings.Contains(show, "rejected") || !strings.Contains(show, "private-key") {
		t.Fatalf("reference lookup (exit %d):\n%s", code, show)
	}

	// SIGHUP: a rule refusing mail to a domain takes effect; a broken rule is refused.
	good, _ := os.ReadFile(g.cfgPath)
	broken := string(good) + "\n[[policy.rule]]\nname = \"broken\"\nwhen = 'recipient.domian == \"x\"'\naction = \"reject\"\n"
	os.WriteFile(g.cfgPath, []byte(broken), 0o600)
	g.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if !strings.Contains(g.out.String(), "reload refused") || !strings.Contains(g.out.String(), "domian") {
		t.Fatalf("bad rule not reported:\n%s", g.out.String())
	}
	fixed := string(good) + "\n[[policy.rule]]\nname = \"no-rivals\"\nwhen = 'recipient.domain == \"rival.example\"'\naction = \"reject\"\n"
	os.WriteFile(g.cfgPath, []byte(fixed), 0o600)
	g.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	out, code = swaks(t, "--server", g.outbound, "--from", "staff@example.gov.uk", "--to", "ceo@rival.example", "--header", "Subject: hi")
	if code == 0 || !strings.Contains(out, "550 5.7.1") {
		t.Fatalf("reloaded rule not applied (exit %d):\n%s", code, out)
	}

	// policy test explains the same decision offline.
	eml := filepath.Join(t.TempDir(), "m.eml")
	os.WriteFile(eml, []byte("From: staff@example.gov.uk\r\nTo: ceo@rival.example\r\nSubject: hi\r\n\r\nhello\r\n"), 0o600)
	pt, code := g.cli("policy", "test", "--json", eml)
	var d struct {
		Recipients []struct{ Address, Action string }
	}
	if code != 0 || json.Unmarshal([]byte(pt), &d) != nil || len(d.Recipients) != 1 || d.Recipients[0].Action != "reject" {
		t.Fatalf("policy test (exit %d):\n%s", code, pt)
	}
}
