package dlp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/go-pdf/fpdf"
)

// A labelled set, generated: identifiers in varied formatting inside prose,
// HTML and documents, and decoys that look like identifiers but are not.
// The test prints precision and recall per detector and holds them to a
// floor.

type sample struct {
	text string
	want string // detector, "" for a decoy
}

func digitsOf(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

func genNHS(r *rand.Rand) string {
	for {
		d := []byte(digitsOf(r, 9))
		sum := 0
		for i := 0; i < 9; i++ {
			sum += int(d[i]-'0') * (10 - i)
		}
		c := 11 - sum%11
		if c == 11 {
			c = 0
		}
		if c != 10 {
			return string(d) + string(rune('0'+c))
		}
	}
}

func genLuhn(r *rand.Rand, prefix string, n int) string {
	d := []byte(prefix + digitsOf(r, n-len(prefix)-1) + "0")
	for c := byte('0'); c <= '9'; c++ {
		d[n-1] = c
		if luhn(d) {
			break
		}
	}
	return string(d)
}

func genNINO(r *rand.Rand) string {
	first, second := "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
	for {
		p := string(first[r.IntN(len(first))]) + string(second[r.IntN(len(second))])
		s := p + digitsOf(r, 6) + string("ABCD"[r.IntN(4)])
		if validNINO([]byte(s)) {
			return s
		}
	}
}

func genIBAN(r *rand.Rand) string {
	bank := ""
	for i := 0; i < 4; i++ {
		bank += string(rune('A' + r.IntN(26)))
	}
	bban := bank + digitsOf(r, 14)
	for c := 2; c < 99; c++ {
		s := fmt.Sprintf("GB%02d%s", c, bban)
		if validIBAN([]byte(s)) {
			return s
		}
	}
	return ""
}

func genVAT(r *rand.Rand) string {
	for {
		n := digitsOf(r, 7)
		sum := 0
		for i := 0; i < 7; i++ {
			sum += int(n[i]-'0') * (8 - i)
		}
		c := (97 - sum%97) % 97
		s := fmt.Sprintf("GB%s%02d", n, c)
		if validGBVAT([]byte(s)) && n[:3] != "000" {
			return s
		}
	}
}

func group(s string, sizes ...int) string {
	var parts []string
	for _, n := range sizes {
		parts = append(parts, s[:n])
		s = s[n:]
	}
	if s != "" {
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

var prose = []string{
	"Thank you for your email about the resident at the care home.",
	"As discussed on the phone, the details are below.",
	"Please treat this as confidential and do not forward it.",
	"Kind regards, Adult Social Care.",
}

func labelled(r *rand.Rand, n int) []sample {
	var out []sample
	pick := func(opts ...string) string { return opts[r.IntN(len(opts))] }
	for i := 0; i < n; i++ {
		nhs := genNHS(r)
		card := genLuhn(r, pick("4", "51", "5425", "2223"), 16)
		nino := genNINO(r)
		ib := genIBAN(r)
		vat := genVAT(r)
		sc := digitsOf(r, 6)
		acc := digitsOf(r, 8)
		for tries := 0; !ValidUKAccount(sc, acc); tries++ {
			if tries%200 == 199 {
				sc = digitsOf(r, 6) // some sort codes have no valid account (unassigned)
			}
			acc = digitsOf(r, 8)
		}
		out = append(out,
			sample{pick("NHS no. ", "NHS number: ", "nhs ", "Patient ") + pick(group(nhs, 3, 3), nhs[:3]+"-"+nhs[3:6]+"-"+nhs[6:]) + ".", NHS},
			sample{"NHS Number " + nhs, NHS},
			sample{pick("card ", "Visa ", "paid with ") + pick(group(card, 4, 4, 4), card[:4]+"-"+card[4:8]+"-"+card[8:12]+"-"+card[12:], card) + " exp 09/27", Card},
			sample{pick("NI number ", "National Insurance: ", "NINO ", "") + pick(nino, group(nino, 2, 2, 2, 2), strings.ToLower(nino)), NINO},
			sample{pick("IBAN ", "Pay to ", "") + pick(ib, group(ib, 4, 4, 4, 4, 4)), IBAN},
			sample{fmt.Sprintf("sort code %s-%s-%s account %s", sc[:2], sc[2:4], sc[4:], acc), SortCode},
			sample{pick("VAT reg ", "VAT No. ") + pick(vat, "GB "+group(vat[2:], 3, 4)), VAT},
			sample{"passport number " + digitsOf(r, 9), Passport},
			sample{pick("driving licence ", "DVLA licence no. ", "Licence: ") + genLicence(r), Licence},
			sample{"-----BEGIN " + pick("RSA ", "EC ", "OPENSSH ", "") + "PRIVATE KEY-----", PrivateKey},
			// Decoys.
			sample{"Call us on 0161 496 " + digitsOf(r, 4) + " or 07700 900" + digitsOf(r, 3) + ".", ""},
			sample{"Meeting on 2025-0" + digitsOf(r, 1) + "-1" + digitsOf(r, 1) + " at 10:30, room 4.12.", ""},
			sample{"Invoice INV-2024-" + digitsOf(r, 6) + " and order " + digitsOf(r, 10) + " shipped.", ""},
			sample{"Tracking 1Z999AA1" + digitsOf(r, 10) + ", ref " + digitsOf(r, 9) + ".", ""},
			sample{"Case " + group(nhsBad(r), 3, 3) + " reopened.", ""},
			sample{"Account summary " + group(cardBad(r), 4, 4, 4) + " total.", ""},
			sample{"the official line is AB12 3456; see GB" + digitsOf(r, 2) + " WEST 1234.", ""},
		)
	}
	return out
}

// genLicence makes a DVLA driving licence number: surname (padded with 9),
// decade, month (+50 for women), day, year, initials, a digit, two checks.
func genLicence(r *rand.Rand) string {
	names := []string{"SMITH", "JONES", "PATEL", "BROWN", "WU999", "OLEAR", "MORGA"}
	month := 1 + r.IntN(12)
	if r.IntN(2) == 0 {
		month += 50
	}
	return fmt.Sprintf("%s%d%02d%02d%d%s%d%s", names[r.IntN(len(names))], r.IntN(10), month, 1+r.IntN(28), r.IntN(10),
		string(rune('A'+r.IntN(26)))+string(rune('A'+r.IntN(26))), r.IntN(10), string(rune('A'+r.IntN(26)))+string(rune('A'+r.IntN(26))))
}

func nhsBad(r *rand.Rand) string {
	for {
		s := digitsOf(r, 10)
		if !validNHS([]byte(s)) {
			return s
		}
	}
}

func cardBad(r *rand.Rand) string {
	for {
		s := "4" + digitsOf(r, 15)
		if !luhn([]byte(s)) {
			return s
		}
	}
}

type tally struct{ tp, fp, fn int }

func TestPrecisionRecall(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	set := labelled(r, 300)
	stats := map[string]*tally{}
	get := func(d string) *tally {
		if stats[d] == nil {
			stats[d] = &tally{}
		}
		return stats[d]
	}
	e, _ := NewEngine(nil, DefaultLimits)
	for i, s := range set {
		// Plain text, HTML with the identifier's parts in markup, a DOCX
		// paragraph and a PDF page, in turn.
		text := prose[i%len(prose)] + " " + s.text + " " + prose[(i+1)%len(prose)]
		var res *Result
		switch i % 4 {
		case 0:
			res = e.ScanDocument("a.txt", []byte(text))
		case 1:
			res = e.ScanDocument("a.html", []byte("<p>"+strings.Replace(text, " ", " <span>", 3)+"</span></span></span></p>"))
		case 2:
			res = e.ScanDocument("a.docx", docx(t, text))
		case 3:
			res = e.ScanDocument("a.pdf", onePagePDF(t, text))
		}
		found := map[string]bool{}
		for _, f := range res.Findings {
			if f.Confidence == "low" {
				continue // low-confidence findings (bare postcodes) do not count as hits
			}
			found[f.Detector] = true
		}
		if s.want != "" {
			if found[s.want] {
				get(s.want).tp++
			} else {
				get(s.want).fn++
				t.Logf("missed %s in %q", s.want, s.text)
			}
		}
		for d := range found {
			if d != s.want {
				get(d).fp++
				t.Logf("false %s in %q", d, s.text)
			}
		}
	}
	var names []string
	for d := range stats {
		names = append(names, d)
	}
	sort.Strings(names)
	t.Logf("%-22s %6s %6s %6s %9s %6s", "detector", "tp", "fp", "fn", "precision", "recall")
	for _, d := range names {
		s := stats[d]
		p := float64(s.tp) / float64(max(1, s.tp+s.fp))
		rc := float64(s.tp) / float64(max(1, s.tp+s.fn))
		t.Logf("%-22s %6d %6d %6d %9.3f %6.3f", d, s.tp, s.fp, s.fn, p, rc)
		if p < 0.98 || rc < 0.98 {
			t.Errorf("%s: precision %.3f, recall %.3f; want both at least 0.98", d, p, rc)
		}
	}
}

func onePagePDF(t *testing.T, text string) []byte {
	p := fpdf.New("P", "mm", "A3", "")
	p.AddPage()
	p.SetFont("Helvetica", "", 8)
	p.Cell(0, 6, text)
	var b bytes.Buffer
	if err := p.Output(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
