package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"sealpost/internal/store"
)

// The portal's sign-in state (store.PortalAuth), shared by every node.

var _ store.PortalAuth = (*Store)(nil)

// PutPortalCode implements store.PortalAuth.
func (s *Store) PutPortalCode(ctx context.Context, c *store.PortalCode) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO portal_codes (address, code_hash, expires_at, attempts) VALUES ($1,$2,$3,0)
		ON CONFLICT (address) DO UPDATE SET code_hash=excluded.code_hash, expires_at=excluded.expires_at, attempts=0`, c.Address, c.Hash, ms(c.ExpiresAt))
	return err
}

// GetPortalCode implements store.PortalAuth.
func (s *Store) GetPortalCode(ctx context.Context, address string) (*store.PortalCode, error) {
	c := &store.PortalCode{Address: address}
	var e int64
	err := s.pool.QueryRow(ctx, `SELECT code_hash, expires_at, attempts FROM portal_codes WHERE address=$1`, address).Scan(&c.Hash, &e, &c.Attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	c.ExpiresAt = fromMS(e)
	return c, err
}

// BumpPortalCode implements store.PortalAuth: one UPDATE, so attempts made
// on several nodes at once all count.
func (s *Store) BumpPortalCode(ctx context.Context, address string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `UPDATE portal_codes SET attempts=attempts+1 WHERE address=$1 RETURNING attempts`, address).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, store.ErrNotFound
	}
	return n, err
}

// DeletePortalCode implements store.PortalAuth.
func (s *Store) DeletePortalCode(ctx context.Context, address string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM portal_codes WHERE address=$1`, address)
	return err
}

// GetPortalLock implements store.PortalAuth.
func (s *Store) GetPortalLock(ctx context.Context, address string) (*store.PortalLock, error) {
	l := &store.PortalLock{Address: address}
	var lu, ws int64
	err := s.pool.QueryRow(ctx, `SELECT failures, lockouts, locked_until, codes_sent, window_start FROM portal_locks WHERE address=$1`, address).Scan(&l.Failures, &l.Lockouts, &lu, &l.CodesSent, &ws)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, nil
	}
	l.LockedUntil, l.WindowStart = fromMS(lu), fromMS(ws)
	return l, err
}

// PutPortalLock implements store.PortalAuth.
func (s *Store) PutPortalLock(ctx context.Context, l *store.PortalLock) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO portal_locks (address, failures, lockouts, locked_until, codes_sent, window_start) VALUES ($1,$2,$3,$4,$5,$6)
		ON CONFLICT (address) DO UPDATE SET failures=excluded.failures, lockouts=excluded.lockouts, locked_until=excluded.locked_until, codes_sent=excluded.codes_sent, window_start=excluded.window_start`,
		l.Address, l.Failures, l.Lockouts, ms(l.LockedUntil), l.CodesSent, ms(l.WindowStart))
	return err
}

// PutPortalSession implements store.PortalAuth.
func (s *Store) PutPortalSession(ctx context.Context, hash []byte, address string, now, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO portal_sessions (id_hash, address, created_at, expires_at) VALUES ($1,$2,$3,$4)`, hash, address, ms(now), ms(expires))
	return err
}

// PortalSession implements store.PortalAuth.
func (s *Store) PortalSession(ctx context.Context, hash []byte, now time.Time) (string, error) {
	var a string
	err := s.pool.QueryRow(ctx, `SELECT address FROM portal_sessions WHERE id_hash=$1 AND expires_at>$2`, hash, ms(now)).Scan(&a)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", store.ErrNotFound
	}
	return a, err
}

// DeletePortalSession implements store.PortalAuth.
func (s *Store) DeletePortalSession(ctx context.Context, hash []byte) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM portal_sessions WHERE id_hash=$1`, hash)
	return err
}
