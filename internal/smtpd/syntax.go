package smtpd

import "strings"

// Address syntax: what smtpd refuses before the backend sees an address.

// ValidAddress checks an address's syntax and RFC 5321 §4.5.3.1 lengths.
func ValidAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 254 || at > 64 {
		return false
	}
	for _, r := range a {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' {
			return false
		}
	}
	dom := a[at+1:]
	if strings.HasPrefix(dom, "[") {
		return false // address literals are not accepted
	}
	for _, l := range strings.Split(dom, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}

// routingForm refuses the source-routing forms of old mail systems in a
// recipient: several unquoted "@" ("a@b@c"), "%" ("a%b@c", the percent
// hack) and "!" ("b!a@c", UUCP bang paths), and an unquoted "\". A relay
// that honoured them would forward to another host than the domain says,
// and different systems disagree on which part is the mailbox (RFC 5321
// §3.6.1 and §4.1.2: a quoted local part may hold any of them and is
// passed on as is).
func routingForm(addr string) *Reply {
	bad := reply(553, "5.1.3", "Recipient address uses a routing form (%, !, several @ or \\) that is not accepted")
	local, domain := addr, ""
	if strings.HasPrefix(addr, `"`) {
		// Quoted string: up to the closing quote, with \ escapes.
		i := 1
		for ; i < len(addr) && addr[i] != '"'; i++ {
			if addr[i] == '\\' {
				i++
			}
		}
		if i >= len(addr) || i+1 >= len(addr) || addr[i+1] != '@' {
			return reply(553, "5.1.3", "Recipient address is not valid")
		}
		domain = addr[i+2:]
		local = ""
	} else if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		local, domain = addr[:at], addr[at+1:]
	}
	if strings.ContainsAny(local, `@%!\"`) || strings.ContainsAny(domain, `@%!\"`) {
		return bad
	}
	return nil
}

// SanitizeHelo returns the EHLO name fit for a Received field: printable
// ASCII without comment characters, at most 100 bytes, "unknown" if empty.
func SanitizeHelo(h string) string {
	var b strings.Builder
	for _, r := range h {
		if r > ' ' && r < 0x7f && r != '(' && r != ')' && r != '\\' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	s := b.String()
	if len(s) > 100 {
		s = s[:100] // ASCII only: no rune to split
	}
	return s
}

// DomainOf returns the part of addr after the last "@" ("" if none).
func DomainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
