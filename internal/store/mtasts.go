package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// MTA-STS policies fetched for recipient domains (RFC 8461 §5.1: cached
// until max_age, so that an attacker who blocks the fetch later cannot
// downgrade delivery) are kept in the database (migration 3) so that they
// survive restarts and are shared by the nodes of a cluster.

// MTASTSPolicy is one cached policy; times in Unix seconds.
type MTASTSPolicy struct {
	Domain, ID, Policy            string
	FetchedAt, Expires, RefreshAt time.Time
}

// MTASTSGet returns the cached policy of domain, nil when none.
func (s *Store) MTASTSGet(ctx context.Context, domain string) (*MTASTSPolicy, error) {
	var p MTASTSPolicy
	var f, e, r int64
	err := s.DB.QueryRowContext(ctx, `SELECT domain, id, policy, fetched_at, expires, refresh_at FROM mtasts_policies WHERE domain=?`, domain).
		Scan(&p.Domain, &p.ID, &p.Policy, &f, &e, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	p.FetchedAt, p.Expires, p.RefreshAt = time.Unix(f, 0), time.Unix(e, 0), time.Unix(r, 0)
	return &p, nil
}

// MTASTSPut stores or replaces a domain's policy.
func (s *Store) MTASTSPut(ctx context.Context, p MTASTSPolicy) error {
	_, err := s.DB.ExecContext(ctx, `INSERT INTO mtasts_policies (domain, id, policy, fetched_at, expires, refresh_at) VALUES (?,?,?,?,?,?)
		ON CONFLICT(domain) DO UPDATE SET id=excluded.id, policy=excluded.policy, fetched_at=excluded.fetched_at, expires=excluded.expires, refresh_at=excluded.refresh_at`,
		p.Domain, p.ID, p.Policy, p.FetchedAt.Unix(), p.Expires.Unix(), p.RefreshAt.Unix())
	return err
}

// MTASTSDelete drops a domain's policy (`sealpost tls refresh`).
func (s *Store) MTASTSDelete(ctx context.Context, domain string) error {
	_, err := s.DB.ExecContext(ctx, `DELETE FROM mtasts_policies WHERE domain=?`, domain)
	return err
}

// MTASTSDue lists the domains whose refresh time has come.
func (s *Store) MTASTSDue(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT domain FROM mtasts_policies WHERE refresh_at <= ? ORDER BY refresh_at LIMIT 1000`, now.Unix())
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
