package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"sealpost/internal/store"
)

// Versioned migrations, as for SQLite (internal/store/migrate.go): the
// list below, each applied once in its own transaction with the row that
// records it in schema_migrations. Several nodes start at once on one
// database, so the whole run holds a session advisory lock: the second
// node waits, then finds everything applied.

type migration struct {
	version int
	name    string
	sql     string
}

// migrationLock is the advisory lock key of schema migrations ("sealpost"
// in ASCII, so that it does not collide with the once-only jobs' keys).
const migrationLock = 0x7365616c706f7374

const versionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at BIGINT NOT NULL
)`

func migrate(ctx context.Context, pool *pgxpool.Pool, list []migration, now func() time.Time) ([]store.MigrationState, error) {
	for i, m := range list {
		if m.version != i+1 || m.name == "" {
			return nil, fmt.Errorf("store/postgres: migration list broken at position %d (version %d, %q)", i+1, m.version, m.name)
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
	if _, err := conn.Exec(ctx, versionTable); err != nil {
		return nil, fmt.Errorf("creating schema_migrations: %w", err)
	}
	var newest int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	if newest > len(list) {
		return nil, fmt.Errorf("%w: it is at version %d, this sealpost knows %d; run the newer sealpost or restore a backup", store.ErrSchemaTooNew, newest, len(list))
	}
	var applied []store.MigrationState
	for _, m := range list[newest:] {
		at := now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, m.version, m.name, at.UnixMilli())
			return err
		})
		if err != nil {
			return applied, &store.MigrationError{Version: m.version, Name: m.name, Err: err}
		}
		applied = append(applied, store.MigrationState{Version: m.version, Name: m.name, AppliedAt: at})
	}
	return applied, nil
}

// MigrationStatus lists every migration and when the database had it.
func (s *Store) MigrationStatus(ctx context.Context) ([]store.MigrationState, error) {
	out := make([]store.MigrationState, len(migrations))
	for i, m := range migrations {
		out[i] = store.MigrationState{Version: m.version, Name: m.name}
	}
	rows, err := s.pool.Query(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var name string
		var at int64
		if err := rows.Scan(&v, &name, &at); err != nil {
			return nil, err
		}
		if v < 1 || v > len(out) {
			out = append(out, store.MigrationState{Version: v, Name: name + " (unknown to this sealpost)", AppliedAt: time.UnixMilli(at)})
			continue
		}
		out[v-1].AppliedAt = time.UnixMilli(at)
	}
	return out, rows.Err()
}

// migrations is the PostgreSQL schema, oldest first. Append only; never
// edit a merged migration.
var migrations = []migration{
	{1, "queue", `
CREATE TABLE messages (
	id          TEXT PRIMARY KEY,
	direction   TEXT NOT NULL,
	mail_from   TEXT NOT NULL,
	received_at BIGINT NOT NULL,
	size        BIGINT NOT NULL,
	remote_ip   TEXT NOT NULL DEFAULT '',
	helo        TEXT NOT NULL DEFAULT '',
	auth_user   TEXT NOT NULL DEFAULT '',
	header_from TEXT NOT NULL DEFAULT '',
	subject     TEXT NOT NULL DEFAULT '',
	message_id  TEXT NOT NULL DEFAULT '',
	state       TEXT NOT NULL DEFAULT 'queued',
	done_at     BIGINT NOT NULL DEFAULT 0,
	spool_seg   BIGINT NOT NULL DEFAULT 0,
	spool_off   BIGINT NOT NULL DEFAULT 0,
	spool_len   BIGINT NOT NULL DEFAULT 0,
	spool_key   BYTEA
);
CREATE INDEX messages_state ON messages(state, done_at);
CREATE TABLE recipients (
	msg_id       TEXT NOT NULL REFERENCES messages(id),
	rcpt         TEXT NOT NULL,
	route        TEXT NOT NULL,
	status       TEXT NOT NULL DEFAULT 'queued',
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt BIGINT NOT NULL DEFAULT 0,
	lease_until  BIGINT NOT NULL DEFAULT 0,
	lease_owner  TEXT NOT NULL DEFAULT '',
	lease_token  BIGINT NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	tls          TEXT NOT NULL DEFAULT '',
	relay        TEXT NOT NULL DEFAULT '',
	updated_at   BIGINT NOT NULL DEFAULT 0,
	action       TEXT NOT NULL DEFAULT '',
	then_action  TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (msg_id, rcpt)
);
CREATE INDEX recipients_due ON recipients(next_attempt) WHERE status = 'queued';
CREATE INDEX recipients_owner ON recipients(lease_owner) WHERE status = 'queued' AND lease_owner <> '';
`},
	{2, "portal_auth", `
CREATE TABLE portal_codes (
	address    TEXT PRIMARY KEY,
	code_hash  BYTEA NOT NULL,
	expires_at BIGINT NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE portal_locks (
	address      TEXT PRIMARY KEY,
	failures     INTEGER NOT NULL DEFAULT 0,
	lockouts     INTEGER NOT NULL DEFAULT 0,
	locked_until BIGINT NOT NULL DEFAULT 0,
	codes_sent   INTEGER NOT NULL DEFAULT 0,
	window_start BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE portal_sessions (
	id_hash    BYTEA PRIMARY KEY,
	address    TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX portal_sessions_expiry ON portal_sessions(expires_at);
`},
}
