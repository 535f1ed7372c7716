package portal

import (
	"sync"
	"time"
)

// IPLimiter allows each client address a number of events per window
// (codes asked for, codes tried, references tried).
type IPLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	seen   map[string]*ipWindow
}

type ipWindow struct {
	start time.Time
	n     int
}

// NewIPLimiter allows max events per address per window.
func NewIPLimiter(max int, window time.Duration) *IPLimiter {
	return &IPLimiter{max: max, window: window, seen: map[string]*ipWindow{}}
}

// Allow counts an event for ip and reports whether it is within the limit.
func (l *IPLimiter) Allow(ip string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) > 100000 {
		for k, w := range l.seen {
			if now.Sub(w.start) > l.window {
				delete(l.seen, k)
			}
		}
	}
	w := l.seen[ip]
	if w == nil || now.Sub(w.start) > l.window {
		w = &ipWindow{start: now}
		l.seen[ip] = w
	}
	w.n++
	return w.n <= l.max
}
