package dlp

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestVocalinkCases runs the Vocalink specification's test cases (from the
// uk_account_validator corpus, testdata/uk-identifiers/vocalink-modulus).
func TestVocalinkCases(t *testing.T) {
	f, err := os.Open("../../testdata/uk-identifiers/vocalink-modulus/cases.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		c := strings.Split(line, "\t")
		if len(c) < 6 {
			continue
		}
		sortCode, account, want := strings.ReplaceAll(c[2], "-", ""), c[3], c[4] == "valid"
		if !allDigits(sortCode) {
			continue // the format cases ("separated", "may") test a Ruby API, not the check
		}
		n++
		if got := ValidUKAccount(sortCode, account); got != want {
			t.Errorf("%s %s %s: got %v, want %v (%s)", c[0], sortCode, account, got, want, c[5])
		}
	}
	if n < 35 {
		t.Fatalf("only %d cases", n)
	}
}

func TestSortCodeAccountInText(t *testing.T) {
	test := func(text, want string) {
		t.Helper()
		got := ""
		Text([]byte(text), func(m Match) {
			if m.Detector == SortCode {
				got = m.Confidence.String()
			}
		})
		if got != want {
			t.Errorf("%q: confidence %q, want %q", text, got, want)
		}
	}
	test("sort code 08-99-99 account 66374958", "high")
	test("sort code 08-99-99 account 66374959", "low") // fails the modulus 10 check
	test("08-99-99 66374959", "")
	test("account 88837491 sort code 10-79-99", "high")
	test("account 88837493 sort code 10-79-99", "low")
}
