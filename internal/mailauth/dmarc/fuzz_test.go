package dmarc

import "testing"

// FuzzParse: a DMARC record comes from anyone's DNS. Parsing never panics,
// and what parses has a policy a receiver can act on.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"v=DMARC1; p=reject",
		"v=DMARC1; p=none; sp=quarantine; np=reject; psd=y; t=y; adkim=s; aspf=r; rua=mailto:a@b.example",
		"v=DMARC1;p=quarantine;pct=10",
		"v=DMARC1",
		"v=DMARC1; p=",
		"v=dmarc1; p=reject;;; x=y",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := Parse(txt)
		if err != nil || r == nil {
			return
		}
		for _, p := range []Policy{r.P, r.SP, r.NP} {
			switch p {
			case "", PolicyNone, PolicyQuarantine, PolicyReject:
			default:
				t.Fatalf("%q parsed with policy %q", txt, p)
			}
		}
	})
}
