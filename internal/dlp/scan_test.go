package dlp

import (
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"testing"
)

func matches(s string) string {
	var out []string
	Text([]byte(s), func(m Match) { out = append(out, m.Detector+"/"+m.Confidence.String()) })
	sort.Strings(out)
	return strings.Join(out, ",")
}

func TestScannerFinds(t *testing.T) {
	test := func(text, want string) {
		t.Helper()
		if got := matches(text); got != want {
			t.Errorf("%q:\n got  %s\n want %s", text, got, want)
		}
	}
	// NHS numbers: grouped, or plain with context.
	test("Patient NHS no. 943 476 5919 was seen.", "uk-nhs-number/high")
	test("ref 943 476 5919.", "uk-nhs-number/medium")
	test("NHS number: 9434765919", "uk-nhs-number/high")
	test("order 9434765919 shipped", "")  // plain 10 digits, no context
	test("NHS no. 943 476 5918", "")      // bad check digit
	test("call 0161 496 0000 today", "")  // phone number
	test("on 2024-05-06 at 10:30", "")    // date and time
	test("invoice INV-943 476 5919X", "") // part of a code
	test("tel +44 943 476 5919", "")      // international phone
	// NI numbers.
	test("NI number AB 12 34 56 C", "uk-nino/high")
	test("hers is ab123456c.", "uk-nino/medium")
	test("ni number ab 12 34 56 c", "uk-nino/high")
	test("aB123456C and Ab 12 34 56 d", "uk-nino/medium,uk-nino/medium")
	test("xab123456c", "")
	test("QQ123456C", "") // Q never first
	test("ZZ123456D", "") // never allocated
	test("AB123456", "")  // no suffix letter
	test("AB123456E", "") // suffix A-D only
	// Cards.
	test("card 4111 1111 1111 1111 exp 12/27", "payment-card/high")
	test("4111-1111-1111-1111", "payment-card/high")
	test("pan 4242424242424242", "payment-card/high")
	test("id 4242424242424241", "")         // Luhn fails
	test("tracking 1Z999AA10123456784", "") // UPS tracking code
	test("amex 3782 822463 10005", "payment-card/high")
	// IBAN, sort code and account.
	test("IBAN GB82 WEST 1234 5698 7654 32", "iban/high")
	test("pay GB82WEST12345698765432 now", "iban/high")
	test("GB82 WEST 1234 5698 7654 33", "")
	test("sort code 08-99-99 account 66374958", "uk-sort-code-account/high")
	test("Acc no 88837491, sort code 10 79 99", "uk-sort-code-account/high")
	test("sort code 20-00-00", "uk-sort-code-account/medium")
	test("version 20-00-00", "")
	// Passport, licence, VAT, postcode, keys.
	test("passport number 123456789", "uk-passport/high")
	test("ticket 123456789", "")
	test("driving licence MORGA657054SM9IJ", "uk-driving-licence/high")
	test("VAT reg GB 980 7806 84", "uk-vat/high")
	test("GB980780684", "uk-vat/medium")
	test("address: 10 Downing St, London SW1A 2AA", "uk-postcode/medium")
	test("in SW1A 2AA", "uk-postcode/low")
	test("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n", "private-key/high")
	test("-----BEGIN RSA PRIVATE KEY-----", "private-key/high")
	test("-----BEGIN PUBLIC KEY-----", "")
	test("", "")
}

// FuzzText: the scanner never panics or loops, and each match consumes text.
func FuzzText(f *testing.F) {
	for _, s := range []string{"NHS 943 476 5919", "AB 12 34 56 C", "GB82 WEST 1234 5698 7654 32", "-----BEGIN ", "sort code 08-99-99 66374958", "GB 980 7806 84", "SW1A 2AA"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		Text(b, func(Match) { n++ })
		if n > len(b)/4+1 {
			t.Fatalf("%d matches in %d bytes", n, len(b))
		}
	})
}

func BenchmarkTextProse(b *testing.B) {
	prose := strings.Repeat("Dear Ms Smith, thank you for your letter of 3 March about the planning application for the extension at the rear of your property. The committee will consider it on 14 April 2025; you may attend. Regards, The Planning Team, Example Council.\n", 2000)
	benchText(b, prose)
}

func BenchmarkTextDense(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&sb, "Patient %d NHS no. 943 476 5919, NI AB123456C, card 4111 1111 1111 1111, tel 0161 496 %04d.\n", i, i)
	}
	benchText(b, sb.String())
}

// BenchmarkTextNumberDense is number-dense text as in casework, minutes
// and finance mail (a date, an amount or a reference every few words; the
// shape of bench/dlpscan's -dense corpus): the case the scanner's digit-run
// and context paths are tuned for (go test -bench NumberDense -cpuprofile).
func BenchmarkTextNumberDense(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 4000; i++ {
		d, m, y := 1+i%28, 1+i%12, 2019+i%7
		fmt.Fprintf(&sb, "Ref %d/%06d: on %02d/%02d/%d the tenant paid £%d,%03d.%02d against invoice INV-%d-%06d; call 0161 496 %04d.\n", y, i*37, d, m, y, 1+i%9, i%1000, i%100, y, i*91, i)
		fmt.Fprintf(&sb, "Item %d.%d (minute %d/%d): spend of £%d (%d.%d%% of budget) at %02d:%02d on %d-%02d-%02d, case %d/%05d/FUL, PO %08d, Flat %d, %d High Road, LS1 4AP.\n", 1+i%20, 1+i%9, y%100, i%400, i*13, i%100, i%10, i%24, i%60, y, m, d, y%100, i, i*7919, i%40, i%300)
		if i%8 == 0 {
			sb.WriteString("NHS no. 943 476 5919, sort code 08-99-99 account 66374958.\n")
		}
	}
	benchText(b, sb.String())
}

func benchText(b *testing.B, s string) {
	data := []byte(s)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Text(data, func(Match) {})
	}
}

// TestCandidates checks the word-at-a-time skip against the byte table: for
// every byte value in every position, a byte the scanner must look at is
// never skipped, and the first flagged byte is the first in range.
func TestCandidates(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 8; pos++ {
			v := uint64(0x6161616161616161) // "aaaaaaaa"
			v = v&^(0xff<<(8*pos)) | uint64(c)<<(8*pos)
			got := candidates(v)
			inRange := c >= 0x2D && c <= 0x5A
			if (got != 0) != inRange {
				t.Fatalf("byte %#x at %d: mask %#x", c, pos, got)
			}
			if interesting[c] && !inRange {
				t.Fatalf("interesting byte %#x outside the range", c)
			}
			if got != 0 && bits.TrailingZeros64(got)/8 != pos {
				t.Fatalf("byte %#x at %d: first flagged %d", c, pos, bits.TrailingZeros64(got)/8)
			}
		}
	}
}
