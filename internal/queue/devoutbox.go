package queue

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sealpost/internal/fsx"
	"sealpost/internal/seal"
	"sealpost/internal/store"
)

// DevOutboxRelay is the relay recorded for mail the dev outbox captured:
// it never left the machine, so it was delivered neither with nor without
// TLS.
const DevOutboxRelay = "dev-outbox"

// DevOutbox is the Transport of `serve --dev`: instead of leaving the
// machine, mail is captured (sealed like the spool) and listed in the web
// console, so a newcomer sees the whole flow on one machine.
type DevOutbox struct {
	Dir       string
	Key       []byte
	Store     *store.Store
	Committer *store.Committer
	// Sign, if set, returns the DKIM signature to prepend, as delivery would.
	Sign func(ctx context.Context, d *Delivery) string
}

// Deliver implements Transport.
func (o *DevOutbox) Deliver(ctx context.Context, d *Delivery) Attempt {
	att := Attempt{Rcpts: make([]RcptResult, len(d.Rcpts)), Relay: DevOutboxRelay}
	fail := func(err error) Attempt {
		for i := range att.Rcpts {
			att.Rcpts[i] = RcptResult{Text: "451 4.3.0 dev outbox: " + err.Error()}
		}
		return att
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fail(err)
	}
	name := d.Msg.ID + "-" + NewID() + ".sealed"
	f, err := os.OpenFile(filepath.Join(o.Dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fail(err)
	}
	sig := ""
	if o.Sign != nil && d.Route == RouteOutbound {
		sig = o.Sign(ctx, d)
	}
	w, err := seal.NewWriter(f, o.Key, []byte(name))
	if err == nil {
		_, err = io.WriteString(w, sig)
	}
	if err == nil {
		_, err = io.Copy(w, io.NewSectionReader(d.Body, 0, d.Size))
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return fail(err)
	}
	err = o.Committer.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO dev_outbox (msg_id, mail_from, rcpts, route, subject, size, captured_at, file) VALUES (?,?,?,?,?,?,?,?)`,
			d.Msg.ID, d.Msg.MailFrom, strings.Join(d.Rcpts, ", "), d.Route, d.Msg.Subject, d.Size+int64(len(sig)), time.Now().UnixMilli(), name)
		return err
	}, "dir:"+o.Dir, func() error { return fsx.OS{}.SyncDir(o.Dir) })
	if err != nil {
		os.Remove(f.Name())
		return fail(err)
	}
	for i := range att.Rcpts {
		att.Rcpts[i] = RcptResult{OK: true, Text: "250 captured in the dev outbox"}
	}
	return att
}

// OutboxEntry is one captured message.
type OutboxEntry struct {
	Seq        int64
	MsgID      string
	MailFrom   string
	Rcpts      string
	Route      string
	Subject    string
	Size       int64
	CapturedAt time.Time
	File       string
}

// List returns the newest captured messages first.
func (o *DevOutbox) List(ctx context.Context, limit int) ([]OutboxEntry, error) {
	rows, err := o.Store.DB.QueryContext(ctx, `SELECT seq, msg_id, mail_from, rcpts, route, subject, size, captured_at, file FROM dev_outbox ORDER BY seq DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboxEntry
	for rows.Next() {
		var e OutboxEntry
		var at int64
		if err := rows.Scan(&e.Seq, &e.MsgID, &e.MailFrom, &e.Rcpts, &e.Route, &e.Subject, &e.Size, &at, &e.File); err != nil {
			return nil, err
		}
		e.CapturedAt = time.UnixMilli(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Get returns one entry.
func (o *DevOutbox) Get(ctx context.Context, seq int64) (*OutboxEntry, error) {
	var e OutboxEntry
	var at int64
	err := o.Store.DB.QueryRowContext(ctx, `SELECT seq, msg_id, mail_from, rcpts, route, subject, size, captured_at, file FROM dev_outbox WHERE seq=?`, seq).
		Scan(&e.Seq, &e.MsgID, &e.MailFrom, &e.Rcpts, &e.Route, &e.Subject, &e.Size, &at, &e.File)
	if err == sql.ErrNoRows {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	e.CapturedAt = time.UnixMilli(at)
	return &e, nil
}

// Open returns the plaintext of a captured message.
func (o *DevOutbox) Open(e *OutboxEntry) (io.Reader, io.Closer, error) {
	f, err := os.Open(filepath.Join(o.Dir, filepath.Base(e.File)))
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	ra, err := seal.NewReaderAt(f, st.Size(), o.Key, []byte(filepath.Base(e.File)))
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return ra.Reader(), f, nil
}
