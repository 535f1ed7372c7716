-- The SQLite schema and rows that sealpost's store made on main on 2026-12-01
-- (before versioned migrations), written by its own OpenSQLite and store API.
CREATE TABLE messages (
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
CREATE TABLE recipients (
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
CREATE TABLE decisions (
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
CREATE TABLE domain_stats (
	month      TEXT NOT NULL,
	domain     TEXT NOT NULL,
	deliveries INTEGER NOT NULL,
	PRIMARY KEY (month, domain)
);
CREATE TABLE contacts (
	domain     TEXT PRIMARY KEY,
	first_at   INTEGER NOT NULL
);
CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL,
	role          TEXT NOT NULL,
	disabled      INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
, totp TEXT NOT NULL DEFAULT '', totp_step INTEGER NOT NULL DEFAULT 0);
CREATE TABLE user_addresses (
	user    TEXT NOT NULL,
	address TEXT NOT NULL,
	PRIMARY KEY (user, address)
);
CREATE TABLE api_tokens (
	name       TEXT PRIMARY KEY,
	hash       BLOB NOT NULL UNIQUE,
	scope      TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	last_used  INTEGER NOT NULL DEFAULT 0,
	disabled   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE console_sessions (
	id_hash    BLOB PRIMARY KEY,
	user       TEXT NOT NULL,
	stage      TEXT NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE TABLE dev_outbox (
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
CREATE TABLE sealed (
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
, message_id TEXT NOT NULL DEFAULT '', refs TEXT NOT NULL DEFAULT '', sent_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE sealed_recipients (
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
	revoked_at    INTEGER NOT NULL DEFAULT 0, name TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (sealed_id, address)
);
CREATE TABLE portal_forms (
	token_hash BLOB PRIMARY KEY,
	sealed_id  TEXT NOT NULL,
	address    TEXT NOT NULL,
	used_at    INTEGER NOT NULL
);
CREATE TABLE portal_codes (
	address     TEXT PRIMARY KEY,
	code_hash   BLOB NOT NULL,
	expires_at  INTEGER NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE portal_locks (
	address      TEXT PRIMARY KEY,
	failures     INTEGER NOT NULL DEFAULT 0,
	lockouts     INTEGER NOT NULL DEFAULT 0,
	locked_until INTEGER NOT NULL DEFAULT 0,
	codes_sent   INTEGER NOT NULL DEFAULT 0,
	window_start INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE portal_sessions (
	id_hash     BLOB PRIMARY KEY,
	address     TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL
);
CREATE TABLE portal_passkeys (
	cred_id    BLOB PRIMARY KEY,
	address    TEXT NOT NULL,
	data       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	last_used  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE audit_anchor (
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
CREATE TABLE audit_checkpoints (
	seq   INTEGER PRIMARY KEY,
	hash  BLOB NOT NULL,
	at    INTEGER NOT NULL,
	sig   BLOB NOT NULL,
	n     INTEGER NOT NULL DEFAULT 0,
	count INTEGER NOT NULL DEFAULT 0,
	mac   BLOB,
	prev  BLOB
);
CREATE TABLE audit_events (
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
CREATE INDEX messages_state ON messages(state, done_at);
CREATE INDEX recipients_due ON recipients(next_attempt) WHERE status = 'queued';
CREATE INDEX decisions_state ON decisions(state, expires_at);
CREATE UNIQUE INDEX sealed_msg ON sealed(msg_id) WHERE parent_id = '';
CREATE INDEX sealed_parent ON sealed(parent_id, created_at);
CREATE INDEX sealed_sender ON sealed(sender, created_at);
CREATE INDEX sealed_expiry ON sealed(state, expires_at);
CREATE INDEX portal_forms_used ON portal_forms(used_at);
CREATE INDEX portal_passkeys_address ON portal_passkeys(address);
CREATE INDEX audit_events_object ON audit_events(object);
CREATE UNIQUE INDEX sealed_thread_msg ON sealed(msg_id, parent_id) WHERE parent_id <> '';
INSERT INTO messages (id, direction, mail_from, received_at, size, remote_ip, helo, auth_user, header_from, subject, message_id, state, done_at, spool_seg, spool_off, spool_len, spool_key) VALUES ('m-queued', 'out', 'alice@example.gov.uk', 1796029200000, 1234, '192.0.2.1', 'client.example', 'alice', 'alice@example.gov.uk', 'Case 17', 'abc@example.gov.uk', 'queued', 0, 3, 4096, 1300, X'01020304');
INSERT INTO messages (id, direction, mail_from, received_at, size, remote_ip, helo, auth_user, header_from, subject, message_id, state, done_at, spool_seg, spool_off, spool_len, spool_key) VALUES ('m-done', 'in', 'x@example.net', 1796025600000, 99, '', '', '', '', '', '', 'done', 1796029200000, 0, 0, 0, NULL);
INSERT INTO recipients (msg_id, rcpt, route, status, attempts, next_attempt, lease_until, last_error, tls, relay, updated_at, action, then_action) VALUES ('m-queued', 'bob@example.org', 'outbound', 'queued', 0, 1796029200000, 0, '', '', '', 1796029200000, '', '');
INSERT INTO recipients (msg_id, rcpt, route, status, attempts, next_attempt, lease_until, last_error, tls, relay, updated_at, action, then_action) VALUES ('m-queued', 'carol@example.org', 'outbound', 'held', 0, 0, 0, '', '', '', 1796029200000, '', 'seal');
INSERT INTO recipients (msg_id, rcpt, route, status, attempts, next_attempt, lease_until, last_error, tls, relay, updated_at, action, then_action) VALUES ('m-done', 'dave@example.gov.uk', 'mailhost', 'delivered', 1, 0, 0, '', 'TLSv1.3', 'mx.example.gov.uk', 1796029200000, '', '');
INSERT INTO decisions (msg_id, created_at, mail_from, subject, classification, outcome, state, expires_at, detail, resolved_at, resolved_by, resolution) VALUES ('m-queued', 1796029200000, 'alice@example.gov.uk', 'Case 17', '', 'hold', 'held', 1796288400000, '{}', 0, '', '');
INSERT INTO domain_stats (month, domain, deliveries) VALUES ('2026-11', 'example.org', 1);
INSERT INTO contacts (domain, first_at) VALUES ('example.org', 1796029200000);
INSERT INTO users (name, password_hash, role, disabled, created_at, totp, totp_step) VALUES ('alice', '$argon2id$x', 'sender', 0, 1796166551423, '', 0);
INSERT INTO user_addresses (user, address) VALUES ('alice', 'alice@example.gov.uk');
INSERT INTO api_tokens (name, hash, scope, created_at, last_used, disabled) VALUES ('ci', X'3031323334353637383961626364656630313233343536373839616263646566', 'read', 1796166551426, 0, 0);
INSERT INTO sealed (id, msg_id, parent_id, created_at, expires_at, sender, sender_name, subject, hide_subject, size, wrapped_key, state, destroyed_at, parts, message_id, refs, sent_at) VALUES ('s-1', 'm-sealed', '', 1796029200000, 1798621200000, 'alice@example.gov.uk', '', 'Records', 0, 555, X'777261707065642d6b65792d6279746573', 'active', 0, '[]', 'm1@example.gov.uk', '', 0);
INSERT INTO sealed_recipients (sealed_id, address, token_hash, reference, state, notified_at, first_opened, last_opened, last_ip, opens, downloads, replies, revoked_at, name) VALUES ('s-1', 'erin@example.com', X'746f6b656e2d686173682d30303031', 'REF-1', 'active', 0, 0, 0, '', 0, 0, 0, 0, 'Erin');
INSERT INTO portal_sessions (id_hash, address, created_at, expires_at) VALUES (X'736573732d68617368', 'erin@example.com', 1796029200000, 1796032800000);
INSERT INTO audit_events (seq, at, actor, action, object, ip, ua, detail, prev, hash, addrs, mac) VALUES (1, 1796029200000, 'gateway', 'message.received', 'm-queued', '', '', 'size=1234', X'00', X'0102', 'bob@example.org', X'0a0b');
