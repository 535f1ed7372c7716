// Package report answers, from the gateway's records, the questions a
// procurement or a freedom-of-information request asks: how much mail was
// protected and how, how many staff used protection (licensed senders),
// what data-loss prevention found, and where outside mail went.
package report

import (
	"context"
	"encoding/csv"
	"io"
	"sort"
	"strconv"
	"time"

	"sealpost/internal/policy"
	"sealpost/internal/store"
)

// Month is one month's usage.
type Month struct {
	Month            string         `json:"month"`
	Protected        map[string]int `json:"protected"`         // policy action → messages
	Sealed           int            `json:"sealed"`            // messages sealed into the portal
	LicensedSenders  int            `json:"licensed_senders"`  // distinct staff who sent protected mail
	Incidents        map[string]int `json:"incidents"`         // detector → messages it found something in
	TopDomains       []DomainCount  `json:"top_domains"`       // outside recipient domains by deliveries
	ProtectedTotal   int            `json:"protected_total"`   //
	OutsideDelivered int            `json:"outside_delivered"` // deliveries to outside recipients
}

// DomainCount is deliveries to one domain.
type DomainCount struct {
	Domain     string `json:"domain"`
	Deliveries int    `json:"deliveries"`
}

// Usage is the report over a period.
type Usage struct {
	From            string  `json:"from"`
	To              string  `json:"to"`
	Months          []Month `json:"months"`
	LicensedSenders int     `json:"licensed_senders"` // distinct over the whole period
}

// Build computes usage for [from, to).
func Build(ctx context.Context, st *store.Store, from, to time.Time) (*Usage, error) {
	months := map[string]*Month{}
	get := func(m string) *Month {
		if months[m] == nil {
			months[m] = &Month{Month: m, Protected: map[string]int{}, Incidents: map[string]int{}, TopDomains: []DomainCount{}}
		}
		return months[m]
	}
	senders := map[string]map[string]bool{}
	all := map[string]bool{}
	tallies := map[string]*Tally{}
	err := st.EachDecision(ctx, from, to, func(d *store.DecisionRow) error {
		if tallies[d.Month] == nil {
			tallies[d.Month] = NewTally()
		}
		tallies[d.Month].Add(d)
		if a, _ := policy.ParseAction(d.Outcome); a > policy.Deliver {
			if senders[d.Month] == nil {
				senders[d.Month] = map[string]bool{}
			}
			senders[d.Month][d.MailFrom] = true
			all[d.MailFrom] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Protected messages and incidents are the month's Tally: the counts
	// the console's dashboard and /metrics show.
	for mo, t := range tallies {
		m := get(mo)
		for outcome, n := range t.Outcomes {
			if a, _ := policy.ParseAction(outcome); a > policy.Deliver {
				m.Protected[outcome] += n
				m.ProtectedTotal += n
			}
		}
		for det, n := range t.Incidents {
			m.Incidents[det] = n
		}
	}
	sealed, sealedSenders, err := st.SealedPerMonth(ctx, from, to)
	if err != nil {
		return nil, err
	}
	for mo, n := range sealed {
		get(mo).Sealed = n
		for s := range sealedSenders[mo] {
			if senders[mo] == nil {
				senders[mo] = map[string]bool{}
			}
			senders[mo][s] = true
			all[s] = true
		}
	}
	stats, err := st.DomainStats(ctx, from.UTC().Format("2006-01"), to.Add(-time.Millisecond).UTC().Format("2006-01"))
	if err != nil {
		return nil, err
	}
	for _, s := range stats {
		m := get(s.Month)
		m.OutsideDelivered += s.Deliveries
		if len(m.TopDomains) < 10 {
			m.TopDomains = append(m.TopDomains, DomainCount{s.Domain, s.Deliveries})
		}
	}
	u := &Usage{From: from.UTC().Format("2006-01-02"), To: to.UTC().Format("2006-01-02"), Months: []Month{}, LicensedSenders: len(all)}
	for mo, m := range months {
		m.LicensedSenders = len(senders[mo])
		u.Months = append(u.Months, *m)
	}
	sort.Slice(u.Months, func(i, j int) bool { return u.Months[i].Month < u.Months[j].Month })
	return u, nil
}

// CSV writes the report as rows of month, measure, key, value.
func (u *Usage) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"month", "measure", "key", "value"})
	row := func(m, measure, key string, v int) { cw.Write([]string{m, measure, key, strconv.Itoa(v)}) }
	for _, m := range u.Months {
		row(m.Month, "protected_messages", "all", m.ProtectedTotal)
		for _, k := range sortedKeys(m.Protected) {
			row(m.Month, "protected_messages", k, m.Protected[k])
		}
		row(m.Month, "sealed_messages", "portal", m.Sealed)
		row(m.Month, "licensed_senders", "distinct", m.LicensedSenders)
		for _, k := range sortedKeys(m.Incidents) {
			row(m.Month, "dlp_incidents", k, m.Incidents[k])
		}
		row(m.Month, "outside_deliveries", "all", m.OutsideDelivered)
		for _, d := range m.TopDomains {
			row(m.Month, "top_domains", d.Domain, d.Deliveries)
		}
	}
	row("period", "licensed_senders", "distinct", u.LicensedSenders)
	cw.Flush()
	return cw.Error()
}

func sortedKeys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
