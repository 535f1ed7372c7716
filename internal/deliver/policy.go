package deliver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"

	"sealpost/internal/queue"
	"sealpost/internal/tlspolicy"
)

// Modes of a session under a tlspolicy.HostPolicy.
const (
	// tlsPolicy: STARTTLS mandatory, the certificate checked by the host's
	// policy (DANE records or WebPKI), never clear text.
	tlsPolicy = "policy"
)

// policyMode is the session mode for hp: mandatory TLS for every verified
// mode, opportunistic (clear text on failure) otherwise, MTA-STS testing
// included (RFC 8461 §5: testing delivers as without a policy).
func policyMode(hp *tlspolicy.HostPolicy) string {
	if hp.TLSMandatory() {
		return tlsPolicy
	}
	return TLSOpportunistic
}

// evidence is the attempt's record of the policy, before any handshake.
func evidence(r *tlspolicy.Result, hp *tlspolicy.HostPolicy) *queue.TLSInfo {
	info := &queue.TLSInfo{Mode: string(r.Mode), Why: r.Why, PolicyDomain: r.Domain, PolicyID: r.STSID, PolicyMode: r.STSMode, Failure: r.Failure}
	if r.STSText != "" {
		for _, l := range strings.Split(strings.TrimSpace(r.STSText), "\n") {
			info.PolicyStrings = append(info.PolicyStrings, strings.TrimSpace(l))
		}
	}
	if hp != nil {
		info.Mode, info.Why, info.Host = string(hp.Mode), hp.Why, hp.Host
		if hp.Failure != "" {
			info.Failure = hp.Failure
		}
		if hp.Mode == tlspolicy.ModeDANE {
			info.PolicyStrings = nil
			for _, rec := range hp.TLSA {
				info.PolicyStrings = append(info.PolicyStrings, fmt.Sprintf("%d %d %d %x", rec.Usage, rec.Selector, rec.MatchingType, rec.CertAssoc))
			}
		}
	}
	return info
}

// deliverPlanned delivers under the domain's TLS policy: hosts the policy
// forbids are never contacted, hosts whose TLSA lookup failed are skipped
// with 4.7.5, and each session is verified as its host's policy demands.
func (t *Transport) deliverPlanned(ctx context.Context, d *queue.Delivery) queue.Attempt {
	att := queue.Attempt{Rcpts: make([]queue.RcptResult, len(d.Rcpts))}
	failAll := func(text string, permanent bool, info *queue.TLSInfo) queue.Attempt {
		for i := range att.Rcpts {
			att.Rcpts[i] = queue.RcptResult{Text: text, Permanent: permanent}
		}
		att.TLSInfo = info
		return att
	}
	plan := t.Policy.Plan(ctx, d.Domain, d.RequireTLS)
	if plan.Fail != "" {
		var hp *tlspolicy.HostPolicy
		if len(plan.Hosts) > 0 {
			hp = &plan.Hosts[0]
		}
		for i := range plan.Hosts {
			att.Sessions = append(att.Sessions, evidence(plan, &plan.Hosts[i]))
		}
		return failAll(plan.Fail, plan.FailPermanent, evidence(plan, hp))
	}
	sig := t.Signature(ctx, d)
	last := &hostError{text: "451 4.4.0 no host could be reached"}
	var lastInfo *queue.TLSInfo
	var sessions []*queue.TLSInfo
	for i := range plan.Hosts {
		hp := &plan.Hosts[i]
		if !hp.Allowed || hp.Defer != "" {
			t.Log.Info("MX host not contacted", "msgid", d.Msg.ID, "host", hp.Host, "why", hp.Why)
			if hp.Defer != "" {
				last = &hostError{text: hp.Defer}
			}
			lastInfo = evidence(plan, hp)
			sessions = append(sessions, lastInfo)
			continue
		}
		ips, _, err := t.Policy.Resolver.LookupIP(ctx, hp.Host)
		if err != nil {
			last = &hostError{text: "451 4.4.3 address lookup of " + hp.Host + " failed: " + shortErr(err)}
			lastInfo = evidence(plan, hp)
			sessions = append(sessions, lastInfo)
			continue
		}
		for _, ip := range ips {
			if ctx.Err() != nil {
				return failAll("451 4.4.2 delivery interrupted", false, lastInfo)
			}
			addr := net.JoinHostPort(ip.String(), t.Port)
			res, herr := t.tryHost(ctx, addr, hp, d, sig)
			if herr == nil {
				fillEvidence(res.TLSInfo, plan, hp)
				if res.TLSInfo == nil {
					res.TLSInfo = evidence(plan, hp)
				}
				res.Sessions = append(sessions, res.TLSInfo)
				return res
			}
			last = herr
			lastInfo = evidence(plan, hp)
			if herr.info != nil {
				lastInfo = herr.info
				fillEvidence(lastInfo, plan, hp)
			}
			sessions = append(sessions, lastInfo)
			t.Log.Info("next hop unusable", "msgid", d.Msg.ID, "host", hp.Host, "addr", addr, "mode", hp.Mode, "err", herr.text)
			if herr.permanent {
				break
			}
		}
	}
	att.Sessions = sessions
	return failAll(last.text, last.permanent, lastInfo)
}

// fillEvidence adds the policy to what the handshake recorded.
func fillEvidence(info *queue.TLSInfo, r *tlspolicy.Result, hp *tlspolicy.HostPolicy) {
	if info == nil {
		return
	}
	ev := evidence(r, hp)
	info.Mode, info.Why, info.Host, info.PolicyDomain, info.PolicyID, info.PolicyMode = ev.Mode, ev.Why, ev.Host, ev.PolicyDomain, ev.PolicyID, ev.PolicyMode
	info.PolicyStrings = ev.PolicyStrings
	if info.Failure == "" {
		info.Failure = ev.Failure
	}
}

// dialPolicy runs the greeting and STARTTLS on conn as hp demands.
func (t *Transport) dialPolicy(conn net.Conn, addr, tlsMode string, hp *tlspolicy.HostPolicy) (*pooledConn, *hostError) {
	c := newClient(conn, t.CommandTimeout)
	if err := c.greet(t.Hello); err != nil {
		conn.Close()
		text, _ := smtpText(err)
		return nil, &hostError{text: text}
	}
	pc := &pooledConn{c: c}
	if tlsMode == TLSNone {
		if hp.Testing {
			pc.tlsInfo = &queue.TLSInfo{Failure: "starttls-not-supported"}
		}
		return pc, nil
	}
	if !c.has("STARTTLS") {
		if hp.TLSMandatory() {
			c.quit()
			// RFC 8461 §5 / RFC 7672 §2.2: a host the policy protects gets
			// nothing in clear; a stripped STARTTLS looks just like this.
			return nil, &hostError{text: "451 4.7.4 " + hp.Host + " (" + addr + ") does not offer STARTTLS and its policy (" + string(hp.Mode) + ") requires TLS",
				info: &queue.TLSInfo{Failure: "starttls-not-supported", Chain: "unverified"}}
		}
		if hp.Testing {
			pc.tlsInfo = &queue.TLSInfo{Failure: "starttls-not-supported"}
		}
		return pc, nil
	}
	var chk tlspolicy.Check
	cfg := &tls.Config{ServerName: hp.Host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12,
		// The policy, not crypto/tls, decides what verifies: DANE records
		// or WebPKI for the MX name (RFC 7672 §3, RFC 8461 §4.2).
		VerifyConnection: func(cs tls.ConnectionState) error {
			var err error
			chk, err = hp.Verify(cs, t.RootCAs, t.Log)
			return err
		}}
	st, err := c.startTLS(cfg, t.Hello)
	info := checkInfo(chk)
	if err != nil {
		conn.Close()
		if info.Failure == "" {
			info.Failure = "validation-failure"
		}
		return nil, &hostError{text: "451 4.7.5 STARTTLS with " + hp.Host + " (" + addr + ") failed: " + shortErr(err), tlsFailed: true, info: info}
	}
	pc.tls = tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
	pc.tlsInfo = info
	return pc, nil
}

func checkInfo(c tlspolicy.Check) *queue.TLSInfo {
	return &queue.TLSInfo{Version: c.Version, Cipher: c.Cipher, Verified: c.Verified, PeerCertSHA256: c.PeerCertSHA256,
		Chain: c.Chain, TLSA: c.TLSA, Failure: c.Failure}
}
