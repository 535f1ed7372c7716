package policy

import (
	"strings"
	"testing"

	"golang.org/x/net/idna"

	"sealpost/internal/dlp"
)

func engine(t *testing.T, opt Options) *Engine {
	t.Helper()
	if opt.OrgDomains == nil {
		opt.OrgDomains = []string{"example.gov.uk"}
	}
	e, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestBuiltinPolicy(t *testing.T) {
	e := engine(t, Options{Builtin: true, BulkThreshold: 10, TLSAssured: []string{"nhs.net", ".police.uk"},
		PartnerDomains: []string{"partner.org.uk"}})
	known := func(d string) bool { return d != "new.example.com" }
	nhs := []dlp.Finding{{Detector: "uk-nhs-number", Count: 1, Confidence: "high", Where: "body"}}
	test := func(name string, in Input, rcpt, wantAction, wantThen, wantRule string) {
		t.Helper()
		in.Recipients = []string{rcpt}
		if in.Known == nil {
			in.Known = known
		}
		in.MailFrom = "alice@example.gov.uk"
		d := e.Decide(&in)
		got := d.Recipients[0]
		if got.Action != wantAction || got.Then != wantThen {
			t.Errorf("%s: %s → %s (then %q), want %s (then %q); reasons %q", name, rcpt, got.Action, got.Then, wantAction, wantThen, got.Reasons)
		}
		if wantRule != "" && !strings.Contains(strings.Join(got.Rules, ","), wantRule) {
			t.Errorf("%s: rules %v, want %s", name, got.Rules, wantRule)
		}
	}
	test("plain mail", Input{}, "bob@other.com", "deliver", "", "")
	test("internal with NHS number", Input{Findings: nhs}, "carol@example.gov.uk", "deliver", "", "")
	test("NHS number outside", Input{Findings: nhs}, "bob@other.com", "portal", "", "personal-data")
	test("NHS number to assured", Input{Findings: nhs}, "bob@nhs.net", "require-tls", "", "personal-data-tls")
	test("NHS number to assured suffix", Input{Findings: nhs}, "pc@kent.police.uk", "require-tls", "", "")
	test("low confidence is not personal", Input{Findings: []dlp.Finding{{Detector: "uk-postcode", Count: 3, Confidence: "medium"}}}, "bob@other.com", "deliver", "", "")
	test("marking", Input{Classification: "OFFICIAL-SENSITIVE"}, "bob@other.com", "portal", "", "official-sensitive")
	test("OFFICIAL alone", Input{Classification: "OFFICIAL"}, "bob@other.com", "deliver", "", "")
	test("keyword", Input{Keyword: true}, "bob@other.com", "portal", "", "sender-asked")
	test("keyword internal", Input{Keyword: true}, "carol@example.gov.uk", "deliver", "", "")
	test("private key", Input{Findings: []dlp.Finding{{Detector: "private-key", Count: 1, Confidence: "high"}}}, "carol@example.gov.uk", "reject", "", "private-key")
	test("first contact with personal data", Input{Findings: nhs}, "x@new.example.com", "hold", "portal", "first-contact-sensitive")
	test("first contact without", Input{}, "x@new.example.com", "deliver", "", "")
	test("look-alike of own domain", Input{}, "x@examp1e.gov.uk", "hold", "deliver", "lookalike-domain")
	test("look-alike of partner", Input{}, "x@partner.org.uk.evil.com", "hold", "deliver", "lookalike-domain")
	test("swap", Input{}, "x@exmaple.gov.uk", "hold", "deliver", "lookalike-domain")
	test("cyrillic", Input{}, "x@"+puny(t, "ехаmple.gov.uk"), "hold", "deliver", "lookalike-domain")
	bulk := make([]string, 12)
	for i := range bulk {
		bulk[i] = "p" + string(rune('a'+i)) + "@other.com"
	}
	test("bulk", Input{Visible: bulk}, "pa@other.com", "hold", "deliver", "bulk-visible-recipients")
	test("bulk internal list", Input{Visible: []string{"a@example.gov.uk", "b@example.gov.uk"}}, "pa@other.com", "deliver", "", "")
	test("unscannable", Input{Findings: []dlp.Finding{{Detector: "unscannable", Count: 1, Confidence: "high"}}}, "bob@other.com", "hold", "deliver", "unscannable-content")
	test("mass", Input{Findings: []dlp.Finding{{Detector: "uk-nino", Count: 150, Confidence: "high"}}}, "bob@nhs.net", "quarantine", "require-tls", "mass-personal-data")
	party := func(rcpt string) bool { return rcpt == "jane@citizen.example" }
	test("answer to a portal conversation", Input{PortalThread: true, ThreadParty: party}, "jane@citizen.example", "portal", "", "portal-thread")
	test("answer to an assured domain stays in the portal", Input{PortalThread: true, ThreadParty: func(string) bool { return true }, Findings: nhs}, "bob@nhs.net", "portal", "", "portal-thread")
	test("answer quoting a conversation", Input{PortalThread: true, ThreadParty: party}, "bob@other.com", "portal", "", "portal-thread-quoted")
	test("answer copied inside", Input{PortalThread: true, ThreadParty: party}, "carol@example.gov.uk", "deliver", "", "")
	test("no verified token", Input{PortalThread: false, ThreadParty: party}, "jane@citizen.example", "deliver", "", "")
}

// TestRecipientTLS: a domain whose TLS is verified (DANE, MTA-STS enforce,
// the require-TLS list) gets personal data by mail with require-tls; an
// opportunistic one still gets the portal, and rules can read recipient.tls.
func TestRecipientTLS(t *testing.T) {
	e := engine(t, Options{Builtin: true, Rules: []Rule{{Name: "dane-only", When: `recipient.tls == "dane" && message.subject == "dane?"`, Action: "hold"}}})
	modes := map[string]string{"dane.example": "dane", "sts.example": "mta-sts", "list.example": "required", "plain.example": "opportunistic"}
	nhs := []dlp.Finding{{Detector: "uk-nhs-number", Count: 1, Confidence: "high", Where: "body"}}
	for dom, want := range map[string]string{"dane.example": "require-tls", "sts.example": "require-tls", "list.example": "require-tls", "plain.example": "portal"} {
		d := e.Decide(&Input{Findings: nhs, Recipients: []string{"x@" + dom}, Known: func(string) bool { return true }, TLS: func(d string) string { return modes[d] }})
		if got := d.Recipients[0].Action; got != want {
			t.Errorf("%s (%s): %s, want %s", dom, modes[dom], got, want)
		}
	}
	d := e.Decide(&Input{Subject: "dane?", Recipients: []string{"x@dane.example", "y@sts.example"}, Known: func(string) bool { return true }, TLS: func(d string) string { return modes[d] }})
	if d.Recipients[0].Action != "hold" || d.Recipients[1].Action != "deliver" {
		t.Errorf("recipient.tls in a rule: %+v", d.Recipients)
	}
}

func TestUnavailableFallsBackToHold(t *testing.T) {
	e := engine(t, Options{Builtin: true, Available: func(a Action) bool { return a != Portal && a != EncryptPGP && a != EncryptSMIME }})
	d := e.Decide(&Input{Keyword: true, Recipients: []string{"bob@other.com"}, Known: func(string) bool { return true }})
	r := d.Recipients[0]
	if r.Action != "hold" || r.Then != "require-tls" {
		t.Fatalf("got %+v", r)
	}
	if !strings.Contains(strings.Join(r.Reasons, "\n"), "portal is not available") {
		t.Fatalf("reasons %q", r.Reasons)
	}
}

func TestOperatorRules(t *testing.T) {
	e := engine(t, Options{Rules: []Rule{
		{Name: "falcon", When: `"project-falcon" in findings && recipient.external`, Action: "quarantine", Reason: "Project Falcon stays in"},
		{Name: "big", When: `message.size > 1000000`, Action: "require-tls"},
		{Name: "broken", When: `findings["nope"] > 1`, Action: "hold"},
	}})
	d := e.Decide(&Input{Findings: []dlp.Finding{{Detector: "project-falcon", Count: 1, Confidence: "high"}, {Detector: "nope", Count: 2}}, Size: 10,
		Recipients: []string{"a@example.gov.uk", "b@other.com"}})
	if d.Recipients[0].Action != "hold" || d.Recipients[1].Action != "quarantine" {
		t.Fatalf("%+v", d.Recipients)
	}
	// A rule that fails at run time counts as matching.
	d = e.Decide(&Input{Recipients: []string{"a@example.gov.uk"}})
	if d.Recipients[0].Action != "hold" || !strings.Contains(d.Recipients[0].Reasons[0], "could not be evaluated") {
		t.Fatalf("%+v", d.Recipients[0])
	}
}

func TestInvalidRules(t *testing.T) {
	test := func(r Rule, want string) {
		t.Helper()
		r.Line = 42
		_, err := New(Options{Rules: []Rule{r}})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "line 42") || !strings.Contains(err.Error(), r.Name) {
			t.Errorf("%+v: err %v, want %q", r, err, want)
		}
	}
	test(Rule{Name: "typo", When: `recipient.externl`, Action: "hold"}, "externl")
	test(Rule{Name: "syntax", When: `recipient.external &&`, Action: "hold"}, "Syntax error")
	test(Rule{Name: "notbool", When: `message.size`, Action: "hold"}, "not a bool")
	test(Rule{Name: "action", When: `true`, Action: "burn"}, `action "burn"`)
	test(Rule{Name: "empty", When: ` `, Action: "hold"}, "empty")
	test(Rule{Name: "unknown-var", When: `foo == 1`, Action: "hold"}, "undeclared")
}

func TestLookalike(t *testing.T) {
	known := []string{"example.gov.uk", "nhs.net", "partner.org.uk"}
	test := func(d, want string) {
		t.Helper()
		if got := lookalike(d, known); got != want {
			t.Errorf("lookalike(%q) = %q, want %q", d, got, want)
		}
	}
	test("example.gov.uk", "")
	test("mail.example.gov.uk", "")
	test("examp1e.gov.uk", "example.gov.uk")
	test("exarnple.gov.uk", "example.gov.uk")
	test("example-gov.uk", "example.gov.uk")
	test("example.gov.uk.evil.com", "example.gov.uk")
	test(puny(t, "ехаmрlе.gov.uk"), "example.gov.uk") // five Cyrillic letters: distance 5, same skeleton
	test(puny(t, "exämple.gov.uk"), "example.gov.uk")
	test(puny(t, "bücher.de"), "")
	test("nhs.uk", "")
	test("nhs.ne", "nhs.net")
	test("gmail.com", "")
	test("other.gov.uk", "")
	test("partner.org", "")
}

func puny(t *testing.T, s string) string {
	a, err := idna.ToASCII(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func FuzzDecide(f *testing.F) {
	e, _ := New(Options{Builtin: true, OrgDomains: []string{"example.gov.uk"}, BulkThreshold: 3})
	f.Add("bob@other.com", "a@b.c, d@e.f", "uk-nino", 3)
	f.Fuzz(func(t *testing.T, rcpt, visible, det string, n int) {
		d := e.Decide(&Input{Recipients: []string{rcpt}, Visible: strings.Split(visible, ","), Findings: []dlp.Finding{{Detector: det, Count: n, Confidence: "high"}}})
		if len(d.Recipients) != 1 || d.Recipients[0].Action == "" {
			t.Fatalf("%+v", d)
		}
	})
}
