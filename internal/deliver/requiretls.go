package deliver

import (
	"strings"

	"sealpost/internal/queue"
	"sealpost/internal/tlspolicy"
)

// REQUIRETLS (RFC 8689) lets a sender ask that a message travel only over
// TLS that the sending MTA verified, on every hop to the final one. For a
// message that carries it, each delivery:
//
//  1. uses verified TLS (TLSVerified: STARTTLS and a certificate that
//     chains to a trusted root and names the MX host, RFC 8689 §4.2.1
//     step 4); a host without STARTTLS, or whose certificate does not
//     verify, is skipped and the message deferred (a STARTTLS-stripping
//     attacker gets a 4.7.x, never the message);
//  2. requires REQUIRETLS in the EHLO reply after STARTTLS (step 5), which
//     an attacker cannot remove once the session is verified;
//  3. passes REQUIRETLS on in MAIL FROM, so the next hop holds itself to
//     the same rules.
//
// When every host was reached over verified TLS and none offers
// REQUIRETLS, the message cannot be delivered as asked: it fails with
// 5.7.30, "REQUIRETLS support required" (RFC 8689 §6), and the DSN says which hosts were tried.
//
// "TLS-Required: No" (RFC 8689 §5) is the opposite request: deliver even
// if the receiver's published policy (MTA-STS, DANE) would refuse the
// session. It is honoured only when the operator allows it
// (HonourTLSRequiredNo) and never for mail our own policy protects
// (require-tls decisions, REQUIRETLS).

// deliveryMode is the TLS mode of one delivery: the transport's, raised to
// TLSVerified for policy require-tls and for REQUIRETLS.
func (t *Transport) deliveryMode(d *queue.Delivery) string {
	if d.RequireTLS || d.SMTPRequireTLS {
		return TLSVerified
	}
	return t.TLSMode
}

// TLSWaived reports whether d may ignore the receiver's published TLS
// policy (MTA-STS "enforce", DANE) because the sender said "TLS-Required:
// No" and the operator honours it. It never waives what our policy asks:
// a require-tls decision or REQUIRETLS (the queue clears TLSRequiredNo for
// the latter; RFC 8689 §5). Policy lookups (MTA-STS, DANE) ask it before
// refusing a host.
func (t *Transport) TLSWaived(d *queue.Delivery) bool {
	// Our own TLS-RPT reports always may: a domain whose TLS fails must
	// still hear of it (RFC 8460 §5.3).
	honour := t.HonourTLSRequiredNo || d.Msg != nil && d.Msg.Direction == queue.DirectionTLSReport
	return honour && d.TLSRequiredNo && !d.RequireTLS && !d.SMTPRequireTLS
}

// waivesPolicy: under TLSWaived, a receiver's published policy (DANE,
// MTA-STS) is delivered to as opportunistic TLS; a domain on the
// operator's require-TLS list is our policy and is never waived, whatever
// the receiver publishes besides.
func (t *Transport) waivesPolicy(d *queue.Delivery, plan *tlspolicy.Result, hp *tlspolicy.HostPolicy) bool {
	return t.TLSWaived(d) && plan.ListEntry == "" && (hp.Mode == tlspolicy.ModeDANE || hp.Mode == tlspolicy.ModeMTASTS)
}

// requireTLSCheck is step 2: a verified session whose EHLO lacks
// REQUIRETLS cannot take a REQUIRETLS message.
func requireTLSCheck(d *queue.Delivery, host string, pc *pooledConn) *hostError {
	if !d.SMTPRequireTLS {
		return nil
	}
	if pc.tlsInfo == nil || !pc.tlsInfo.Verified && !strings.HasPrefix(pc.tlsInfo.Chain, "dane") {
		// Cannot happen in TLSVerified mode; fail closed if it does.
		return &hostError{text: "451 4.7.5 " + host + ": TLS not verified; REQUIRETLS needs verified TLS"}
	}
	if !pc.c.has("REQUIRETLS") {
		return &hostError{text: "550 5.7.30 " + host + " does not offer REQUIRETLS", noRequireTLS: true}
	}
	return nil
}

// requireTLSBounce is the DSN's diagnostic when no host offered REQUIRETLS.
func requireTLSBounce(hosts []string) string {
	return "550 5.7.30 REQUIRETLS support required: the sender asked for REQUIRETLS (RFC 8689) and " +
		strings.Join(hosts, ", ") + " accepted verified TLS but did not offer REQUIRETLS"
}
