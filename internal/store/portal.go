package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// The secure portal's records: sealed messages (the wrapped key is the only
// way to read one; deleting it destroys the message), their recipients
// (each with a link token, stored hashed), one-time codes, sessions, and
// lock-outs. Tokens, codes and session ids are stored as hashes only.

// Sealed is a message sealed into the portal.
type Sealed struct {
	ID          string
	MsgID       string
	ParentID    string // for a reply: the message it answers
	CreatedAt   time.Time
	ExpiresAt   time.Time
	Sender      string
	SenderName  string
	Subject     string
	HideSubject bool
	Size        int64
	WrappedKey  []byte // nil once destroyed
	State       string // active, revoked, expired
	DestroyedAt time.Time
	Parts       string // JSON: the bodies and attachments (names, types, sizes)
	// MessageID and References are the message's own header fields
	// (without angle brackets; References space-separated): what a reply
	// threads to (RFC 5322 §3.6.4).
	MessageID  string
	References string
	// SentAt is when the sender sent it (its Date field when that is
	// believable, else when the gateway received it).
	SentAt time.Time
}

// SealedRecipient is one recipient of a sealed message.
type SealedRecipient struct {
	SealedID    string
	Address     string
	TokenHash   []byte
	Reference   string
	State       string // active, revoked
	NotifiedAt  time.Time
	FirstOpened time.Time
	LastOpened  time.Time
	LastIP      string
	Opens       int
	Downloads   int
	Replies     int
	RevokedAt   time.Time
	Name        string // the display name the message gave the address (To/Cc), "" if none
}

// InsertSealed records a sealed message and its recipients within tx.
func (s *Store) InsertSealed(ctx context.Context, tx *sql.Tx, m *Sealed, rcpts []SealedRecipient) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO sealed (id, msg_id, parent_id, created_at, expires_at, sender, sender_name, subject, hide_subject, size, wrapped_key, state, parts, message_id, refs, sent_at) VALUES (?,?,?,?,?,?,?,?,?,?,?, 'active', ?,?,?,?)`,
		m.ID, m.MsgID, m.ParentID, ms(m.CreatedAt), ms(m.ExpiresAt), m.Sender, m.SenderName, m.Subject, m.HideSubject, m.Size, m.WrappedKey, m.Parts, m.MessageID, m.References, ms(m.SentAt))
	if err != nil {
		return err
	}
	return s.AddSealedRecipients(ctx, tx, m.ID, rcpts)
}

// AddSealedRecipients adds recipients to a sealed message within tx.
func (s *Store) AddSealedRecipients(ctx context.Context, tx *sql.Tx, id string, rcpts []SealedRecipient) error {
	for _, r := range rcpts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sealed_recipients (sealed_id, address, token_hash, reference, notified_at, name) VALUES (?,?,?,?,?,?)`,
			id, r.Address, r.TokenHash, r.Reference, ms(r.NotifiedAt), r.Name); err != nil {
			return err
		}
	}
	return nil
}

const sealedCols = `id, msg_id, parent_id, created_at, expires_at, sender, sender_name, subject, hide_subject, size, wrapped_key, state, destroyed_at, parts, message_id, refs, sent_at`

func scanSealed(sc interface{ Scan(...any) error }) (*Sealed, error) {
	var m Sealed
	var c, e, d, sent int64
	if err := sc.Scan(&m.ID, &m.MsgID, &m.ParentID, &c, &e, &m.Sender, &m.SenderName, &m.Subject, &m.HideSubject, &m.Size, &m.WrappedKey, &m.State, &d, &m.Parts,
		&m.MessageID, &m.References, &sent); err != nil {
		return nil, err
	}
	m.CreatedAt, m.ExpiresAt, m.DestroyedAt, m.SentAt = fromMS(c), fromMS(e), fromMS(d), fromMS(sent)
	if m.SentAt.IsZero() {
		m.SentAt = m.CreatedAt // sealed before the sending time was kept
	}
	return &m, nil
}

// GetSealed returns a sealed message.
func (s *Store) GetSealed(ctx context.Context, id string) (*Sealed, error) {
	m, err := scanSealed(s.DB.QueryRowContext(ctx, `SELECT `+sealedCols+` FROM sealed WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return m, err
}

// SealedByMsg returns the sealed message made from queued message msgID.
func (s *Store) SealedByMsg(ctx context.Context, msgID string) (*Sealed, error) {
	m, err := scanSealed(s.DB.QueryRowContext(ctx, `SELECT `+sealedCols+` FROM sealed WHERE msg_id=? AND parent_id=''`, msgID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return m, err
}

// SealedInThread returns the message of the thread of parent made from
// queued message msgID.
func (s *Store) SealedInThread(ctx context.Context, msgID, parent string) (*Sealed, error) {
	m, err := scanSealed(s.DB.QueryRowContext(ctx, `SELECT `+sealedCols+` FROM sealed WHERE msg_id=? AND parent_id=?`, msgID, parent))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return m, err
}

// ThreadOf returns the messages of the thread of root that address is a
// party to, oldest first: what address replied, and what was sealed into
// the thread for address (the staff's answers). One recipient never sees
// another's.
func (s *Store) ThreadOf(ctx context.Context, root, address string) ([]*Sealed, error) {
	return s.sealedList(ctx, `SELECT `+sealedCols+` FROM sealed WHERE parent_id=? AND (sender=? OR id IN (SELECT sealed_id FROM sealed_recipients WHERE address=? AND state='active')) ORDER BY created_at`,
		root, address, address)
}

// SealedRecipient returns one recipient of a sealed message.
func (s *Store) SealedRecipient(ctx context.Context, id, address string) (*SealedRecipient, error) {
	r, err := scanSealedRcpt(s.DB.QueryRowContext(ctx, `SELECT `+sealedRcptCols+` FROM sealed_recipients WHERE sealed_id=? AND address=?`, id, address))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return r, err
}

// ErrFormUsed: a reply form was submitted before; a resubmission does
// nothing.
var ErrFormUsed = errors.New("form already submitted")

// UsePortalForm consumes a reply form's token (its hash), once: of
// concurrent or repeated submissions exactly one gets nil, the others
// ErrFormUsed. The caller has checked that the token is one it issued for
// message id and address.
func (s *Store) UsePortalForm(ctx context.Context, hash []byte, id, address string, now time.Time) error {
	res, err := s.DB.ExecContext(ctx, `INSERT INTO portal_forms (token_hash, sealed_id, address, used_at) VALUES (?,?,?,?) ON CONFLICT(token_hash) DO NOTHING`, hash, id, address, ms(now))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	return ErrFormUsed
}

// ReleasePortalForm makes a consumed form usable again: the reply it
// carried could not be sent, and the person may press the button again.
func (s *Store) ReleasePortalForm(ctx context.Context, hash []byte) error {
	_, err := s.DB.ExecContext(ctx, `DELETE FROM portal_forms WHERE token_hash=?`, hash)
	return err
}

// PrunePortalForms forgets the forms used before t (forms issued that long
// ago are refused anyway).
func (s *Store) PrunePortalForms(ctx context.Context, t time.Time) error {
	_, err := s.DB.ExecContext(ctx, `DELETE FROM portal_forms WHERE used_at<?`, ms(t))
	return err
}

// Thread returns the replies to a sealed message, oldest first.
func (s *Store) Thread(ctx context.Context, id string) ([]*Sealed, error) {
	return s.sealedList(ctx, `SELECT `+sealedCols+` FROM sealed WHERE parent_id=? ORDER BY created_at`, id)
}

// SentBy lists what sender sealed, newest first.
func (s *Store) SentBy(ctx context.Context, sender string, limit int) ([]*Sealed, error) {
	return s.sealedList(ctx, `SELECT `+sealedCols+` FROM sealed WHERE sender=? AND parent_id='' ORDER BY created_at DESC LIMIT ?`, sender, limit)
}

func (s *Store) sealedList(ctx context.Context, q string, args ...any) ([]*Sealed, error) {
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Sealed
	for rows.Next() {
		m, err := scanSealed(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

const sealedRcptCols = `sealed_id, address, token_hash, reference, state, notified_at, first_opened, last_opened, last_ip, opens, downloads, replies, revoked_at, name`

func scanSealedRcpt(sc interface{ Scan(...any) error }) (*SealedRecipient, error) {
	var r SealedRecipient
	var n, f, l, rv int64
	if err := sc.Scan(&r.SealedID, &r.Address, &r.TokenHash, &r.Reference, &r.State, &n, &f, &l, &r.LastIP, &r.Opens, &r.Downloads, &r.Replies, &rv, &r.Name); err != nil {
		return nil, err
	}
	r.NotifiedAt, r.FirstOpened, r.LastOpened, r.RevokedAt = fromMS(n), fromMS(f), fromMS(l), fromMS(rv)
	return &r, nil
}

// SealedRecipientByToken finds a recipient by the hash of its link token.
func (s *Store) SealedRecipientByToken(ctx context.Context, hash []byte) (*SealedRecipient, error) {
	r, err := scanSealedRcpt(s.DB.QueryRowContext(ctx, `SELECT `+sealedRcptCols+` FROM sealed_recipients WHERE token_hash=?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return r, err
}

// SealedRecipientByReference finds a recipient by the reference printed in
// a notification without a link.
func (s *Store) SealedRecipientByReference(ctx context.Context, ref string) (*SealedRecipient, error) {
	r, err := scanSealedRcpt(s.DB.QueryRowContext(ctx, `SELECT `+sealedRcptCols+` FROM sealed_recipients WHERE reference=?`, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return r, err
}

// SealedRecipients lists the recipients of a sealed message.
func (s *Store) SealedRecipients(ctx context.Context, id string) ([]*SealedRecipient, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT `+sealedRcptCols+` FROM sealed_recipients WHERE sealed_id=? ORDER BY address`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*SealedRecipient
	for rows.Next() {
		r, err := scanSealedRcpt(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// InboxOf lists the active sealed messages addressed to address, newest first.
func (s *Store) InboxOf(ctx context.Context, address string, limit int) ([]*Sealed, error) {
	return s.sealedList(ctx, `SELECT `+prefixed("s.", sealedCols)+` FROM sealed s JOIN sealed_recipients r ON r.sealed_id=s.id WHERE r.address=? AND s.parent_id='' ORDER BY s.created_at DESC LIMIT ?`, address, limit)
}

func prefixed(p, cols string) string {
	out := ""
	start := 0
	for i := 0; i <= len(cols); i++ {
		if i == len(cols) || cols[i] == ',' {
			c := cols[start:i]
			for len(c) > 0 && c[0] == ' ' {
				c = c[1:]
			}
			if out != "" {
				out += ", "
			}
			out += p + c
			start = i + 1
		}
	}
	return out
}

// MarkNotified records that a recipient's notification was sent.
func (s *Store) MarkNotified(ctx context.Context, id, address string, now time.Time) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE sealed_recipients SET notified_at=? WHERE sealed_id=? AND address=?`, ms(now), id, address)
	return err
}

// RecordAccess counts a view, download or reply by a recipient.
func (s *Store) RecordAccess(ctx context.Context, id, address, kind, ip string, now time.Time) error {
	col := map[string]string{"view": "opens", "download": "downloads", "reply": "replies"}[kind]
	if col == "" {
		return errors.New("store: unknown access kind " + kind)
	}
	_, err := s.DB.ExecContext(ctx, `UPDATE sealed_recipients SET `+col+`=`+col+`+1, last_opened=?, first_opened=CASE WHEN first_opened=0 THEN ? ELSE first_opened END, last_ip=? WHERE sealed_id=? AND address=?`,
		ms(now), ms(now), ip, id, address)
	return err
}

// RevokeRecipient revokes one recipient's access; when none is left active
// the message's key is destroyed. It reports whether the key went, and
// which messages of the recipient's conversation it destroyed with it:
// their replies, and the answers to them nobody else may still read.
func (s *Store) RevokeRecipient(ctx context.Context, id, address string, now time.Time) (destroyed bool, gone []string, err error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return false, nil, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE sealed_recipients SET state='revoked', revoked_at=? WHERE (sealed_id=? OR sealed_id IN (SELECT id FROM sealed WHERE parent_id=?)) AND address=? AND state='active'`,
		ms(now), id, id, address); err != nil {
		return false, nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM sealed WHERE parent_id=? AND wrapped_key IS NOT NULL AND (sender=? OR id IN (SELECT sealed_id FROM sealed_recipients WHERE address=?))
		AND NOT EXISTS (SELECT 1 FROM sealed_recipients r WHERE r.sealed_id=sealed.id AND r.state='active')`, id, address, address)
	if err != nil {
		return false, nil, err
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return false, nil, err
		}
		gone = append(gone, c)
	}
	rows.Close()
	for _, c := range gone {
		if _, err := tx.ExecContext(ctx, `UPDATE sealed SET wrapped_key=NULL, state='revoked', destroyed_at=? WHERE id=?`, ms(now), c); err != nil {
			return false, nil, err
		}
	}
	var left int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sealed_recipients WHERE sealed_id=? AND state='active'`, id).Scan(&left); err != nil {
		return false, nil, err
	}
	if left == 0 {
		if err := destroy(ctx, tx, id, "revoked", now); err != nil {
			return false, nil, err
		}
		destroyed = true
	}
	return destroyed, gone, tx.Commit()
}

// DestroySealed destroys a message's key (and its replies'): state is
// "revoked" or "expired".
func (s *Store) DestroySealed(ctx context.Context, id, state string, now time.Time) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE sealed_recipients SET state='revoked', revoked_at=? WHERE sealed_id=? AND state='active'`, ms(now), id); err != nil {
		return err
	}
	if err := destroy(ctx, tx, id, state, now); err != nil {
		return err
	}
	return tx.Commit()
}

func destroy(ctx context.Context, tx *sql.Tx, id, state string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE sealed SET wrapped_key=NULL, state=?, destroyed_at=? WHERE (id=? OR parent_id=?) AND wrapped_key IS NOT NULL`, state, ms(now), id, id)
	return err
}

// SetSealedExpiry changes when a sealed message expires.
func (s *Store) SetSealedExpiry(ctx context.Context, id string, at time.Time) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE sealed SET expires_at=? WHERE (id=? OR parent_id=?) AND state='active'`, ms(at), id, id)
	return err
}

// ExpiredSealed lists active sealed messages past their expiry.
func (s *Store) ExpiredSealed(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT id FROM sealed WHERE state='active' AND parent_id='' AND expires_at<=? LIMIT ?`, ms(now), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// Passkey is a WebAuthn credential registered by a portal user.
type Passkey struct {
	CredID    []byte
	Address   string
	Data      string // the credential as JSON (public key, sign count, flags)
	CreatedAt time.Time
	LastUsed  time.Time
}

// PutPasskey stores or updates a passkey.
func (s *Store) PutPasskey(ctx context.Context, p *Passkey) error {
	_, err := s.DB.ExecContext(ctx, `INSERT INTO portal_passkeys (cred_id, address, data, created_at, last_used) VALUES (?,?,?,?,?)
		ON CONFLICT(cred_id) DO UPDATE SET data=excluded.data, last_used=excluded.last_used`, p.CredID, p.Address, p.Data, ms(p.CreatedAt), ms(p.LastUsed))
	return err
}

// Passkeys lists the passkeys of address.
func (s *Store) Passkeys(ctx context.Context, address string) ([]*Passkey, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT cred_id, address, data, created_at, last_used FROM portal_passkeys WHERE address=? ORDER BY created_at`, address)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Passkey
	for rows.Next() {
		p := &Passkey{}
		var c, l int64
		if err := rows.Scan(&p.CredID, &p.Address, &p.Data, &c, &l); err != nil {
			return nil, err
		}
		p.CreatedAt, p.LastUsed = fromMS(c), fromMS(l)
		out = append(out, p)
	}
	return out, rows.Err()
}

// PasskeyOwner returns the address a credential id belongs to.
func (s *Store) PasskeyOwner(ctx context.Context, credID []byte) (string, error) {
	var a string
	err := s.DB.QueryRowContext(ctx, `SELECT address FROM portal_passkeys WHERE cred_id=?`, credID).Scan(&a)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return a, err
}
