package smtpd

// requireTLSParam checks MAIL FROM's REQUIRETLS parameter (RFC 8689 §4.1):
// it has no value and is refused outside a TLS session, where it is not
// offered (RFC 5321 §4.1.1.11 would make it 555; RFC 8689 asks for a TLS
// session, so the reply names what is missing).
func (c *conn) requireTLSParam(value string) *Reply {
	if !c.tls {
		return reply(530, "5.7.10", "REQUIRETLS needs a TLS session; say STARTTLS first")
	}
	if value != "" {
		return reply(501, "5.5.4", "REQUIRETLS takes no value")
	}
	return nil
}
