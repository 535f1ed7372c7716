package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// Decision is the policy's decision about an outbound message, kept when it
// found something or did more than deliver: what the operator reviews
// (held, quarantined), looks up (a rejection's reference) and reports on.
type Decision struct {
	MsgID          string
	CreatedAt      time.Time
	MailFrom       string
	Subject        string
	Classification string
	Outcome        string // the most protective action
	State          string // held, quarantined, rejected, passed, released, cancelled, deleted, expired
	ExpiresAt      time.Time
	Detail         string // policy.Decision as JSON
	ResolvedAt     time.Time
	ResolvedBy     string
	Resolution     string
}

// Decision states a release or deletion applies to.
const pendingDecision = `state IN ('held','quarantined')`

// InsertDecision records d within tx.
func (s *Store) InsertDecision(ctx context.Context, tx *sql.Tx, d *Decision) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO decisions (msg_id, created_at, mail_from, subject, classification, outcome, state, expires_at, detail) VALUES (?,?,?,?,?,?,?,?,?)`,
		d.MsgID, ms(d.CreatedAt), d.MailFrom, d.Subject, d.Classification, d.Outcome, d.State, ms(d.ExpiresAt), d.Detail)
	return err
}

// InsertDecisionNow records d in a transaction of its own (rejections, which
// have no message to go with).
func (s *Store) InsertDecisionNow(ctx context.Context, d *Decision) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.InsertDecision(ctx, tx, d); err != nil {
		return err
	}
	return tx.Commit()
}

const decisionCols = `msg_id, created_at, mail_from, subject, classification, outcome, state, expires_at, detail, resolved_at, resolved_by, resolution`

func scanDecision(sc interface{ Scan(...any) error }) (*Decision, error) {
	var d Decision
	var c, e, r int64
	if err := sc.Scan(&d.MsgID, &c, &d.MailFrom, &d.Subject, &d.Classification, &d.Outcome, &d.State, &e, &d.Detail, &r, &d.ResolvedBy, &d.Resolution); err != nil {
		return nil, err
	}
	d.CreatedAt, d.ExpiresAt, d.ResolvedAt = fromMS(c), fromMS(e), fromMS(r)
	return &d, nil
}

// GetDecision returns the decision about message id.
func (s *Store) GetDecision(ctx context.Context, id string) (*Decision, error) {
	d, err := scanDecision(s.DB.QueryRowContext(ctx, `SELECT `+decisionCols+` FROM decisions WHERE msg_id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return d, err
}

// Decisions lists decisions in the given states (all if none), newest first.
func (s *Store) Decisions(ctx context.Context, states []string, limit int) ([]*Decision, error) {
	q := `SELECT ` + decisionCols + ` FROM decisions`
	var args []any
	if len(states) > 0 {
		q += ` WHERE state IN (?` + strings.Repeat(",?", len(states)-1) + `)`
		for _, st := range states {
			args = append(args, st)
		}
	}
	q += ` ORDER BY created_at DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Decision
	for rows.Next() {
		d, err := scanDecision(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ErrResolved is returned when a held or quarantined message was already
// released, cancelled, deleted or expired.
var ErrResolved = errors.New("already resolved")

// Resolve ends the wait of a held or quarantined message. release: its
// waiting recipients are queued with the action chosen for after a release;
// otherwise (cancelled, deleted, expired) they are dropped. state is the
// decision's new state. It returns the waiting recipients and reports
// whether the message is finished (nothing left to deliver).
func (s *Store) Resolve(ctx context.Context, id string, release bool, state, by, reason string, now time.Time) (rcpts []string, done bool, err error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE decisions SET state=?, resolved_at=?, resolved_by=?, resolution=? WHERE msg_id=? AND `+pendingDecision, state, ms(now), by, reason, id)
	if err != nil {
		return nil, false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.GetDecision(ctx, id); err != nil {
			return nil, false, err
		}
		return nil, false, ErrResolved
	}
	rows, err := tx.QueryContext(ctx, `SELECT rcpt FROM recipients WHERE msg_id=? AND status IN ('held','quarantined') ORDER BY rcpt`, id)
	if err != nil {
		return nil, false, err
	}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return nil, false, err
		}
		rcpts = append(rcpts, r)
	}
	rows.Close()
	if release {
		_, err = tx.ExecContext(ctx, `UPDATE recipients SET status='queued', route=CASE WHEN then_action='portal' THEN 'portal' WHEN then_action='encrypt-smime' AND route='outbound' THEN 'smime' WHEN then_action IN ('encrypt','encrypt-pgp') AND route='outbound' THEN then_action ELSE route END, action=(CASE WHEN then_action IN ('require-tls','portal','encrypt-smime') THEN then_action ELSE '' END) || (CASE WHEN action LIKE '%,split%' AND then_action<>'portal' THEN ',split' ELSE '' END), next_attempt=?, lease_until=0, updated_at=? WHERE msg_id=? AND status IN ('held','quarantined')`, ms(now), ms(now), id)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE recipients SET status='cancelled', last_error=?, updated_at=? WHERE msg_id=? AND status IN ('held','quarantined')`, state+": "+reason, ms(now), id)
	}
	if err != nil {
		return nil, false, err
	}
	done, err = s.finishIfDone(ctx, tx, now, id)
	if err != nil {
		return nil, false, err
	}
	return rcpts, done, tx.Commit()
}

// ExpiredDecisions lists held or quarantined messages whose wait ended
// before now.
func (s *Store) ExpiredDecisions(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT msg_id FROM decisions WHERE `+pendingDecision+` AND expires_at>0 AND expires_at<=? LIMIT ?`, ms(now), limit)
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

// KnownDomains returns every external domain mail was delivered to.
func (s *Store) KnownDomains(ctx context.Context) (map[string]bool, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT domain FROM contacts`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out[d] = true
	}
	return out, rows.Err()
}

// AddContacts records domains as delivered to, within tx.
func (s *Store) AddContacts(ctx context.Context, tx *sql.Tx, domains []string, now time.Time) error {
	for _, d := range domains {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO contacts (domain, first_at) VALUES (?,?)`, d, ms(now)); err != nil {
			return err
		}
	}
	return nil
}

// CountDomains adds one delivery per entry of domains to this month's
// per-domain count (usage reports), within tx.
func (s *Store) CountDomains(ctx context.Context, tx *sql.Tx, now time.Time, domains []string) error {
	month := now.UTC().Format("2006-01")
	st := tx.StmtContext(ctx, s.countDomain)
	for _, d := range domains {
		if _, err := st.ExecContext(ctx, month, d); err != nil {
			return err
		}
	}
	return nil
}
