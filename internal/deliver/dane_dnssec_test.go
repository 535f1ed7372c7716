package deliver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"sealpost/internal/dns"
	"sealpost/internal/testutil"
	"sealpost/internal/tlspolicy"
)

// TestDANEWithKnotAndUnbound: a zone signed by knotd, validated by unbound
// (a real AD bit), read by the gateway's own DNS client: DANE-EE with the
// right SPKI digest delivers, with a wrong one defers without sending.
func TestDANEWithKnotAndUnbound(t *testing.T) {
	t.Parallel()
	ca := testutil.NewCA(t, "dane CA")
	cert := ca.Leaf(t, "mx.dane.test")
	good := testutil.NewSinkTLS(t, &cert)
	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	zone := fmt.Sprintf(`$ORIGIN dane.test.
$TTL 300
@	SOA	ns hostmaster 1 3600 900 604800 300
@	NS	ns
ns	A	127.0.0.1
good	MX	10 mx
bad	MX	10 mx2
mx	A	127.0.0.1
mx2	A	127.0.0.1
_25._tcp.mx	TLSA	3 1 1 %s
_25._tcp.mx2	TLSA	3 1 1 %s
`, hex.EncodeToString(spki[:]), strings.Repeat("ab", 32))
	uaddr := testutil.DNSSEC(t, "dane.test", zone, "_25._tcp.mx.dane.test", mdns.TypeTLSA)
	if uaddr == "" {
		return
	}
	res := dns.NewClient(dns.ClientConfig{Servers: []string{uaddr}, TrustAD: true, Timeout: 3 * time.Second})
	log := slog.New(slog.DiscardHandler)
	pool := NewPool(2, time.Minute)
	t.Cleanup(pool.Close)
	var dialed []string
	tr := &Transport{Hello: "gw.example", Port: "25", TLSMode: TLSOpportunistic, ConnectTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second,
		Log: log, Pool: pool, Policy: &tlspolicy.Evaluator{Resolver: res, Log: log},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialed = append(dialed, addr)
			return (&net.Dialer{}).DialContext(ctx, network, good.Addr)
		}}
	r := &policyRig{t: t}
	att := r.deliver(tr, "good.dane.test", false)
	if !delivered(att) || att.TLSInfo.Mode != "dane" || att.TLSInfo.Chain != "dane-ee" || len(good.Messages()) != 1 {
		t.Fatalf("good: %+v %+v", att.Rcpts, att.TLSInfo)
	}
	att = r.deliver(tr, "bad.dane.test", false)
	deferred(t, att, "4.7.5")
	if len(good.Messages()) != 1 || att.TLSInfo.Failure != "tlsa-invalid" {
		t.Fatalf("bad: sent anyway, or evidence %+v", att.TLSInfo)
	}
	// Without trust in the AD bit the same zone is not DANE.
	tr.Policy.Resolver = dns.NewClient(dns.ClientConfig{Servers: []string{uaddr}, TrustAD: false, Timeout: 3 * time.Second})
	if att = r.deliver(tr, "bad.dane.test", false); !delivered(att) || att.TLSInfo.Mode != "opportunistic" {
		t.Fatalf("dnssec_trust off: %+v %+v", att.Rcpts, att.TLSInfo)
	}
}
