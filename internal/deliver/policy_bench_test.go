package deliver

import (
	"context"
	"strings"
	"testing"

	"sealpost/internal/dns"
	"sealpost/internal/queue"
	"sealpost/internal/store"
)

// BenchmarkDeliverPolicy: one 10 KB message per iteration over a pooled
// TLS session to a loopback sink, with the outbound TLS policy off (a fixed
// next hop, opportunistic TLS) and on (MTA-STS policy cached, or DANE), in
// the same run. With the policy on, each delivery costs its lookups (a mock
// resolver here; the real one caches by TTL) and the cache read; pooled
// sessions skip the handshake either way.
func BenchmarkDeliverPolicy(b *testing.B) {
	msg := "From: a@b.example\r\nSubject: x\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 160)
	for _, mode := range []string{"off", "mta-sts", "dane"} {
		b.Run(mode, func(b *testing.B) {
			r := newRig(b)
			cert := r.ca.Leaf(b, "mx.example.org")
			r.mx("mx.example.org", "127.0.0.2", 10, &cert)
			r.res.TXT["_mta-sts.example.org"] = []string{"v=STSv1; id=1"}
			r.sts = stsEnforce
			if mode == "dane" {
				r.res.TLSA["_25._tcp.mx.example.org"] = []dns.TLSA{tlsa(3, 1, 1, cert.Leaf)}
				r.signed("mx.example.org")
			}
			tr := r.transport()
			if mode == "off" {
				tr.Policy, tr.FixedHost = nil, "127.0.0.2:25"
			}
			d := &queue.Delivery{Msg: &store.Message{ID: "m1", MailFrom: "a@b.example"}, Domain: "example.org",
				Rcpts: []string{"r@example.org"}, Size: int64(len(msg))}
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d.Body = strings.NewReader(msg)
				if att := tr.Deliver(context.Background(), d); !delivered(att) {
					b.Fatalf("%+v", att.Rcpts)
				}
			}
			b.StopTimer()
		})
	}
}
