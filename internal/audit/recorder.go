package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"sealpost/internal/store"
)

// Recorder appends events for the gateway's surfaces (console, API,
// portal, holds). An append is never dropped: one that fails is tried
// again, then kept in the pending file (fsynced) and appended by Flush
// later, in order; only when that fails too does Record return an error,
// and the caller must then fail the operation it was recording.
type Recorder struct {
	Store *store.Store
	// PendingFile keeps events the store refused ("": none, Record
	// returns the store's error).
	PendingFile string
	Log         *slog.Logger

	mu sync.Mutex // the pending file
}

type pendingEvent struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Object string    `json:"object"`
	IP     string    `json:"ip,omitempty"`
	UA     string    `json:"ua,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Addrs  []string  `json:"addrs,omitempty"`
}

// Record appends e.
func (r *Recorder) Record(ctx context.Context, e *store.AuditEvent) error {
	var err error
	for i, wait := range []time.Duration{0, 50 * time.Millisecond, 250 * time.Millisecond} {
		if i > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		if err = r.Store.AppendAudit(context.WithoutCancel(ctx), e); err == nil || errors.Is(err, store.ErrNoAuditKey) {
			break
		}
	}
	if err == nil {
		return nil
	}
	if r.PendingFile == "" || errors.Is(err, store.ErrNoAuditKey) {
		return fmt.Errorf("audit event %s not recorded: %w", e.Action, err)
	}
	if perr := r.spill(e); perr != nil {
		return fmt.Errorf("audit event %s not recorded (%v), nor kept for later: %w", e.Action, err, perr)
	}
	if r.Log != nil {
		r.Log.Warn("audit event kept in the pending file; appended when the store accepts it", "action", e.Action, "err", err)
	}
	return nil
}

func (r *Recorder) spill(e *store.AuditEvent) error {
	line, err := json.Marshal(pendingEvent{e.At, e.Actor, e.Action, e.Object, e.IP, e.UA, e.Detail, e.Addrs})
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := os.OpenFile(r.PendingFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(append(line, '\n')); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Flush appends the pending events to the store, oldest first, and empties
// the pending file. It stops at the first append that fails (the rest stay
// pending).
func (r *Recorder) Flush(ctx context.Context) error {
	if r.PendingFile == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := os.ReadFile(r.PendingFile)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(b) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	done := 0
	for sc.Scan() {
		line := sc.Bytes()
		var p pendingEvent
		if len(bytes.TrimSpace(line)) > 0 {
			if err := json.Unmarshal(line, &p); err != nil {
				// A torn last line (a crash during the write): the event was
				// not confirmed to anyone, so it is dropped with a note.
				p = pendingEvent{At: time.Now(), Actor: "gateway", Action: "audit.pending_unreadable", Detail: fmt.Sprintf("%d bytes", len(line))}
			}
			e := &store.AuditEvent{At: p.At, Actor: p.Actor, Action: p.Action, Object: p.Object, IP: p.IP, UA: p.UA, Detail: p.Detail, Addrs: p.Addrs}
			if err := r.Store.AppendAudit(ctx, e); err != nil {
				return r.rewrite(b[done:], err)
			}
		}
		done += len(line) + 1
	}
	return r.rewrite(nil, nil)
}

// rewrite leaves rest in the pending file (atomically).
func (r *Recorder) rewrite(rest []byte, cause error) error {
	tmp := r.PendingFile + ".tmp"
	if err := os.WriteFile(tmp, rest, 0o600); err != nil {
		return err
	}
	if f, err := os.Open(tmp); err == nil {
		f.Sync()
		f.Close()
	}
	if err := os.Rename(tmp, r.PendingFile); err != nil {
		return err
	}
	return cause
}

// Record appends e through rec, or straight to st where there is no
// recorder (a surface built without one, as in some tests). The error
// means the event is lost: the caller fails what it was recording.
func Record(ctx context.Context, rec *Recorder, st *store.Store, e *store.AuditEvent) error {
	if rec != nil {
		return rec.Record(ctx, e)
	}
	return st.AppendAudit(ctx, e)
}
