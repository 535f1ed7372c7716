package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"os"
	"time"

	"sealpost/internal/store"
)

// Report is what Verify found.
type Report struct {
	Events      int64
	Checkpoints int
	Witnessed   int   // checkpoints in the witness file
	LastSigned  int64 // sequence number of the last signed event
	// BadSeq is the first event found wrong (0: none, or no event in
	// particular), Why says how.
	BadSeq int64
	Why    string
}

// OK reports whether the log is intact.
func (r *Report) OK() bool { return r.BadSeq == 0 && r.Why == "" }

// Verifier checks the log in a store against the installation's keys and
// the witness file.
type Verifier struct {
	Keys *Keys
	// WitnessFile is the witness to compare with; "" checks the store
	// alone (tests of the chain; never what `audit verify` does).
	WitnessFile string
	// Retention, when set, is audit.retention: a retention anchor newer
	// than it means events were removed early.
	Retention time.Duration
	Now       time.Time
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

// Verify checks the chain, every checkpoint, the retention anchor and the
// witness, and names the first problem.
func (v *Verifier) Verify(ctx context.Context, st *store.Store) (*Report, error) {
	pub := v.Keys.Public()
	now := v.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := &Report{}
	fail := func(seq int64, format string, a ...any) (*Report, error) {
		r.BadSeq, r.Why = seq, fmt.Sprintf(format, a...)
		return r, nil
	}
	cps, err := st.AuditCheckpoints(ctx)
	if err != nil {
		return nil, err
	}
	anchor, err := st.AuditAnchor(ctx)
	if err != nil {
		return nil, err
	}
	last, err := st.LastAuditEvent(ctx)
	if err != nil {
		return nil, err
	}
	r.Checkpoints = len(cps)
	var wit []*store.AuditCheckpoint
	witMissing := false
	if v.WitnessFile != "" {
		wit, err = ReadWitness(v.WitnessFile)
		if errors.Is(err, os.ErrNotExist) {
			witMissing = true
		} else if err != nil {
			return fail(0, "%v", err)
		}
		r.Witnessed = len(wit)
	}
	if last == nil && len(cps) == 0 && anchor == nil && len(wit) > 0 {
		w := wit[len(wit)-1]
		return fail(1, "the audit log is empty, but the witness file records %d checkpoints up to event %d: the audit tables were emptied", w.N, w.Seq)
	}

	// Checkpoints in the store: signed, numbered and chained.
	for i, c := range cps {
		if c.N == 0 {
			return fail(c.Seq, "the checkpoint at event %d was written by an earlier version without numbering; it cannot be checked", c.Seq)
		}
		if !VerifyCheckpoint(pub, c) {
			return fail(c.Seq, "checkpoint %d (event %d): the signature is not the installation's", c.N, c.Seq)
		}
		if i == 0 {
			continue
		}
		if p := cps[i-1]; c.N != p.N+1 {
			return fail(p.Seq+1, "checkpoints %d to %d are missing from the store (between events %d and %d)", p.N+1, c.N-1, p.Seq, c.Seq)
		} else if !bytes.Equal(c.Prev, CheckpointDigest(p)) {
			return fail(c.Seq, "checkpoint %d does not chain to checkpoint %d: the checkpoints were replaced", c.N, p.N)
		} else if c.Count != c.Seq-p.Seq {
			return fail(p.Seq+1, "checkpoint %d counts %d events since checkpoint %d, but covers events %d to %d", c.N, c.Count, p.N, p.Seq+1, c.Seq)
		}
	}

	// The retention anchor: a signed checkpoint, old enough, and the start
	// of what the store holds.
	if anchor != nil {
		if !VerifyCheckpoint(pub, anchor) {
			return fail(anchor.Seq+1, "the retention anchor (event %d) is not a checkpoint signed by the installation: it is forged", anchor.Seq)
		}
		if v.Retention > 0 && anchor.At.After(now.Add(-v.Retention).Add(24*time.Hour)) {
			return fail(anchor.Seq+1, "the retention anchor (event %d) was signed %s, within the retention period (%s): events were removed before their time",
				anchor.Seq, anchor.At.UTC().Format(time.RFC3339), v.Retention)
		}
	}
	if len(cps) > 0 && cps[0].N != 1 {
		f := cps[0]
		switch {
		case anchor == nil:
			return fail(1, "checkpoints 1 to %d are missing and no signed retention anchor accounts for them: the start of the log was removed", f.N-1)
		case sameCheckpoint(f, anchor):
		case f.N == anchor.N+1 && bytes.Equal(f.Prev, CheckpointDigest(anchor)) && f.Count == f.Seq-anchor.Seq:
		default:
			return fail(anchor.Seq+1, "the retention anchor (checkpoint %d, event %d) is not the checkpoint the store's checkpoints continue from", anchor.N, anchor.Seq)
		}
	} else if len(cps) > 0 && cps[0].Count != cps[0].Seq {
		return fail(1, "checkpoint 1 counts %d events but covers events 1 to %d", cps[0].Count, cps[0].Seq)
	}

	// The witness: signed and chained itself, and the store holds what it
	// holds, except what retention removed.
	byN := map[int64]*store.AuditCheckpoint{}
	if v.WitnessFile != "" {
		if witMissing && (len(cps) > 0 || anchor != nil) {
			return fail(0, "the witness file %s is missing: the store's %d checkpoints cannot be confirmed (restore the file, or point audit.witness_file at its copy)", v.WitnessFile, len(cps))
		}
		for i, w := range wit {
			if !VerifyCheckpoint(pub, w) {
				return fail(w.Seq, "witness file %s: checkpoint %d: the signature is not the installation's", v.WitnessFile, w.N)
			}
			if i > 0 && (w.N != wit[i-1].N+1 || !bytes.Equal(w.Prev, CheckpointDigest(wit[i-1]))) {
				return fail(wit[i-1].Seq+1, "witness file %s: checkpoint %d does not follow checkpoint %d: lines were removed", v.WitnessFile, w.N, wit[i-1].N)
			}
			byN[w.N] = w
		}
		for _, c := range cps {
			w := byN[c.N]
			if w == nil {
				return fail(c.Seq, "checkpoint %d (event %d) is not in the witness file %s", c.N, c.Seq, v.WitnessFile)
			}
			if !sameCheckpoint(c, w) {
				return fail(c.Seq, "checkpoint %d (event %d) differs from the witness file's: the store's checkpoints were rewritten", c.N, c.Seq)
			}
		}
		if anchor != nil {
			if w := byN[anchor.N]; w != nil && !sameCheckpoint(w, anchor) {
				return fail(anchor.Seq+1, "the retention anchor (checkpoint %d) differs from the witness file's: it is forged", anchor.N)
			} else if w == nil && len(wit) > 0 && wit[0].N <= anchor.N {
				return fail(anchor.Seq+1, "the retention anchor (checkpoint %d) is not in the witness file: it is forged", anchor.N)
			}
		}
		inStore := map[int64]bool{}
		for _, c := range cps {
			inStore[c.N] = true
		}
		for _, w := range wit {
			if inStore[w.N] || (anchor != nil && w.N <= anchor.N) {
				continue
			}
			return fail(w.Seq, "checkpoint %d (event %d) is in the witness file but missing from the store: the log was cut", w.N, w.Seq)
		}
	}

	// The events: contiguous from the anchor, each content matching its
	// hash, each keyed link verifying, each checkpoint matching.
	signed := map[int64]*store.AuditCheckpoint{}
	var newest *store.AuditCheckpoint
	for _, list := range [][]*store.AuditCheckpoint{wit, cps} {
		for _, c := range list {
			signed[c.Seq] = c
			if newest == nil || c.Seq > newest.Seq {
				newest = c
			}
		}
	}
	var prevHash, prevMAC []byte
	var lastSeq int64
	if anchor != nil {
		prevHash, prevMAC, lastSeq = anchor.Hash, anchor.MAC, anchor.Seq
		r.LastSigned = anchor.Seq
		if newest == nil || anchor.Seq > newest.Seq {
			newest = anchor
		}
	}
	chain := Chain{Keys: v.Keys}
	var unsigned int64
	var unsignedAt time.Time
	err = st.EachAuditEvent(ctx, time.Time{}, time.Time{}, func(e *store.AuditEvent) error {
		r.Events++
		bad := func(format string, a ...any) error {
			r.BadSeq, r.Why = e.Seq, fmt.Sprintf(format, a...)
			return stopErr{}
		}
		switch {
		case e.Seq != lastSeq+1 && lastSeq == 0:
			return bad("the log starts at event %d: events 1 to %d are missing and no signed retention anchor accounts for them", e.Seq, e.Seq-1)
		case e.Seq != lastSeq+1:
			return bad("event %d follows event %d: the events between were deleted", e.Seq, lastSeq)
		case !bytes.Equal(e.Prev, prevHash):
			return bad("event %d does not point to the event before it: an event was deleted, inserted or moved", e.Seq)
		case e.MAC == nil:
			return bad("event %d has no keyed link: it was inserted, or written by an earlier version", e.Seq)
		}
		h, m := chain.links(prevHash, prevMAC, e)
		if !bytes.Equal(h, e.Hash) {
			return bad("event %d was changed: its content does not match its hash", e.Seq)
		}
		if !hmac.Equal(m, e.MAC) {
			return bad("event %d: its keyed link does not verify: the chain was recomputed without the installation key", e.Seq)
		}
		if c := signed[e.Seq]; c != nil {
			if !bytes.Equal(c.Hash, e.Hash) || !hmac.Equal(c.MAC, e.MAC) {
				return bad("event %d does not match signed checkpoint %d: the log up to here was rewritten", e.Seq, c.N)
			}
			r.LastSigned = e.Seq
		}
		if (newest == nil || e.Seq > newest.Seq) && unsigned == 0 {
			unsigned, unsignedAt = e.Seq, e.At
		}
		prevHash, prevMAC, lastSeq = e.Hash, e.MAC, e.Seq
		return nil
	})
	if errors.As(err, new(stopErr)) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if newest != nil && lastSeq < newest.Seq {
		where := "the store"
		if len(cps) == 0 || cps[len(cps)-1].Seq < newest.Seq {
			where = "the witness file"
		}
		return fail(lastSeq+1, "the log ends at event %d, but checkpoint %d in %s covers events up to %d: the newest events were deleted", lastSeq, newest.N, where, newest.Seq)
	}
	if unsigned != 0 && now.Sub(unsignedAt) > Grace {
		return fail(unsigned, "events %d to %d are covered by no signed checkpoint, the oldest from %s (the gateway signs every %s): checkpoints were removed, or the gateway stopped without signing (start it, or run `sealpost audit evidence`, to sign them)",
			unsigned, lastSeq, unsignedAt.UTC().Format(time.RFC3339), Interval)
	}
	return r, nil
}
