package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// freeDNSPort finds a port free for both UDP and TCP on 127.0.0.1.
func freeDNSPort(t testing.TB) int {
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

// startDNSProc runs a server until the test ends, stopped by its own PID.
func startDNSProc(t testing.TB, logf string, name string, args ...string) {
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

func dnsQuery(server, name string, qtype uint16) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	m.SetEdns0(1232, true)
	c := &mdns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, server)
	return r, err
}

// DNSSEC serves zone (the text of a zone file for origin, without SOA
// signatures) signed by knotd, behind an unbound that validates it with
// the zone's key as trust anchor, both on loopback until the test ends.
// It returns unbound's "127.0.0.1:port", or "" (after Missing) when knotd
// or unbound is not installed. probe is a name in the zone that unbound
// must answer with the AD bit before the rig counts as ready.
func DNSSEC(t testing.TB, origin, zone, probe string, probeType uint16) string {
	t.Helper()
	knotd, err1 := exec.LookPath("knotd")
	unbound, err2 := exec.LookPath("unbound")
	if err1 != nil || err2 != nil {
		Missing(t, "knotd and unbound are needed (scripts/install-test-deps.sh installs them)")
		return ""
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, origin+".zone"), []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	kport, uport := freeDNSPort(t), freeDNSPort(t)
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
  - domain: %[3]s
    dnssec-signing: on
    dnssec-policy: test
`, dir, kport, origin)
	os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(knotConf), 0o600)
	startDNSProc(t, filepath.Join(dir, "knotd.log"), knotd, "-c", filepath.Join(dir, "knot.conf"))
	kaddr := fmt.Sprintf("127.0.0.1:%d", kport)
	var ksk string
	for deadline := time.Now().Add(20 * time.Second); ksk == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		r, err := dnsQuery(kaddr, origin, mdns.TypeDNSKEY)
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
    local-zone: "%[4]s." nodefault
    module-config: "validator iterator"
    auto-trust-anchor-file: ""
    do-ip6: no
stub-zone:
    name: "%[5]s"
    stub-addr: 127.0.0.1@%[3]d
`, dir, uport, kport, tld(origin), origin)
	os.WriteFile(filepath.Join(dir, "unbound.conf"), []byte(unboundConf), 0o600)
	startDNSProc(t, filepath.Join(dir, "unbound.log"), unbound, "-d", "-c", filepath.Join(dir, "unbound.conf"))
	uaddr := fmt.Sprintf("127.0.0.1:%d", uport)
	ready := false
	for deadline := time.Now().Add(20 * time.Second); !ready && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		r, err := dnsQuery(uaddr, probe, probeType)
		ready = err == nil && r != nil && r.AuthenticatedData
	}
	if !ready {
		log, _ := os.ReadFile(filepath.Join(dir, "unbound.log"))
		t.Fatalf("unbound does not validate the zone:\n%s", log)
	}
	return uaddr
}

// tld is the last label: unbound must be told not to serve its built-in
// empty zones there (RFC 6761 names such as "test").
func tld(origin string) string {
	for i := len(origin) - 1; i >= 0; i-- {
		if origin[i] == '.' {
			return origin[i+1:]
		}
	}
	return origin
}
