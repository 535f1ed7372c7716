package store

import (
	"context"
	"time"
)

// DeliveryCounts counts deliveries to the internet since t with and
// without TLS, and those captured by a transport that does not leave the
// machine (the dev outbox, whose relay name is captureRelay): those are
// neither.
func (s *Store) DeliveryCounts(ctx context.Context, since time.Time, captureRelay string) (withTLS, withoutTLS, captured int, err error) {
	err = s.DB.QueryRowContext(ctx, `SELECT coalesce(sum(relay<>? AND tls<>''),0), coalesce(sum(relay<>? AND tls=''),0), coalesce(sum(relay=?),0)
		FROM recipients WHERE route='outbound' AND status='delivered' AND updated_at>=?`, captureRelay, captureRelay, captureRelay, ms(since)).Scan(&withTLS, &withoutTLS, &captured)
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
