// Package dlp finds personal identifiers and other sensitive content in text
// (data-loss prevention).
//
// The scanner makes one pass over the text and looks closely only at tokens
// that could start an identifier: a run of digits, a pair of letters
// followed by digits, an upper-case token of identifier length, a PEM
// header. Each candidate is then checked the way its issuer defines it
// (check digits, allocation rules, lengths) rather than matched by a loose
// pattern, so phone numbers, dates, invoice numbers and tracking codes are
// not reported. Confidence rises with context words near the match ("NHS
// no.", "sort code"), with the grouping issuers print, and with the number
// of matches; it falls, or a match is dropped, after words that name the
// number as something else ("tel", "order") and inside longer groups of
// digits. docs/dlp.md sets the model out per detector; confidence_test.go
// holds it case by case.
package dlp

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

const (
	ones = 0x0101010101010101
	hi   = 0x8080808080808080
)

// Detector names (INTERFACE.md).
const (
	NINO        = "uk-nino"
	NHS         = "uk-nhs-number"
	Card        = "payment-card"
	IBAN        = "iban"
	SortCode    = "uk-sort-code-account"
	Passport    = "uk-passport"
	Licence     = "uk-driving-licence"
	Postcode    = "uk-postcode"
	VAT         = "uk-vat"
	PrivateKey  = "private-key"
	Unscannable = "unscannable"
)

// Confidence of a match.
type Confidence int

const (
	Low Confidence = iota + 1
	Medium
	High
)

func (c Confidence) String() string {
	switch c {
	case High:
		return "high"
	case Medium:
		return "medium"
	}
	return "low"
}

// Match is one identifier found. The value itself is never kept: findings
// must not become a second copy of the personal data.
type Match struct {
	Detector   string
	Confidence Confidence
}

// char classes
const (
	cOther = iota
	cDigit
	cUpper
	cLower
	cDash
)

var class [256]uint8

func init() {
	for c := '0'; c <= '9'; c++ {
		class[c] = cDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		class[c] = cUpper
	}
	for c := 'a'; c <= 'z'; c++ {
		class[c] = cLower
	}
	class['-'] = cDash
}

func isAlnum(c byte) bool { k := class[c]; return k == cDigit || k == cUpper || k == cLower }

// contextWords raise a detector's confidence when they appear shortly before
// a match (or, for some, after it). Lower case.
var contextWords = map[string][]string{
	NHS:      {"nhs", "health service", "chi number", "chi no", "patient"},
	NINO:     {"national insurance", "ni number", "ni no", "nino", "nat ins"},
	Card:     {"card", "visa", "mastercard", "amex", "pan", "expiry", "cvv"},
	IBAN:     {"iban", "bank", "account"},
	SortCode: {"sort code", "sort-code", "sortcode", "account", "acc no", "a/c"},
	Passport: {"passport"},
	Licence:  {"licence", "license", "dvla", "driving"},
	VAT:      {"vat"},
	Postcode: {"address", "postcode", "post code"},
	// Words that say a number is a phone number (so a 3-3-4 group is no
	// NHS number without an NHS word), or an order, parcel or booking
	// reference (so an unbroken 16 digits is no card without a card word).
	phone:   {"tel", "telephone", "phone", "call", "mobile", "mob", "fax", "ring", "sms", "whatsapp", "contact"},
	notCard: {"order", "tracking", "track", "parcel", "consignment", "shipment", "invoice", "ref", "reference", "booking", "ticket", "policy", "serial", "imei", "barcode"},
}

// Pseudo-detectors for the negative context words above.
const (
	phone   = "phone"
	notCard = "not-card"
)

const contextWindow = 48

// negativeWindow is how close before a match a word that says "not this"
// must be: "Tel: 0161 …", not a mention of the phone three lines up.
const negativeWindow = 16

// hasContext reports whether one of det's context words appears in the
// window before start or right after end.
func hasContext(b []byte, start, end int, det string) bool {
	lo := max(0, start-contextWindow)
	hi := min(len(b), end+24)
	var buf [contextWindow + 24 + 40]byte
	nb := lowerInto(buf[:], b[lo:start])
	buf[nb] = ' '
	w := buf[:nb+1+lowerInto(buf[nb+1:], b[end:hi])]
	for _, word := range contextWords[det] {
		if i := bytes.Index(w, []byte(word)); i >= 0 {
			// whole words only
			if (i == 0 || !isAlnum(w[i-1])) && (i+len(word) == len(w) || !isAlnum(w[i+len(word)])) {
				return true
			}
		}
	}
	return false
}

// saidBefore reports whether one of det's words ends within negativeWindow
// bytes before start.
func saidBefore(b []byte, start int, det string) bool {
	lo := max(0, start-negativeWindow)
	return hasContext(b[lo:start], start-lo, start-lo, det)
}

// lowerInto writes src in lower case to the start of dst, eight bytes at a
// time (context lookups run for every candidate, and number-dense text has
// many): the capitals' 0x20 bit is set by the same SWAR range test as
// candidates. dst needs room for len(src). It returns len(src).
func lowerInto(dst, src []byte) int {
	k := 0
	for ; k+8 <= len(src); k += 8 {
		v := binary.LittleEndian.Uint64(src[k:])
		v7 := v & 0x7f7f7f7f7f7f7f7f
		upper := (v7 + ones*(0x80-'A')) &^ (v7 + ones*(0x80-'Z'-1)) &^ v & hi
		binary.LittleEndian.PutUint64(dst[k:], v|upper>>2)
	}
	for ; k < len(src); k++ {
		dst[k] = lower(src[k])
	}
	return len(src)
}

func lower(c byte) byte {
	if class[c] == cUpper {
		return c + 32
	}
	return c
}

// interesting marks the bytes where an identifier can start: digits,
// capitals and '-' (PEM). Prose is mostly lower-case letters, spaces and
// punctuation, which the scanner skips without looking further.
var interesting [256]bool

func init() {
	for c := 0; c < 256; c++ {
		k := class[c]
		interesting[c] = k == cDigit || k == cUpper || k == cDash
	}
}

// Text scans b and calls found for every identifier (bank accounts checked
// against the built-in Vocalink tables).
func Text(b []byte, found func(Match)) { scanText(b, BuiltinModulusTables(), found) }

func scanText(b []byte, tables *ModulusTables, found func(Match)) {
	n := len(b)
	i := 0
	for {
		// Skip uninteresting bytes eight at a time: a word of text is
		// passed over when none of its bytes lies in '-' (0x2D) .. 'Z'
		// (0x5A), the range that holds '-', the digits and the capitals
		// (SWAR: per-byte range test by adding constants; bytes are kept
		// below 0x80 first so no carry crosses into the next byte).
		for i+8 <= n {
			inRange := candidates(binary.LittleEndian.Uint64(b[i:]))
			if inRange == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(inRange) / 8
			break
		}
		for i < n && !interesting[b[i]] {
			i++
		}
		if i >= n {
			return
		}
		k := class[b[i]]
		inToken := i > 0 && isAlnum(b[i-1])
		next := i + 1
		switch {
		case k == cDigit && inToken:
			// Digits inside a word: a lower-case NI number ("ab123456c")
			// is found from here; anything else in the token is skipped.
			if i >= 2 && isLetter(b[i-1]) && isLetter(b[i-2]) && (i == 2 || !isAlnum(b[i-3])) {
				if e, ok := nino(b, i-2); ok {
					ninoFound(b, i-2, e, found)
					next = e
					break
				}
				// Lower or mixed case: "gb82west…", "gb980780684".
				if e, ok := iban(b, i-2); ok {
					found(Match{IBAN, High})
					next = e
					break
				}
				if lower(b[i-2]) == 'g' && lower(b[i-1]) == 'b' {
					if e, ok := vat(b, i-2); ok {
						vatFound(b, i-2, e, found)
						next = e
						break
					}
				}
			}
			if i >= 4 && lower(b[i-4]) == 'g' && lower(b[i-3]) == 'b' && (i == 4 || !isAlnum(b[i-5])) {
				// "gbgd001", "gbha599": government departments, health authorities.
				if e, ok := vat(b, i-4); ok {
					vatFound(b, i-4, e, found)
					next = e
					break
				}
			}
			next = tokenEnd(b, i)
		case k == cDigit:
			next = digits(b, i, tables, found)
		case k == cUpper && !inToken && (i+1 == n || class[b[i+1]] != cLower):
			next = letters(b, i, found)
		case k == cUpper && !inToken:
			// A capitalised word ("The", "Dear"): every identifier that
			// starts with a letter starts with two capitals or a capital
			// and a digit, so move on; the rest of the word is lower case,
			// which the word-at-a-time skip passes over.
			next = i + 1
		case k == cDash:
			next = pem(b, i, found)
		}
		if next <= i {
			next = i + 1
		}
		i = next
	}
}

// candidates has the high bit set in each byte of v that lies in '-'..'Z'.
func candidates(v uint64) uint64 {
	v7 := v & 0x7f7f7f7f7f7f7f7f
	return (v7 + ones*(0x80-0x2D)) &^ (v7 + ones*(0x80-0x5B)) &^ v & hi
}

func tokenEnd(b []byte, i int) int {
	for i < len(b) && isAlnum(b[i]) {
		i++
	}
	return i
}

func vatFound(b []byte, start, end int, found func(Match)) {
	c := Medium
	if hasContext(b, start, end, VAT) {
		c = High
	}
	found(Match{VAT, c})
}

func ninoFound(b []byte, start, end int, found func(Match)) {
	c := Medium
	if hasContext(b, start, end, NINO) {
		c = High
	}
	found(Match{NINO, c})
}

// digitGroups reads digits in groups separated by one space, hyphen, full
// stop or nothing: "943 476 5919", "4111-1111-1111-1111", "943.476.5919". It returns the digits,
// the group lengths and the end.
func digitGroups(b []byte, i int, dst []byte, groups []int) ([]byte, []int, int) {
	n := len(b)
	var sep byte
	for len(dst) < 24 {
		start := i
		stop := min(n, i+24-len(dst))
		for i < stop && class[b[i]] == cDigit {
			i++
		}
		dst = append(dst, b[start:i]...)
		groups = append(groups, i-start)
		if i+1 < n && (b[i] == ' ' || b[i] == '-' || b[i] == '.') && class[b[i+1]] == cDigit && (sep == 0 || sep == b[i]) && len(groups) < 6 {
			sep = b[i]
			i++
			continue
		}
		break
	}
	return dst, groups, i
}

func eq(g []int, want ...int) bool {
	if len(g) != len(want) {
		return false
	}
	for i := range g {
		if g[i] != want[i] {
			return false
		}
	}
	return true
}

// digits looks at a run of digit groups starting at i.
func digits(b []byte, i int, tables *ModulusTables, found func(Match)) int {
	// "ab 12 34 56 c": a spaced NI number in lower case starts two letters
	// and a space before its digits.
	// Most "xy 12" in prose ("of 63", "to 5", "in 2024") fail the letter
	// rules of an NI prefix, which are tested first, cheaply.
	if i >= 3 && b[i-1] == ' ' && isLetter(b[i-2]) && isLetter(b[i-3]) && (i == 3 || !isAlnum(b[i-4])) && ninoPrefix(b[i-3], b[i-2]) {
		if e, ok := nino(b, i-3); ok {
			ninoFound(b, i-3, e, found)
			return e
		}
	}
	// Fast path for the dates, amounts and references of number-dense
	// text ("2024/118734", "£1,234.56", "12/03/2025"): a lone run of
	// digits, not followed by a separator and another digit, can only be
	// an identifier at the lengths tested below (an unbroken NHS, card,
	// VAT, passport, sort code or account number). Any other lone run is
	// skipped with the rest of its token, exactly where the general path
	// would resume.
	j := i
	for j < len(b) && class[b[j]] == cDigit {
		j++
	}
	if !loneRunCandidate(j-i) && !(j+1 < len(b) && (b[j] == ' ' || b[j] == '-' || b[j] == '.') && class[b[j+1]] == cDigit) {
		for j < len(b) && isAlnum(b[j]) {
			j++
		}
		return j
	}
	var dbuf [24]byte
	var gbuf [6]int
	d, g, end := digitGroups(b, i, dbuf[:0], gbuf[:0])
	if end < len(b) && isAlnum(b[end]) {
		// "123abc": part of a code, not an identifier; skip the token
		for end < len(b) && isAlnum(b[end]) {
			end++
		}
		return end
	}
	if i > 0 {
		switch p := b[i-1]; {
		case p == '+' || p == '/':
			return end // +44…, dates, paths
		case (p == '.' || p == ':') && !(i >= 2 && isLetter(b[i-2])):
			return end // version numbers, dates, times; but "NHS:943…" is a label
		}
	}
	switch {
	case len(d) == 10 && (eq(g, 3, 3, 4) || eq(g, 10)) && validNHS(d):
		if c := nhsConfidence(b, i, end, d, g); c > 0 {
			found(Match{NHS, c})
			return end
		}
	case len(d) >= 12 && len(d) <= 19 && (len(g) == 1 || allFours(g) || eq(g, 4, 6, 5) || eq(g, 4, 6, 4)):
		if !validCard(d) && len(g) >= 4 && end < len(b) && b[end] == '/' {
			// "4111 1111 1111 1111 12/27": the expiry date is no group.
			last := g[len(g)-1]
			d, g = d[:len(d)-last], g[:len(g)-1]
			end -= last + 1
		}
		if !validCard(d) {
			break
		}
		if c := cardConfidence(b, i, end, d, g); c > 0 {
			found(Match{Card, c})
		}
		return end
	case len(d) == 9 && (len(g) == 1 || eq(g, 3, 4, 2)) && hasContext(b, i, end, VAT) && validGBVAT(append([]byte("GB"), d...)):
		// A GB VAT number written without its prefix, next to "VAT".
		found(Match{VAT, High})
		return end
	case len(d) == 9 && len(g) == 1 && hasContext(b, i, end, Passport):
		found(Match{Passport, High})
		return end
	case len(d) == 6 && (eq(g, 2, 2, 2) || eq(g, 6)):
		// A sort code counts with an 8-digit account number close after it,
		// or with "sort code" before it.
		if accStart, acc := accountAfter(b, end); acc > 0 {
			// Vocalink modulus check: a pair that fails it is no account
			// (or mistyped); with "sort code" nearby it is still worth a
			// low-confidence mention.
			if tables.Valid(string(d), string(b[accStart:acc])) {
				found(Match{SortCode, High})
			} else if hasContext(b, i, end, SortCode) {
				found(Match{SortCode, Low})
			}
			return acc
		}
		if len(g) == 3 && hasContext(b, i, end, SortCode) {
			found(Match{SortCode, Medium})
			return end
		}
	case len(d) == 8 && len(g) == 1:
		// account number then sort code
		// The sort code is looked for first: it is cheaper than the
		// context words and absent after most 8-digit numbers.
		if scDigits, sc := sortCodeAfter(b, end); sc > 0 && hasContext(b, i, end, SortCode) {
			if tables.Valid(scDigits, string(d)) {
				found(Match{SortCode, High})
			} else {
				found(Match{SortCode, Low})
			}
			return sc
		}
	}
	return end
}

// loneRunCandidate reports whether an unbroken run of n digits has the
// length of an identifier that digits reports without separators: a sort
// code (6), an account number (8), a VAT or passport number (9), an NHS
// number (10) or a card number (12 to 19). It must stay in step with the
// single-group cases of digits' switch.
func loneRunCandidate(n int) bool {
	return n == 6 || n == 8 || n == 9 || n == 10 || n >= 12 && n <= 19
}

// nhsConfidence: high with an NHS word near; medium for the 3-3-4 grouping
// the NHS prints, if the number lies in an allocated range (3xx Northern
// Ireland, 4xx and 6xx-7xx England and Wales, 9xx the test range) and
// nothing says it is a phone number; else not reported.
func nhsConfidence(b []byte, i, end int, d []byte, g []int) Confidence {
	if hasContext(b, i, end, NHS) {
		return High
	}
	if len(g) != 3 {
		return 0
	}
	switch d[0] {
	case '3', '4', '6', '7', '9':
	default:
		return 0 // 0…, 1…, 2…: UK and US phone groupings ("020 794 60958", "212 555 0123")
	}
	k := i - 1
	for k >= 0 && b[k] == ' ' {
		k--
	}
	if k >= 0 && (b[k] == ')' || b[k] == '+') || saidBefore(b, i, phone) {
		return 0 // "+44 (0) 161 …", "Tel 0161 …"
	}
	return Medium
}

// cardConfidence: high with a card word near, or grouped as cards are
// printed with a major scheme's prefix (Visa, Mastercard, Amex); medium for
// a grouped number of another scheme, or an unbroken major-scheme number
// that nothing calls an order, parcel or reference number; else not
// reported (an unbroken 16 digits passes Luhn one time in ten).
func cardConfidence(b []byte, i, end int, d []byte, g []int) Confidence {
	if i >= 2 && (b[i-1] == ' ' || b[i-1] == '-' || b[i-1] == '.') && class[b[i-2]] == cDigit {
		return 0 // the tail of a longer group of digits
	}
	scheme := cardScheme(d)
	major := scheme == "visa" || scheme == "mastercard" || scheme == "amex"
	if len(g) > 1 && major || hasContext(b, i, end, Card) {
		return High
	}
	switch {
	case len(g) > 1:
		return Medium
	case major && !saidBefore(b, i, notCard):
		return Medium
	}
	return 0
}

func allFours(g []int) bool {
	for i, v := range g {
		if v != 4 && !(i == len(g)-1 && v >= 1 && v <= 4) {
			return false
		}
	}
	return len(g) >= 3
}

// accountAfter finds an 8-digit account number within a few words after a
// sort code ending at i; it returns the account's end or 0.
func accountAfter(b []byte, i int) (start, end int) {
	limit := min(len(b), i+40)
	for j := i; j < limit; j++ {
		if class[b[j]] == cDigit && (j == 0 || !isAlnum(b[j-1])) {
			k := j
			for k < len(b) && class[b[k]] == cDigit {
				k++
			}
			if k-j == 8 && (k == len(b) || !isAlnum(b[k])) {
				return j, k
			}
			return 0, 0
		}
	}
	return 0, 0
}

// sortCodeAfter finds a sort code (12-34-56, 12 34 56, 123456) shortly after i.
func sortCodeAfter(b []byte, i int) (string, int) {
	limit := min(len(b), i+40)
	for j := i; j < limit; j++ {
		if class[b[j]] == cDigit && !isAlnum(b[j-1]) {
			var dbuf [24]byte
			var gbuf [6]int
			d, g, end := digitGroups(b, j, dbuf[:0], gbuf[:0])
			if len(d) == 6 && (eq(g, 2, 2, 2) || eq(g, 6)) && (end == len(b) || !isAlnum(b[end])) {
				return string(d), end
			}
			return "", 0
		}
	}
	return "", 0
}

// letters looks at a token starting with a letter.
func letters(b []byte, i int, found func(Match)) int {
	n := len(b)
	// The alphanumeric token from i.
	end := i
	for end < n && isAlnum(b[end]) {
		end++
	}
	tok := b[i:end]
	// Every identifier that starts with a capital has a digit in its first
	// token, except a spaced NI number or VAT number ("AB 12…", "GB 123…").
	hasDigit := false
	for _, c := range tok[:min(len(tok), 11)] {
		if class[c] == cDigit {
			hasDigit = true
			break
		}
	}
	spacedDigits := end+1 < n && (b[end] == ' ' || b[end] == '-' || b[end] == '.') && class[b[end+1]] == cDigit
	if !hasDigit && !(len(tok) == 2 && spacedDigits) && !(len(tok) <= 4 && spacedDigits) {
		return end
	}
	// National Insurance number: AB123456C, AB 12 34 56 C.
	if (len(tok) == 9 || len(tok) == 2) && class[tok[1]] >= cUpper {
		if e, ok := nino(b, i); ok {
			ninoFound(b, i, e, found)
			return e
		}
	}
	// IBAN: GB82 WEST 1234 5698 7654 32 or unspaced.
	if len(tok) >= 4 && class[tok[1]] == cUpper && class[tok[2]] == cDigit && class[tok[3]] == cDigit {
		if e, ok := iban(b, i); ok {
			found(Match{IBAN, High})
			return e
		}
	}
	// UK VAT: GB 123 4567 89, GB123456789, GBGD001.
	if tok[0] == 'G' && len(tok) >= 2 && tok[1] == 'B' {
		if e, ok := vat(b, i); ok {
			vatFound(b, i, e, found)
			return e
		}
	}
	// Driving licence: one 16-character token.
	if len(tok) == 16 {
		var u [16]byte
		for k := range tok {
			u[k] = tok[k]
		}
		if validLicence(u[:]) {
			c := Medium
			if hasContext(b, i, end, Licence) {
				c = High
			}
			found(Match{Licence, c})
			return end
		}
	}
	// Postcode: "SW1A 1AA" (two tokens) or "SW1A1AA".
	if len(tok) >= 2 && len(tok) <= 7 {
		if e, ok := postcode(b, i, end); ok {
			c := Low
			if hasContext(b, i, e, Postcode) {
				c = Medium
			}
			found(Match{Postcode, c})
			return e
		}
	}
	return end
}

// ninoPrefix reports whether two letters, either case, may begin a
// National Insurance number (the letter rules of validNINO).
func ninoPrefix(a, b byte) bool {
	s := [9]byte{a &^ 0x20, b &^ 0x20, '0', '0', '0', '0', '0', '0', 'A'}
	return validNINO(s[:])
}

// nino reads a National Insurance number at i, spaces allowed between the
// pairs of digits, either case.
func nino(b []byte, i int) (int, bool) {
	var s [9]byte
	n := 0
	j := i
	for j < len(b) && n < 9 {
		c := b[j]
		switch {
		case (c == ' ' || c == '-' || c == '.') && n >= 2 && n <= 8 && j+1 < len(b) && isAlnum(b[j+1]):
			j++
			continue
		case n < 2 || n == 8:
			if class[c] != cUpper && class[c] != cLower {
				return 0, false
			}
			s[n] = c &^ 0x20
		default:
			if class[c] != cDigit {
				return 0, false
			}
			s[n] = c
		}
		n++
		j++
	}
	if n != 9 || (j < len(b) && isAlnum(b[j])) {
		return 0, false
	}
	return j, validNINO(s[:])
}

// iban reads an IBAN at i: letters, check digits, then the BBAN in groups of
// four separated by single spaces, or unspaced.
func iban(b []byte, i int) (int, bool) {
	var s [34]byte
	n := 0
	j := i
	spaced := false
	for j < len(b) && n < 34 {
		c := b[j]
		if c == ' ' && n > 0 && n%4 == 0 && j+1 < len(b) && isAlnum(b[j+1]) && (spaced || n == 4) {
			spaced = true
			j++
			continue
		}
		if !isAlnum(c) {
			break
		}
		s[n] = c
		if class[c] == cLower {
			s[n] = c - 32
		}
		n++
		j++
		if shape, ok := ibanBBAN[string(s[:2])]; n == len(shape)+4 && ok && (j == len(b) || !isAlnum(b[j])) {
			return j, validIBAN(s[:n])
		}
	}
	return 0, false
}

// vat reads a GB VAT number at i.
func vat(b []byte, i int) (int, bool) {
	var s [16]byte
	copy(s[:], "GB")
	n := 2
	j := i + 2
	if j < len(b) && b[j] == ' ' {
		j++
	}
	if j+3 <= len(b) {
		if p := [2]byte{b[j] &^ 0x20, b[j+1] &^ 0x20}; p == [2]byte{'G', 'D'} || p == [2]byte{'H', 'A'} {
			s[2], s[3] = p[0], p[1]
			n, j = 4, j+2
		}
	}
	for j < len(b) && n < 14 {
		c := b[j]
		if c == ' ' && j+1 < len(b) && class[b[j+1]] == cDigit && n > 2 {
			j++
			continue
		}
		if class[c] != cDigit {
			break
		}
		s[n] = c
		n++
		j++
	}
	if j < len(b) && isAlnum(b[j]) {
		return 0, false
	}
	if n != 11 && n != 14 && !(n == 7 && (s[2] == 'G' || s[2] == 'H')) {
		return 0, false
	}
	return j, validGBVAT(s[:n])
}

// postcode reads a postcode: outward token, optional space, inward token.
func postcode(b []byte, i, end int) (int, bool) {
	var s [8]byte
	out := b[i:end]
	if len(out) >= 5 && len(out) <= 7 {
		copy(s[:], out)
		return end, validPostcode(s[:len(out)])
	}
	if len(out) > 4 || end+4 > len(b) || b[end] != ' ' {
		return 0, false
	}
	in := b[end+1 : end+4]
	if end+4 < len(b) && isAlnum(b[end+4]) {
		return 0, false
	}
	copy(s[:], out)
	copy(s[len(out):], in)
	return end + 4, validPostcode(s[:len(out)+3])
}

var pemPrefix = []byte("-----BEGIN ")

// pem finds PEM and OpenSSH private keys.
func pem(b []byte, i int, found func(Match)) int {
	if !bytes.HasPrefix(b[i:], pemPrefix) {
		return i + 1
	}
	rest := b[i+len(pemPrefix):]
	e := bytes.Index(rest[:min(len(rest), 40)], []byte("-----"))
	if e < 0 {
		return i + 1
	}
	label := rest[:e]
	if bytes.HasSuffix(label, []byte("PRIVATE KEY")) || bytes.Equal(label, []byte("PGP PRIVATE KEY BLOCK")) {
		found(Match{PrivateKey, High})
	}
	return i + len(pemPrefix) + e + 5
}

func isLetter(c byte) bool { k := class[c]; return k == cUpper || k == cLower }
