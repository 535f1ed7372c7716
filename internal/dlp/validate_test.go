package dlp

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func corpus(t *testing.T, rel string) string {
	return filepath.Join("..", "..", "testdata", "uk-identifiers", rel)
}

// norm removes separators and upper-cases, as the scanner does.
func norm(s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-' || c == '.':
		case c >= 'a' && c <= 'z':
			b = append(b, c-32)
		default:
			b = append(b, c)
		}
	}
	return b
}

func TestStdnumCorpus(t *testing.T) {
	f, err := os.Open(corpus(t, "stdnum/cases.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 4 {
			continue
		}
		src, want, value := cols[0], cols[2] == "valid", cols[3]
		var got bool
		switch {
		case strings.Contains(src, "iban"):
			if strings.HasPrefix(cols[2], "valid(check_country=False)") {
				continue // national check digits are not checked, by design
			}
			got = validIBAN(norm(value))
		case strings.Contains(src, "gb_vat"):
			v := norm(value)
			if !strings.HasPrefix(string(v), "GB") {
				v = append([]byte("GB"), v...)
			}
			got = validGBVAT(v)
		case strings.Contains(src, "nhs"):
			got = validNHS(norm(value))
		default:
			continue
		}
		if got != want {
			t.Errorf("%s %q: got %v, want %v", src, value, got, want)
		}
		counts[src]++
	}
	if counts["test_iban.doctest"] < 200 || counts["test_gb_vat.doctest"] < 30 || counts["nhs.py-docstring"] < 2 {
		t.Fatalf("corpus not read: %v", counts)
	}
}

func TestNINOCorpus(t *testing.T) {
	b, err := os.ReadFile(corpus(t, "dwp-nino/cases.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		cols := strings.Split(line, "\t")
		if len(cols) < 3 || strings.HasPrefix(line, "#") || cols[0] != "loose" {
			continue
		}
		value := strings.Trim(cols[1], "|")
		// Loose rules (what a scanner must find in text): spaces anywhere,
		// either case, a suffix letter required.
		got := validNINO(norm(value))
		if got != (cols[2] == "valid") {
			t.Errorf("%q: got %v, want %s (%s)", value, got, cols[2], cols[3])
		}
		n++
	}
	if n < 8 {
		t.Fatalf("read %d cases", n)
	}
}

func TestPostcodeCorpus(t *testing.T) {
	b, err := os.ReadFile(corpus(t, "postcodes/validation.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Tests []struct {
			Base     string `json:"base"`
			Expected bool   `json:"expected"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(b, &v); err != nil || len(v.Tests) < 10 {
		t.Fatalf("%v %d", err, len(v.Tests))
	}
	for _, c := range v.Tests {
		if got := validPostcode(norm(c.Base)); got != c.Expected {
			t.Errorf("%q: got %v", c.Base, got)
		}
	}
}

func TestValidators(t *testing.T) {
	test := func(name string, f func([]byte) bool, valid, invalid []string) {
		t.Helper()
		for _, s := range valid {
			if !f(norm(s)) {
				t.Errorf("%s: %q should be valid", name, s)
			}
		}
		for _, s := range invalid {
			if f(norm(s)) {
				t.Errorf("%s: %q should be invalid", name, s)
			}
		}
	}
	// NHS test numbers (999 range, and the Data Dictionary's example).
	test("nhs", validNHS, []string{"943 476 5919", "9434765919", "999 000 0018"}, []string{"943 476 5918", "1234567890", "999 000 001"})
	// Card test PANs published by the schemes' PSPs.
	test("card", validCard, []string{"4111 1111 1111 1111", "4242424242424242", "5555 5555 5555 4444", "2223003122003222", "3782 822463 10005", "6011111111111117", "3566002020360505", "4000056655665556"},
		[]string{"4111 1111 1111 1112", "1234 5678 9012 3456", "0000000000000000", "9999 9999 9999 9995"})
	test("licence", validLicence, []string{"MORGA657054SM9IJ", "SMITH751129J99AB", "JONES905163AB1CD"}, []string{"MORGA613054SM9IJ", "MORGA657354SM9IJ", "12345657054SM9IJ", "MORGA657054SM9I"})
	test("postcode", validPostcode, []string{"SW1A 1AA", "EC1A 1BB", "W1A 0AX", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "GIR 0AA"}, []string{"SW1A 1CA", "1AA 1AA", "SW1A1A", "Q1 1AA1"})
	test("vat", validGBVAT, []string{"GB 980 7806 84", "GBGD001", "GBHA599"}, []string{"GB 980 7806 85", "GBGD599", "GB000000000"})
}
