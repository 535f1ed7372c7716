package dlp

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestLoadModulusTables: a newer table loaded from a file replaces the
// built-in one for the engine that uses it, and a file that is no table is
// an error naming its line.
func TestLoadModulusTables(t *testing.T) {
	dir := t.TempDir()
	// The published table with the range holding 08-99-99 changed so that
	// the pair Vocalink's own example passes now fails.
	orig, err := os.ReadFile("vocalink/valacdos.txt")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	changed := false
	for _, l := range strings.Split(string(orig), "\n") {
		f := strings.Fields(l)
		if len(f) >= 17 && f[0] <= "089999" && "089999" <= f[1] {
			f[2] = "MOD10"
			f[9] = "9"
			l = strings.Join(f, " ")
			changed = true
		}
		lines = append(lines, l)
	}
	if !changed {
		t.Fatal("no range for 089999 in the table")
	}
	file := filepath.Join(dir, "valacdos-v999.txt")
	os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644)
	when := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	os.Chtimes(file, when, when)
	tab, err := LoadModulusTables(file, "")
	if err != nil {
		t.Fatal(err)
	}
	if tab.Date != "2026-09-01" || tab.Source != file || tab.Ranges() != BuiltinModulusTables().Ranges() {
		t.Fatalf("tables %s %s %d", tab.Source, tab.Date, tab.Ranges())
	}
	if !ValidUKAccount("089999", "66374958") || tab.Valid("089999", "66374958") {
		t.Fatal("the loaded table is not the one checked")
	}
	e, _ := NewEngine(nil, DefaultLimits)
	text := []byte("sort code 08-99-99 account 66374958")
	if got := findings(e.ScanDocument("a.txt", text)); got != "uk-sort-code-account:1:high@file:a.txt" {
		t.Fatalf("built in: %s", got)
	}
	e.SetModulusTables(tab)
	if got := findings(e.ScanDocument("a.txt", text)); got != "uk-sort-code-account:1:low@file:a.txt" {
		t.Fatalf("loaded: %s", got)
	}
	os.WriteFile(filepath.Join(dir, "bad.txt"), []byte("<html>not a table</html>\n"), 0o644)
	if _, err := LoadModulusTables(filepath.Join(dir, "bad.txt"), ""); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad table: %v", err)
	}
	if BuiltinModulusTables().Date != "2023-05-30" {
		t.Fatal(BuiltinModulusTables().Date)
	}
}
