package tlspolicy

import (
	"context"
	"crypto/tls"
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
	"sealpost/internal/testutil"
)

func TestDomainList(t *testing.T) {
	l, err := ParseDomainList([]string{"*.gov.uk", "NHS.net.", "!exempt.gov.uk", "!*.lab.gov.uk"})
	if err != nil {
		t.Fatal(err)
	}
	test := func(domain, want string) {
		t.Helper()
		if got := l.Match(domain); got != want {
			t.Errorf("Match(%q) = %q, want %q", domain, got, want)
		}
	}
	test("hmrc.gov.uk", "*.gov.uk")
	test("a.b.gov.uk", "*.gov.uk")
	test("gov.uk", "")
	test("nhs.net", "nhs.net")
	test("mail.nhs.net", "")
	test("exempt.gov.uk", "")
	test("x.lab.gov.uk", "")
	test("lab.gov.uk", "*.gov.uk")
	test("evilgov.uk", "")
	for _, bad := range []string{"", "*", "a..b", "*.*.x", "a b", "x/y"} {
		if _, err := ParseDomainList([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzDomainList(f *testing.F) {
	for _, s := range []string{"*.gov.uk", "!x.gov.uk", "nhs.net", "", "*."} {
		f.Add(s, "a.gov.uk")
	}
	f.Fuzz(func(t *testing.T, entry, domain string) {
		l, err := ParseDomainList([]string{entry})
		if err != nil {
			return
		}
		// Property: an entry and its exception never both match.
		l2, err := ParseDomainList([]string{entry, "!" + strings.TrimPrefix(entry, "!")})
		if err == nil && l2.Match(domain) != "" {
			t.Fatalf("%q matched despite its own exception", domain)
		}
		l.Match(domain)
	})
}

// stsRig serves a policy for example.org over HTTPS with a test CA.
type stsRig struct {
	mu      sync.Mutex
	text    string
	ctype   string
	fetches int
	res     dns.MockResolver
	sts     *STS
	now     time.Time
}

func newSTSRig(t *testing.T, trusted bool) *stsRig {
	r := &stsRig{ctype: "text/plain", now: time.Now(), res: dns.MockResolver{TXT: map[string][]string{"_mta-sts.example.org": {"v=STSv1; id=1"}}, Fail: map[string]error{}}}
	r.text = "version: STSv1\nmode: enforce\nmx: *.example.org\nmax_age: 3600\n"
	ca := testutil.NewCA(t, "ca")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.fetches++
		w.Header().Set("Content-Type", r.ctype)
		fmt.Fprint(w, r.text)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "mta-sts.example.org")}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := ca.Pool()
	if !trusted {
		roots = testutil.NewCA(t, "other").Pool()
	}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	r.sts = &STS{Resolver: &r.res, HTTP: NewHTTPClient(roots, dial, 5*time.Second), Cache: &MemCache{}, Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return r.now }}
	return r
}

func (r *stsRig) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetches
}

func TestSTSCacheAndIDChange(t *testing.T) {
	t.Parallel()
	r := newSTSRig(t, true)
	ctx := context.Background()
	got := r.sts.Lookup(ctx, "example.org")
	if got.Policy == nil || got.ID != "1" || got.Cached || r.count() != 1 {
		t.Fatalf("first lookup %+v, %d fetches", got, r.count())
	}
	if got = r.sts.Lookup(ctx, "example.org"); !got.Cached || r.count() != 1 {
		t.Fatalf("second lookup not from cache: %+v, %d fetches", got, r.count())
	}
	r.res.TXT["_mta-sts.example.org"] = []string{"v=STSv1; id=2"}
	r.text = strings.Replace(r.text, "enforce", "testing", 1)
	if got = r.sts.Lookup(ctx, "example.org"); got.Cached || got.ID != "2" || got.Policy.Mode != "testing" || r.count() != 2 {
		t.Fatalf("id change not re-fetched: %+v, %d fetches", got, r.count())
	}
	// The record disappears: the cached policy still holds (RFC 8461 §5.1).
	delete(r.res.TXT, "_mta-sts.example.org")
	if got = r.sts.Lookup(ctx, "example.org"); got.Policy == nil || !got.Cached {
		t.Fatalf("cached policy dropped with the record: %+v", got)
	}
	// Until it expires.
	r.now = r.now.Add(2 * time.Hour)
	if got = r.sts.Lookup(ctx, "example.org"); got.Policy != nil {
		t.Fatalf("expired policy used: %+v", got)
	}
}

func TestSTSRefreshBeforeExpiry(t *testing.T) {
	t.Parallel()
	r := newSTSRig(t, true)
	ctx := context.Background()
	r.sts.Lookup(ctx, "example.org")
	c, _ := r.sts.Cache.Get(ctx, "example.org")
	if d := c.RefreshAt.Sub(c.FetchedAt); d < 30*time.Minute || d > 45*time.Minute {
		t.Fatalf("refresh at +%s, want between half and three quarters of max_age 1h", d)
	}
	r.sts.Refresh(ctx)
	if r.count() != 1 {
		t.Fatal("refreshed before due")
	}
	r.now = c.RefreshAt
	r.sts.Refresh(ctx)
	if r.count() != 2 {
		t.Fatal("not refreshed when due")
	}
	if c2, _ := r.sts.Cache.Get(ctx, "example.org"); !c2.Expires.After(c.Expires) {
		t.Fatal("refresh did not extend the policy")
	}
}

func TestSTSInvalidIsNoneWithReport(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		text, ctype string
		trusted     bool
		failure     string
	}{
		"syntax":       {"version: STSv1\nmode: bogus\n", "text/plain", true, "sts-policy-invalid"},
		"content type": {"version: STSv1\nmode: enforce\nmx: a.example.org\nmax_age: 60\n", "text/html", true, "sts-policy-invalid"},
		"untrusted":    {"version: STSv1\nmode: enforce\nmx: a.example.org\nmax_age: 60\n", "text/plain", false, "sts-webpki-invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			r := newSTSRig(t, c.trusted)
			r.text, r.ctype = c.text, c.ctype
			got := r.sts.Lookup(context.Background(), "example.org")
			if got.Policy != nil || got.Failure != c.failure {
				t.Fatalf("%+v, want no policy and failure %s", got, c.failure)
			}
			// Mail still goes: the evaluator sees no MTA-STS, not "no MX".
			e := &Evaluator{Resolver: dns.MockResolver{MX: map[string][]dns.MX{"example.org": {{Host: "mx.example.org", Pref: 1}}}}, STS: r.sts, Log: r.sts.Log}
			r.sts.Resolver = dns.MockResolver{TXT: r.res.TXT}
			plan := e.Plan(context.Background(), "example.org", false)
			if plan.Fail != "" || plan.Mode != ModeOpportunistic || plan.Failure != c.failure || len(plan.Hosts) != 1 {
				t.Fatalf("plan %+v", plan)
			}
		})
	}
}

func TestPlanNullAndMissingMX(t *testing.T) {
	t.Parallel()
	e := &Evaluator{Resolver: dns.MockResolver{MX: map[string][]dns.MX{"null.example": {{Host: "."}}}, TXT: map[string][]string{"nomx.example": {"x"}},
		Fail: map[string]error{"broken.example": dns.ErrTemporary}}, Log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	if p := e.Plan(ctx, "null.example", false); !p.FailPermanent || !strings.Contains(p.Fail, "5.1.10") {
		t.Fatalf("null MX: %+v", p)
	}
	if p := e.Plan(ctx, "nomx.example", false); p.Fail != "" || len(p.Hosts) != 1 || p.Hosts[0].Host != "nomx.example" {
		t.Fatalf("implicit MX: %+v", p)
	}
	if p := e.Plan(ctx, "broken.example", false); p.FailPermanent || !strings.Contains(p.Fail, "4.4.3") {
		t.Fatalf("SERVFAIL MX: %+v", p)
	}
	if p := e.Plan(ctx, "nx.example", false); !p.FailPermanent {
		t.Fatalf("NXDOMAIN: %+v", p)
	}
}

func rec(u, s, m uint8, data []byte) dns.TLSA {
	return dns.TLSA{Usage: u, Selector: s, MatchingType: m, CertAssoc: data}
}

func TestUsableTLSA(t *testing.T) {
	d32, d64 := make([]byte, 32), make([]byte, 64)
	for _, c := range []struct {
		r    dns.TLSA
		want bool
	}{
		{r: rec(3, 1, 1, d32), want: true}, {r: rec(2, 0, 2, d64), want: true}, {r: rec(3, 0, 0, []byte{1}), want: true},
		{r: rec(1, 1, 1, d32), want: false}, {r: rec(0, 1, 1, d32), want: false}, {r: rec(3, 2, 1, d32), want: false},
		{r: rec(3, 1, 3, d32), want: false}, {r: rec(3, 1, 1, d64), want: false}, {r: rec(3, 1, 2, d32), want: false},
	} {
		if usable(c.r) != c.want {
			t.Errorf("%v usable=%v", c.r, !c.want)
		}
	}
}
