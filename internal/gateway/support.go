package gateway

import (
	"context"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sealpost/internal/store"
)

// systemResolver returns the system resolver, or one that asks addr.
func systemResolver(addr string) *net.Resolver {
	if addr == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		return d.DialContext(ctx, network, addr)
	}}
}

// queueDepth reports queued recipients at scrape time.
func queueDepth(s *store.Store) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sealpost_queue_depth", Help: "Recipients waiting for delivery.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := s.QueueDepth(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
}
