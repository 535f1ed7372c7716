package auth

import "strings"

// Who may send as whom. An SMTP AUTH user proves a name, not an address;
// without a binding, any user could send as any address of the
// organisation's domains, and the gateway would DKIM-sign it, making the
// forgery look better than one from outside. So each user is bound to the
// addresses the operator gives it (`user add NAME --address ADDR`), and an
// authenticated session may use only those in MAIL FROM and header From.

// DefaultAddress is the address a user gets when the operator names none:
// the name itself when it is an address, else NAME@ the first org domain.
func DefaultAddress(name string, domains []string) string {
	if strings.Contains(name, "@") || len(domains) == 0 {
		return strings.ToLower(name)
	}
	return strings.ToLower(name + "@" + domains[0])
}

// SenderAddresses is what user may send as: the stored addresses, or, for
// a user stored before addresses existed (none stored), the default one.
func SenderAddresses(name string, stored, domains []string) []string {
	if len(stored) > 0 {
		return stored
	}
	return []string{DefaultAddress(name, domains)}
}

// MaySendAs reports whether addr is one of permitted (addresses compare
// case-insensitively: mail systems treat local parts so in practice).
func MaySendAs(permitted []string, addr string) bool {
	for _, p := range permitted {
		if strings.EqualFold(p, addr) {
			return true
		}
	}
	return false
}
