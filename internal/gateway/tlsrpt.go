package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/queue"
	"sealpost/internal/store"
	"sealpost/internal/tlsrpt"
)

// txtResolver is the DNS TLS-RPT needs: the _smtp._tls TXT records.
type txtResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// maxRUAs bounds the report URIs used from one record: a record listing
// many addresses must not turn one report into a mail flood.
const maxRUAs = 4

// tlsReporter counts TLS-RPT results in memory (a session's result must
// not cost a database write on the delivery path) and adds them to the
// store every flushEvery; once a day it sends the reports of the day
// before. A crash loses at most the counts of the last flushEvery, which
// is statistics, not mail.
type tlsReporter struct {
	store    *store.Store
	queue    *queue.Queue
	config   func() *config.Config
	resolver txtResolver
	http     *http.Client
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	pending map[tlsKey]int64
}

type tlsKey struct{ day, domain, result string }

const flushEvery = 30 * time.Second

func newTLSReporter(st *store.Store, q *queue.Queue, cfg func() *config.Config, res txtResolver, roots *x509.CertPool, log *slog.Logger) *tlsReporter {
	return &tlsReporter{store: st, queue: q, config: cfg, resolver: res, log: log, now: time.Now, pending: map[tlsKey]int64{},
		http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			// §5.2: the report goes over HTTPS with a verified certificate.
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// record is deliver.Transport's TLSResult.
func (r *tlsReporter) record(res tlsrpt.Result) {
	js, err := json.Marshal(res)
	if err != nil || res.PolicyDomain == "" {
		return
	}
	k := tlsKey{day: r.now().UTC().Format(time.DateOnly), domain: res.PolicyDomain, result: string(js)}
	r.mu.Lock()
	r.pending[k]++
	r.mu.Unlock()
}

// flush adds the pending counts to the store; on failure they are kept
// for the next flush.
func (r *tlsReporter) flush(ctx context.Context) error {
	r.mu.Lock()
	p := r.pending
	r.pending = map[tlsKey]int64{}
	r.mu.Unlock()
	byDay := map[string][]store.TLSResultCount{}
	for k, n := range p {
		byDay[k.day] = append(byDay[k.day], store.TLSResultCount{PolicyDomain: k.domain, Result: k.result, Count: n})
	}
	var errs []error
	for day, counts := range byDay {
		if err := r.store.AddTLSResults(ctx, day, counts); err != nil {
			errs = append(errs, err)
			r.mu.Lock()
			for _, c := range counts {
				r.pending[tlsKey{day, c.PolicyDomain, c.Result}] += c.Count
			}
			r.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// run flushes every flushEvery and sends yesterday's reports once a day,
// at a random time between 01:00 and 05:00 UTC (§4.1: spread, so that
// receivers are not hit by every sender at midnight).
func (r *tlsReporter) run(ctx context.Context) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	next := nextReportTime(r.now())
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := r.flush(fctx); err != nil {
				r.log.Warn("TLS-RPT counts not saved at shutdown", "err", err)
			}
			cancel()
			return
		case <-t.C:
		}
		if err := r.flush(ctx); err != nil {
			r.log.Warn("saving TLS-RPT counts failed; kept for the next try", "err", err)
		}
		if now := r.now(); now.After(next) {
			next = nextReportTime(now)
			if !r.config().TLSRPT.Send {
				continue
			}
			n, err := r.send(ctx, now.UTC().Add(-24*time.Hour))
			if err != nil {
				r.log.Error("sending TLS-RPT reports failed", "err", err)
			}
			r.log.Info("TLS-RPT reports sent", "reports", n)
			if err := r.store.PruneTLSResults(ctx, now.UTC().Add(-7*24*time.Hour).Format(time.DateOnly)); err != nil {
				r.log.Warn("pruning TLS-RPT counts failed", "err", err)
			}
		}
	}
}

func nextReportTime(now time.Time) time.Time {
	d := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	return d.Add(time.Hour + time.Duration(rand.Int64N(int64(4*time.Hour))))
}

// send sends the reports of day: one per policy domain that publishes a
// record, each claimed in the store first so that it goes out once only.
// It returns the number of reports sent.
func (r *tlsReporter) send(ctx context.Context, day time.Time) (int, error) {
	cfg := r.config()
	dayStr := day.UTC().Format(time.DateOnly)
	counts, err := r.store.TLSResults(ctx, dayStr)
	if err != nil {
		return 0, err
	}
	byDomain := map[string][]tlsrpt.Counted{}
	for _, c := range counts {
		var res tlsrpt.Result
		if err := json.Unmarshal([]byte(c.Result), &res); err != nil {
			r.log.Warn("unreadable TLS-RPT count skipped", "domain", c.PolicyDomain, "err", err)
			continue
		}
		byDomain[c.PolicyDomain] = append(byDomain[c.PolicyDomain], tlsrpt.Counted{Result: res, Count: c.Count})
	}
	domains := make([]string, 0, len(byDomain))
	for d := range byDomain {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	suppressed, err := r.store.FailedTLSReportRcpts(ctx, r.now().Add(-cfg.TLSRPT.SuppressFor.Duration))
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, domain := range domains {
		if sent >= cfg.TLSRPT.MaxReports {
			r.log.Warn("TLS-RPT report cap reached; the rest of the day's domains get none", "cap", cfg.TLSRPT.MaxReports, "left", len(domains)-sent)
			break
		}
		if cfg.IsOrgDomain(domain) {
			continue
		}
		ok, err := r.sendOne(ctx, cfg, dayStr, day, domain, byDomain[domain], suppressed)
		if err != nil {
			r.log.Warn("TLS-RPT report not sent", "domain", domain, "err", err)
		}
		if ok {
			sent++
		}
	}
	return sent, nil
}

func (r *tlsReporter) sendOne(ctx context.Context, cfg *config.Config, dayStr string, day time.Time, domain string, results []tlsrpt.Counted, suppressed map[string]bool) (bool, error) {
	if r.resolver == nil {
		return false, errors.New("no resolver for TXT records")
	}
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	txts, err := r.resolver.LookupTXT(lctx, "_smtp._tls."+domain)
	cancel()
	if err != nil {
		return false, nil // no record (or none readable): the domain takes no reports
	}
	rec, err := tlsrpt.Select(txts)
	if err != nil {
		return false, nil
	}
	claimed, err := r.store.ClaimTLSReport(ctx, dayStr, domain, r.now())
	if err != nil || !claimed {
		return false, err
	}
	submitter := cfg.Org.Domains[0]
	rep := tlsrpt.Build(cfg.TLSRPTOrganization(), cfg.TLSRPTContact(), dayStr+"."+domain+"@"+submitter, day, results)
	gz, err := tlsrpt.Gzip(rep, cfg.TLSRPT.MaxReportBytes)
	if err != nil {
		return false, err
	}
	var errs []error
	delivered := false
	for i, rua := range rec.RUA {
		if i == maxRUAs {
			break
		}
		if strings.HasPrefix(strings.ToLower(rua), "https:") {
			if err := r.post(ctx, rua, gz); err != nil {
				errs = append(errs, err)
				continue
			}
			delivered = true
			continue
		}
		addr, ok := tlsrpt.MailtoAddress(rua)
		if !ok {
			errs = append(errs, fmt.Errorf("bad rua %q", rua))
			continue
		}
		if suppressed[strings.ToLower(addr)] {
			r.log.Info("TLS-RPT report address suppressed after a bounce", "domain", domain)
			continue
		}
		if err := r.mail(ctx, cfg, addr, submitter, rep, gz); err != nil {
			errs = append(errs, err)
			continue
		}
		delivered = true
	}
	return delivered, errors.Join(errs...)
}

// mail queues the report to addr; the queue DKIM-signs it (From is in an
// org domain) and delivers it with its TLS-Required: No honoured.
func (r *tlsReporter) mail(ctx context.Context, cfg *config.Config, addr, submitter string, rep tlsrpt.Report, gz []byte) error {
	from := cfg.TLSRPTFrom()
	m := tlsrpt.Mail{From: from, To: addr, Submitter: submitter, Date: r.now()}
	p, err := r.queue.Compose(store.DirectionTLSReport, from, []string{addr}, "Report Domain: "+rep.PolicyDomain(), func(w io.Writer) error {
		return tlsrpt.WriteMessage(w, m, rep, gz)
	})
	if err != nil {
		return err
	}
	p.AsReport(store.TLSRequestOptional)
	return r.queue.Submit(ctx, p)
}

// post sends the report by HTTPS POST (§5.2); any 2xx is success.
func (r *tlsReporter) post(ctx context.Context, url string, gz []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(gz))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/tlsrpt+gzip")
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}

// SendTLSReports flushes the TLS-RPT counts and sends the reports of day
// now (the daily job does this for yesterday); it returns how many went.
func (g *Gateway) SendTLSReports(ctx context.Context, day time.Time) (int, error) {
	if err := g.tlsReport.flush(ctx); err != nil {
		return 0, err
	}
	return g.tlsReport.send(ctx, day)
}

// tlsrptTransport counts, for TLS-RPT, the TLS outcome of every MX session
// an outbound attempt made or refused (Attempt.Sessions, which the TLS
// policy fills): a pooled session counts once per delivery that used it.
type tlsrptTransport struct {
	queue.Transport
	g *Gateway
}

func (t tlsrptTransport) Deliver(ctx context.Context, d *queue.Delivery) queue.Attempt {
	att := t.Transport.Deliver(ctx, d)
	if t.g.tlsReport != nil {
		for _, s := range att.Sessions {
			if r, ok := sessionResult(s); ok {
				t.g.tlsReport.record(r)
			}
		}
	}
	return att
}

// sessionResult is one session's TLS-RPT result: a failure when the policy
// evidence names one (RFC 8460 §4.3 types), a success when TLS was made
// without one; nothing for a host that was never reached over TLS for
// other reasons (DNS, connection refused), which is no TLS result.
func sessionResult(s *queue.TLSInfo) (tlsrpt.Result, bool) {
	if s == nil || s.PolicyDomain == "" {
		return tlsrpt.Result{}, false
	}
	r := tlsrpt.Result{PolicyType: tlsrpt.PolicyNotFound, PolicyDomain: strings.ToLower(s.PolicyDomain), MXHost: s.Host}
	switch {
	case s.Mode == "dane":
		r.PolicyType, r.PolicyStrings = tlsrpt.PolicyTLSA, s.PolicyStrings
		if s.Host != "" {
			r.PolicyDomain = strings.ToLower(s.Host) // §4.4: the TLSA base domain
		}
	case s.Mode == "mta-sts" || s.PolicyMode == "testing" || s.PolicyMode == "enforce":
		// A "testing" policy delivers as opportunistic (RFC 8461 §5) but is
		// still the policy the sessions are reported against (RFC 8460 §4.4).
		r.PolicyType, r.PolicyStrings = tlsrpt.PolicySTS, s.PolicyStrings
		for _, l := range s.PolicyStrings {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "mx" {
				r.PolicyMXHosts = append(r.PolicyMXHosts, strings.TrimSpace(v))
			}
		}
	}
	switch {
	case s.Failure != "":
		r.ResultType = s.Failure
	case s.Version != "":
		r.ResultType = tlsrpt.ResultSuccess
	default:
		return tlsrpt.Result{}, false
	}
	return r, true
}
