package dns

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// testServer is a miekg/dns server on loopback (UDP and TCP on one port)
// answering from a zone written as text, so the client is tested against
// a real wire exchange.
type testServer struct {
	addr    string
	queries atomic.Int64
}

func startServer(t *testing.T, zone string, ad bool, handle func(w mdns.ResponseWriter, q *mdns.Msg) bool) *testServer {
	t.Helper()
	var rrs []mdns.RR
	zp := mdns.NewZoneParser(strings.NewReader(zone), "test.", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, q *mdns.Msg) {
		ts.queries.Add(1)
		if handle != nil && handle(w, q) {
			return
		}
		m := new(mdns.Msg)
		m.SetReply(q)
		m.AuthenticatedData = ad
		qn := strings.ToLower(q.Question[0].Name)
		exists := false
		for _, rr := range rrs {
			if strings.ToLower(rr.Header().Name) != qn {
				continue
			}
			exists = true
			if rr.Header().Rrtype == q.Question[0].Qtype || rr.Header().Rrtype == mdns.TypeCNAME {
				m.Answer = append(m.Answer, rr)
			}
		}
		// Follow one CNAME inside the zone, as a recursive server would.
		for _, a := range m.Answer {
			if cn, ok := a.(*mdns.CNAME); ok {
				for _, rr := range rrs {
					if strings.EqualFold(rr.Header().Name, cn.Target) && rr.Header().Rrtype == q.Question[0].Qtype {
						m.Answer = append(m.Answer, rr)
					}
				}
			}
		}
		if !exists {
			m.Rcode = mdns.RcodeNameError
		}
		if len(m.Answer) == 0 {
			soa, _ := mdns.NewRR("test. 60 IN SOA ns.test. h.test. 1 60 60 60 60")
			m.Ns = []mdns.RR{soa}
		}
		w.WriteMsg(m)
	})
	// UDP and TCP on one port: the UDP port is free, its TCP twin may
	// not be (another test holds it), so try a few.
	var pc net.PacketConn
	var l net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	us := &mdns.Server{PacketConn: pc, Handler: h}
	tcp := &mdns.Server{Listener: l, Handler: h}
	go us.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { us.Shutdown(); tcp.Shutdown() })
	ts.addr = pc.LocalAddr().String()
	return ts
}

const zone = `
a.test. 300 IN TXT "v=spf1 " "-all"
a.test. 300 IN MX 10 mx1.a.test.
a.test. 300 IN MX 20 mx2.a.test.
mx1.a.test. 300 IN A 127.0.0.20
mx1.a.test. 300 IN AAAA ::1
alias.test. 300 IN CNAME a.test.
_25._tcp.mx1.a.test. 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
`

func TestClientAnswers(t *testing.T) {
	t.Parallel()
	ts := startServer(t, zone, true, nil)
	c := NewClient(ClientConfig{Servers: []string{ts.addr}, TrustAD: true, Timeout: 2 * time.Second})
	ctx := context.Background()

	txt, res, err := c.LookupTXT(ctx, "A.test.")
	if err != nil || len(txt) != 1 || txt[0] != "v=spf1 -all" || !res.Authentic {
		t.Fatalf("TXT = %q %+v %v; want one joined record, authentic", txt, res, err)
	}
	mx, _, err := c.LookupMX(ctx, "a.test")
	if err != nil || len(mx) != 2 || mx[0].Host != "mx1.a.test" {
		t.Fatalf("MX = %+v %v", mx, err)
	}
	ips, _, err := c.LookupIP(ctx, "mx1.a.test")
	if err != nil || len(ips) != 2 {
		t.Fatalf("IP = %v %v; want A and AAAA", ips, err)
	}
	tl, _, err := c.LookupTLSA(ctx, 25, "tcp", "mx1.a.test")
	if err != nil || len(tl) != 1 || tl[0].Usage != 3 || len(tl[0].CertAssoc) != 32 || tl[0].CertAssoc[0] != 0x01 {
		t.Fatalf("TLSA = %+v %v", tl, err)
	}
	if txt, _, err := c.LookupTXT(ctx, "alias.test"); err != nil || len(txt) != 1 {
		t.Fatalf("TXT via CNAME = %q %v", txt, err)
	}
}

func TestClientNegativeAnswers(t *testing.T) {
	t.Parallel()
	ts := startServer(t, zone, false, nil)
	c := NewClient(ClientConfig{Servers: []string{ts.addr}, TrustAD: true, Timeout: 2 * time.Second})
	ctx := context.Background()
	_, _, err := c.LookupTXT(ctx, "nowhere.test")
	if !IsNotFound(err) || !IsNXDomain(err) {
		t.Fatalf("NXDOMAIN: err = %v; want not found, NXDOMAIN", err)
	}
	// _25._tcp.a.test does not exist in the zone: NXDOMAIN, a definite no.
	if _, _, err = c.LookupTLSA(ctx, 25, "tcp", "a.test"); !IsNXDomain(err) {
		t.Fatalf("TLSA: err = %v", err)
	}
	_, _, err = c.LookupMX(ctx, "mx1.a.test")
	if !IsNotFound(err) || IsNXDomain(err) {
		t.Fatalf("NODATA: err = %v; want not found without NXDOMAIN", err)
	}
	// The server sets no AD bit: nothing is authentic even though trusted.
	if _, res, _ := c.LookupTXT(ctx, "a.test"); res.Authentic {
		t.Fatal("answer without the AD bit reported authentic")
	}
}

// The AD bit is believed only when the operator says the resolver validates.
func TestClientTrustAD(t *testing.T) {
	t.Parallel()
	ts := startServer(t, zone, true, nil)
	c := NewClient(ClientConfig{Servers: []string{ts.addr}, TrustAD: false, Timeout: 2 * time.Second})
	if _, res, err := c.LookupTXT(context.Background(), "a.test"); err != nil || res.Authentic {
		t.Fatalf("untrusted resolver's AD bit believed: %+v %v", res, err)
	}
}

func TestClientServfailIsTemporaryAndNotCachedLong(t *testing.T) {
	t.Parallel()
	fail := atomic.Bool{}
	fail.Store(true)
	ts := startServer(t, zone, false, func(w mdns.ResponseWriter, q *mdns.Msg) bool {
		if !fail.Load() {
			return false
		}
		m := new(mdns.Msg)
		m.SetRcode(q, mdns.RcodeServerFailure)
		w.WriteMsg(m)
		return true
	})
	c := NewClient(ClientConfig{Servers: []string{ts.addr}, Timeout: 2 * time.Second})
	now := time.Now()
	c.now = func() time.Time { return now }
	_, _, err := c.LookupTXT(context.Background(), "a.test")
	if !IsTemporary(err) || IsNotFound(err) {
		t.Fatalf("SERVFAIL: err = %v; want temporary", err)
	}
	fail.Store(false)
	now = now.Add(tempFailTTL + time.Second)
	if _, _, err := c.LookupTXT(context.Background(), "a.test"); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

func TestClientTimeoutFallsToNextServer(t *testing.T) {
	t.Parallel()
	// A UDP socket that never answers.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })
	ts := startServer(t, zone, false, nil)
	c := NewClient(ClientConfig{Servers: []string{dead.LocalAddr().String(), ts.addr}, Timeout: 300 * time.Millisecond})
	if _, _, err := c.LookupTXT(context.Background(), "a.test"); err != nil {
		t.Fatalf("second server not asked: %v", err)
	}
	c = NewClient(ClientConfig{Servers: []string{dead.LocalAddr().String()}, Timeout: 300 * time.Millisecond})
	if _, _, err := c.LookupTXT(context.Background(), "a.test"); !IsTemporary(err) {
		t.Fatalf("timeout: err = %v; want temporary", err)
	}
}

func TestClientTruncatedRetriesOverTCP(t *testing.T) {
	t.Parallel()
	var big strings.Builder
	for i := range 40 {
		big.WriteString("big.test. 300 IN TXT \"" + strings.Repeat("x", 60) + string(rune('a'+i%26)) + "\"\n")
	}
	ts := startServer(t, big.String(), false, func(w mdns.ResponseWriter, q *mdns.Msg) bool {
		if w.RemoteAddr().Network() != "udp" {
			return false
		}
		m := new(mdns.Msg)
		m.SetReply(q)
		m.Truncated = true
		w.WriteMsg(m)
		return true
	})
	c := NewClient(ClientConfig{Servers: []string{ts.addr}, Timeout: 2 * time.Second})
	txt, _, err := c.LookupTXT(context.Background(), "big.test")
	if err != nil || len(txt) != 40 {
		t.Fatalf("TXT over TCP: %d records, %v", len(txt), err)
	}
}

func TestClientCachesByTTL(t *testing.T) {
	t.Parallel()
	ts := startServer(t, zone, false, nil)
	c := NewClient(ClientConfig{Servers: []string{ts.addr}, Timeout: 2 * time.Second})
	now := time.Now()
	c.now = func() time.Time { return now }
	ctx := context.Background()
	for range 3 {
		c.LookupTXT(ctx, "a.test")
		c.LookupTXT(ctx, "nowhere.test")
	}
	if n := ts.queries.Load(); n != 2 {
		t.Fatalf("%d queries for two names asked three times; want 2 (positive and negative cached)", n)
	}
	now = now.Add(301 * time.Second)
	c.LookupTXT(ctx, "a.test")
	if n := ts.queries.Load(); n != 3 {
		t.Fatalf("%d queries after the TTL; want the answer asked again", n)
	}
}

func TestClientCacheBounded(t *testing.T) {
	t.Parallel()
	ts := startServer(t, zone, false, nil)
	c := NewClient(ClientConfig{Servers: []string{ts.addr}, Timeout: 2 * time.Second, MaxEntries: 10})
	for i := range 50 {
		c.LookupTXT(context.Background(), "n"+string(rune('a'+i%26))+string(rune('a'+i/26))+".test")
	}
	c.mu.Lock()
	n := len(c.cache)
	c.mu.Unlock()
	if n > 10 {
		t.Fatalf("cache holds %d entries; bound is 10", n)
	}
}

func TestFromConfig(t *testing.T) {
	t.Parallel()
	if _, err := FromConfig("127.0.0.1", false); err == nil {
		t.Fatal("resolver without a port accepted")
	}
	c, err := FromConfig("127.0.0.1:53", true)
	if err != nil || len(c.cfg.Servers) != 1 || !c.cfg.TrustAD {
		t.Fatalf("FromConfig: %+v %v", c, err)
	}
}
