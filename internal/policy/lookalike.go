package policy

import (
	"strings"

	"golang.org/x/net/idna"
)

// Look-alike domains: an address at "examp1e.gov.uk" or "example-gov.uk"
// when "example.gov.uk" was meant is either a typing slip (misdirected mail,
// the ICO's most reported breach) or a trap set by someone who registered
// the look-alike. Two tests, on the whole domain name:
//
//   - the Damerau-Levenshtein distance (insertions, deletions, substitutions
//     and swaps of neighbours) to a known domain is small: 1 for short
//     names, 2 from 10 characters on;
//   - both names have the same "skeleton" after mapping characters that look
//     alike (Unicode TR39 confusables, the subset that matters in domain
//     names: Cyrillic and Greek letters that look Latin, 0/o, 1/l, rn/m, vv/w).
//
// A domain under a known one ("example.gov.uk.attacker.com") or one that
// prefixes it ("example.gov.uk-secure.com") also counts.

// lookalike returns the known domain that d resembles without being, or "".
func lookalike(d string, known []string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if u, err := idna.ToUnicode(d); err == nil {
		d = u
	}
	sd := skeleton(d)
	for _, k := range known {
		if d == k || strings.HasSuffix(d, "."+k) {
			return "" // the domain itself or one of its subdomains
		}
	}
	for _, k := range known {
		if strings.HasPrefix(d, k+".") || strings.HasPrefix(d, k+"-") {
			return k
		}
		if sd == skeleton(k) {
			return k
		}
		limit := 1
		if len(k) >= 10 {
			limit = 2
		}
		if distance(d, k, limit) <= limit {
			return k
		}
	}
	return ""
}

// confusable maps characters to the ASCII letter they are mistaken for.
var confusable = map[rune]string{
	'0': "o", '1': "l", 'i': "l", '|': "l",
	'а': "a", 'е': "e", 'о': "o", 'р': "p", 'с': "c", 'х': "x", 'у': "y", 'і': "l", 'ј': "j",
	'ѕ': "s", 'ԁ': "d", 'ɡ': "g", 'ӏ': "l", 'һ': "h", 'ԛ': "q", 'ԝ': "w", 'к': "k", 'м': "m",
	'н': "h", 'т': "t", 'в': "b", 'ο': "o", 'α': "a", 'ε': "e", 'ι': "l", 'κ': "k", 'ν': "v",
	'ρ': "p", 'τ': "t", 'υ': "u", 'χ': "x", 'ɩ': "l", 'ı': "l",
	'à': "a", 'á': "a", 'â': "a", 'ä': "a", 'å': "a", 'è': "e", 'é': "e", 'ê': "e", 'ë': "e",
	'ì': "l", 'í': "l", 'î': "l", 'ï': "l", 'ò': "o", 'ó': "o", 'ô': "o", 'ö': "o", 'ù': "u",
	'ú': "u", 'û': "u", 'ü': "u", 'ç': "c", 'ñ': "n", 'ý': "y", 'ÿ': "y",
	'_': "-",
}

func skeleton(s string) string {
	var b strings.Builder
	for _, r := range s {
		if m, ok := confusable[r]; ok {
			b.WriteString(m)
		} else {
			b.WriteRune(r)
		}
	}
	out := b.String()
	out = strings.ReplaceAll(out, "rn", "m")
	out = strings.ReplaceAll(out, "vv", "w")
	out = strings.ReplaceAll(out, "cl", "d")
	return out
}

// distance is the optimal-string-alignment distance between a and b, or
// limit+1 as soon as it must exceed limit.
func distance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d > limit || -d > limit {
		return limit + 1
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		best := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			best = min(best, v)
		}
		if best > limit {
			return limit + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
