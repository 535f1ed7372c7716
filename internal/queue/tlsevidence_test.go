package queue

import (
	"strings"
	"testing"
	"time"

	"sealpost/internal/store"
)

// TestAttemptEventTLSPolicy: the audit event of an attempt carries the
// policy's mode and why and what the handshake proved; a DSN says the same.
func TestAttemptEventTLSPolicy(t *testing.T) {
	info := &TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", Verified: true, PeerCertSHA256: "ab12",
		Mode: "dane", Why: "DANE: authentic TLSA 3 1 1 00ff", Host: "mx.example.org", PolicyDomain: "example.org", Chain: "dane-ee", TLSA: "3 1 1"}
	j := job{msg: &store.Message{ID: "m1"}, route: RouteOutbound}
	ev := attemptEvent(j, Attempt{TLSInfo: info, Relay: "192.0.2.1:25"}, store.Result{Status: "delivered", Rcpt: "r@example.org"}, RcptResult{OK: true, Text: "250 accepted"}, 1, time.Now())
	for _, want := range []string{`tls="TLS 1.3"`, "tls_mode=dane", "mx=mx.example.org", "chain=dane-ee", `tlsa="3 1 1"`, "policy_domain=example.org", "verified=yes"} {
		if !strings.Contains(ev.Detail, want) {
			t.Errorf("detail %q lacks %q", ev.Detail, want)
		}
	}
	failed := &TLSInfo{Mode: "mta-sts", Why: "MTA-STS policy id 7 mode enforce", Failure: "starttls-not-supported"}
	ev = attemptEvent(j, Attempt{TLSInfo: failed}, store.Result{Status: "queued"}, RcptResult{Text: "451 4.7.4 no STARTTLS"}, 1, time.Now())
	if !strings.Contains(ev.Detail, "tls=none") || !strings.Contains(ev.Detail, "tls_failure=starttls-not-supported") || !strings.Contains(ev.Detail, "tls_mode=mta-sts") {
		t.Errorf("failed attempt detail %q", ev.Detail)
	}
	if s := tlsSummary(failed); !strings.Contains(s, "mta-sts (MTA-STS policy id 7") || !strings.Contains(s, "problem: starttls-not-supported") {
		t.Errorf("DSN line %q", s)
	}
	if tlsSummary(nil) != "" || tlsSummary(&TLSInfo{Version: "TLS 1.2"}) != "" {
		t.Error("summary without a policy")
	}
}
