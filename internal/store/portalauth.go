package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// PortalCode is a one-time code waiting to be entered.
type PortalCode struct {
	Address   string
	Hash      []byte
	ExpiresAt time.Time
	Attempts  int
}

// PutPortalCode replaces the code for an address.
func (s *Store) PutPortalCode(ctx context.Context, c *PortalCode) error {
	_, err := s.DB.ExecContext(ctx, `INSERT INTO portal_codes (address, code_hash, expires_at, attempts) VALUES (?,?,?,0)
		ON CONFLICT(address) DO UPDATE SET code_hash=excluded.code_hash, expires_at=excluded.expires_at, attempts=0`, c.Address, c.Hash, ms(c.ExpiresAt))
	return err
}

// GetPortalCode returns the code waiting for address.
func (s *Store) GetPortalCode(ctx context.Context, address string) (*PortalCode, error) {
	c := &PortalCode{Address: address}
	var e int64
	err := s.DB.QueryRowContext(ctx, `SELECT code_hash, expires_at, attempts FROM portal_codes WHERE address=?`, address).Scan(&c.Hash, &e, &c.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	c.ExpiresAt = fromMS(e)
	return c, err
}

// BumpPortalCode counts a wrong attempt and returns the count.
func (s *Store) BumpPortalCode(ctx context.Context, address string) (int, error) {
	var n int
	err := s.DB.QueryRowContext(ctx, `UPDATE portal_codes SET attempts=attempts+1 WHERE address=? RETURNING attempts`, address).Scan(&n)
	return n, err
}

// DeletePortalCode removes the code of address (used, expired or burnt).
func (s *Store) DeletePortalCode(ctx context.Context, address string) error {
	_, err := s.DB.ExecContext(ctx, `DELETE FROM portal_codes WHERE address=?`, address)
	return err
}

// PortalLock is the brute-force state of an address.
type PortalLock struct {
	Address     string
	Failures    int       // wrong codes since the last success
	Lockouts    int       // lock-outs so far (each doubles the next)
	LockedUntil time.Time //
	CodesSent   int       // codes sent in the current window
	WindowStart time.Time //
}

// GetPortalLock returns the lock state of address (zero if none).
func (s *Store) GetPortalLock(ctx context.Context, address string) (*PortalLock, error) {
	l := &PortalLock{Address: address}
	var lu, ws int64
	err := s.DB.QueryRowContext(ctx, `SELECT failures, lockouts, locked_until, codes_sent, window_start FROM portal_locks WHERE address=?`, address).Scan(&l.Failures, &l.Lockouts, &lu, &l.CodesSent, &ws)
	if errors.Is(err, sql.ErrNoRows) {
		return l, nil
	}
	l.LockedUntil, l.WindowStart = fromMS(lu), fromMS(ws)
	return l, err
}

// PutPortalLock stores the lock state of an address.
func (s *Store) PutPortalLock(ctx context.Context, l *PortalLock) error {
	_, err := s.DB.ExecContext(ctx, `INSERT INTO portal_locks (address, failures, lockouts, locked_until, codes_sent, window_start) VALUES (?,?,?,?,?,?)
		ON CONFLICT(address) DO UPDATE SET failures=excluded.failures, lockouts=excluded.lockouts, locked_until=excluded.locked_until, codes_sent=excluded.codes_sent, window_start=excluded.window_start`,
		l.Address, l.Failures, l.Lockouts, ms(l.LockedUntil), l.CodesSent, ms(l.WindowStart))
	return err
}

// PutPortalSession records a session (by the hash of its id).
func (s *Store) PutPortalSession(ctx context.Context, hash []byte, address string, now, expires time.Time) error {
	_, err := s.DB.ExecContext(ctx, `INSERT INTO portal_sessions (id_hash, address, created_at, expires_at) VALUES (?,?,?,?)`, hash, address, ms(now), ms(expires))
	return err
}

// PortalSession returns the address of a live session.
func (s *Store) PortalSession(ctx context.Context, hash []byte, now time.Time) (string, error) {
	var a string
	err := s.DB.QueryRowContext(ctx, `SELECT address FROM portal_sessions WHERE id_hash=? AND expires_at>?`, hash, ms(now)).Scan(&a)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return a, err
}

// DeletePortalSession ends a session.
func (s *Store) DeletePortalSession(ctx context.Context, hash []byte) error {
	_, err := s.DB.ExecContext(ctx, `DELETE FROM portal_sessions WHERE id_hash=?`, hash)
	return err
}
