// Package store keeps sealpost's metadata: the queue of messages and their
// recipients, users, and the dev outbox index. The embedded backend is SQLite
// (pure Go, WAL, synchronous=FULL so that a committed transaction survives a
// power cut).
//
// Writes that make a message durable go through a Committer, which gathers
// the writes of concurrent SMTP sessions and delivery workers into one
// transaction and one fsync (group commit): durability costs one disk flush
// per batch, not per message.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Store is an open metadata database.
type Store struct {
	DB *sql.DB

	// Statements of the hot path, prepared once: SQLite compiles a
	// statement in about as much time as it takes to run it.
	insMessage, insRecipient, updRecipient, finishMessage, countDomain, insAudit, auditHeadStmt *sql.Stmt

	auditChain AuditChain
	migrated   []MigrationState

	auditStmtMu sync.Mutex
	auditStmts  map[int]*sql.Stmt // multi-row audit INSERTs by row count
}

// OpenSQLite opens (creating if needed) the SQLite database at path and
// applies the migrations it has not had (see migrate.go). The gateway opens
// it under the data directory's lock; a command-line tool opening it at the
// same time waits for the migration's transaction and then finds it done.
func OpenSQLite(path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(0)&_pragma=secure_delete(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A file that is not a database (or not readable) is named as such,
	// before any migration talks of tables.
	if _, err := db.ExecContext(ctx, `SELECT count(*) FROM sqlite_master`); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	applied, err := migrate(ctx, db, sqliteMigrations, time.Now)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: migrating %s: %w", path, err)
	}
	st := &Store{DB: db, migrated: applied}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&st.insMessage, `INSERT INTO messages (id, direction, mail_from, received_at, size, remote_ip, helo, auth_user, header_from, subject, message_id, state, spool_seg, spool_off, spool_len, spool_key, tls_request, data_headers) VALUES (?,?,?,?,?,?,?,?,?,?,?, 'queued', ?,?,?,?,?,?)`},
		{&st.insRecipient, `INSERT INTO recipients (msg_id, rcpt, route, status, next_attempt, lease_until, updated_at, action, then_action) VALUES (?,?,?,?,?,?,?,?,?)`},
		{&st.updRecipient, `UPDATE recipients SET status=?, attempts=attempts+1, next_attempt=?, lease_until=0, last_error=?, tls=?, relay=?, updated_at=? WHERE msg_id=? AND rcpt=? AND status='queued'`},
		{&st.countDomain, `INSERT INTO domain_stats (month, domain, deliveries) VALUES (?,?,1) ON CONFLICT(month, domain) DO UPDATE SET deliveries=deliveries+1`},
		{&st.insAudit, `INSERT INTO audit_events (seq, at, actor, action, object, ip, ua, detail, addrs, prev, hash, mac) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`},
		{&st.auditHeadStmt, `SELECT seq, hash, mac FROM audit_events ORDER BY seq DESC LIMIT 1`},
		{&st.finishMessage, `UPDATE messages SET state='done', done_at=?, spool_key=NULL WHERE id=? AND state='queued' AND NOT EXISTS (SELECT 1 FROM recipients WHERE msg_id=messages.id AND status IN ('queued','held','quarantined'))`},
	} {
		if *p.stmt, err = db.PrepareContext(ctx, p.query); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: preparing %q: %w", p.query, err)
		}
	}
	return st, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.DB.Close() }

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// Message is one accepted message.
type Message struct {
	ID         string
	Direction  string // "in", "out" or "dsn"
	MailFrom   string
	ReceivedAt time.Time
	Size       int64
	RemoteIP   string
	Helo       string
	AuthUser   string
	HeaderFrom string
	Subject    string
	MessageID  string
	State      string // "queued" or "done"
	DoneAt     time.Time
	Spool      SpoolLoc
	// TLSRequest is what the sender asked of TLS on the onward hops:
	// TLSRequestRequire or TLSRequestOptional, "" for nothing.
	TLSRequest string
	// DataHeaders are header fields (CRLF-terminated) that the data
	// checks added once the spool held the message: they go above the
	// spooled bytes wherever the message is read (queue.OpenDelivered).
	DataHeaders string
}

// Sender TLS requests (RFC 8689), kept per message.
const (
	// TLSRequestRequire: MAIL FROM carried REQUIRETLS (RFC 8689 §4): every
	// hop must offer REQUIRETLS over verified TLS.
	TLSRequestRequire = "requiretls"
	// TLSRequestOptional: the header had "TLS-Required: No" (RFC 8689 §5)
	// and MAIL FROM no REQUIRETLS (which would override it).
	TLSRequestOptional = "tls-required-no"
)

// SpoolLoc is where a message's sealed bytes are: in spool segment Seg at
// [Off, Off+Len), or, when Seg is 0, in a file of its own. Key is the
// message's own key, wrapped by the installation key; it is cleared when
// the message is done, which makes the bytes unreadable wherever they still
// lie (crypto-erasure). Rows from before per-message keys have none: their
// bytes are sealed under the installation key.
type SpoolLoc struct {
	Seg, Off, Len int64
	Key           []byte
}

// Recipient is the delivery state of one recipient of a message.
type Recipient struct {
	MsgID       string
	Rcpt        string
	Route       string // "mailhost" or "outbound"
	Status      string // "queued", "held", "quarantined", "delivered", "failed", "deleted", "cancelled"
	Action      string // how it is delivered: "" (as usual) or "require-tls"
	Then        string // for held and quarantined recipients: the action a release gives
	Attempts    int
	NextAttempt time.Time
	LeaseUntil  time.Time
	LastError   string
	TLS         string
	Relay       string
	UpdatedAt   time.Time
}

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

// InsertMessage adds a message and its recipients within tx.
func (s *Store) InsertMessage(ctx context.Context, tx *sql.Tx, m *Message, rcpts []Recipient) error {
	_, err := tx.StmtContext(ctx, s.insMessage).ExecContext(ctx,
		m.ID, m.Direction, m.MailFrom, ms(m.ReceivedAt), m.Size, m.RemoteIP, m.Helo, m.AuthUser, m.HeaderFrom, m.Subject, m.MessageID, m.Spool.Seg, m.Spool.Off, m.Spool.Len, m.Spool.Key, m.TLSRequest, m.DataHeaders)
	if err != nil {
		return err
	}
	ins := tx.StmtContext(ctx, s.insRecipient)
	for _, r := range rcpts {
		status := r.Status
		if status == "" {
			status = "queued"
		}
		if _, err := ins.ExecContext(ctx, m.ID, r.Rcpt, r.Route, status, ms(r.NextAttempt), ms(r.LeaseUntil), ms(m.ReceivedAt), r.Action, r.Then); err != nil {
			return err
		}
	}
	return nil
}

// Result is the outcome of one delivery attempt for one recipient.
type Result struct {
	MsgID       string
	Rcpt        string
	Status      string // "queued" (try again), "delivered", "failed"
	NextAttempt time.Time
	Error       string
	TLS         string
	Relay       string
}

// ApplyResults records delivery results within tx and reports which of the
// touched messages have no queued recipient left (they are then marked done).
func (s *Store) ApplyResults(ctx context.Context, tx *sql.Tx, now time.Time, results []Result) (done []string, err error) {
	touched := map[string]bool{}
	upd := tx.StmtContext(ctx, s.updRecipient)
	for _, r := range results {
		_, err := upd.ExecContext(ctx, r.Status, ms(r.NextAttempt), r.Error, r.TLS, r.Relay, ms(now), r.MsgID, r.Rcpt)
		if err != nil {
			return nil, err
		}
		touched[r.MsgID] = true
	}
	for id := range touched {
		ok, err := s.finishIfDone(ctx, tx, now, id)
		if err != nil {
			return nil, err
		}
		if ok {
			done = append(done, id)
		}
	}
	return done, nil
}

// finishIfDone marks message id done if none of its recipients is queued.
func (s *Store) finishIfDone(ctx context.Context, tx *sql.Tx, now time.Time, id string) (bool, error) {
	res, err := tx.StmtContext(ctx, s.finishMessage).ExecContext(ctx, ms(now), id)
	if err != nil {
		return false, err
	}
	c, _ := res.RowsAffected()
	return c > 0, nil
}

// ReleaseLeases makes every queued recipient available to this process again:
// at start, leases held by a previous run of this node are void.
func (s *Store) ReleaseLeases(ctx context.Context) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE recipients SET lease_until=0 WHERE status='queued' AND lease_until<>0`)
	return err
}

// LeaseDue leases up to limit queued recipients whose next attempt is due and
// whose lease has expired, and returns them.
func (s *Store) LeaseDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Recipient, error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT msg_id, rcpt, route, attempts, action FROM recipients WHERE status='queued' AND next_attempt<=? AND lease_until<=? ORDER BY next_attempt LIMIT ?`, ms(now), ms(now), limit)
	if err != nil {
		return nil, err
	}
	var out []Recipient
	for rows.Next() {
		var r Recipient
		if err := rows.Scan(&r.MsgID, &r.Rcpt, &r.Route, &r.Attempts, &r.Action); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	until := ms(now.Add(lease))
	for _, r := range out {
		if _, err := tx.ExecContext(ctx, `UPDATE recipients SET lease_until=? WHERE msg_id=? AND rcpt=?`, until, r.MsgID, r.Rcpt); err != nil {
			return nil, err
		}
	}
	return out, tx.Commit()
}

// NextDue is the earliest next attempt among queued recipients (zero if none).
func (s *Store) NextDue(ctx context.Context) (time.Time, error) {
	var v sql.NullInt64
	err := s.DB.QueryRowContext(ctx, `SELECT min(next_attempt) FROM recipients WHERE status='queued'`).Scan(&v)
	if err != nil || !v.Valid {
		return time.Time{}, err
	}
	return fromMS(v.Int64), nil
}

const messageCols = `id, direction, mail_from, received_at, size, remote_ip, helo, auth_user, header_from, subject, message_id, state, done_at, spool_seg, spool_off, spool_len, spool_key, tls_request, data_headers`

func scanMessage(sc interface{ Scan(...any) error }) (*Message, error) {
	var m Message
	var recv, done int64
	if err := sc.Scan(&m.ID, &m.Direction, &m.MailFrom, &recv, &m.Size, &m.RemoteIP, &m.Helo, &m.AuthUser, &m.HeaderFrom, &m.Subject, &m.MessageID, &m.State, &done, &m.Spool.Seg, &m.Spool.Off, &m.Spool.Len, &m.Spool.Key, &m.TLSRequest, &m.DataHeaders); err != nil {
		return nil, err
	}
	m.ReceivedAt, m.DoneAt = fromMS(recv), fromMS(done)
	return &m, nil
}

// Message returns one message.
func (s *Store) Message(ctx context.Context, id string) (*Message, error) {
	m, err := scanMessage(s.DB.QueryRowContext(ctx, `SELECT `+messageCols+` FROM messages WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return m, err
}

// Recipients returns the recipients of one message.
func (s *Store) Recipients(ctx context.Context, id string) ([]Recipient, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT msg_id, rcpt, route, status, attempts, next_attempt, lease_until, last_error, tls, relay, updated_at, action, then_action FROM recipients WHERE msg_id=? ORDER BY rcpt`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Recipient
	for rows.Next() {
		var r Recipient
		var next, lease, upd int64
		if err := rows.Scan(&r.MsgID, &r.Rcpt, &r.Route, &r.Status, &r.Attempts, &next, &lease, &r.LastError, &r.TLS, &r.Relay, &upd, &r.Action, &r.Then); err != nil {
			return nil, err
		}
		r.NextAttempt, r.LeaseUntil, r.UpdatedAt = fromMS(next), fromMS(lease), fromMS(upd)
		out = append(out, r)
	}
	return out, rows.Err()
}

// QueuedMessages lists messages that still have recipients to deliver,
// oldest first.
func (s *Store) QueuedMessages(ctx context.Context, limit int) ([]*Message, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT `+messageCols+` FROM messages WHERE state='queued' ORDER BY received_at LIMIT ?`, limit)
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

// QueueDepth counts queued recipients.
func (s *Store) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := s.DB.QueryRowContext(ctx, `SELECT count(*) FROM recipients WHERE status='queued'`).Scan(&n)
	return n, err
}

// QueuedSpool returns where the spooled bytes of every queued message are:
// what the spool must keep.
func (s *Store) QueuedSpool(ctx context.Context) (map[string]SpoolLoc, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT id, spool_seg, spool_off, spool_len, spool_key FROM messages WHERE state='queued'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]SpoolLoc{}
	for rows.Next() {
		var id string
		var l SpoolLoc
		if err := rows.Scan(&id, &l.Seg, &l.Off, &l.Len, &l.Key); err != nil {
			return nil, err
		}
		out[id] = l
	}
	return out, rows.Err()
}

// MoveSpool records that queued message id's bytes moved from one place in
// the spool to another (compaction). It reports false, changing nothing,
// when the message is no longer queued at from.
func (s *Store) MoveSpool(ctx context.Context, tx *sql.Tx, id string, from, to SpoolLoc) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE messages SET spool_seg=?, spool_off=? WHERE id=? AND state='queued' AND spool_seg=? AND spool_off=?`, to.Seg, to.Off, id, from.Seg, from.Off)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RetryNow makes every queued recipient of message id due now. It reports
// whether the message has queued recipients.
func (s *Store) RetryNow(ctx context.Context, id string, now time.Time) (bool, error) {
	res, err := s.DB.ExecContext(ctx, `UPDATE recipients SET next_attempt=?, lease_until=0 WHERE msg_id=? AND status='queued'`, ms(now), id)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// DeleteQueued removes a message from delivery: its queued recipients become
// "deleted" and the message done. It reports whether anything changed.
func (s *Store) DeleteQueued(ctx context.Context, id string, now time.Time) (bool, error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE recipients SET status='deleted', last_error='deleted by operator', lease_until=0, updated_at=? WHERE msg_id=? AND status='queued'`, ms(now), id)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	if _, err := s.finishIfDone(ctx, tx, now, id); err != nil {
		return false, err
	}
	return n > 0, tx.Commit()
}

// PruneDone removes messages finished before cutoff, with their recipients.
func (s *Store) PruneDone(ctx context.Context, cutoff time.Time) (int64, error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM recipients WHERE msg_id IN (SELECT id FROM messages WHERE state='done' AND done_at<?)`, ms(cutoff)); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE state='done' AND done_at<?`, ms(cutoff))
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return n, tx.Commit()
}

// Like escapes s for a LIKE pattern with ESCAPE '\'.
func Like(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}
