// Package postgres is the store on PostgreSQL, for several nodes sharing
// one database (cluster mode). It implements the store's interfaces one
// concern at a time and passes their part of store/storetest; so far the
// queue's fenced delivery leases (store.Leases) and the portal's sign-in
// state (store.PortalAuth).
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"sealpost/internal/store"
)

// Store is an open PostgreSQL store.
type Store struct {
	pool     *pgxpool.Pool
	migrated []store.MigrationState
}

var _ store.Leases = (*Store)(nil)

// Open connects to url and applies the migrations the database has not
// had (under an advisory lock, so nodes starting together take turns).
func Open(ctx context.Context, url string) (*Store, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: %w", err)
	}
	applied, err := migrate(ctx, pool, migrations, time.Now)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store/postgres: migrating: %w", err)
	}
	return &Store{pool: pool, migrated: applied}, nil
}

// Close closes the connections.
func (s *Store) Close() { s.pool.Close() }

// Migrated is what Open applied.
func (s *Store) Migrated() []store.MigrationState { return s.migrated }

// Ping checks that the database answers (for /healthz).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// Enqueue implements store.Leases.
func (s *Store) Enqueue(ctx context.Context, m *store.Message, rcpts []store.Recipient) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO messages (id, direction, mail_from, received_at, size, remote_ip, helo, auth_user, header_from, subject, message_id, spool_seg, spool_off, spool_len, spool_key)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)`,
			m.ID, m.Direction, m.MailFrom, ms(m.ReceivedAt), m.Size, m.RemoteIP, m.Helo, m.AuthUser, m.HeaderFrom, m.Subject, m.MessageID, m.Spool.Seg, m.Spool.Off, m.Spool.Len, m.Spool.Key); err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, r := range rcpts {
			status := r.Status
			if status == "" {
				status = "queued"
			}
			b.Queue(`INSERT INTO recipients (msg_id, rcpt, route, status, next_attempt, lease_until, updated_at, action, then_action) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
				m.ID, r.Rcpt, r.Route, status, ms(r.NextAttempt), ms(r.LeaseUntil), ms(m.ReceivedAt), r.Action, r.Then)
		}
		return tx.SendBatch(ctx, b).Close()
	})
}

const rcptCols = `r.msg_id, r.rcpt, r.route, r.status, r.attempts, r.next_attempt, r.lease_until, r.last_error, r.tls, r.relay, r.updated_at, r.action, r.then_action, r.lease_token`

func scanClaim(row pgx.Row) (store.Claim, error) {
	var c store.Claim
	var next, lease, upd int64
	err := row.Scan(&c.MsgID, &c.Rcpt, &c.Route, &c.Status, &c.Attempts, &next, &lease, &c.LastError, &c.TLS, &c.Relay, &upd, &c.Action, &c.Then, &c.Token)
	c.NextAttempt, c.LeaseUntil, c.UpdatedAt = fromMS(next), fromMS(lease), fromMS(upd)
	return c, err
}

// Claim implements store.Leases: FOR UPDATE SKIP LOCKED, so nodes claiming
// at once pass over each other's rows instead of waiting or doubling up.
func (s *Store) Claim(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]store.Claim, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
		SELECT msg_id, rcpt FROM recipients
		WHERE status='queued' AND next_attempt <= $1 AND lease_until <= $1
		ORDER BY next_attempt, msg_id, rcpt LIMIT $2 FOR UPDATE SKIP LOCKED)
	UPDATE recipients r SET lease_owner=$3, lease_token=r.lease_token+1, lease_until=$4
	FROM due WHERE r.msg_id=due.msg_id AND r.rcpt=due.rcpt
	RETURNING `+rcptCols, ms(now), limit, owner, ms(now.Add(lease)))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Claim, error) { return scanClaim(row) })
}

// Renew implements store.Leases.
func (s *Store) Renew(ctx context.Context, owner string, now time.Time, lease time.Duration, claims []store.Claim) ([]store.Claim, error) {
	var lost []store.Claim
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		lost = nil
		for _, c := range claims {
			tag, err := tx.Exec(ctx, `UPDATE recipients SET lease_until=$1 WHERE msg_id=$2 AND rcpt=$3 AND status='queued' AND lease_owner=$4 AND lease_token=$5`,
				ms(now.Add(lease)), c.MsgID, c.Rcpt, owner, c.Token)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				lost = append(lost, c)
			}
		}
		return nil
	})
	return lost, err
}

// Complete implements store.Leases. The messages' rows are locked first,
// in id order: two nodes finishing the last two recipients of one message
// at once would otherwise each still see the other's recipient queued,
// and neither would mark the message done.
func (s *Store) Complete(ctx context.Context, owner string, now time.Time, results []store.FencedResult) ([]string, []store.FencedResult, error) {
	var done []string
	var lost []store.FencedResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		done, lost = nil, nil
		var ids []string
		seen := map[string]bool{}
		for _, r := range results {
			if !seen[r.MsgID] {
				seen[r.MsgID] = true
				ids = append(ids, r.MsgID)
			}
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM messages WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids); err != nil {
			return err
		}
		touched := map[string]bool{}
		for _, r := range results {
			tag, err := tx.Exec(ctx, `UPDATE recipients SET status=$1, attempts=attempts+1, next_attempt=$2, lease_until=0, lease_owner='', last_error=$3, tls=$4, relay=$5, updated_at=$6
				WHERE msg_id=$7 AND rcpt=$8 AND status='queued' AND lease_owner=$9 AND lease_token=$10`,
				r.Status, ms(r.NextAttempt), r.Error, r.TLS, r.Relay, ms(now), r.MsgID, r.Rcpt, owner, r.Token)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				lost = append(lost, r)
				continue
			}
			touched[r.MsgID] = true
		}
		for _, id := range ids {
			if !touched[id] {
				continue
			}
			tag, err := tx.Exec(ctx, `UPDATE messages SET state='done', done_at=$1, spool_key=NULL WHERE id=$2 AND state='queued'
				AND NOT EXISTS (SELECT 1 FROM recipients WHERE msg_id=$2 AND status IN ('queued','held','quarantined'))`, ms(now), id)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				done = append(done, id)
			}
		}
		return nil
	})
	return done, lost, err
}

// ReleaseOwner implements store.Leases.
func (s *Store) ReleaseOwner(ctx context.Context, owner string) error {
	_, err := s.pool.Exec(ctx, `UPDATE recipients SET lease_until=0, lease_owner='' WHERE lease_owner=$1 AND status='queued'`, owner)
	return err
}
