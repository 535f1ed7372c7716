package report

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"sealpost/internal/policy"
	"sealpost/internal/store"
)

// Tally is what a set of policy decisions adds up to. It is the one count
// behind the console's dashboard, /metrics (sealpost_policy_decisions_total,
// sealpost_dlp_findings_total) and the usage report, so that the three
// agree: each is the decisions table of the store, counted by Add.
type Tally struct {
	// Outcomes: outbound messages by the most protective action the
	// policy chose for them (rejected ones included).
	Outcomes map[string]int
	// Matches: detector matches (a message with three card numbers counts
	// three).
	Matches map[string]int
	// Incidents: messages each detector found something in.
	Incidents map[string]int
}

// NewTally returns an empty tally.
func NewTally() *Tally {
	return &Tally{Outcomes: map[string]int{}, Matches: map[string]int{}, Incidents: map[string]int{}}
}

// Add counts one decision.
func (t *Tally) Add(d *store.DecisionRow) {
	t.Outcomes[d.Outcome]++
	if d.Detail == "" {
		return
	}
	var pd policy.Decision
	if json.Unmarshal([]byte(d.Detail), &pd) != nil {
		return
	}
	seen := map[string]bool{}
	for _, f := range pd.Findings {
		t.Matches[f.Detector] += f.Count
		if !seen[f.Detector] {
			seen[f.Detector] = true
			t.Incidents[f.Detector]++
		}
	}
}

// Messages is the number of decisions counted.
func (t *Tally) Messages() int {
	n := 0
	for _, v := range t.Outcomes {
		n += v
	}
	return n
}

// Count tallies the decisions made in [from, to).
func Count(ctx context.Context, st *store.Store, from, to time.Time) (*Tally, error) {
	t := NewTally()
	err := st.EachDecision(ctx, from, to, func(d *store.DecisionRow) error {
		t.Add(d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Running is the tally of every decision ever made, kept up to date by
// reading only the decisions added since the last call: what /metrics
// serves as counters without a full scan per scrape.
type Running struct {
	Store *store.Store

	mu   sync.Mutex
	last int64
	t    *Tally
}

// Totals returns copies of the all-time outcome and match counts.
func (r *Running) Totals(ctx context.Context) (outcomes, matches map[string]int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.t == nil {
		r.t = NewTally()
	}
	// Rows are added to r.t as they are read; last advances only over rows
	// counted, so an error part-way leaves a tally that the next call
	// continues without counting a row twice.
	last, err := r.Store.EachDecisionAfter(ctx, r.last, func(d *store.DecisionRow) error {
		r.t.Add(d)
		return nil
	})
	r.last = last
	if err != nil {
		return nil, nil, err
	}
	outcomes, matches = map[string]int{}, map[string]int{}
	for k, v := range r.t.Outcomes {
		outcomes[k] = v
	}
	for k, v := range r.t.Matches {
		matches[k] = v
	}
	return outcomes, matches, nil
}
