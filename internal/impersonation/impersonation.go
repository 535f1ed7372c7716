// Package impersonation finds inbound mail that pretends to come from
// someone the recipient trusts.
//
// Three tricks make up most business-email compromise:
//
//   - A staff member's display name on an outside address ("Jane Smith
//     <jane.smith.ceo@freemail.example>"): clients show the name, not the
//     address. Protected names are configured (inbound.protected_names)
//     and learned from the organisation's own outbound mail. A display
//     name that holds an address of the organisation is the same trick.
//   - A domain that looks like the organisation's or a frequent
//     correspondent's: one letter changed or swapped ("exampel.gov.uk"),
//     characters that look alike ("examp1e.gov.uk", Cyrillic "е" in an
//     internationalised name, RFC 5890 A-labels "xn--"), or the real name
//     as a prefix ("example.gov.uk.invoices.example"). Look-alikes are found
//     by the Unicode confusable skeleton (UTS #39 §4: two strings are
//     confusable when their skeletons are equal) and by Levenshtein edit
//     distance between skeletons; a label mixing Latin with Cyrillic or
//     Greek letters is a homograph on its own (UTS #39 §5.1, "mixed
//     script").
//   - A Reply-To in another domain from a first-time sender: the answer
//     goes to the attacker.
//
// The package only reads header values and lists it is given; the
// gateway decides whether to tag or quarantine.
package impersonation

import (
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"unicode"

	"github.com/agnivade/levenshtein"
	"github.com/mtibben/confusables"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Kinds of finding.
const (
	DisplayName = "display-name"
	LookAlike   = "lookalike-domain"
	Homograph   = "idn-homograph"
	ReplyTo     = "reply-to"
)

// Finding is one reason to suspect impersonation.
type Finding struct {
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

// Input is what a check reads.
type Input struct {
	From    string // the From field's value, as sent
	ReplyTo string // the Reply-To field's value, "" for none
	// OrgDomains are the organisation's domains; Correspondents the
	// outside domains it writes to (look-alike targets).
	OrgDomains     []string
	Correspondents []string
	// Names are the protected display names (configured, learned).
	Names []*Names
	// Targets, when set, are OrgDomains and Correspondents prepared by
	// NewTargets (their skeletons computed once, not per message).
	Targets *Targets
	// Known says whether the organisation has written to a domain before;
	// nil: every sender is a first-time sender.
	Known func(domain string) bool
}

var addrParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{}}

// Check returns the reasons to suspect in; none means none were found.
func Check(in Input) []Finding {
	var out []Finding
	from, err := addrParser.Parse(strings.TrimSpace(in.From))
	if err != nil {
		return nil // an unreadable From is the authentication checks' concern
	}
	fromDom := domainOf(from.Address)
	org := func(d string) bool {
		for _, o := range in.OrgDomains {
			o = strings.ToLower(o)
			if d == o || strings.HasSuffix(d, "."+o) {
				return true
			}
		}
		return false
	}
	if org(fromDom) {
		// Mail claiming the organisation's own domain is for DMARC to
		// judge (the authentication checks refuse it when it fails).
		return nil
	}
	if from.Name != "" {
		for _, names := range in.Names {
			if n := names.Match(from.Name); n != "" {
				out = append(out, Finding{DisplayName, fmt.Sprintf("the display name %q is that of %q in the organisation, but the address is outside it (%s)", from.Name, n, from.Address)})
				break
			}
		}
		for _, w := range strings.FieldsFunc(from.Name, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune("<>()[],;\"'", r) }) {
			if i := strings.LastIndexByte(w, '@'); i > 0 && org(strings.ToLower(strings.TrimRight(w[i+1:], "."))) {
				out = append(out, Finding{DisplayName, fmt.Sprintf("the display name shows the organisation's address %s, but the mail is from %s", w, from.Address)})
				break
			}
		}
	}
	known := func(d string) bool { return in.Known != nil && in.Known(d) }
	targets := in.Targets
	if targets == nil {
		targets = NewTargets(append(append([]string(nil), in.OrgDomains...), in.Correspondents...))
	}
	if !known(fromDom) {
		out = append(out, domainFindings(fromDom, targets, "From")...)
	}
	if in.ReplyTo != "" {
		if list, err := addrParser.ParseList(in.ReplyTo); err == nil {
			for _, a := range list {
				rd := domainOf(a.Address)
				if rd == "" || rd == fromDom || org(rd) {
					continue
				}
				if !known(rd) {
					out = append(out, domainFindings(rd, targets, "Reply-To")...)
				}
				if !known(fromDom) {
					out = append(out, Finding{ReplyTo, fmt.Sprintf("a first-time sender (%s) asks for replies to another domain (%s)", fromDom, rd)})
				}
			}
		}
	}
	return dedupe(out)
}

func dedupe(fs []Finding) []Finding {
	seen := map[Finding]bool{}
	var out []Finding
	for _, f := range fs {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.TrimRight(strings.ToLower(addr[i+1:]), ".")
}

// domainFindings compares a sender's domain with the look-alike targets.
func domainFindings(d string, targets *Targets, field string) []Finding {
	var out []Finding
	uni, err := idna.Lookup.ToUnicode(d)
	if err != nil {
		uni = d
	}
	if uni != d || strings.Contains(d, "xn--") {
		for _, label := range strings.Split(uni, ".") {
			if mixedScript(label) {
				out = append(out, Finding{Homograph, fmt.Sprintf("the %s domain %s (shown as %s) mixes scripts in one label", field, d, uni)})
				break
			}
		}
	}
	sd := skeleton(uni)
	for i, t := range targets.domains {
		if t == d || strings.HasSuffix(d, "."+t) {
			continue
		}
		st := targets.skeletons[i]
		switch {
		case sd == st:
			kind := LookAlike
			if uni != d {
				kind = Homograph
			}
			out = append(out, Finding{kind, fmt.Sprintf("the %s domain %s is made of characters that look like %s", field, shown(d, uni), t)})
		case strings.HasPrefix(sd, st+".") || strings.HasPrefix(sd, st+"-"):
			out = append(out, Finding{LookAlike, fmt.Sprintf("the %s domain %s starts with %s but is another domain", field, shown(d, uni), t)})
		case near(sd, st):
			out = append(out, Finding{LookAlike, fmt.Sprintf("the %s domain %s is one or two characters away from %s", field, shown(d, uni), t)})
		}
	}
	return out
}

func shown(d, uni string) string {
	if d == uni {
		return d
	}
	return d + " (" + uni + ")"
}

// near says whether two skeletons are a small edit apart: one edit for
// names of 5 to 9 characters, two from 10 (short names are too often one
// letter apart by chance).
func near(a, b string) bool {
	n := min(len(a), len(b))
	if n < 5 || abs(len(a)-len(b)) > 2 {
		return false
	}
	limit := 1
	if n >= 10 {
		limit = 2
	}
	return levenshtein.ComputeDistance(a, b) <= limit
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// skeleton is the UTS #39 skeleton of a lower-cased, NFKC-normalised
// string: confusable characters are mapped to one prototype ("1" and "l",
// Cyrillic "а" and Latin "a").
func skeleton(s string) string {
	return strings.ToLower(confusables.Skeleton(norm.NFKC.String(strings.ToLower(s))))
}

// mixedScript says whether a label mixes Latin letters with Cyrillic or
// Greek ones (digits and hyphens belong to no script here).
func mixedScript(label string) bool {
	latin, other := false, false
	for _, r := range label {
		switch {
		case unicode.Is(unicode.Latin, r):
			latin = true
		case unicode.Is(unicode.Cyrillic, r), unicode.Is(unicode.Greek, r), unicode.Is(unicode.Armenian, r), unicode.Is(unicode.Cherokee, r):
			other = true
		}
	}
	return latin && other
}

// Targets are the domains look-alikes are compared with, with their
// skeletons.
type Targets struct {
	domains, skeletons []string
}

// NewTargets prepares domains (the organisation's and its
// correspondents') for Check.
func NewTargets(domains []string) *Targets {
	t := &Targets{}
	seen := map[string]bool{}
	for _, d := range domains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" || seen[d] {
			continue
		}
		seen[d] = true
		t.domains = append(t.domains, d)
		t.skeletons = append(t.skeletons, skeleton(d))
	}
	return t
}
