package deliver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"sealpost/internal/dns"
	"sealpost/internal/testutil"
	"sealpost/internal/tlspolicy"
)

// freeUDPPort finds a port free for both UDP and TCP on 127.0.0.1.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// startProc runs a server until the test ends, stopped by its own PID.
func startProc(t *testing.T, logf string, name string, args ...string) {
	t.Helper()
	lf, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		lf.Close()
	})
}

// query asks server directly, for the rig's set-up.
func query(server, name string, qtype uint16) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	m.SetEdns0(1232, true)
	c := &mdns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, server)
	return r, err
}

// TestDANEWithKnotAndUnbound: a zone signed by knotd, validated by unbound
// (a real AD bit), read by the gateway's own DNS client: DANE-EE with the
// right SPKI digest delivers, with a wrong one defers without sending.
func TestDANEWithKnotAndUnbound(t *testing.T) {
	knotd, err1 := exec.LookPath("knotd")
	unbound, err2 := exec.LookPath("unbound")
	if err1 != nil || err2 != nil {
		testutil.Missing(t, "knotd and unbound are needed (scripts/install-test-deps.sh installs them)")
		return
	}
	t.Parallel()
	dir := t.TempDir()
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
	if err := os.WriteFile(filepath.Join(dir, "dane.test.zone"), []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	kport, uport := freeUDPPort(t), freeUDPPort(t)
	knotConf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@%[2]d
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s"
policy:
  - id: test
    algorithm: ecdsap256sha256
    ksk-lifetime: 0
    zsk-lifetime: 0
template:
  - id: default
    storage: "%[1]s"
    file: "%%s.zone"
    zonefile-sync: -1
zone:
  - domain: dane.test
    dnssec-signing: on
    dnssec-policy: test
`, dir, kport)
	os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(knotConf), 0o600)
	startProc(t, filepath.Join(dir, "knotd.log"), knotd, "-c", filepath.Join(dir, "knot.conf"))
	kaddr := fmt.Sprintf("127.0.0.1:%d", kport)
	var ksk string
	for deadline := time.Now().Add(20 * time.Second); ksk == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		r, err := query(kaddr, "dane.test", mdns.TypeDNSKEY)
		if err != nil || r == nil {
			continue
		}
		for _, rr := range r.Answer {
			if k, ok := rr.(*mdns.DNSKEY); ok && k.Flags == 257 {
				ksk = k.String()
			}
		}
	}
	if ksk == "" {
		log, _ := os.ReadFile(filepath.Join(dir, "knotd.log"))
		t.Fatalf("knotd did not serve a signed zone:\n%s", log)
	}
	os.WriteFile(filepath.Join(dir, "anchor.key"), []byte(ksk+"\n"), 0o600)
	unboundConf := fmt.Sprintf(`server:
    interface: 127.0.0.1@%[2]d
    port: %[2]d
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "%[1]s"
    pidfile: ""
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    trust-anchor-file: "%[1]s/anchor.key"
    use-syslog: no
    logfile: ""
    local-zone: "test." nodefault
    module-config: "validator iterator"
    auto-trust-anchor-file: ""
    do-ip6: no
stub-zone:
    name: "dane.test"
    stub-addr: 127.0.0.1@%[3]d
`, dir, uport, kport)
	os.WriteFile(filepath.Join(dir, "unbound.conf"), []byte(unboundConf), 0o600)
	startProc(t, filepath.Join(dir, "unbound.log"), unbound, "-d", "-c", filepath.Join(dir, "unbound.conf"))
	uaddr := fmt.Sprintf("127.0.0.1:%d", uport)
	ready := false
	for deadline := time.Now().Add(20 * time.Second); !ready && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		r, err := query(uaddr, "_25._tcp.mx.dane.test", mdns.TypeTLSA)
		ready = err == nil && r != nil && r.AuthenticatedData
	}
	if !ready {
		log, _ := os.ReadFile(filepath.Join(dir, "unbound.log"))
		t.Fatalf("unbound does not validate the zone:\n%s", log)
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
