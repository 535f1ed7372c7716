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

type auditBatchKey struct{}

// auditBatch holds the events of one Committer transaction: they are
// linked as they are appended (so every op sees its events' Seq and the
// chain's head stays in memory, read once per batch) and written together
// by flushAudit, in multi-row INSERTs, just before the commit. A relayed
// message makes three events in two batches; one statement per event was a
// third of the store's work per message.
type auditBatch struct {
	tx      *sql.Tx
	head    AuditHead
	known   bool // head has been read in tx
	pending []*AuditEvent
}

// withAuditBatch returns the context for the ops of one Committer batch.
// The Committer must call flushAudit before it commits.
func withAuditBatch(ctx context.Context) (context.Context, *auditBatch) {
	b := &auditBatch{}
	return context.WithValue(ctx, auditBatchKey{}, b), b
}

// AppendAuditTx adds events at the end of the chain within tx: with the
// rows of the operation they record, in one commit (the accept and delivery
// paths use the Committer's shared transaction, where the rows are written
// at the end of the batch; elsewhere at once).
func (s *Store) AppendAuditTx(ctx context.Context, tx *sql.Tx, events ...*AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	if s.auditChain == nil {
		return ErrNoAuditKey
	}
	b, _ := ctx.Value(auditBatchKey{}).(*auditBatch)
	if b != nil && b.tx != tx {
		// A batch context used with another transaction: never share a
		// head across transactions.
		if b.tx != nil {
			return errors.New("store: audit batch used with a second transaction")
		}
		b.tx = tx
	}
	var head AuditHead
	if b != nil && b.known {
		head = b.head
	} else {
		var err error
		if head, err = s.auditHead(ctx, tx); err != nil {
			return err
		}
	}
	for _, e := range events {
		e.Seq, e.Prev = head.Seq+1, head.Hash
		s.auditChain.Link(head, e)
		head = AuditHead{Seq: e.Seq, Hash: e.Hash, MAC: e.MAC}
	}
	if b != nil {
		b.head, b.known = head, true
		b.pending = append(b.pending, events...)
		return nil
	}
	return s.insertAudit(ctx, tx, events)
}

// flushAudit writes a batch's pending events.
func (s *Store) flushAudit(ctx context.Context, b *auditBatch) error {
	if len(b.pending) == 0 {
		return nil
	}
	err := s.insertAudit(ctx, b.tx, b.pending)
	b.pending = nil
	return err
}

// auditChunks are the row counts of the prepared multi-row INSERTs; a batch
// is written largest chunk first.
var auditChunks = [...]int{64, 16, 4, 1}

const auditRowParams = 12

func (s *Store) insertAudit(ctx context.Context, tx *sql.Tx, events []*AuditEvent) error {
	args := make([]any, 0, auditRowParams*min(len(events), auditChunks[0]))
	for len(events) > 0 {
		n := 1
		for _, c := range auditChunks {
			if len(events) >= c {
				n = c
				break
			}
		}
		stmt, err := s.auditInsert(ctx, n)
		if err != nil {
			return err
		}
		args = args[:0]
		for _, e := range events[:n] {
			args = append(args, e.Seq, ms(e.At), e.Actor, e.Action, e.Object, e.IP, e.UA, e.Detail, strings.Join(e.Addrs, "\n"), e.Prev, e.Hash, e.MAC)
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
			return err
		}
		events = events[n:]
	}
	return nil
}

// auditInsert is the prepared INSERT of n rows.
func (s *Store) auditInsert(ctx context.Context, n int) (*sql.Stmt, error) {
	if n == 1 {
		return s.insAudit, nil
	}
	s.auditStmtMu.Lock()
	defer s.auditStmtMu.Unlock()
	if st := s.auditStmts[n]; st != nil {
		return st, nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO audit_events (seq, at, actor, action, object, ip, ua, detail, addrs, prev, hash, mac) VALUES `)
	for i := range n {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,?,?,?,?,?,?,?,?,?,?,?)`)
	}
	st, err := s.DB.PrepareContext(ctx, q.String())
	if err != nil {
		return nil, err
	}
	if s.auditStmts == nil {
		s.auditStmts = map[int]*sql.Stmt{}
	}
	s.auditStmts[n] = st
	return st, nil
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
