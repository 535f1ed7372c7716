package dlp

import "strings"

// Validators for UK personal identifiers. Each takes the identifier's
// significant characters (separators removed, letters upper-cased) and says
// whether it could be real: check digits where the scheme has them, and the
// published allocation rules where it does not.

// validNHS: 10 digits, modulus 11 with weights 10..2; a check value of 10
// is never issued (NHS Data Dictionary, "NHS number").
func validNHS(d []byte) bool {
	if len(d) != 10 {
		return false
	}
	sum := 0
	for i := 0; i < 9; i++ {
		sum += int(d[i]-'0') * (10 - i)
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	return check != 10 && check == int(d[9]-'0')
}

// validNINO: two prefix letters, six digits, suffix A-D (DWP CV0013). The
// first letter is not D, F, I, Q, U or V; the second not D, F, I, O, Q, U or
// V; and BG, GB, KN, NK, NT, TN and ZZ are never allocated.
func validNINO(s []byte) bool {
	if len(s) != 9 {
		return false
	}
	a, b := s[0], s[1]
	if !isUpper(a) || !isUpper(b) {
		return false
	}
	switch a {
	case 'D', 'F', 'I', 'Q', 'U', 'V':
		return false
	}
	switch b {
	case 'D', 'F', 'I', 'O', 'Q', 'U', 'V':
		return false
	}
	switch string(s[:2]) {
	case "BG", "GB", "KN", "NK", "NT", "TN", "ZZ":
		return false
	}
	for _, c := range s[2:8] {
		if !isDigit(c) {
			return false
		}
	}
	return s[8] >= 'A' && s[8] <= 'D'
}

// luhn reports whether the digits pass the Luhn (mod 10) check (ISO/IEC
// 7812-1 Annex B).
func luhn(d []byte) bool {
	sum, double := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// cardScheme returns the scheme whose issuer identification number range
// and length fit the PAN, "" if none does.
func cardScheme(d []byte) string {
	n := len(d)
	p := func(k int) int { // first k digits as a number
		v := 0
		for i := 0; i < k && i < n; i++ {
			v = v*10 + int(d[i]-'0')
		}
		return v
	}
	switch {
	case d[0] == '4' && (n == 13 || n == 16 || n == 19):
		return "visa"
	case (p(2) >= 51 && p(2) <= 55 || p(4) >= 2221 && p(4) <= 2720) && n == 16:
		return "mastercard"
	case (p(2) == 34 || p(2) == 37) && n == 15:
		return "amex"
	case (p(4) == 6011 || p(3) >= 644 && p(3) <= 649 || p(2) == 65) && n >= 16 && n <= 19:
		return "discover"
	case p(4) >= 3528 && p(4) <= 3589 && n >= 16 && n <= 19:
		return "jcb"
	case (p(2) == 36 || p(3) >= 300 && p(3) <= 305 || p(2) == 38 || p(2) == 39) && n >= 14 && n <= 19:
		return "diners"
	case p(2) == 62 && n >= 16 && n <= 19:
		return "unionpay"
	case maestroIIN(p(4)) && n >= 12 && n <= 19:
		return "maestro"
	}
	return ""
}

// maestroIIN: the ranges Maestro cards are issued in (Mastercard's IIN
// table: 5018, 5020, 5038, 5893, 6304, 6759, 6761-6763), not the whole of
// 50 and 56-69 that ISO/IEC 7812 leaves open, most of which no card uses.
func maestroIIN(p4 int) bool {
	switch p4 {
	case 5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763:
		return true
	}
	return false
}

func validCard(d []byte) bool {
	return len(d) >= 12 && len(d) <= 19 && cardScheme(d) != "" && luhn(d)
}

// validIBAN: the country's BBAN shape (ISO 13616 registry) and the ISO 7064
// mod 97-10 check. National check digits inside the BBAN are not checked: a
// mod-97-valid IBAN with a wrong national check is still an account number
// someone typed.
func validIBAN(s []byte) bool {
	if len(s) < 15 || len(s) > 34 || !isUpper(s[0]) || !isUpper(s[1]) || !isDigit(s[2]) || !isDigit(s[3]) {
		return false
	}
	shape, ok := ibanBBAN[string(s[:2])]
	if !ok || len(shape)+4 != len(s) {
		return false
	}
	for i, k := range []byte(shape) {
		c := s[4+i]
		if k == 'n' && !isDigit(c) || k == 'a' && !isUpper(c) || k == 'c' && !isDigit(c) && !isUpper(c) {
			return false
		}
	}
	rem := 0
	add := func(c byte) bool {
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case isUpper(c):
			v := int(c-'A') + 10
			rem = (rem*100 + v) % 97
		default:
			return false
		}
		return true
	}
	for _, c := range s[4:] {
		if !add(c) {
			return false
		}
	}
	for _, c := range s[:4] {
		add(c)
	}
	return rem == 1
}

// validGBVAT: "GB" and 9 digits (or 12, with a branch suffix), checked as
// python-stdnum's gb.vat does (and tested against it): the weighted sum
// mod 97 is 0, 42 or 55; or the government departments (GD) and health
// authorities (HA) ranges.
func validGBVAT(s []byte) bool {
	if len(s) < 5 || string(s[:2]) != "GB" {
		return false
	}
	n := s[2:]
	if len(n) == 5 && (string(n[:2]) == "GD" || string(n[:2]) == "HA") {
		v := atoi(n[2:])
		if v < 0 {
			return false
		}
		if string(n[:2]) == "GD" {
			return v < 500
		}
		return v >= 500
	}
	if len(n) == 12 {
		n = n[:9]
	}
	if len(n) != 9 || atoi(n) < 0 {
		return false
	}
	if string(n) == "000000000" {
		return false // a placeholder, not a number
	}
	sum := 0
	for i := 0; i < 7; i++ {
		sum += int(n[i]-'0') * (8 - i)
	}
	sum += atoi(n[7:9])
	// Remainder 0 (mod 97), 42 (mod 9755, numbers issued since 2010) or 55
	// (restarted numbering); below 100 only mod 97 was ever used.
	switch r := sum % 97; {
	case atoi(n[:3]) >= 100:
		return r == 0 || r == 42 || r == 55
	default:
		return r == 0
	}
}

// validLicence: a DVLA driving licence number (16 characters): five of the
// surname (padded with 9), the decade digit, the month of birth (plus 5 for
// women), the day, the year digit, two initials (padded with 9), a digit and
// two check characters.
func validLicence(s []byte) bool {
	if len(s) != 16 {
		return false
	}
	// The surname's first five letters, padded with 9s: once a 9, only 9s.
	padded := false
	for _, c := range s[:5] {
		switch {
		case c == '9':
			padded = true
		case !isUpper(c) || padded:
			return false
		}
	}
	if !isUpper(s[0]) {
		return false
	}
	for _, c := range s[5:11] {
		if !isDigit(c) {
			return false
		}
	}
	month := atoi(s[6:8])
	if month > 50 {
		month -= 50
	}
	day := atoi(s[8:10])
	if month < 1 || month > 12 || day < 1 || day > 31 {
		return false
	}
	if !isUpper(s[11]) || !(isUpper(s[12]) || s[12] == '9') || !isDigit(s[13]) {
		return false
	}
	return (isUpper(s[14]) || isDigit(s[14])) && (isUpper(s[15]) || isDigit(s[15]))
}

// validPostcode: the UK postcode format (BS 7666): outward code A9, A99,
// AA9, AA99, A9A or AA9A, then inward 9AA; the inward letters never C, I, K,
// M, O or V; plus GIR 0AA.
func validPostcode(s []byte) bool {
	if string(s) == "GIR0AA" {
		return true
	}
	if len(s) < 5 || len(s) > 7 {
		return false
	}
	in := s[len(s)-3:]
	if !isDigit(in[0]) || !inwardLetter(in[1]) || !inwardLetter(in[2]) {
		return false
	}
	out := s[:len(s)-3]
	// BS 7666 letter positions: the first letter is never Q, V or X; the
	// second never I, J or Z; a letter third (A9A) only A B C D E F G H J K
	// P S T U W; a letter fourth (AA9A) only A B E H M N P R V W X Y.
	if !isUpper(out[0]) || strings.IndexByte("QVX", out[0]) >= 0 {
		return false
	}
	second := func(c byte) bool { return isUpper(c) && strings.IndexByte("IJZ", c) < 0 }
	switch {
	case len(out) == 2: // A9
		return isDigit(out[1])
	case len(out) == 3: // A99, AA9, A9A
		return isDigit(out[1]) && isDigit(out[2]) || second(out[1]) && isDigit(out[2]) ||
			isDigit(out[1]) && strings.IndexByte("ABCDEFGHJKPSTUW", out[2]) >= 0
	case len(out) == 4: // AA99, AA9A
		return second(out[1]) && isDigit(out[2]) && (isDigit(out[3]) || strings.IndexByte("ABEHMNPRVWXY", out[3]) >= 0)
	}
	return false
}

func inwardLetter(c byte) bool {
	switch c {
	case 'C', 'I', 'K', 'M', 'O', 'V':
		return false
	}
	return isUpper(c)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

func atoi(d []byte) int {
	v := 0
	for _, c := range d {
		if !isDigit(c) {
			return -1
		}
		v = v*10 + int(c-'0')
	}
	return v
}
