package dnscheck

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// server is a DNS server on loopback answering from a table (UDP).
type server struct {
	addr string
	txt  map[string][]string
	mx   map[string][]string
	// rcode, if set, is the answer to every query (SERVFAIL, REFUSED);
	// silent: no answer at all (a resolver that times out).
	rcode  dnsmessage.RCode
	silent bool
}

func startServer(t *testing.T, txt, mx map[string][]string) *server {
	return startFailing(t, txt, mx, dnsmessage.RCodeSuccess, false)
}

func startFailing(t *testing.T, txt, mx map[string][]string, rcode dnsmessage.RCode, silent bool) *server {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &server{addr: pc.LocalAddr().String(), txt: txt, mx: mx, rcode: rcode, silent: silent}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			name := strings.ToLower(q.Name.String())
			if s.silent {
				continue
			}
			if s.rcode != dnsmessage.RCodeSuccess {
				b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RCode: s.rcode})
				b.StartQuestions()
				b.Question(q)
				msg, _ := b.Finish()
				pc.WriteTo(msg, from)
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess})
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			found := false
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
			switch q.Type {
			case dnsmessage.TypeTXT:
				for _, v := range s.txt[name] {
					found = true
					var parts []string
					for len(v) > 255 {
						parts, v = append(parts, v[:255]), v[255:]
					}
					b.TXTResource(rh, dnsmessage.TXTResource{TXT: append(parts, v)})
				}
			case dnsmessage.TypeMX:
				for i, v := range s.mx[name] {
					found = true
					b.MXResource(rh, dnsmessage.MXResource{Pref: uint16(10 * (i + 1)), MX: dnsmessage.MustNewName(v)})
				}
			}
			msg, _ := b.Finish()
			if !found {
				h2 := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeNameError}
				b = dnsmessage.NewBuilder(nil, h2)
				b.StartQuestions()
				b.Question(q)
				msg, _ = b.Finish()
			}
			pc.WriteTo(msg, from)
		}
	}()
	return s
}

func (s *server) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		d := net.Dialer{Timeout: 2 * time.Second}
		return d.DialContext(ctx, "udp", s.addr)
	}}
}

var settings = Settings{Domain: "example.gov.uk", Gateway: "gw.example.gov.uk", DMARCPolicy: "reject",
	DMARCRUA: "mailto:dmarc-rua@dmarc.service.gov.uk", TLSRPTRUA: "mailto:tls-rua@mailcheck.service.ncsc.gov.uk", MTASTSMode: "enforce", MTASTSID: "abc123",
	DKIM: []KeyRecord{{Name: "s202611._domainkey.example.gov.uk", Value: "v=DKIM1;k=ed25519;p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}}}

func TestCheckAllGood(t *testing.T) {
	txt := map[string][]string{}
	mx := map[string][]string{}
	for _, r := range Records(settings) {
		n := strings.ToLower(r.Name)
		switch r.Type {
		case "TXT":
			txt[n] = append(txt[n], r.Value)
		case "MX":
			mx[n] = append(mx[n], strings.Fields(r.Value)[1])
		}
	}
	txt["example.gov.uk."] = append(txt["example.gov.uk."], "google-site-verification=abc")
	s := startServer(t, txt, mx)
	for _, f := range Check(context.Background(), s.resolver(), settings) {
		if f.Status != "ok" {
			t.Errorf("%+v", f)
		}
	}
}

func TestCheckFindsProblems(t *testing.T) {
	s := startServer(t, map[string][]string{
		"example.gov.uk.":                    {"v=spf1 include:spf.protection.outlook.com ~all", "v=spf1 a:gw.example.gov.uk -all"},
		"_dmarc.example.gov.uk.":             {"v=DMARC1; p=none"},
		"s202611._domainkey.example.gov.uk.": {"v=DKIM1;k=ed25519;p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
	}, map[string][]string{"example.gov.uk.": {"mail.protection.outlook.com."}})
	got := map[string]Finding{}
	for _, f := range Check(context.Background(), s.resolver(), settings) {
		got[f.Name] = f
	}
	test := func(name, status, fix string) {
		t.Helper()
		f := got[name]
		if f.Status != status || !strings.Contains(f.Fix, fix) {
			t.Errorf("%s: %+v, want %s with fix containing %q", name, f, status, fix)
		}
	}
	test("example.gov.uk MX", "wrong", "point the MX at gw.example.gov.uk")
	test("example.gov.uk SPF", "wrong", "exactly one SPF record")
	test("s202611._domainkey.example.gov.uk DKIM", "wrong", "not the gateway's")
	test("_dmarc.example.gov.uk", "weak", "p=quarantine, then p=reject")
	test("_mta-sts.example.gov.uk", "missing", "v=STSv1; id=abc123")
	test("_smtp._tls.example.gov.uk", "missing", "tls-rua@mailcheck.service.ncsc.gov.uk")
}

// TestCheckSaysCouldNotQuery: when the resolver fails (SERVFAIL, REFUSED,
// no answer), every record is "could not query", never "missing": a
// missing record is DNS's answer, not its silence.
func TestCheckSaysCouldNotQuery(t *testing.T) {
	for _, c := range []struct {
		name   string
		rcode  dnsmessage.RCode
		silent bool
	}{{"SERVFAIL", dnsmessage.RCodeServerFailure, false}, {"REFUSED", dnsmessage.RCodeRefused, false}, {"no answer", dnsmessage.RCodeSuccess, true}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := startFailing(t, nil, nil, c.rcode, c.silent)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			fs := Check(ctx, s.resolver(), settings)
			if len(fs) != 6 { // MX, SPF, one DKIM key, DMARC, MTA-STS, TLS-RPT
				t.Fatalf("%d findings", len(fs))
			}
			for _, f := range fs {
				if f.Status != StatusError || !strings.HasPrefix(f.Fix, "could not query ") || !strings.Contains(f.Fix, "check that the resolver") {
					t.Errorf("%+v", f)
				}
			}
		})
	}
	// The same server answering NXDOMAIN: missing, as before.
	s := startServer(t, nil, nil)
	for _, f := range Check(context.Background(), s.resolver(), settings) {
		if f.Status != "missing" {
			t.Errorf("NXDOMAIN: %+v", f)
		}
	}
}
