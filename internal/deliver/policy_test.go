package deliver

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sealpost/internal/dns"
	"sealpost/internal/queue"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
	"sealpost/internal/tlspolicy"
)

// policyRig is a recipient domain example.org on loopback: MX hosts are
// sinks behind 127.0.0.x addresses, an MTA-STS HTTPS server, a mock
// resolver whose answers carry the AD bit where the test says.
type policyRig struct {
	t        testing.TB
	ca       *testutil.CA
	res      dns.MockResolver
	sinks    map[string]*testutil.Sink // by 127.0.0.x
	mu       sync.Mutex
	dialed   []string
	dials    int
	sts      string // policy text served, "" for 404
	fetches  int
	list     []string
	pool     *Pool
	stsCache *tlspolicy.MemCache
}

func newPolicyRig(t *testing.T) *policyRig {
	t.Parallel()
	return newRig(t)
}

func newRig(t testing.TB) *policyRig {
	r := &policyRig{t: t, ca: testutil.NewCA(t, "test CA"), sinks: map[string]*testutil.Sink{}, stsCache: &tlspolicy.MemCache{},
		res: dns.MockResolver{TXT: map[string][]string{}, MX: map[string][]dns.MX{}, IP: map[string][]net.IP{},
			TLSA: map[string][]dns.TLSA{}, Fail: map[string]error{}, Authentic: map[string]bool{}}}
	r.pool = NewPool(4, time.Minute)
	t.Cleanup(r.pool.Close)
	return r
}

// mx adds an MX host with a sink at ip; cert nil: no STARTTLS.
func (r *policyRig) mx(host, ip string, pref uint16, cert *tls.Certificate) *testutil.Sink {
	s := testutil.NewSinkTLS(r.t, cert)
	r.sinks[ip] = s
	r.res.MX["example.org"] = append(r.res.MX["example.org"], dns.MX{Host: host, Pref: pref})
	r.res.IP[host] = []net.IP{net.ParseIP(ip)}
	return s
}

// signed marks the MX RRset, the host's addresses and its TLSA as DNSSEC-authentic.
func (r *policyRig) signed(host string) {
	r.res.Authentic["example.org"] = true
	r.res.Authentic[host] = true
	r.res.Authentic["_25._tcp."+host] = true
}

func tlsa(usage, sel, match uint8, cert *x509.Certificate) dns.TLSA {
	data := cert.Raw
	if sel == 1 {
		data = cert.RawSubjectPublicKeyInfo
	}
	if match == 1 {
		s := sha256.Sum256(data)
		data = s[:]
	}
	return dns.TLSA{Usage: usage, Selector: sel, MatchingType: match, CertAssoc: data}
}

func (r *policyRig) transport() *Transport {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.fetches++
		text := r.sts
		r.mu.Unlock()
		if text == "" || req.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, text)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{r.ca.Leaf(r.t, "mta-sts.example.org")}}
	srv.StartTLS()
	r.t.Cleanup(srv.Close)
	httpDial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	list, err := tlspolicy.ParseDomainList(r.list)
	if err != nil {
		r.t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	return &Transport{Hello: "gw.example", Port: "25", TLSMode: TLSOpportunistic, ConnectTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second,
		Log: log, Pool: r.pool, RootCAs: r.ca.Pool(),
		Policy: &tlspolicy.Evaluator{Resolver: r.res, RequireTLS: list, Log: log,
			STS: &tlspolicy.STS{Resolver: r.res, HTTP: tlspolicy.NewHTTPClient(r.ca.Pool(), httpDial, 5*time.Second), Cache: r.stsCache, Log: log}},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ip, _, _ := net.SplitHostPort(addr)
			r.mu.Lock()
			r.dialed = append(r.dialed, ip)
			r.dials++
			s := r.sinks[ip]
			r.mu.Unlock()
			if s == nil {
				return nil, errors.New("no route to " + addr)
			}
			return (&net.Dialer{}).DialContext(ctx, network, s.Addr)
		}}
}

func (r *policyRig) deliver(tr *Transport, domain string, requireTLS bool) queue.Attempt {
	msg := "From: a@b.example\r\nSubject: x\r\n\r\nhello\r\n"
	return tr.Deliver(context.Background(), &queue.Delivery{Msg: &store.Message{ID: "m1", MailFrom: "a@b.example"}, Domain: domain,
		Rcpts: []string{"r@" + domain}, Body: strings.NewReader(msg), Size: int64(len(msg)), RequireTLS: requireTLS})
}

func delivered(att queue.Attempt) bool { return len(att.Rcpts) == 1 && att.Rcpts[0].OK }

// deferred: a temporary failure whose text contains code.
func deferred(t *testing.T, att queue.Attempt, code string) {
	t.Helper()
	if len(att.Rcpts) != 1 || att.Rcpts[0].OK || att.Rcpts[0].Permanent || !strings.Contains(att.Rcpts[0].Text, code) {
		t.Fatalf("want a temporary %s failure, got %+v", code, att.Rcpts)
	}
}

func TestDANEEEValidDelivers(t *testing.T) {
	r := newPolicyRig(t)
	cert := r.ca.Leaf(t, "other.name.invalid") // DANE-EE ignores names (RFC 7672 §3.1.1)
	s := r.mx("mx.example.org", "127.0.0.2", 10, &cert)
	r.res.TLSA["_25._tcp.mx.example.org"] = []dns.TLSA{tlsa(3, 1, 1, cert.Leaf)}
	r.signed("mx.example.org")
	att := r.deliver(r.transport(), "example.org", false)
	if !delivered(att) || len(s.Messages()) != 1 {
		t.Fatalf("not delivered: %+v", att.Rcpts)
	}
	if i := att.TLSInfo; i == nil || i.Mode != "dane" || i.Chain != "dane-ee" || i.TLSA != "3 1 1" || !i.Verified || i.Failure != "" {
		t.Fatalf("evidence %+v", att.TLSInfo)
	}
}

func TestDANEWrongHashDefers(t *testing.T) {
	r := newPolicyRig(t)
	cert := r.ca.Leaf(t, "mx.example.org")
	other := r.ca.Leaf(t, "mx.example.org")
	s := r.mx("mx.example.org", "127.0.0.2", 10, &cert)
	r.res.TLSA["_25._tcp.mx.example.org"] = []dns.TLSA{tlsa(3, 1, 1, other.Leaf)}
	r.signed("mx.example.org")
	att := r.deliver(r.transport(), "example.org", false)
	deferred(t, att, "4.7.5")
	if len(s.Messages()) != 0 || att.TLSInfo == nil || att.TLSInfo.Failure != "tlsa-invalid" {
		t.Fatalf("sink %d, evidence %+v", len(s.Messages()), att.TLSInfo)
	}
}

func TestDANETA(t *testing.T) {
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprint("known=", known), func(t *testing.T) {
			r := newPolicyRig(t)
			cert := r.ca.Leaf(t, "mx.example.org")
			s := r.mx("mx.example.org", "127.0.0.2", 10, &cert)
			anchor := r.ca.Cert
			if !known {
				anchor = testutil.NewCA(t, "another CA").Cert
			}
			r.res.TLSA["_25._tcp.mx.example.org"] = []dns.TLSA{tlsa(2, 0, 1, anchor)}
			r.signed("mx.example.org")
			att := r.deliver(r.transport(), "example.org", false)
			if known {
				if !delivered(att) || att.TLSInfo.Chain != "dane-ta" {
					t.Fatalf("%+v %+v", att.Rcpts, att.TLSInfo)
				}
				return
			}
			deferred(t, att, "4.7.5")
			if len(s.Messages()) != 0 {
				t.Fatal("delivered to a host whose anchor is unknown")
			}
		})
	}
}

const stsEnforce = "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n"

// TestUnsignedZoneFallsToMTASTS: TLSA records without the AD bit prove
// nothing, nor do authentic ones reached through an MX answer that is not
// (RFC 7672 §2.2.1); the domain's MTA-STS policy applies instead.
func TestUnsignedZoneFallsToMTASTS(t *testing.T) {
	for _, c := range []struct{ mxSigned, tlsaSigned bool }{{true, false}, {false, true}} {
		t.Run(fmt.Sprintf("mx=%v,tlsa=%v", c.mxSigned, c.tlsaSigned), func(t *testing.T) {
			r := newPolicyRig(t)
			cert := r.ca.Leaf(t, "mx.example.org")
			r.mx("mx.example.org", "127.0.0.2", 10, &cert)
			r.res.TLSA["_25._tcp.mx.example.org"] = []dns.TLSA{{Usage: 3, Selector: 1, MatchingType: 1, CertAssoc: make([]byte, 32)}}
			r.res.Authentic["example.org"] = c.mxSigned
			r.res.Authentic["_25._tcp.mx.example.org"] = c.tlsaSigned
			r.res.TXT["_mta-sts.example.org"] = []string{"v=STSv1; id=1"}
			r.sts = stsEnforce
			att := r.deliver(r.transport(), "example.org", false)
			if !delivered(att) || att.TLSInfo.Mode != "mta-sts" || att.TLSInfo.PolicyID != "1" || att.TLSInfo.Chain != "webpki" {
				t.Fatalf("%+v %+v", att.Rcpts, att.TLSInfo)
			}
		})
	}
}

func TestTLSAServfail(t *testing.T) {
	for _, signedHost := range []bool{true, false} {
		t.Run(fmt.Sprint("signed=", signedHost), func(t *testing.T) {
			r := newPolicyRig(t)
			cert := r.ca.Leaf(t, "mx.example.org")
			r.mx("mx.example.org", "127.0.0.2", 10, &cert)
			r.res.Authentic["example.org"] = true
			r.res.Authentic["mx.example.org"] = signedHost
			r.res.Fail["_25._tcp.mx.example.org"] = dns.ErrTemporary
			att := r.deliver(r.transport(), "example.org", false)
			if signedHost {
				deferred(t, att, "4.7.5")
				if len(r.dialed) != 0 {
					t.Fatalf("contacted %v after a failed TLSA lookup", r.dialed)
				}
				return
			}
			// The Outlook case: the host's zone is provably unsigned, so
			// the failed TLSA lookup hides nothing.
			if !delivered(att) || att.TLSInfo.Mode != "opportunistic" {
				t.Fatalf("%+v %+v", att.Rcpts, att.TLSInfo)
			}
		})
	}
}

func TestMTASTSBadCertificate(t *testing.T) {
	for _, mode := range []string{"enforce", "testing"} {
		t.Run(mode, func(t *testing.T) {
			r := newPolicyRig(t)
			bad := testutil.NewCA(t, "untrusted").Leaf(t, "mx.example.org")
			s := r.mx("mx.example.org", "127.0.0.2", 10, &bad)
			r.res.TXT["_mta-sts.example.org"] = []string{"v=STSv1; id=7"}
			r.sts = strings.Replace(stsEnforce, "enforce", mode, 1)
			att := r.deliver(r.transport(), "example.org", false)
			if mode == "enforce" {
				deferred(t, att, "4.7.5")
				if len(s.Messages()) != 0 || att.TLSInfo.Failure != "certificate-not-trusted" {
					t.Fatalf("sink %d, evidence %+v", len(s.Messages()), att.TLSInfo)
				}
				return
			}
			// Testing delivers, over TLS as without a policy (not in
			// clear), and the failure is kept for the report.
			if !delivered(att) || !s.Messages()[0].TLS || att.TLSInfo.PolicyMode != "testing" || att.TLSInfo.Failure != "certificate-not-trusted" || att.TLSInfo.Verified {
				t.Fatalf("%+v %+v", att.Rcpts, att.TLSInfo)
			}
		})
	}
}

func TestMTASTSUnlistedMXNotContacted(t *testing.T) {
	r := newPolicyRig(t)
	cert := r.ca.Leaf(t, "mx.example.org", "rogue.example.net")
	rogue := r.mx("rogue.example.net", "127.0.0.3", 5, &cert)
	good := r.mx("mx.example.org", "127.0.0.2", 10, &cert)
	r.res.TXT["_mta-sts.example.org"] = []string{"v=STSv1; id=1"}
	r.sts = stsEnforce
	att := r.deliver(r.transport(), "example.org", false)
	if !delivered(att) || len(good.Messages()) != 1 || len(rogue.Messages()) != 0 {
		t.Fatalf("%+v", att.Rcpts)
	}
	for _, ip := range r.dialed {
		if ip == "127.0.0.3" {
			t.Fatal("connected to an MX host the MTA-STS policy does not list")
		}
	}
	// TLS-RPT sees both hosts: the skipped one as a failure.
	if len(att.Sessions) != 2 || att.Sessions[0].Host != "rogue.example.net" || att.Sessions[0].Failure != "validation-failure" ||
		att.Sessions[1].Failure != "" || len(att.Sessions[1].PolicyStrings) != 4 || att.Sessions[1].PolicyStrings[1] != "mode: enforce" {
		t.Fatalf("sessions %+v %+v", att.Sessions[0], att.Sessions[len(att.Sessions)-1])
	}
	// With only the unlisted host left, nothing is contacted at all.
	delete(r.sinks, "127.0.0.2")
	r.res.MX["example.org"] = r.res.MX["example.org"][:1]
	r.dialed = nil
	att = r.deliver(r.transport(), "example.org", false)
	deferred(t, att, "4.7.5")
	if len(r.dialed) != 0 {
		t.Fatalf("dialed %v", r.dialed)
	}
}

// TestStrippedSTARTTLS: a receiver (or a MITM) that does not offer STARTTLS
// gets the mail in clear only when the policy is opportunistic.
func TestStrippedSTARTTLS(t *testing.T) {
	for _, c := range []struct {
		name   string
		list   []string
		local  bool
		sts    bool
		expect bool
	}{
		{"opportunistic", nil, false, false, true},
		{"list", []string{"*.org", "!other.org"}, false, false, false},
		{"list exception", []string{"*.org", "!example.org"}, false, false, true},
		{"local rule", nil, true, false, false},
		{"mta-sts", nil, false, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newPolicyRig(t)
			s := r.mx("mx.example.org", "127.0.0.2", 10, nil)
			r.list = c.list
			if c.sts {
				r.res.TXT["_mta-sts.example.org"] = []string{"v=STSv1; id=1"}
				r.sts = stsEnforce
			}
			att := r.deliver(r.transport(), "example.org", c.local)
			if c.expect {
				if !delivered(att) || s.Messages()[0].TLS {
					t.Fatalf("%+v", att.Rcpts)
				}
				return
			}
			deferred(t, att, "4.7.4")
			if len(s.Messages()) != 0 || att.TLSInfo.Failure != "starttls-not-supported" {
				t.Fatalf("sink %d, evidence %+v", len(s.Messages()), att.TLSInfo)
			}
		})
	}
}

// TestPoolKeyedByPolicy: a session verified under example.org's MTA-STS
// policy is not reused for another domain with the same MX host.
func TestPoolKeyedByPolicy(t *testing.T) {
	r := newPolicyRig(t)
	cert := r.ca.Leaf(t, "mx.example.org")
	r.mx("mx.example.org", "127.0.0.2", 10, &cert)
	r.res.MX["other.example"] = []dns.MX{{Host: "mx.example.org", Pref: 10}}
	r.res.TXT["_mta-sts.example.org"] = []string{"v=STSv1; id=1"}
	r.sts = stsEnforce
	r.list = []string{"other.example"} // verified TLS there too, under another policy
	tr := r.transport()
	for i, dom := range []string{"example.org", "example.org", "other.example"} {
		if att := r.deliver(tr, dom, false); !delivered(att) {
			t.Fatalf("%d %s: %+v", i, dom, att.Rcpts)
		}
	}
	if r.dials != 2 {
		t.Fatalf("%d connections, want 2 (one reused for example.org, a new one for other.example)", r.dials)
	}
}
