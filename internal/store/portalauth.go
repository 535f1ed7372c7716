package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
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

// AuditEvent is one entry of the audit log.
type AuditEvent struct {
	Seq    int64
	At     time.Time
	Actor  string // who: an address, "admin:NAME", "gateway"
	Action string // what: portal.view, portal.download, portal.code_sent, ...
	Object string // on what: a sealed message id, an address
	IP     string
	UA     string
	Detail string
	Prev   []byte
	Hash   []byte
}

// AuditHash is the hash that chains an event to the one before it:
// SHA-256 over the previous hash, the time and each field with its length.
func AuditHash(prev []byte, e *AuditEvent) []byte { return auditHash(prev, e) }

func auditHash(prev []byte, e *AuditEvent) []byte {
	h := sha256.New()
	h.Write(prev)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ms(e.At)))
	h.Write(b[:])
	for _, f := range []string{e.Actor, e.Action, e.Object, e.IP, e.UA, e.Detail} {
		binary.BigEndian.PutUint64(b[:], uint64(len(f)))
		h.Write(b[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// AppendAudit adds an event at the end of the hash chain.
func (s *Store) AppendAudit(ctx context.Context, e *AuditEvent) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var prev []byte
	err = tx.QueryRowContext(ctx, `SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	e.Prev = prev
	e.Hash = auditHash(prev, e)
	res, err := tx.ExecContext(ctx, `INSERT INTO audit_events (at, actor, action, object, ip, ua, detail, prev, hash) VALUES (?,?,?,?,?,?,?,?,?)`,
		ms(e.At), e.Actor, e.Action, e.Object, e.IP, e.UA, e.Detail, e.Prev, e.Hash)
	if err != nil {
		return err
	}
	e.Seq, _ = res.LastInsertId()
	return tx.Commit()
}

// AuditCheckpoint is a signature over the chain up to an event.
type AuditCheckpoint struct {
	Seq  int64
	Hash []byte
	At   time.Time
	Sig  []byte
}

// AddAuditCheckpoint records a checkpoint.
func (s *Store) AddAuditCheckpoint(ctx context.Context, c *AuditCheckpoint) error {
	_, err := s.DB.ExecContext(ctx, `INSERT OR IGNORE INTO audit_checkpoints (seq, hash, at, sig) VALUES (?,?,?,?)`, c.Seq, c.Hash, ms(c.At), c.Sig)
	return err
}

// AuditCheckpoints lists the checkpoints, oldest first.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]*AuditCheckpoint, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT seq, hash, at, sig FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*AuditCheckpoint
	for rows.Next() {
		c := &AuditCheckpoint{}
		var at int64
		if err := rows.Scan(&c.Seq, &c.Hash, &at, &c.Sig); err != nil {
			return nil, err
		}
		c.At = fromMS(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastAuditEvent returns the newest event (nil if none).
func (s *Store) LastAuditEvent(ctx context.Context) (*AuditEvent, error) {
	e := &AuditEvent{}
	var at int64
	err := s.DB.QueryRowContext(ctx, `SELECT seq, at, actor, action, object, ip, ua, detail, prev, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).
		Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.IP, &e.UA, &e.Detail, &e.Prev, &e.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	e.At = fromMS(at)
	return e, err
}

// EachAuditEvent calls f for every event in sequence order, between from and
// to (zero: unbounded).
func (s *Store) EachAuditEvent(ctx context.Context, from, to time.Time, f func(*AuditEvent) error) error {
	q := `SELECT seq, at, actor, action, object, ip, ua, detail, prev, hash FROM audit_events WHERE 1=1`
	var args []any
	if !from.IsZero() {
		q += ` AND at>=?`
		args = append(args, ms(from))
	}
	if !to.IsZero() {
		q += ` AND at<?`
		args = append(args, ms(to))
	}
	rows, err := s.DB.QueryContext(ctx, q+` ORDER BY seq`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e := &AuditEvent{}
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.IP, &e.UA, &e.Detail, &e.Prev, &e.Hash); err != nil {
			return err
		}
		e.At = fromMS(at)
		if err := f(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AuditEvents lists events about object (all if ""), oldest first.
func (s *Store) AuditEvents(ctx context.Context, object string, limit int) ([]*AuditEvent, error) {
	q := `SELECT seq, at, actor, action, object, ip, ua, detail, prev, hash FROM audit_events`
	var args []any
	if object != "" {
		q += ` WHERE object=?`
		args = append(args, object)
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, limit)
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*AuditEvent
	for rows.Next() {
		e := &AuditEvent{}
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.IP, &e.UA, &e.Detail, &e.Prev, &e.Hash); err != nil {
			return nil, err
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// AuditAnchor is the last event removed by retention: the chain continues
// from its hash (zero values: nothing was removed).
func (s *Store) AuditAnchor(ctx context.Context) (seq int64, hash []byte, err error) {
	err = s.DB.QueryRowContext(ctx, `SELECT seq, hash FROM audit_anchor WHERE id=1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	return seq, hash, err
}

// PruneAudit removes events older than cutoff, keeping the chain's anchor
// (the last removed event's sequence number and hash) so that what remains
// still verifies, and the checkpoints of removed events. It returns how
// many events went.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time) (int64, error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var seq int64
	var hash []byte
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_events WHERE at<? ORDER BY seq DESC LIMIT 1`, ms(cutoff)).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE seq<=?`, seq)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_anchor (id, seq, hash) VALUES (1,?,?) ON CONFLICT(id) DO UPDATE SET seq=excluded.seq, hash=excluded.hash`, seq, hash); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE seq<?`, seq); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}
