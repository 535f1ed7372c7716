// Command tlsrelay measures what the outbound TLS policy costs on the relay
// path: the same gateway, the same mail, once with the policy on (MX
// delivery, every message verified by DANE-EE or MTA-STS enforce against a
// cached policy) and once off (the smarthost, opportunistic STARTTLS), the
// modes interleaved, medians of the repetitions. Everything is in this one
// process on loopback: the load generator, the gateway (gateway.StartWith
// with a mock DNS that sets the AD bit, MX dials redirected to the sink)
// and a STARTTLS sink, so the CPU time reported (getrusage of the process)
// includes the load generator and the sink; both modes carry the same
// share of it, which is what makes the ratio meaningful. bench/tls_relay.sh
// runs it beside Postfix.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"sealpost/internal/config"
	"sealpost/internal/dns"
	"sealpost/internal/gateway"
	"sealpost/internal/store"
)

func main() {
	n := flag.Int("n", 2000, "messages per run")
	kb := flag.Int("k", 10, "message size in KiB")
	conc := flag.Int("c", 10, "concurrent SMTP sessions")
	reps := flag.Int("r", 3, "repetitions of each mode")
	limit := flag.Duration("t", 5*time.Minute, "bound on one run")
	only := flag.String("mode", "", `run only this mode ("on" or "off"), e.g. with -cpuprofile`)
	prof := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "tlsrelay:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	modes := []string{"off", "on"}
	if *only != "" {
		modes = []string{*only}
	}
	if err := run(*n, *kb, *conc, *reps, *limit, modes); err != nil {
		fmt.Fprintln(os.Stderr, "tlsrelay:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type result struct {
	wall, cpu time.Duration
	sessions  int64 // SMTP sessions the sink saw (connection reuse)
}

func run(n, kb, conc, reps int, limit time.Duration, modes []string) error {
	ca, caKey, err := newCA()
	if err != nil {
		return err
	}
	cert, err := leaf(ca, caKey, "mx.dane.bench.example", "mx.sts.bench.example")
	if err != nil {
		return err
	}
	sink, err := newSink(&cert)
	if err != nil {
		return err
	}
	defer sink.srv.Close()
	body := strings.Repeat(strings.Repeat("x", 75)+"\r\n", kb*1024/77+1)
	results := map[string][]result{}
	for rep := 0; rep < reps; rep++ {
		for _, mode := range modes {
			r, err := once(mode, ca, cert, sink, n, conc, body, limit)
			if err != nil {
				return fmt.Errorf("%s, repetition %d: %w", mode, rep+1, err)
			}
			fmt.Printf("peer=sealpost-tls-%s rep=%d msgs=%d size=%dk conc=%d wall_s=%.2f msgs_per_s=%.1f cpu_ms_per_msg=%.3f sink_sessions=%d\n",
				mode, rep+1, n, kb, conc, r.wall.Seconds(), float64(n)/r.wall.Seconds(), float64(r.cpu.Microseconds())/1000/float64(n), r.sessions)
			results[mode] = append(results[mode], r)
		}
	}
	med := map[string]result{}
	for mode, rs := range results {
		sort.Slice(rs, func(i, j int) bool { return rs[i].wall < rs[j].wall })
		w := rs[len(rs)/2].wall
		sort.Slice(rs, func(i, j int) bool { return rs[i].cpu < rs[j].cpu })
		med[mode] = result{wall: w, cpu: rs[len(rs)/2].cpu}
		fmt.Printf("median peer=sealpost-tls-%s msgs=%d size=%dk conc=%d msgs_per_s=%.1f cpu_ms_per_msg=%.3f\n",
			mode, n, kb, conc, float64(n)/w.Seconds(), float64(med[mode].cpu.Microseconds())/1000/float64(n))
	}
	if len(modes) == 2 {
		fmt.Printf("ratio on/off: throughput %.3f, cpu per message %.3f\n",
			med["off"].wall.Seconds()/med["on"].wall.Seconds(), float64(med["on"].cpu)/float64(med["off"].cpu))
	}
	return nil
}

// once starts a fresh gateway in mode, relays n messages through it and
// returns the time until the sink has them all and the process CPU spent.
func once(mode string, ca *x509.Certificate, cert tls.Certificate, sink *sink, n, conc int, body string, limit time.Duration) (result, error) {
	dir, err := os.MkdirTemp("", "tlsrelay-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
		return result{}, err
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Org.Domains = []string{"loadgen.bench.example"}
	cfg.Org.MailHost = sink.addr
	cfg.SMTP.Hostname = "gw.bench.example"
	cfg.SMTP.InboundListen = "127.0.0.1:0"
	cfg.SMTP.OutboundListen = "127.0.0.1:0"
	cfg.SMTP.MaxSessions, cfg.SMTP.MaxSessionsPerIP = 5000, 5000
	cfg.Web.Listen = "127.0.0.1:0"
	cfg.DKIM.Algorithm = "ed25519"
	cfg.Outbound.CAFile = caFile
	cfg.Outbound.MTASTS = true
	cfg.TLSRPT.Send = false
	cfg.Inbound.Authenticate = false
	var opt gateway.StartOptions
	if mode == "off" {
		cfg.Outbound.Smarthost = sink.addr
	} else {
		spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
		lo := []net.IP{net.IPv4(127, 0, 0, 1)}
		opt.PolicyDNS = dns.MockResolver{
			MX: map[string][]dns.MX{"dane.bench.example": {{Host: "mx.dane.bench.example", Pref: 10}},
				"sts.bench.example": {{Host: "mx.sts.bench.example", Pref: 10}}},
			IP:        map[string][]net.IP{"mx.dane.bench.example": lo, "mx.sts.bench.example": lo},
			TLSA:      map[string][]dns.TLSA{"_25._tcp.mx.dane.bench.example": {{Usage: 3, Selector: 1, MatchingType: 1, CertAssoc: spki[:]}}},
			TXT:       map[string][]string{"_mta-sts.sts.bench.example": {"v=STSv1; id=bench1"}},
			Authentic: map[string]bool{"dane.bench.example": true, "mx.dane.bench.example": true, "_25._tcp.mx.dane.bench.example": true},
		}
		opt.MXDial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, sink.addr)
		}
		// The MTA-STS policy is cached (as it is after the first message to
		// a domain); what is measured is the per-message policy work.
		st, err := gateway.OpenStore(cfg)
		if err != nil {
			return result{}, err
		}
		now := time.Now()
		err = st.MTASTSPut(context.Background(), store.MTASTSPolicy{Domain: "sts.bench.example", ID: "bench1",
			Policy:    "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.bench.example\r\nmax_age: 86400\r\n",
			FetchedAt: now, Expires: now.Add(24 * time.Hour), RefreshAt: now.Add(12 * time.Hour)})
		st.Close()
		if err != nil {
			return result{}, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return result{}, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	gw, err := gateway.StartWith(cfg, log, nil, opt)
	if err != nil {
		return result{}, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
	}()
	base, sess := sink.count.Load(), sink.sessions.Load()
	cpu0 := cpuTime()
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := load(gw.OutboundAddr.String(), &next, int64(n), body); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return result{}, err
	}
	deadline := t0.Add(limit)
	for sink.count.Load()-base < int64(n) {
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("the sink has %d of %d messages after %s", sink.count.Load()-base, n, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return result{wall: time.Since(t0), cpu: cpuTime() - cpu0, sessions: sink.sessions.Load() - sess}, nil
}

// load sends messages on one session until n have been taken, alternating
// the DANE and the MTA-STS domain.
func load(addr string, next *atomic.Int64, n int64, body string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("loadgen.bench.example"); err != nil {
		return err
	}
	for {
		i := next.Add(1)
		if i > n {
			return c.Quit()
		}
		domain := "dane.bench.example"
		if i%2 == 0 {
			domain = "sts.bench.example"
		}
		rcpt := fmt.Sprintf("r%d@%s", i, domain)
		if err := c.Mail("sender@loadgen.bench.example"); err != nil {
			return err
		}
		if err := c.Rcpt(rcpt); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "From: sender@loadgen.bench.example\r\nTo: %s\r\nSubject: bench %d\r\nMessage-ID: <%d.%d@loadgen.bench.example>\r\nDate: %s\r\n\r\n%s",
			rcpt, i, i, time.Now().UnixNano(), time.Now().Format(time.RFC1123Z), body)
		if err := w.Close(); err != nil {
			return err
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type sink struct {
	addr     string
	srv      *gosmtp.Server
	count    atomic.Int64
	sessions atomic.Int64
}

func newSink(cert *tls.Certificate) (*sink, error) {
	s := &sink{}
	s.srv = gosmtp.NewServer(backend{s})
	s.srv.Domain = "sink.bench.example"
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.MaxRecipients = 1000
	s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.addr = l.Addr().String()
	go s.srv.Serve(l)
	return s, nil
}

type backend struct{ s *sink }

func (b backend) NewSession(*gosmtp.Conn) (gosmtp.Session, error) {
	b.s.sessions.Add(1)
	return session{b.s}, nil
}

type session struct{ s *sink }

func (session) Mail(string, *gosmtp.MailOptions) error { return nil }
func (session) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (s session) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.s.count.Add(1)
	return nil
}
func (session) Reset()        {}
func (session) Logout() error { return nil }

func newCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

func leaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, names ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	l, err := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key, Leaf: l}, err
}
