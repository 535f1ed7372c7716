package store

import (
	"context"
	"time"
)

// TLS-RPT (RFC 8460) keeps, per UTC day and policy domain, how many
// sessions showed each result; the result itself is opaque JSON written
// and read by the gateway (internal/tlsrpt's Result), so that the store
// knows nothing of the protocol. tlsrpt_sent says which reports went out,
// so that a restart or a second node never sends a second report for the
// same day and domain.

// DirectionTLSReport is the direction of TLS-RPT report messages.
const DirectionTLSReport = "tlsrpt"

// TLSResultCount is Count sessions with one result (JSON) for a domain.
type TLSResultCount struct {
	PolicyDomain string
	Result       string
	Count        int64
}

// AddTLSResults adds counts for day ("2006-01-02", UTC) in one transaction.
func (s *Store) AddTLSResults(ctx context.Context, day string, counts []TLSResultCount) error {
	if len(counts) == 0 {
		return nil
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, c := range counts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tlsrpt_results (day, policy_domain, result, count) VALUES (?,?,?,?)
			ON CONFLICT (day, policy_domain, result) DO UPDATE SET count = count + excluded.count`, day, c.PolicyDomain, c.Result, c.Count); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// TLSResults returns the counts of day, ordered by policy domain.
func (s *Store) TLSResults(ctx context.Context, day string) ([]TLSResultCount, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT policy_domain, result, count FROM tlsrpt_results WHERE day=? ORDER BY policy_domain, result`, day)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TLSResultCount
	for rows.Next() {
		var c TLSResultCount
		if err := rows.Scan(&c.PolicyDomain, &c.Result, &c.Count); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ClaimTLSReport records that the report of day for domain is being sent;
// false means it was claimed before (sent already, by us or another node).
func (s *Store) ClaimTLSReport(ctx context.Context, day, domain string, now time.Time) (bool, error) {
	res, err := s.DB.ExecContext(ctx, `INSERT INTO tlsrpt_sent (day, policy_domain, sent_at) VALUES (?,?,?) ON CONFLICT DO NOTHING`, day, domain, ms(now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// PruneTLSResults removes counts and claims of days before day.
func (s *Store) PruneTLSResults(ctx context.Context, before string) error {
	if _, err := s.DB.ExecContext(ctx, `DELETE FROM tlsrpt_results WHERE day < ?`, before); err != nil {
		return err
	}
	_, err := s.DB.ExecContext(ctx, `DELETE FROM tlsrpt_sent WHERE day < ?`, before)
	return err
}

// FailedTLSReportRcpts are the addresses a TLS report to failed
// permanently since the time given: they get no report for a while, so
// that a dead rua costs one bounce per window instead of one a day.
func (s *Store) FailedTLSReportRcpts(ctx context.Context, since time.Time) (map[string]bool, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT DISTINCT lower(r.rcpt) FROM recipients r JOIN messages m ON m.id = r.msg_id
		WHERE m.direction = ? AND r.status = 'failed' AND r.updated_at >= ?`, DirectionTLSReport, ms(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out[a] = true
	}
	return out, rows.Err()
}
