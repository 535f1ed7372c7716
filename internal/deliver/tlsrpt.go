package deliver

import (
	"net"
	"strings"

	"sealpost/internal/queue"
	"sealpost/internal/tlsrpt"
)

// tlsFailure is what TLS-RPT needs of a failed STARTTLS.
type tlsFailure struct {
	resultType, reason string
	local, remote      net.Addr
}

func newTLSFailure(conn net.Conn, err error) *tlsFailure {
	rt, reason := tlsrpt.Classify(err)
	return &tlsFailure{resultType: rt, reason: reason, local: conn.LocalAddr(), remote: conn.RemoteAddr()}
}

// reportSession tells TLSResult how a new session with an MX host went
// (RFC 8460 §4.3): success when TLS was made; starttls-not-supported when
// the host offered none; the handshake's failure type otherwise, also when
// opportunistic TLS went on in clear after it. A host that could not be
// reached at all is not a TLS result. The policy is "no-policy-found"
// until an MTA-STS or DANE policy governs the domain (internal/tlspolicy
// fills Result's policy fields then).
func (t *Transport) reportSession(d *queue.Delivery, host, mode string, pc *pooledConn, herr *hostError) {
	if t.TLSResult == nil || t.FixedHost != "" || mode == TLSNone {
		return
	}
	mx, _, _ := net.SplitHostPort(host)
	r := tlsrpt.Result{PolicyType: tlsrpt.PolicyNotFound, PolicyDomain: strings.ToLower(d.Domain), MXHost: mx}
	var local, remote net.Addr
	switch {
	case herr != nil && herr.tls != nil:
		r.ResultType, r.FailureReasonCode = herr.tls.resultType, herr.tls.reason
		local, remote = herr.tls.local, herr.tls.remote
	case herr != nil:
		return
	case pc.fellBack != nil:
		r.ResultType, r.FailureReasonCode = pc.fellBack.resultType, pc.fellBack.reason
		local, remote = pc.fellBack.local, pc.fellBack.remote
	case pc.tls == "":
		r.ResultType = tlsrpt.ResultSTARTTLSNotSupported
		local, remote = pc.c.conn.LocalAddr(), pc.c.conn.RemoteAddr()
	default:
		r.ResultType = tlsrpt.ResultSuccess
	}
	if r.ResultType != tlsrpt.ResultSuccess {
		r.SendingMTAIP, r.ReceivingIP = addrIP(local), addrIP(remote)
	}
	t.TLSResult(r)
}

func addrIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return ""
}
