package deliver

import (
	"context"
	"net"
	"strings"
	"testing"

	"sealpost/internal/dns"

	"sealpost/internal/queue"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

func (r *policyRig) deliverD(tr *Transport, mutate func(*queue.Delivery)) queue.Attempt {
	msg := "From: a@b.example\r\nSubject: x\r\n\r\nhello\r\n"
	d := &queue.Delivery{Msg: &store.Message{ID: "m1", MailFrom: "a@b.example", Direction: "out"}, Domain: "example.org",
		Rcpts: []string{"r@example.org"}, Body: strings.NewReader(msg), Size: int64(len(msg))}
	mutate(d)
	return tr.Deliver(context.Background(), d)
}

// TestRequireTLSUnderPolicy: under the TLS policy (here MTA-STS enforce), a
// REQUIRETLS message goes to an MX that offers REQUIRETLS with the
// parameter passed on, and fails with 5.7.30 when the only MX does not.
func TestRequireTLSUnderPolicy(t *testing.T) {
	for _, offers := range []bool{true, false} {
		t.Run(map[bool]string{true: "offers", false: "lacks"}[offers], func(t *testing.T) { testRequireTLSUnderPolicy(t, offers) })
	}
}

func testRequireTLSUnderPolicy(t *testing.T, offers bool) {
	{
		r := newPolicyRig(t)
		cert := r.ca.Leaf(t, "mx.example.org")
		var s *testutil.Sink
		if offers {
			s = testutil.NewSinkTLSRequireTLS(t, &cert)
		} else {
			s = testutil.NewSinkTLS(t, &cert)
		}
		r.sinks["127.0.0.2"] = s
		r.res.MX["example.org"] = append(r.res.MX["example.org"], dns.MX{Host: "mx.example.org", Pref: 10})
		r.res.IP["mx.example.org"] = []net.IP{net.ParseIP("127.0.0.2")}
		r.res.TXT["_mta-sts.example.org"] = []string{"v=STSv1; id=1"}
		r.sts = stsEnforce
		att := r.deliverD(r.transport(), func(d *queue.Delivery) { d.SMTPRequireTLS = true })
		if offers {
			if !delivered(att) || !s.Messages()[0].RequireTLS || !s.Messages()[0].TLS {
				t.Fatalf("offers REQUIRETLS: %+v %+v", att.Rcpts, s.Messages())
			}
			return
		}
		if delivered(att) || !att.Rcpts[0].Permanent || !strings.Contains(att.Rcpts[0].Text, "5.7.30") || len(s.Messages()) != 0 {
			t.Fatalf("no REQUIRETLS: %+v, sink %d", att.Rcpts, len(s.Messages()))
		}
	}
}

// TestRequireTLSRaisesOpportunisticDomain: a domain without any policy
// still gets a REQUIRETLS message only over verified TLS.
func TestRequireTLSRaisesOpportunisticDomain(t *testing.T) {
	r := newPolicyRig(t)
	bad := testutil.NewCA(t, "untrusted").Leaf(t, "mx.example.org")
	s := testutil.NewSinkTLSRequireTLS(t, &bad)
	r.sinks["127.0.0.2"] = s
	r.res.MX["example.org"] = append(r.res.MX["example.org"], dns.MX{Host: "mx.example.org", Pref: 10})
	r.res.IP["mx.example.org"] = []net.IP{net.ParseIP("127.0.0.2")}
	att := r.deliverD(r.transport(), func(d *queue.Delivery) { d.SMTPRequireTLS = true })
	deferred(t, att, "4.7.5")
	if len(s.Messages()) != 0 {
		t.Fatal("REQUIRETLS mail sent over an unverified certificate")
	}
	if att := r.deliverD(r.transport(), func(d *queue.Delivery) {}); !delivered(att) {
		t.Fatalf("the same host for mail without REQUIRETLS: %+v", att.Rcpts)
	}
}

// TestTLSRequiredNoUnderPolicy: "TLS-Required: No" lets mail through an
// MTA-STS enforce failure only when the operator honours it, and never for
// require-tls mail or a domain on the operator's require-TLS list.
func TestTLSRequiredNoUnderPolicy(t *testing.T) {
	for _, c := range []struct {
		name       string
		honour     bool
		requireTLS bool
		list       []string
		want       bool
	}{
		{"honoured", true, false, nil, true},
		{"ignored", false, false, nil, false},
		{"require-tls", true, true, nil, false},
		{"require-TLS list", true, false, []string{"example.org"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newPolicyRig(t)
			bad := testutil.NewCA(t, "untrusted").Leaf(t, "mx.example.org")
			s := r.mx("mx.example.org", "127.0.0.2", 10, &bad)
			r.res.TXT["_mta-sts.example.org"] = []string{"v=STSv1; id=1"}
			r.sts = stsEnforce
			r.list = c.list
			tr := r.transport()
			tr.HonourTLSRequiredNo = c.honour
			att := r.deliverD(tr, func(d *queue.Delivery) { d.TLSRequiredNo, d.RequireTLS = true, c.requireTLS })
			if delivered(att) != c.want {
				t.Fatalf("delivered %v, want %v: %+v", delivered(att), c.want, att.Rcpts)
			}
			if !c.want && len(s.Messages()) != 0 {
				t.Fatal("the receiver got the message")
			}
		})
	}
}
