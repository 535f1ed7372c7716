package inbound

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"

	mdns "github.com/miekg/dns"
	mdkim "github.com/mjl-/mox/dkim"
	moxdns "github.com/mjl-/mox/dns"

	"sealpost/internal/dns"
	"sealpost/internal/mailauth/arc"
	"sealpost/internal/mailauth/dkim"
	"sealpost/internal/mailauth/dmarc"
	"sealpost/internal/mailauth/spf"
)

// mockServer answers DNS queries on loopback from a MockResolver, so the
// benchmark goes through the real caching dns.Client.
type mockServer struct{ r dns.MockResolver }

func (s mockServer) ServeDNS(w mdns.ResponseWriter, q *mdns.Msg) {
	m := new(mdns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	name := strings.TrimSuffix(q.Question[0].Name, ".")
	hdr := mdns.RR_Header{Name: q.Question[0].Name, Class: mdns.ClassINET, Ttl: 3600, Rrtype: q.Question[0].Qtype}
	var err error
	switch q.Question[0].Qtype {
	case mdns.TypeTXT:
		var txt []string
		txt, _, err = s.r.LookupTXT(context.Background(), name)
		for _, v := range txt {
			var parts []string
			for len(v) > 255 {
				parts, v = append(parts, v[:255]), v[255:]
			}
			m.Answer = append(m.Answer, &mdns.TXT{Hdr: hdr, Txt: append(parts, v)})
		}
	case mdns.TypeA, mdns.TypeAAAA:
		var ips []net.IP
		ips, _, err = s.r.LookupIP(context.Background(), name)
		for _, ip := range ips {
			if ip.To4() != nil && q.Question[0].Qtype == mdns.TypeA {
				m.Answer = append(m.Answer, &mdns.A{Hdr: hdr, A: ip})
			}
		}
	default:
		_, _, err = s.r.LookupTXT(context.Background(), name)
	}
	if dns.IsNXDomain(err) {
		m.Rcode = mdns.RcodeNameError
	}
	m.Ns = append(m.Ns, &mdns.SOA{Hdr: mdns.RR_Header{Name: "example.", Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: 3600},
		Ns: "ns.example.", Mbox: "h.example.", Minttl: 3600})
	w.WriteMsg(m)
}

// benchWorld: a 10 KB message from sender.example signed with RSA-2048
// (the common case), SPF and DMARC p=reject published, answers served
// over loopback DNS and cached by dns.Client.
func benchWorld(b *testing.B) (*world, dns.Resolver, []byte) {
	w := newWorld(b)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	w.res.TXT["rsa._domainkey.sender.example"] = []string{"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mockServer{w.res}}
	go srv.ActivateAndServe()
	b.Cleanup(func() { srv.Shutdown() })
	client := dns.NewClient(dns.ClientConfig{Servers: []string{pc.LocalAddr().String()}})

	body := strings.Repeat("A line of an ordinary letter, some seventy characters long, or so.\r\n", 145)
	msg := []byte("From: Someone <someone@sender.example>\r\nTo: staff@council.example\r\nSubject: Hello\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + body)
	sel := mdkim.Selector{Hash: "sha256", HeaderRelaxed: true, BodyRelaxed: true, Headers: []string{"From", "To", "Subject", "Date", "Message-ID"},
		PrivateKey: rk, Domain: moxdns.Domain{ASCII: "rsa"}}
	h, err := mdkim.Sign(context.Background(), slog.New(slog.DiscardHandler), "someone", moxdns.Domain{ASCII: "sender.example"}, []mdkim.Selector{sel}, false, bytes.NewReader(msg))
	if err != nil {
		b.Fatal(err)
	}
	msg = append([]byte(h), msg...)
	return w, client, msg
}

var benchConn = Conn{IP: net.ParseIP("192.0.2.10"), HELO: "mta.sender.example", MailFrom: "a@sender.example"}

// BenchmarkInbound: CPU per 10 KB message with DNS answers cached (one
// goroutine, so ns/op is CPU time). Run: go test -run XXX -bench
// BenchmarkInbound ./internal/inbound/ (bench/inbound.sh).
func BenchmarkInbound(b *testing.B) {
	w, client, msg := benchWorld(b)
	ctx := context.Background()
	run := func(name string, f func()) {
		b.Run(name, func(b *testing.B) {
			f() // warm the cache
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			c0 := cpuTime()
			for i := 0; i < b.N; i++ {
				f()
			}
			// The machine is shared: wall time per op overstates the
			// cost; process CPU time (GC included) is the measure.
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N)/1e6, "cpu-ms/msg")
		})
	}
	cfg := func(seal bool) *Evaluator {
		return w.eval(b, func(c *Config) {
			c.Resolver = client
			if !seal {
				c.Seal = nil
			}
		})
	}
	noSeal, withSeal := cfg(false), cfg(true)
	check := func(v *Verdict) {
		if v.Action != Accept {
			b.Fatalf("verdict %s: %s", v.Action, v.Why)
		}
	}
	run("all-checks", func() { check(noSeal.Evaluate(ctx, benchConn, msg)) })
	run("all-checks+arc-seal", func() { check(withSeal.Evaluate(ctx, benchConn, msg)) })
	sv := &spf.Verifier{Resolver: client}
	run("spf", func() { sv.Verify(ctx, benchConn.IP, benchConn.HELO, benchConn.MailFrom) })
	dv := &dkim.Verifier{Resolver: client}
	run("dkim-rsa2048", func() { dv.Verify(ctx, msg, false) })
	run("arc-verify-none", func() { arc.Verify(ctx, client, msg) })
	de := &dmarc.Evaluator{Resolver: client}
	run("dmarc", func() { de.Evaluate(ctx, dmarc.Input{From: "sender.example", DKIMDomains: []string{"sender.example"}}) })
	run("strip-and-results", func() { StripForgedResults(msg, "mx.council.example") })
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
