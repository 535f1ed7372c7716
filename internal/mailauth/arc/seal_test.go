package arc

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"regexp"
	"strings"
	"testing"
	"time"

	"sealpost/internal/dns"
)

// resultsFrom returns the resinfo of the message's Authentication-Results
// whose authserv-id is srvID, as the pipeline would hand it to Seal.
func resultsFrom(msg, srvID string) string {
	fields, _, err := split(toCRLF([]byte(msg)))
	if err != nil {
		return ""
	}
	var parts []string
	for _, f := range fields {
		if f.Lower != "authentication-results" {
			continue
		}
		v := strings.TrimSpace(strings.ReplaceAll(f.Value, "\r\n", ""))
		id, rest, _ := strings.Cut(v, ";")
		if strings.TrimSpace(id) == srvID {
			// The suite's ar_merged cases split our results over several
			// fields; they are merged in order.
			parts = append(parts, strings.TrimSuffix(strings.TrimSpace(rest), ";"))
		}
	}
	return strings.Join(parts, "; ")
}

// normTags reduces a field value to relaxed form with all whitespace
// removed from b= and bh=, the normalisation the signing suite assumes.
func normTags(t *testing.T, v string) map[string]string {
	t.Helper()
	m, _, err := parseTags(strings.ReplaceAll(v, "\n", " "))
	if err != nil {
		t.Fatalf("parse %q: %v", v, err)
	}
	for k, x := range m {
		m[k] = strings.Join(strings.Fields(x), " ")
		if k == "b" || k == "bh" {
			m[k] = b64clean(x)
		}
	}
	return m
}

func fieldValue(sealed, name string) string {
	fields, _, _ := split([]byte(sealed))
	for _, f := range fields {
		if f.Lower == strings.ToLower(name) {
			return f.Value
		}
	}
	return ""
}

var bTag = regexp.MustCompile(`(?s)\bb=([^;]*);`)

// unfoldB removes the folding inside a value's b= tag.
func unfoldB(v string) string {
	return bTag.ReplaceAllStringFunc(v, func(m string) string { return "b=" + b64clean(m[2:]) })
}

// refold turns a suite value (continuation lines unindented by YAML) back
// into a folded field body.
func refold(v string) string {
	return strings.ReplaceAll(strings.TrimRight(v, " \n"), "\n", "\n ") + "\n"
}

func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestValiMailSigningSuite(t *testing.T) {
	ctx := context.Background()
	n := 0
	for _, d := range loadSuite(t, "arc-draft-sign-tests.yml") {
		blk, _ := pem.Decode([]byte(d.PrivateKey))
		if blk == nil {
			t.Fatal("no PEM key in signing suite")
		}
		key, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		r := resolverFor(d.TXT)
		for _, c := range d.cases(t) {
			n++
			s := &Sealer{Domain: d.Domain, Selector: d.Sel, Key: key, AuthServID: c.SrvID,
				Headers: strings.Split(c.SigHeaders, ":"), Now: func() time.Time { return time.Unix(c.T, 0) }}
			msg := toCRLF([]byte(c.Message))
			chain := Verify(ctx, r, msg)
			sealed, err := s.Seal(msg, chain, resultsFrom(c.Message, c.SrvID))
			if strings.TrimSpace(c.AS) == "" {
				// no_additional_sig: the chain is sealed cv=fail, so no
				// set may be added (RFC 8617 §5.1.2).
				if err != ErrChainFailed {
					t.Errorf("%s: sealing a cv=fail chain: %v", c.Name, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: seal: %v", c.Name, err)
				continue
			}
			// Our seal must verify with our validator.
			out := Verify(ctx, r, append([]byte(sealed), msg...))
			wantOut := Pass
			if chain.Status == Fail {
				wantOut = Fail
			}
			if out.Status != wantOut || out.Instance != chain.Instance+1 {
				t.Errorf("%s: sealed message verifies %s: %s", c.Name, out.Status, out.Reason)
			}
			// The suite's own expected set must verify with our validator.
			// Its AS was made over the AMS with b= unfolded (the layout
			// Seal writes), so the AMS's b= is joined back first.
			exp := "ARC-Seal: " + refold(c.AS) + "ARC-Message-Signature: " + refold(unfoldB(c.AMS)) + "ARC-Authentication-Results: " + refold(c.AAR)
			if out := Verify(ctx, r, append(toCRLF([]byte(exp)), msg...)); out.Status != wantOut {
				t.Errorf("%s: the suite's expected seal verifies %s: %s", c.Name, out.Status, out.Reason)
			}
			// And our fields equal the expected ones tag by tag; RSA
			// PKCS#1 v1.5 is deterministic, so b= must match too.
			for _, x := range []struct{ name, want string }{{"ARC-Seal", c.AS}, {"ARC-Message-Signature", c.AMS}} {
				got, want := normTags(t, fieldValue(sealed, x.name)), normTags(t, x.want)
				for k, w := range want {
					if got[k] != w {
						t.Errorf("%s: %s %s=%q, want %q", c.Name, x.name, k, got[k], w)
					}
				}
			}
			if got, want := squash(strings.ReplaceAll(fieldValue(sealed, "ARC-Authentication-Results"), "\r\n", "")), squash(c.AAR); got != want {
				t.Errorf("%s: AAR %q, want %q", c.Name, got, want)
			}
		}
	}
	if n != 17 {
		t.Fatalf("%d signing cases, want 17", n)
	}
}

// keyResolver publishes k's public half at sel._domainkey.domain.
func keyResolver(t *testing.T, sel, domain string, k crypto.Signer) dns.MockResolver {
	t.Helper()
	var rec string
	switch p := k.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			t.Fatal(err)
		}
		rec = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		rec = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(p)
	}
	return dns.MockResolver{TXT: map[string][]string{sel + "._domainkey." + domain: {rec}}}
}

const plainMsg = "From: Alice <alice@sender.example>\r\nTo: staff@council.example\r\nSubject: hello\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.example>\r\n\r\nHello there.\r\n"

func testKeys(t *testing.T) map[string]crypto.Signer {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.Signer{"rsa": rk, "ed25519": ek}
}

func TestSealThreeHopsAndTamper(t *testing.T) {
	ctx := context.Background()
	for alg, k := range testKeys(t) {
		r := keyResolver(t, "arc", "council.example", k)
		s := &Sealer{Domain: "council.example", Selector: "arc", Key: k, AuthServID: "mx.council.example"}
		msg := []byte(plainMsg)
		for hop := 1; hop <= 3; hop++ {
			chain := Verify(ctx, r, msg)
			sealed, err := s.Seal(msg, chain, "spf=pass smtp.mailfrom=sender.example")
			if err != nil {
				t.Fatalf("%s hop %d: %v", alg, hop, err)
			}
			msg = append([]byte(sealed), msg...)
			got := Verify(ctx, r, msg)
			if got.Status != Pass || got.Instance != hop || got.OldestPass != 1 {
				t.Fatalf("%s hop %d: %+v", alg, hop, got)
			}
		}
		// Body change breaks the newest AMS.
		bad := []byte(strings.Replace(string(msg), "Hello there.", "Pay now.", 1))
		if got := Verify(ctx, r, bad); got.Status != Fail {
			t.Errorf("%s: tampered body: %s", alg, got.Status)
		}
		// Rewriting an older AAR breaks the seals.
		bad = []byte(strings.Replace(string(msg), "\tarc=none", "\tarc=pass", 1))
		if string(bad) == string(msg) {
			t.Fatal("AAR tamper did not change the message")
		}
		if got := Verify(ctx, r, bad); got.Status != Fail {
			t.Errorf("%s: tampered AAR: %s", alg, got.Status)
		}
	}
}

// TestInstanceGapFails builds a chain i=1, i=3 whose seals are valid over
// the sets present: only the structural check (RFC 8617 §5.2 step 3) can
// catch it.
func TestInstanceGapFails(t *testing.T) {
	ctx := context.Background()
	k := testKeys(t)["ed25519"]
	r := keyResolver(t, "arc", "council.example", k)
	s := &Sealer{Domain: "council.example", Selector: "arc", Key: k, AuthServID: "mx.council.example"}
	first, err := s.Seal([]byte(plainMsg), Result{Status: None}, "")
	if err != nil {
		t.Fatal(err)
	}
	msg := first + plainMsg
	// A sloppy or hostile sealer adds i=3 over set 1 alone, skipping 2;
	// every signature in the result is valid.
	fields, body, err := split([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	sets, n, err := collect(fields)
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	third, err := s.sealAt(fields, WholeBody(body), sets, 3, Pass, "")
	if err != nil {
		t.Fatal(err)
	}
	gapped := third + msg
	got := Verify(ctx, r, []byte(gapped))
	t.Logf("gapped chain: %s (%s)", got.Status, got.Reason)
	if got.Status != Fail {
		t.Fatalf("chain with instance gap: %s (%s)", got.Status, got.Reason)
	}
}

func TestSealRefusesFailedChain(t *testing.T) {
	ctx := context.Background()
	k := testKeys(t)["ed25519"]
	r := keyResolver(t, "arc", "council.example", k)
	s := &Sealer{Domain: "council.example", Selector: "arc", Key: k, AuthServID: "mx.council.example"}
	first, _ := s.Seal([]byte(plainMsg), Result{Status: None}, "")
	bad := strings.Replace(first+plainMsg, "Hello there.", "Pay now.", 1)
	chain := Verify(ctx, r, []byte(bad))
	if chain.Status != Fail {
		t.Fatalf("want fail, got %s", chain.Status)
	}
	second, err := s.Seal([]byte(bad), chain, "")
	if err != nil || !strings.Contains(second, "cv=fail") {
		t.Fatalf("seal over failed chain: %v %q", err, second)
	}
	if _, err := s.Seal([]byte(second+bad), Verify(ctx, r, []byte(second+bad)), ""); err != ErrChainFailed {
		t.Fatalf("sealing over cv=fail: %v", err)
	}
}

// TestSealInstanceAfterSpace: dkimpy (and so every receiver built on it)
// finds a set's AMS by the raw text " i=N;". A longer selector once moved
// i= to the start of a folded line, after a tab, and dkimpy's arc_verify
// crashed on our seal; the e2e test found it.
func TestSealInstanceAfterSpace(t *testing.T) {
	k := testKeys(t)["rsa"]
	for n := 1; n <= 60; n++ {
		sel := "arc"
		// The fields before i= (d=, h=) decide where lines fold.
		s := &Sealer{Domain: strings.Repeat("d", n) + ".example", Headers: []string{"from", "to", "subject", "date", "message-id", "dkim-signature"}, Selector: sel, Key: k, AuthServID: "mx.council.example"}
		sealed, err := s.Seal([]byte(plainMsg), Result{Status: None}, "spf=pass")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"ARC-Seal:", "ARC-Message-Signature:"} {
			i := strings.Index(sealed, name)
			end := strings.Index(sealed[i:], "\r\nARC-")
			if end < 0 {
				end = len(sealed) - i
			}
			if !strings.Contains(sealed[i:i+end], " i=1;") {
				t.Errorf("selector %s: %s has no \" i=1;\":\n%s", sel, name, sealed[i:i+end])
			}
		}
	}
}
