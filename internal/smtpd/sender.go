package smtpd

import (
	"strings"

	"sealpost/internal/auth"
)

// The sender and recipient rules that are not plain syntax.

// errSenderNotPermitted refuses an address an AUTH session may not use.
var errSenderNotPermitted = smtpErr(550, [3]int{5, 7, 1}, "Sender address not permitted for this login")

// checkHeaderFrom applies the login's addresses to the header From (RFC
// 5322 §3.6.2: the author, what recipients see and what DMARC and the DKIM
// signature vouch for): in an AUTH session every address in every From
// field must be one the user may send as. A header that cannot be read
// whole, or has no From, is refused too: what cannot be checked is not
// passed. Connector mail is not checked here; the connector's own mail
// system decided who its users are.
func (s *session) checkHeaderFrom(hi headerInfo) *Reply {
	if s.authUser == "" {
		return nil
	}
	if !hi.Complete || hi.FromBad || len(hi.FromAll) == 0 {
		s.reject("header_from_unreadable")
		return smtpErr(550, [3]int{5, 7, 1}, "Header From missing or unreadable; it must name an address permitted for this login")
	}
	for _, a := range hi.FromAll {
		if !auth.MaySendAs(s.sendAs, a) {
			s.reject("sender_not_permitted")
			return smtpErr(550, [3]int{5, 7, 1}, "Header From address not permitted for this login")
		}
	}
	return nil
}

// routingForm refuses the source-routing forms of old mail systems in a
// recipient: several unquoted "@" ("a@b@c"), "%" ("a%b@c", the percent
// hack) and "!" ("b!a@c", UUCP bang paths), and an unquoted "\". A relay
// that honoured them would forward to another host than the domain says,
// and different systems disagree on which part is the mailbox (RFC 5321
// §3.6.1 and §4.1.2: a quoted local part may hold any of them and is
// passed on as is).
func routingForm(addr string) *Reply {
	bad := smtpErr(553, [3]int{5, 1, 3}, "Recipient address uses a routing form (%, !, several @ or \\) that is not accepted")
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
			return smtpErr(553, [3]int{5, 1, 3}, "Recipient address is not valid")
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
