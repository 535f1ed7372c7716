package queue

import (
	"context"
	"database/sql"
	"time"

	"sealpost/internal/store"
)

// Disk bound. The spool's files hold the live records (messages not yet
// done), plus dead ones. Dead bytes are in three places:
//   - the active segment, at most SegmentMax in all;
//   - the other segments: a segment less than half live is compacted (its
//     live records copied to the active segment, the row pointing at the
//     copy committed, then the old segment unlinked), and when the dead
//     bytes outside the active segment pass SegmentMax the deadest
//     segment is compacted, so they stay at most SegmentMax;
//   - the segment being compacted: until its rows are moved, its live
//     records exist twice, at most SegmentMax more.
//
// A file of its own (a large message) is removed the moment its message is
// done. So the spool's files hold at most live + 3 × SegmentMax bytes (live
// + 2 × SegmentMax between compactions), whatever the traffic and however
// long a message waits: Spool.Usage reports both numbers, and the gauges
// sealpost_spool_bytes_live and sealpost_spool_bytes_total export them.

// compactCandidate picks a segment to compact and the committed records in
// it, or returns nil.
func (s *Spool) compactCandidate() (*segment, map[string]record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var deadOut int64
	var pick, deadest *segment
	for _, seg := range s.segs {
		if seg == s.active || seg.nrec == 0 {
			continue
		}
		dead := seg.size - seg.live
		deadOut += dead
		if seg.pending > 0 {
			continue // rows not committed yet: they cannot be moved
		}
		if 2*seg.live < seg.size && (pick == nil || seg.live < pick.live) {
			pick = seg
		}
		if deadest == nil || dead > deadest.size-deadest.live {
			deadest = seg
		}
	}
	if pick == nil && deadOut > s.segMax {
		pick = deadest
	}
	if pick == nil {
		return nil, nil
	}
	recs := map[string]record{}
	for id, r := range s.recs {
		if r.seg == pick.id && !r.pending {
			recs[id] = *r
		}
	}
	pick.readers++ // kept open while copying
	return pick, recs
}

type moved struct {
	id       string
	from, to record
}

// compactOnce compacts one segment, if one needs it. It reports whether it
// did anything.
//
// Crash safety: the copies are written to the active segment and fsynced
// (with the segment's name) before the transaction that points the rows at
// them commits, and the old segment is unlinked only after that commit. A
// crash before the commit leaves the rows pointing at the old records (the
// copies are garbage, swept at start); after it, at the copies.
func (q *Queue) compactOnce(ctx context.Context) (bool, error) {
	q.compactMu.Lock() // one compaction at a time: two would copy the same records
	defer q.compactMu.Unlock()
	if q.noCompact {
		return false, nil
	}
	s := q.spool
	old, recs := s.compactCandidate()
	if old == nil {
		return false, nil
	}
	defer s.unread(old)
	if len(recs) == 0 {
		return false, nil // nothing it holds can move (accounting is off): do not spin
	}
	var moves []moved
	syncs := map[int64]*segment{}
	fail := func(err error) (bool, error) {
		for _, m := range moves {
			s.dropBytes(m.to.seg, m.to.off, m.to.n)
		}
		return false, err
	}
	buf := make([]byte, 0, InlineMax)
	for id, r := range recs {
		buf = buf[:r.n]
		if _, err := old.f.ReadAt(buf, r.off); err != nil {
			return fail(storageErr("compaction read", err))
		}
		seg, off, err := s.append("", buf, false)
		if err != nil {
			return fail(err)
		}
		syncs[seg.id] = seg
		moves = append(moves, moved{id: id, from: r, to: record{seg: seg.id, off: off, n: r.n}})
	}
	sync := func() error {
		for _, seg := range syncs {
			if err := s.segDurable(seg).Sync(); err != nil {
				return err
			}
		}
		return nil
	}
	ok := make([]bool, len(moves))
	err := q.committer.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for i, m := range moves {
			var err error
			ok[i], err = q.store.MoveSpool(ctx, tx, m.id,
				store.SpoolLoc{Seg: m.from.seg, Off: m.from.off}, store.SpoolLoc{Seg: m.to.seg, Off: m.to.off})
			if err != nil {
				return err
			}
		}
		return nil
	}, "compact", sync)
	if err != nil {
		return fail(err)
	}
	s.finishMoves(moves, ok)
	return true, nil
}

// finishMoves points the index at the copies whose rows moved, and lets go
// of the old records. A copy whose row did not move is dropped; if the row
// is no longer queued (its message was finished behind the gateway's back,
// e.g. by a command on the database), the old record is released too.
func (s *Spool) finishMoves(moves []moved, ok []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range moves {
		r := s.recs[m.id]
		atOld := r != nil && r.seg == m.from.seg && r.off == m.from.off
		switch {
		case ok[i] && atOld:
			r.seg, r.off = m.to.seg, m.to.off
			s.dropBytesLocked(m.from.seg, m.from.off, m.from.n, false)
		case !ok[i] && atOld && !r.pending:
			delete(s.recs, m.id)
			s.dropBytesLocked(m.from.seg, m.from.off, m.from.n, true)
			s.dropBytesLocked(m.to.seg, m.to.off, m.to.n, true)
		default:
			// Released while being copied: the copy is not needed.
			s.dropBytesLocked(m.to.seg, m.to.off, m.to.n, true)
		}
	}
}

func (s *Spool) unread(seg *segment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg.readers--
	if seg.readers == 0 && seg.dropped {
		seg.f.Close()
	}
}

// reconcile releases what the spool holds for messages no longer queued in
// the store: finished by another process on the same database (the CLI).
// Records settled before the query began are checked; newer ones are left
// for the next round.
func (q *Queue) reconcile(ctx context.Context) error {
	s := q.spool
	s.mu.Lock()
	var ids []string
	for id, r := range s.recs {
		if !r.pending {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	queued, err := q.store.QueuedSpool(ctx)
	if err != nil {
		return err
	}
	n := 0
	for _, id := range ids {
		if _, ok := queued[id]; !ok {
			s.Release(id)
			n++
		}
	}
	if n > 0 {
		q.log.Info("released spool space of messages finished elsewhere", "messages", n)
	}
	return nil
}

// compactor compacts segments when a release makes one worth it, and every
// SpoolCheck reconciles the index with the store.
func (q *Queue) compactor(ctx context.Context) {
	defer q.wg.Done()
	every := q.opt.SpoolCheck
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.spool.wake:
		case <-t.C:
			if err := q.reconcile(ctx); err != nil && ctx.Err() == nil {
				q.log.Error("spool reconcile failed", "err", err)
			}
		}
		for ctx.Err() == nil {
			did, err := q.compactOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					q.log.Error("spool compaction failed; retried later", "err", err)
				}
				break
			}
			if !did {
				break
			}
		}
	}
}

// CompactNow compacts until no segment needs it (tests, and start-up).
func (q *Queue) CompactNow(ctx context.Context) error {
	for {
		did, err := q.compactOnce(ctx)
		if err != nil || !did {
			return err
		}
	}
}

// releaseIfDone frees the spool space of message id if it is done.
func (q *Queue) releaseIfDone(ctx context.Context, id string) {
	m, err := q.store.Message(ctx, id)
	if err != nil || m.State != "done" {
		return
	}
	if err := q.spool.Release(id); err != nil {
		q.log.Warn("removing spool file failed (removed at next start)", "msgid", id, "err", err)
	}
}
