package dlp

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"sealpost/internal/testutil"
)

// TestDifferentialStdnum checks the validators against an independent
// implementation, python-stdnum (Debian python3-stdnum), on random
// candidates: half made valid by construction, half random.
func TestDifferentialStdnum(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import stdnum.gb.nhs").Run(); err != nil {
		testutil.Missing(t, "python3-stdnum is not installed")
	}
	script := `
import sys
from stdnum.gb import nhs, vat
from stdnum import iban, luhn
for line in sys.stdin:
    kind, v = line.split()
    if kind == "nhs": ok = nhs.is_valid(v)
    elif kind == "vat": ok = vat.is_valid(v)
    elif kind == "iban": ok = iban.is_valid(v, check_country=False)
    elif kind == "luhn": ok = luhn.is_valid(v)
    print("1" if ok else "0")
`
	r := rand.New(rand.NewPCG(3, 4))
	type cand struct{ kind, v string }
	var cands []cand
	for i := 0; i < 1500; i++ {
		nhs := genNHS(r)
		if i%2 == 1 {
			nhs = digitsOf(r, 10)
		}
		v := genVAT(r)
		if i%2 == 1 {
			v = "GB" + digitsOf(r, 9)
		}
		ib := genIBAN(r)
		if i%2 == 1 {
			ib = ib[:2] + digitsOf(r, 2) + ib[4:]
		}
		pan := genLuhn(r, "4", 16)
		if i%2 == 1 {
			pan = digitsOf(r, 16)
		}
		cands = append(cands, cand{"nhs", nhs}, cand{"vat", v}, cand{"iban", ib}, cand{"luhn", pan})
	}
	var in strings.Builder
	for _, c := range cands {
		fmt.Fprintf(&in, "%s %s\n", c.kind, c.v)
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("stdnum: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	disagree, valid := 0, 0
	for i := 0; sc.Scan(); i++ {
		c := cands[i]
		want := sc.Text() == "1"
		var got bool
		switch c.kind {
		case "nhs":
			got = validNHS([]byte(c.v))
		case "vat":
			got = validGBVAT([]byte(c.v))
		case "iban":
			got = validIBAN([]byte(c.v))
		case "luhn":
			got = luhn([]byte(c.v))
		}
		if want {
			valid++
		}
		if got != want {
			disagree++
			if disagree <= 10 {
				t.Errorf("%s %s: ours %v, stdnum %v", c.kind, c.v, got, want)
			}
		}
	}
	if valid < len(cands)/3 {
		t.Fatalf("only %d of %d candidates valid: the generators are off", valid, len(cands))
	}
	t.Logf("%d candidates, %d valid by stdnum, %d disagreements", len(cands), valid, disagree)
}
