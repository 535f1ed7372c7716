// Package audit keeps the audit log tamper-evident and checks it.
//
// Every event carries the SHA-256 of the event before it and of its own
// content (store.AuditHash), so changing, deleting, inserting or reordering
// an event breaks the chain at that point. Someone with write access to the
// database could recompute the chain after a change; so, periodically, the
// gateway signs the newest event's hash with an Ed25519 key derived from
// the installation key (a checkpoint). A recomputed chain no longer matches
// the signed hashes. Verify walks the whole chain and every checkpoint and
// names the first event that is wrong. Events after the last checkpoint are
// protected by the chain alone: checkpoints are frequent (every minute when
// there are new events, and at shutdown).
package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"sealpost/internal/store"
)

// Key derives the checkpoint signing key from the installation key.
func Key(master []byte) (ed25519.PrivateKey, error) {
	seed, err := hkdf.Key(sha256.New, master, nil, "sealpost audit checkpoints", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func signed(c *store.AuditCheckpoint) []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.Seq))
	binary.BigEndian.PutUint64(b[8:], uint64(c.At.UnixMilli()))
	return append(append([]byte("sealpost audit checkpoint\x00"), b[:]...), c.Hash...)
}

// Checkpoint signs the newest event, if it is not signed yet.
func Checkpoint(ctx context.Context, st *store.Store, key ed25519.PrivateKey, now time.Time) error {
	last, err := st.LastAuditEvent(ctx)
	if err != nil || last == nil {
		return err
	}
	c := &store.AuditCheckpoint{Seq: last.Seq, Hash: last.Hash, At: now}
	c.Sig = ed25519.Sign(key, signed(c))
	return st.AddAuditCheckpoint(ctx, c)
}

// Report is what Verify found.
type Report struct {
	Events      int64
	Checkpoints int
	LastSigned  int64 // sequence number of the last signed event
	// BadSeq is the first event found wrong (0: none), Why says how.
	BadSeq int64
	Why    string
}

// OK reports whether the log is intact.
func (r *Report) OK() bool { return r.BadSeq == 0 && r.Why == "" }

// Verify checks the chain and the checkpoints with the public key.
func Verify(ctx context.Context, st *store.Store, pub ed25519.PublicKey) (*Report, error) {
	cps, err := st.AuditCheckpoints(ctx)
	if err != nil {
		return nil, err
	}
	bySeq := map[int64]*store.AuditCheckpoint{}
	r := &Report{Checkpoints: len(cps)}
	for _, c := range cps {
		if !ed25519.Verify(pub, signed(c), c.Sig) {
			r.BadSeq, r.Why = c.Seq, fmt.Sprintf("checkpoint at event %d: the signature is not the installation's", c.Seq)
			return r, nil
		}
		bySeq[c.Seq] = c
	}
	// After retention removed old events, the chain continues from the
	// anchor: the last removed event, whose checkpoint is kept.
	anchorSeq, anchorHash, err := st.AuditAnchor(ctx)
	if err != nil {
		return nil, err
	}
	prev, lastSeq := anchorHash, anchorSeq
	if c := bySeq[anchorSeq]; anchorSeq != 0 && c != nil {
		if !bytes.Equal(c.Hash, anchorHash) {
			r.BadSeq, r.Why = anchorSeq, fmt.Sprintf("the retention anchor (event %d) does not match its signed checkpoint", anchorSeq)
			return r, nil
		}
		r.LastSigned = anchorSeq
		delete(bySeq, anchorSeq)
	}
	stop := fmt.Errorf("stop")
	err = st.EachAuditEvent(ctx, time.Time{}, time.Time{}, func(e *store.AuditEvent) error {
		r.Events++
		bad := func(why string) error {
			r.BadSeq, r.Why = e.Seq, why
			return stop
		}
		switch {
		case lastSeq != 0 && e.Seq != lastSeq+1:
			return bad(fmt.Sprintf("event %d follows event %d: the events between were deleted", e.Seq, lastSeq))
		case !bytes.Equal(e.Prev, prev):
			return bad(fmt.Sprintf("event %d does not point to the event before it: an event was deleted, inserted or moved", e.Seq))
		case !bytes.Equal(store.AuditHash(prev, e), e.Hash):
			return bad(fmt.Sprintf("event %d was changed: its content does not match its hash", e.Seq))
		}
		if c := bySeq[e.Seq]; c != nil {
			if !bytes.Equal(c.Hash, e.Hash) {
				return bad(fmt.Sprintf("event %d does not match the signed checkpoint: the log up to here was rewritten", e.Seq))
			}
			r.LastSigned = e.Seq
			delete(bySeq, e.Seq)
		}
		prev, lastSeq = e.Hash, e.Seq
		return nil
	})
	if err == stop {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	for seq := range bySeq {
		// A signed event that is no longer there.
		if r.BadSeq == 0 || seq < r.BadSeq {
			r.BadSeq, r.Why = seq, fmt.Sprintf("event %d is signed by a checkpoint but missing from the log: events at the end were deleted", seq)
		}
	}
	return r, nil
}
