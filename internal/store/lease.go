package store

import (
	"context"
	"database/sql"
	"time"
)

// The store's interfaces are small, one per concern, so that a backend
// (SQLite here, PostgreSQL in store/postgres) implements them one at a
// time and each passes its part of store/storetest. Leases is the first:
// the queue's delivery leases as several nodes share them.

// Leases hands queued recipients to delivery workers, each lease owned by
// one worker (a node) and fenced: a claim carries a token, and a result is
// written only while the row still has that owner and token, so a worker
// whose lease expired and was taken over cannot overwrite what the new
// owner does (it learns the lease is lost instead).
type Leases interface {
	// Enqueue adds a message and its recipients.
	Enqueue(ctx context.Context, m *Message, rcpts []Recipient) error
	// Claim leases up to limit due, unleased (or lease-expired) queued
	// recipients to owner until now+lease, oldest due first.
	Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Claim, error)
	// Renew extends owner's leases on claims to now+lease while a delivery
	// runs; it returns the claims whose lease is lost (taken over, or the
	// recipient no longer queued).
	Renew(ctx context.Context, owner string, now time.Time, lease time.Duration, claims []Claim) (lost []Claim, err error)
	// Complete writes results under the fencing predicate; it returns the
	// messages that have no queued recipient left (now done) and the
	// results that were refused because the lease is lost.
	Complete(ctx context.Context, owner string, now time.Time, results []FencedResult) (done []string, lost []FencedResult, err error)
	// ReleaseOwner gives up every lease of owner (a node stopping).
	ReleaseOwner(ctx context.Context, owner string) error
}

// Claim is a leased recipient and the lease's fencing token.
type Claim struct {
	Recipient
	Token int64
}

// FencedResult is a delivery result for a claim.
type FencedResult struct {
	Result
	Token int64
}

var _ Leases = (*Store)(nil)

// Enqueue implements Leases.
func (s *Store) Enqueue(ctx context.Context, m *Message, rcpts []Recipient) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.InsertMessage(ctx, tx, m, rcpts); err != nil {
		return err
	}
	return tx.Commit()
}

// Claim implements Leases. SQLite has one writer at a time (the
// transaction is IMMEDIATE), so select-then-update cannot race.
func (s *Store) Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Claim, error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+rcptCols+`, lease_token FROM recipients WHERE status='queued' AND next_attempt<=? AND lease_until<=? ORDER BY next_attempt, msg_id, rcpt LIMIT ?`, ms(now), ms(now), limit)
	if err != nil {
		return nil, err
	}
	var out []Claim
	for rows.Next() {
		var c Claim
		if err := scanRecipientInto(rows, &c.Recipient, &c.Token); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	until := now.Add(lease)
	for i := range out {
		c := &out[i]
		c.Token++
		if _, err := tx.ExecContext(ctx, `UPDATE recipients SET lease_owner=?, lease_token=?, lease_until=? WHERE msg_id=? AND rcpt=?`, owner, c.Token, ms(until), c.MsgID, c.Rcpt); err != nil {
			return nil, err
		}
		c.LeaseUntil = until
	}
	return out, tx.Commit()
}

// Renew implements Leases.
func (s *Store) Renew(ctx context.Context, owner string, now time.Time, lease time.Duration, claims []Claim) ([]Claim, error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var lost []Claim
	for _, c := range claims {
		res, err := tx.ExecContext(ctx, `UPDATE recipients SET lease_until=? WHERE msg_id=? AND rcpt=? AND status='queued' AND lease_owner=? AND lease_token=?`, ms(now.Add(lease)), c.MsgID, c.Rcpt, owner, c.Token)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			lost = append(lost, c)
		}
	}
	return lost, tx.Commit()
}

// Complete implements Leases.
func (s *Store) Complete(ctx context.Context, owner string, now time.Time, results []FencedResult) ([]string, []FencedResult, error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	var lost []FencedResult
	touched := map[string]bool{}
	var order []string
	for _, r := range results {
		res, err := tx.ExecContext(ctx, `UPDATE recipients SET status=?, attempts=attempts+1, next_attempt=?, lease_until=0, lease_owner='', last_error=?, tls=?, relay=?, updated_at=?
			WHERE msg_id=? AND rcpt=? AND status='queued' AND lease_owner=? AND lease_token=?`,
			r.Status, ms(r.NextAttempt), r.Error, r.TLS, r.Relay, ms(now), r.MsgID, r.Rcpt, owner, r.Token)
		if err != nil {
			return nil, nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			lost = append(lost, r)
			continue
		}
		if !touched[r.MsgID] {
			touched[r.MsgID] = true
			order = append(order, r.MsgID)
		}
	}
	var done []string
	for _, id := range order {
		ok, err := s.finishIfDone(ctx, tx, now, id)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			done = append(done, id)
		}
	}
	return done, lost, tx.Commit()
}

// ReleaseOwner implements Leases.
func (s *Store) ReleaseOwner(ctx context.Context, owner string) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE recipients SET lease_until=0, lease_owner='' WHERE lease_owner=? AND status='queued'`, owner)
	return err
}

const rcptCols = `msg_id, rcpt, route, status, attempts, next_attempt, lease_until, last_error, tls, relay, updated_at, action, then_action`

func scanRecipientInto(rows *sql.Rows, r *Recipient, extra ...any) error {
	var next, lease, upd int64
	dest := append([]any{&r.MsgID, &r.Rcpt, &r.Route, &r.Status, &r.Attempts, &next, &lease, &r.LastError, &r.TLS, &r.Relay, &upd, &r.Action, &r.Then}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	r.NextAttempt, r.LeaseUntil, r.UpdatedAt = fromMS(next), fromMS(lease), fromMS(upd)
	return nil
}

// PortalAuth is the portal's sign-in state: one-time codes, brute-force
// lock-outs and sessions. In cluster mode it is what lets a sign-in begun
// on one node continue on another, and wrong codes spread over several
// nodes count together.
type PortalAuth interface {
	PutPortalCode(ctx context.Context, c *PortalCode) error
	// GetPortalCode returns ErrNotFound when address has no code.
	GetPortalCode(ctx context.Context, address string) (*PortalCode, error)
	// BumpPortalCode counts one wrong attempt atomically and returns the
	// count (an error when address has no code).
	BumpPortalCode(ctx context.Context, address string) (int, error)
	DeletePortalCode(ctx context.Context, address string) error
	// GetPortalLock returns the zero state for an address never seen.
	GetPortalLock(ctx context.Context, address string) (*PortalLock, error)
	PutPortalLock(ctx context.Context, l *PortalLock) error
	PutPortalSession(ctx context.Context, hash []byte, address string, now, expires time.Time) error
	// PortalSession returns ErrNotFound for an unknown or expired session.
	PortalSession(ctx context.Context, hash []byte, now time.Time) (string, error)
	DeletePortalSession(ctx context.Context, hash []byte) error
}

var _ PortalAuth = (*Store)(nil)
