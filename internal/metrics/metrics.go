// Package metrics defines sealpost's Prometheus metrics. One Metrics value is
// made in main and passed to the packages that count; there is no global
// registry, so tests run in parallel with their own.
package metrics

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds every metric sealpost exports at /metrics.
type Metrics struct {
	Registry *prometheus.Registry

	Sessions         *prometheus.CounterVec   // role
	SessionsActive   *prometheus.GaugeVec     // role
	SessionsRefused  *prometheus.CounterVec   // role, reason
	Accepted         *prometheus.CounterVec   // role
	AcceptedBytes    *prometheus.CounterVec   // role
	Rejected         *prometheus.CounterVec   // role, reason
	AcceptLatency    *prometheus.HistogramVec // role: end of DATA to 250
	DeliveryAttempts *prometheus.CounterVec   // route, result
	DeliveryDuration *prometheus.HistogramVec // route
	Holds            *prometheus.CounterVec   // result: confirmed, cancelled, expired, released, deleted
}

// New creates the metrics and registers them, with Go and process metrics,
// in a new registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealpost_smtp_sessions_total", Help: "SMTP sessions started, by listener role.",
		}, []string{"role"}),
		SessionsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sealpost_smtp_sessions_active", Help: "SMTP sessions open now, by listener role.",
		}, []string{"role"}),
		SessionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealpost_smtp_sessions_refused_total", Help: "SMTP connections refused at connect, by reason.",
		}, []string{"role", "reason"}),
		Accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealpost_smtp_messages_accepted_total", Help: "Messages accepted (answered 250 after DATA), by listener role.",
		}, []string{"role"}),
		AcceptedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealpost_smtp_accepted_bytes_total", Help: "Bytes of accepted messages, by listener role.",
		}, []string{"role"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealpost_smtp_rejected_total", Help: "Commands or messages refused, by listener role and reason.",
		}, []string{"role", "reason"}),
		AcceptLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sealpost_smtp_accept_seconds", Help: "Time from the end of DATA to the 250 reply (durable commit).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 5},
		}, []string{"role"}),
		DeliveryAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealpost_delivery_attempts_total", Help: "Delivery attempts per recipient, by route and result (delivered, deferred, failed, expired).",
		}, []string{"route", "result"}),
		DeliveryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sealpost_delivery_seconds", Help: "Time of one delivery attempt to a next hop.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 120},
		}, []string{"route"}),
		Holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealpost_holds_resolved_total", Help: "Held and quarantined messages resolved, by how.",
		}, []string{"result"}),
	}
	r.MustRegister(m.Holds, m.Sessions, m.SessionsActive, m.SessionsRefused, m.Accepted, m.AcceptedBytes, m.Rejected, m.AcceptLatency, m.DeliveryAttempts, m.DeliveryDuration,
		withoutGoVersion{prometheus.NewGoCollector()}, prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// withoutGoVersion is the Go runtime collector minus go_info, whose
// version label tells a scraper (or anyone who reaches /metrics) which Go
// release, and so which of its known vulnerabilities, the build carries.
type withoutGoVersion struct{ prometheus.Collector }

func isGoInfo(d *prometheus.Desc) bool { return strings.Contains(d.String(), `fqName: "go_info"`) }

func (c withoutGoVersion) Describe(ch chan<- *prometheus.Desc) {
	all := make(chan *prometheus.Desc)
	go func() { c.Collector.Describe(all); close(all) }()
	for d := range all {
		if !isGoInfo(d) {
			ch <- d
		}
	}
}

func (c withoutGoVersion) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { c.Collector.Collect(all); close(all) }()
	for m := range all {
		if !isGoInfo(m.Desc()) {
			ch <- m
		}
	}
}

// DecisionTotals returns all-time counts: messages by outcome, detector
// matches by detector.
type DecisionTotals func(ctx context.Context) (outcomes, matches map[string]int, err error)

// CountDecisions registers the decision counters, read from totals at
// each scrape. A failure to read them fails the scrape, naming the error,
// rather than reporting zeros.
func (m *Metrics) CountDecisions(totals DecisionTotals) {
	m.Registry.MustRegister(decisionCollector{totals: totals,
		outcomes: prometheus.NewDesc("sealpost_policy_decisions_total",
			"Outbound messages by the most protective action the policy chose.", []string{"outcome"}, nil),
		matches: prometheus.NewDesc("sealpost_dlp_findings_total",
			"Detector matches in outbound mail, by detector.", []string{"detector"}, nil)})
}

// decisionCollector serves the decision counters from the store, not from
// memory: the console's dashboard and the usage report count the same
// decisions table the same way (report.Tally), so the three agree, also
// across restarts.
type decisionCollector struct {
	totals            DecisionTotals
	outcomes, matches *prometheus.Desc
}

func (c decisionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.outcomes
	ch <- c.matches
}

func (c decisionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	outcomes, matches, err := c.totals(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.outcomes, err)
		return
	}
	for k, v := range outcomes {
		ch <- prometheus.MustNewConstMetric(c.outcomes, prometheus.CounterValue, float64(v), k)
	}
	for k, v := range matches {
		ch <- prometheus.MustNewConstMetric(c.matches, prometheus.CounterValue, float64(v), k)
	}
}
