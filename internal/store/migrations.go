package store

import (
	"context"
	"database/sql"
)

// sqliteMigrations is the SQLite schema, oldest first. To change the
// schema, append a migration with the next version number and plain SQL
// (CREATE TABLE, ALTER TABLE ... ADD COLUMN, CREATE INDEX): it runs once,
// in a transaction, and a failure stops the start naming it. Never edit or
// reorder a migration that has been merged: databases in the field have
// recorded it as applied and will not run it again.
var sqliteMigrations = []Migration{
	{Version: 1, Name: "baseline", Up: baseline},
	// Fenced delivery leases (Leases): who holds a recipient's lease, and
	// the token a result must carry to be written.
	{Version: 2, Name: "lease_owner", Up: SQL(`ALTER TABLE recipients ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE recipients ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0`)},
	// MTA-STS policies cached per recipient domain (store/mtasts.go).
	{Version: 3, Name: "mtasts_policies", Up: SQL(`CREATE TABLE mtasts_policies (
	domain     TEXT PRIMARY KEY,
	id         TEXT NOT NULL,
	policy     TEXT NOT NULL,
	fetched_at INTEGER NOT NULL,
	expires    INTEGER NOT NULL,
	refresh_at INTEGER NOT NULL
)`)},
	// The sender's TLS request per message (REQUIRETLS, TLS-Required: No;
	// RFC 8689) and TLS-RPT counts and sent reports (store/tlsrpt.go).
	{Version: 4, Name: "tls_request_tlsrpt", Up: SQL(`ALTER TABLE messages ADD COLUMN tls_request TEXT NOT NULL DEFAULT '';
CREATE TABLE tlsrpt_results (
	day           TEXT NOT NULL,
	policy_domain TEXT NOT NULL,
	result        TEXT NOT NULL,
	count         INTEGER NOT NULL,
	PRIMARY KEY (day, policy_domain, result)
);
CREATE TABLE tlsrpt_sent (
	day           TEXT NOT NULL,
	policy_domain TEXT NOT NULL,
	sent_at       INTEGER NOT NULL,
	PRIMARY KEY (day, policy_domain)
)`)},
	// Recipients' OpenPGP and X.509 keys with provenance (store/keyring.go).
	{Version: 5, Name: "recipient_keys", Up: SQL(`CREATE TABLE recipient_keys (
	fingerprint TEXT PRIMARY KEY,
	kind        TEXT NOT NULL,
	source      TEXT NOT NULL,
	fetched_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL DEFAULT 0,
	trust       TEXT NOT NULL,
	raw         BLOB NOT NULL,
	staff       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE recipient_key_addrs (
	address     TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	PRIMARY KEY (address, fingerprint)
);
CREATE INDEX recipient_key_addrs_fpr ON recipient_key_addrs(fingerprint)`)},
	// Header fields a data check added at the end of DATA (inbound
	// Authentication-Results and ARC set), written above the spooled
	// bytes by every reader (queue.OpenDelivered).
	{Version: 6, Name: "data_headers", Up: SQL(`ALTER TABLE messages ADD COLUMN data_headers TEXT NOT NULL DEFAULT ''`)},
}

// baseline is the schema as it stood when versioned migrations came in
// (main on 2026-12-01), made from nothing, or completed for a database that
// an older sealpost made: those had their columns added at each open by
// ALTER TABLE calls whose errors were ignored, so a column may be missing.
// Here each is added only when the table lacks it, and any error fails the
// migration.
func baseline(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, baselineCore+baselinePortal+baselineAudit); err != nil {
		return err
	}
	if err := addColumns(ctx, tx, baselineColumns); err != nil {
		return err
	}
	// A staff answer sealed into a thread is one row per (message, thread):
	// a retried delivery finds it instead of sealing it twice.
	_, err := tx.ExecContext(ctx, `CREATE UNIQUE INDEX IF NOT EXISTS sealed_thread_msg ON sealed(msg_id, parent_id) WHERE parent_id <> ''`)
	return err
}

// baselineColumns are the columns added to the baseline's tables after
// their first release, as "table column declaration".
var baselineColumns = []string{
	"messages spool_seg INTEGER NOT NULL DEFAULT 0", "messages spool_off INTEGER NOT NULL DEFAULT 0",
	"messages spool_len INTEGER NOT NULL DEFAULT 0", "recipients action TEXT NOT NULL DEFAULT ''",
	"recipients then_action TEXT NOT NULL DEFAULT ''", "users totp TEXT NOT NULL DEFAULT ''", "messages spool_key BLOB",
	"users totp_step INTEGER NOT NULL DEFAULT 0",
	// The portal's.
	"sealed message_id TEXT NOT NULL DEFAULT ''",
	"sealed refs TEXT NOT NULL DEFAULT ''",
	"sealed sent_at INTEGER NOT NULL DEFAULT 0",
	"sealed_recipients name TEXT NOT NULL DEFAULT ''",
	// The keyed audit chain's.
	"audit_events addrs TEXT NOT NULL DEFAULT ''", "audit_events mac BLOB",
	"audit_checkpoints n INTEGER NOT NULL DEFAULT 0", "audit_checkpoints count INTEGER NOT NULL DEFAULT 0",
	"audit_checkpoints mac BLOB", "audit_checkpoints prev BLOB",
	"audit_anchor n INTEGER NOT NULL DEFAULT 0", "audit_anchor count INTEGER NOT NULL DEFAULT 0",
	"audit_anchor at INTEGER NOT NULL DEFAULT 0", "audit_anchor mac BLOB",
	"audit_anchor prev BLOB", "audit_anchor sig BLOB",
}

// The queue, users, tokens, console sessions, decisions and the dev outbox.
const baselineCore = `
CREATE TABLE IF NOT EXISTS messages (
	id          TEXT PRIMARY KEY,
	direction   TEXT NOT NULL,
	mail_from   TEXT NOT NULL,
	received_at INTEGER NOT NULL,
	size        INTEGER NOT NULL,
	remote_ip   TEXT NOT NULL DEFAULT '',
	helo        TEXT NOT NULL DEFAULT '',
	auth_user   TEXT NOT NULL DEFAULT '',
	header_from TEXT NOT NULL DEFAULT '',
	subject     TEXT NOT NULL DEFAULT '',
	message_id  TEXT NOT NULL DEFAULT '',
	state       TEXT NOT NULL DEFAULT 'queued',
	done_at     INTEGER NOT NULL DEFAULT 0,
	spool_seg   INTEGER NOT NULL DEFAULT 0,
	spool_off   INTEGER NOT NULL DEFAULT 0,
	spool_len   INTEGER NOT NULL DEFAULT 0,
	spool_key   BLOB
);
CREATE INDEX IF NOT EXISTS messages_state ON messages(state, done_at);
CREATE TABLE IF NOT EXISTS recipients (
	msg_id       TEXT NOT NULL,
	rcpt         TEXT NOT NULL,
	route        TEXT NOT NULL,
	status       TEXT NOT NULL DEFAULT 'queued',
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL DEFAULT 0,
	lease_until  INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	tls          TEXT NOT NULL DEFAULT '',
	relay        TEXT NOT NULL DEFAULT '',
	updated_at   INTEGER NOT NULL DEFAULT 0,
	action       TEXT NOT NULL DEFAULT '',
	then_action  TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (msg_id, rcpt)
);
CREATE INDEX IF NOT EXISTS recipients_due ON recipients(next_attempt) WHERE status = 'queued';
CREATE TABLE IF NOT EXISTS decisions (
	msg_id         TEXT PRIMARY KEY,
	created_at     INTEGER NOT NULL,
	mail_from      TEXT NOT NULL,
	subject        TEXT NOT NULL DEFAULT '',
	classification TEXT NOT NULL DEFAULT '',
	outcome        TEXT NOT NULL,
	state          TEXT NOT NULL,
	expires_at     INTEGER NOT NULL DEFAULT 0,
	detail         TEXT NOT NULL,
	resolved_at    INTEGER NOT NULL DEFAULT 0,
	resolved_by    TEXT NOT NULL DEFAULT '',
	resolution     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS decisions_state ON decisions(state, expires_at);
CREATE TABLE IF NOT EXISTS domain_stats (
	month      TEXT NOT NULL,
	domain     TEXT NOT NULL,
	deliveries INTEGER NOT NULL,
	PRIMARY KEY (month, domain)
);
CREATE TABLE IF NOT EXISTS contacts (
	domain     TEXT PRIMARY KEY,
	first_at   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
	name          TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL,
	role          TEXT NOT NULL,
	disabled      INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS user_addresses (
	user    TEXT NOT NULL,
	address TEXT NOT NULL,
	PRIMARY KEY (user, address)
);
CREATE TABLE IF NOT EXISTS api_tokens (
	name       TEXT PRIMARY KEY,
	hash       BLOB NOT NULL UNIQUE,
	scope      TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	last_used  INTEGER NOT NULL DEFAULT 0,
	disabled   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS console_sessions (
	id_hash    BLOB PRIMARY KEY,
	user       TEXT NOT NULL,
	stage      TEXT NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dev_outbox (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	msg_id      TEXT NOT NULL,
	mail_from   TEXT NOT NULL,
	rcpts       TEXT NOT NULL,
	route       TEXT NOT NULL,
	subject     TEXT NOT NULL DEFAULT '',
	size        INTEGER NOT NULL,
	captured_at INTEGER NOT NULL,
	file        TEXT NOT NULL
);
`

// The secure portal's records: sealed messages (the wrapped key is the only
// way to read one; deleting it destroys the message), their recipients
// (each with a link token, stored hashed), one-time codes, sessions, and
// lock-outs. Tokens, codes and session ids are stored as hashes only.
const baselinePortal = `
CREATE TABLE IF NOT EXISTS sealed (
	id           TEXT PRIMARY KEY,
	msg_id       TEXT NOT NULL,
	parent_id    TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	sender       TEXT NOT NULL,
	sender_name  TEXT NOT NULL DEFAULT '',
	subject      TEXT NOT NULL DEFAULT '',
	hide_subject INTEGER NOT NULL DEFAULT 0,
	size         INTEGER NOT NULL,
	wrapped_key  BLOB,
	state        TEXT NOT NULL DEFAULT 'active',
	destroyed_at INTEGER NOT NULL DEFAULT 0,
	parts        TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS sealed_msg ON sealed(msg_id) WHERE parent_id = '';
CREATE INDEX IF NOT EXISTS sealed_parent ON sealed(parent_id, created_at);
CREATE INDEX IF NOT EXISTS sealed_sender ON sealed(sender, created_at);
CREATE INDEX IF NOT EXISTS sealed_expiry ON sealed(state, expires_at);
CREATE TABLE IF NOT EXISTS sealed_recipients (
	sealed_id     TEXT NOT NULL,
	address       TEXT NOT NULL,
	token_hash    BLOB NOT NULL UNIQUE,
	reference     TEXT NOT NULL UNIQUE,
	state         TEXT NOT NULL DEFAULT 'active',
	notified_at   INTEGER NOT NULL DEFAULT 0,
	first_opened  INTEGER NOT NULL DEFAULT 0,
	last_opened   INTEGER NOT NULL DEFAULT 0,
	last_ip       TEXT NOT NULL DEFAULT '',
	opens         INTEGER NOT NULL DEFAULT 0,
	downloads     INTEGER NOT NULL DEFAULT 0,
	replies       INTEGER NOT NULL DEFAULT 0,
	revoked_at    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (sealed_id, address)
);
CREATE TABLE IF NOT EXISTS portal_forms (
	token_hash BLOB PRIMARY KEY,
	sealed_id  TEXT NOT NULL,
	address    TEXT NOT NULL,
	used_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS portal_forms_used ON portal_forms(used_at);
CREATE TABLE IF NOT EXISTS portal_codes (
	address     TEXT PRIMARY KEY,
	code_hash   BLOB NOT NULL,
	expires_at  INTEGER NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS portal_locks (
	address      TEXT PRIMARY KEY,
	failures     INTEGER NOT NULL DEFAULT 0,
	lockouts     INTEGER NOT NULL DEFAULT 0,
	locked_until INTEGER NOT NULL DEFAULT 0,
	codes_sent   INTEGER NOT NULL DEFAULT 0,
	window_start INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS portal_sessions (
	id_hash     BLOB PRIMARY KEY,
	address     TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS portal_passkeys (
	cred_id    BLOB PRIMARY KEY,
	address    TEXT NOT NULL,
	data       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	last_used  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS portal_passkeys_address ON portal_passkeys(address);
`

// The audit log's rows.
const baselineAudit = `
CREATE TABLE IF NOT EXISTS audit_anchor (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	seq   INTEGER NOT NULL,
	hash  BLOB NOT NULL,
	n     INTEGER NOT NULL DEFAULT 0,
	count INTEGER NOT NULL DEFAULT 0,
	at    INTEGER NOT NULL DEFAULT 0,
	mac   BLOB,
	prev  BLOB,
	sig   BLOB
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
	seq   INTEGER PRIMARY KEY,
	hash  BLOB NOT NULL,
	at    INTEGER NOT NULL,
	sig   BLOB NOT NULL,
	n     INTEGER NOT NULL DEFAULT 0,
	count INTEGER NOT NULL DEFAULT 0,
	mac   BLOB,
	prev  BLOB
);
CREATE TABLE IF NOT EXISTS audit_events (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	at      INTEGER NOT NULL,
	actor   TEXT NOT NULL,
	action  TEXT NOT NULL,
	object  TEXT NOT NULL,
	ip      TEXT NOT NULL DEFAULT '',
	ua      TEXT NOT NULL DEFAULT '',
	detail  TEXT NOT NULL DEFAULT '',
	prev    BLOB,
	hash    BLOB,
	addrs   TEXT NOT NULL DEFAULT '',
	mac     BLOB
);
CREATE INDEX IF NOT EXISTS audit_events_object ON audit_events(object);
`
