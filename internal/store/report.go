package store

import (
	"context"
	"time"
)

// DecisionRow is the part of a decision usage reports need.
type DecisionRow struct {
	Month    string
	MailFrom string
	Outcome  string
	Detail   string
}

// EachDecision calls f for the decisions made in [from, to).
func (s *Store) EachDecision(ctx context.Context, from, to time.Time, f func(*DecisionRow) error) error {
	rows, err := s.DB.QueryContext(ctx, `SELECT created_at, mail_from, outcome, detail FROM decisions WHERE created_at>=? AND created_at<? ORDER BY created_at`, ms(from), ms(to))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var at int64
		d := &DecisionRow{}
		if err := rows.Scan(&at, &d.MailFrom, &d.Outcome, &d.Detail); err != nil {
			return err
		}
		d.Month = fromMS(at).UTC().Format("2006-01")
		if err := f(d); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SealedPerMonth counts messages sealed into the portal per month and their senders.
func (s *Store) SealedPerMonth(ctx context.Context, from, to time.Time) (map[string]int, map[string]map[string]bool, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT created_at, sender FROM sealed WHERE parent_id='' AND created_at>=? AND created_at<?`, ms(from), ms(to))
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	n := map[string]int{}
	senders := map[string]map[string]bool{}
	for rows.Next() {
		var at int64
		var sender string
		if err := rows.Scan(&at, &sender); err != nil {
			return nil, nil, err
		}
		m := fromMS(at).UTC().Format("2006-01")
		n[m]++
		if senders[m] == nil {
			senders[m] = map[string]bool{}
		}
		senders[m][sender] = true
	}
	return n, senders, rows.Err()
}

// DomainStat is deliveries to one outside domain in one month.
type DomainStat struct {
	Month, Domain string
	Deliveries    int
}

// DomainStats lists deliveries per outside domain for months in [from, to].
func (s *Store) DomainStats(ctx context.Context, fromMonth, toMonth string) ([]DomainStat, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT month, domain, deliveries FROM domain_stats WHERE month>=? AND month<=? ORDER BY month, deliveries DESC, domain`, fromMonth, toMonth)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DomainStat
	for rows.Next() {
		var d DomainStat
		if err := rows.Scan(&d.Month, &d.Domain, &d.Deliveries); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// EachDecisionAfter calls f for the decisions inserted after row (their
// SQLite rowid, in insertion order: decisions are never deleted, and one
// writer commits at a time, so a row seen once is never followed by an
// earlier one). It returns the last row seen.
func (s *Store) EachDecisionAfter(ctx context.Context, row int64, f func(*DecisionRow) error) (int64, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT rowid, created_at, mail_from, outcome, detail FROM decisions WHERE rowid>? ORDER BY rowid`, row)
	if err != nil {
		return row, err
	}
	defer rows.Close()
	for rows.Next() {
		var at, id int64
		d := &DecisionRow{}
		if err := rows.Scan(&id, &at, &d.MailFrom, &d.Outcome, &d.Detail); err != nil {
			return row, err
		}
		d.Month = fromMS(at).UTC().Format("2006-01")
		if err := f(d); err != nil {
			return row, err
		}
		row = id
	}
	return row, rows.Err()
}
