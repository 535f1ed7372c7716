package store

import (
	"context"
	"time"
)

// OutcomeCounts counts decisions by outcome since t.
func (s *Store) OutcomeCounts(ctx context.Context, since time.Time) (map[string]int, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT outcome, count(*) FROM decisions WHERE created_at>=? GROUP BY outcome`, ms(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, rows.Err()
}

// DecisionDetails returns the detail JSON of decisions since t.
func (s *Store) DecisionDetails(ctx context.Context, since time.Time, limit int) ([]string, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT detail FROM decisions WHERE created_at>=? AND detail<>'' ORDER BY created_at DESC LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeliveryCounts counts outbound messages, and deliveries to the internet
// with and without TLS, since t.
func (s *Store) DeliveryCounts(ctx context.Context, since time.Time) (messages, withTLS, withoutTLS int, err error) {
	err = s.DB.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE direction='out' AND received_at>=?`, ms(since)).Scan(&messages)
	if err != nil {
		return
	}
	err = s.DB.QueryRowContext(ctx, `SELECT coalesce(sum(tls<>''),0), coalesce(sum(tls=''),0) FROM recipients WHERE route='outbound' AND status='delivered' AND updated_at>=?`, ms(since)).Scan(&withTLS, &withoutTLS)
	return
}

// CountDecisions counts decisions in a state.
func (s *Store) CountDecisions(ctx context.Context, state string) (int, error) {
	var n int
	err := s.DB.QueryRowContext(ctx, `SELECT count(*) FROM decisions WHERE state=?`, state).Scan(&n)
	return n, err
}

// SearchMessages finds messages by id, sender, recipient or subject text,
// newest first, received within [from, to) (zero: unbounded).
func (s *Store) SearchMessages(ctx context.Context, q string, from, to time.Time, limit int) ([]*Message, error) {
	query := `SELECT ` + messageCols + ` FROM messages WHERE 1=1`
	var args []any
	if q != "" {
		query += ` AND (id=? OR mail_from LIKE ? ESCAPE '\' OR header_from LIKE ? ESCAPE '\' OR subject LIKE ? ESCAPE '\' OR id IN (SELECT msg_id FROM recipients WHERE rcpt LIKE ? ESCAPE '\'))`
		l := Like(q)
		args = append(args, q, l, l, l, l)
	}
	if !from.IsZero() {
		query += ` AND received_at>=?`
		args = append(args, ms(from))
	}
	if !to.IsZero() {
		query += ` AND received_at<?`
		args = append(args, ms(to))
	}
	query += ` ORDER BY received_at DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.DB.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
