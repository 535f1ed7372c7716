package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// The audit log's rows. The chain itself (what each link covers, the keys)
// is package audit's: the store only keeps the rows in order and hands each
// new event, with the head of the chain before it, to an AuditChain inside
// the transaction that appends it.

// AuditEvent is one entry of the audit log. Addresses are kept (who sent,
// who received); subjects and bodies never are.
type AuditEvent struct {
	Seq    int64
	At     time.Time
	Actor  string // who: an address, "admin:NAME", "gateway"
	Action string // what: message.received, delivery.attempt, portal.view, ...
	Object string // on what: a message id, a sealed message id, an address
	IP     string
	UA     string
	Detail string   // key=value pairs; never a subject or a body
	Addrs  []string // the other addresses the event is about (recipients)
	Prev   []byte   // the chain's head before this event
	Hash   []byte   // the chain's head through this event
	MAC    []byte   // the keyed link through this event
}

// AuditHead is the newest link of the chain.
type AuditHead struct {
	Seq       int64
	Hash, MAC []byte
}

// AuditChain links a new event to the head of the chain: it sets e.Hash and
// e.MAC (e.Seq and e.Prev are set). Package audit implements it with the
// installation's keys.
type AuditChain interface {
	Link(head AuditHead, e *AuditEvent)
}

// ErrNoAuditKey is returned by appends on a store that has no AuditChain:
// an event that cannot be linked is not written unlinked.
var ErrNoAuditKey = errors.New("store: the audit log cannot be written without the installation key")

// SetAuditChain sets how appended events are linked.
func (s *Store) SetAuditChain(c AuditChain) { s.auditChain = c }

const auditCols = `seq, at, actor, action, object, ip, ua, detail, addrs, prev, hash, mac`

func scanAudit(sc interface{ Scan(...any) error }) (*AuditEvent, error) {
	e := &AuditEvent{}
	var at int64
	var addrs string
	if err := sc.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.IP, &e.UA, &e.Detail, &addrs, &e.Prev, &e.Hash, &e.MAC); err != nil {
		return nil, err
	}
	e.At = fromMS(at)
	if addrs != "" {
		e.Addrs = strings.Split(addrs, "\n")
	}
	return e, nil
}

// auditHead reads the newest link within tx: the newest event, or the
// retention anchor when every event was pruned.
func (s *Store) auditHead(ctx context.Context, tx *sql.Tx) (AuditHead, error) {
	var h AuditHead
	err := tx.StmtContext(ctx, s.auditHeadStmt).QueryRowContext(ctx).Scan(&h.Seq, &h.Hash, &h.MAC)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, `SELECT seq, hash, mac FROM audit_anchor WHERE id=1`).Scan(&h.Seq, &h.Hash, &h.MAC)
		if errors.Is(err, sql.ErrNoRows) {
			return AuditHead{}, nil
		}
	}
	return h, err
}

type headCacheKey struct{}

// headCache remembers the chain's head within one transaction (the
// Committer's batch), so that its ops do not each read it again.
type headCache struct {
	tx   *sql.Tx
	head AuditHead
}

// WithAuditHeadCache returns a context for the ops of one transaction that
// lets them share the chain's head.
func WithAuditHeadCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, headCacheKey{}, &headCache{})
}

// AppendAuditTx adds events at the end of the chain within tx: with the
// rows of the operation they record, in one commit (the accept and delivery
// paths use the Committer's shared transaction).
func (s *Store) AppendAuditTx(ctx context.Context, tx *sql.Tx, events ...*AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	if s.auditChain == nil {
		return ErrNoAuditKey
	}
	cache, _ := ctx.Value(headCacheKey{}).(*headCache)
	var head AuditHead
	if cache != nil && cache.tx == tx {
		head = cache.head
	} else {
		var err error
		if head, err = s.auditHead(ctx, tx); err != nil {
			return err
		}
	}
	if cache != nil {
		// Whatever happens below, the cache is only good again once the
		// appends succeeded.
		cache.tx = nil
	}
	ins := tx.StmtContext(ctx, s.insAudit)
	for _, e := range events {
		e.Seq, e.Prev = head.Seq+1, head.Hash
		s.auditChain.Link(head, e)
		if _, err := ins.ExecContext(ctx, e.Seq, ms(e.At), e.Actor, e.Action, e.Object, e.IP, e.UA, e.Detail, strings.Join(e.Addrs, "\n"), e.Prev, e.Hash, e.MAC); err != nil {
			return err
		}
		head = AuditHead{Seq: e.Seq, Hash: e.Hash, MAC: e.MAC}
	}
	if cache != nil {
		cache.tx, cache.head = tx, head
	}
	return nil
}

// AppendAudit adds an event at the end of the chain in a transaction of its
// own.
func (s *Store) AppendAudit(ctx context.Context, e *AuditEvent) error {
	if s.auditChain == nil {
		return ErrNoAuditKey
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.AppendAuditTx(ctx, tx, e); err != nil {
		return err
	}
	return tx.Commit()
}

// AuditCheckpoint is a signature over the chain up to an event. Checkpoints
// are numbered and chained: each carries the digest of the one before it
// and how many events came since.
type AuditCheckpoint struct {
	N     int64 // 1, 2, 3, ...
	Seq   int64 // the newest event covered
	Count int64 // events since the previous checkpoint
	At    time.Time
	Hash  []byte // the chain's head at Seq
	MAC   []byte // the keyed link at Seq
	Prev  []byte // digest of checkpoint N-1 (nil for the first)
	Sig   []byte
}

const cpCols = `n, seq, count, at, hash, mac, prev, sig`

func scanCheckpoint(sc interface{ Scan(...any) error }) (*AuditCheckpoint, error) {
	c := &AuditCheckpoint{}
	var at int64
	if err := sc.Scan(&c.N, &c.Seq, &c.Count, &at, &c.Hash, &c.MAC, &c.Prev, &c.Sig); err != nil {
		return nil, err
	}
	c.At = fromMS(at)
	return c, nil
}

// AddAuditCheckpoint signs the chain's head in one transaction: make gets
// the newest checkpoint (nil if none) and the head, and returns the
// checkpoints to add, oldest first (none: nothing to sign). It runs with the
// database's write lock held, so that two processes never number two
// checkpoints alike, and what make writes elsewhere (the witness) is in the
// order of the rows.
func (s *Store) AddAuditCheckpoint(ctx context.Context, make func(last *AuditCheckpoint, head AuditHead) ([]*AuditCheckpoint, error)) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	last, err := scanCheckpoint(tx.QueryRowContext(ctx, `SELECT `+cpCols+` FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		last, err = nil, nil
	}
	if err != nil {
		return err
	}
	head, err := s.auditHead(ctx, tx)
	if err != nil {
		return err
	}
	cs, err := make(last, head)
	if err != nil || len(cs) == 0 {
		return err
	}
	for _, c := range cs {
		if err := insertCheckpoint(ctx, tx, c); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func insertCheckpoint(ctx context.Context, tx *sql.Tx, c *AuditCheckpoint) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (n, seq, count, at, hash, mac, prev, sig) VALUES (?,?,?,?,?,?,?,?)`,
		c.N, c.Seq, c.Count, ms(c.At), c.Hash, c.MAC, c.Prev, c.Sig)
	return err
}

// AuditCheckpoints lists the checkpoints, oldest first.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]*AuditCheckpoint, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT `+cpCols+` FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*AuditCheckpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastAuditEvent returns the newest event (nil if none).
func (s *Store) LastAuditEvent(ctx context.Context) (*AuditEvent, error) {
	e, err := scanAudit(s.DB.QueryRowContext(ctx, `SELECT `+auditCols+` FROM audit_events ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return e, err
}

func (s *Store) eachAudit(ctx context.Context, q string, args []any, f func(*AuditEvent) error) error {
	rows, err := s.DB.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_events WHERE 1=1`+q+` ORDER BY seq`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return err
		}
		if err := f(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// EachAuditEvent calls f for every event in sequence order, between from and
// to (zero: unbounded).
func (s *Store) EachAuditEvent(ctx context.Context, from, to time.Time, f func(*AuditEvent) error) error {
	q := ""
	var args []any
	if !from.IsZero() {
		q += ` AND at>=?`
		args = append(args, ms(from))
	}
	if !to.IsZero() {
		q += ` AND at<?`
		args = append(args, ms(to))
	}
	return s.eachAudit(ctx, q, args, f)
}

// EachAuditEventSeq calls f for the events first..last (inclusive), in order.
func (s *Store) EachAuditEventSeq(ctx context.Context, first, last int64, f func(*AuditEvent) error) error {
	return s.eachAudit(ctx, ` AND seq>=? AND seq<=?`, []any{first, last}, f)
}

// AuditEvents lists events about object (all if ""), oldest first.
func (s *Store) AuditEvents(ctx context.Context, object string, limit int) ([]*AuditEvent, error) {
	q := ""
	var args []any
	if object != "" {
		q += ` AND object=?`
		args = append(args, object)
	}
	var out []*AuditEvent
	stop := errors.New("limit")
	err := s.eachAudit(ctx, q, args, func(e *AuditEvent) error {
		if len(out) >= limit {
			return stop
		}
		out = append(out, e)
		return nil
	})
	if errors.Is(err, stop) {
		err = nil
	}
	return out, err
}

// AuditAnchor is the checkpoint the chain continues from after retention
// removed the events up to it (nil: nothing was removed).
func (s *Store) AuditAnchor(ctx context.Context) (*AuditCheckpoint, error) {
	c, err := scanCheckpoint(s.DB.QueryRowContext(ctx, `SELECT `+cpCols+` FROM audit_anchor WHERE id=1`))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return c, err
}

// PruneAudit removes events older than cutoff up to the newest checkpoint
// that covers only such events, and keeps that checkpoint as the anchor the
// chain continues from: what remains still verifies, and the anchor is
// signed. It returns how many events went.
func (s *Store) PruneAudit(ctx context.Context, cutoff time.Time) (int64, error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var old int64
	err = tx.QueryRowContext(ctx, `SELECT seq FROM audit_events WHERE at<? ORDER BY seq DESC LIMIT 1`, ms(cutoff)).Scan(&old)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	// An event older than cutoff may follow a newer one (a time step): only
	// the prefix of events that are all old may go.
	var young sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(seq) FROM audit_events WHERE at>=?`, ms(cutoff)).Scan(&young); err != nil {
		return 0, err
	}
	if young.Valid && young.Int64 <= old {
		old = young.Int64 - 1
	}
	c, err := scanCheckpoint(tx.QueryRowContext(ctx, `SELECT `+cpCols+` FROM audit_checkpoints WHERE seq<=? ORDER BY seq DESC LIMIT 1`, old))
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil // nothing old is signed yet
	}
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE seq<=?`, c.Seq)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_anchor (id, n, seq, count, at, hash, mac, prev, sig) VALUES (1,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET n=excluded.n, seq=excluded.seq, count=excluded.count, at=excluded.at, hash=excluded.hash, mac=excluded.mac, prev=excluded.prev, sig=excluded.sig`,
		c.N, c.Seq, c.Count, ms(c.At), c.Hash, c.MAC, c.Prev, c.Sig); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE seq<?`, c.Seq); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}
