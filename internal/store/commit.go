package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// Op is one unit of work for the Committer, run inside the shared
// transaction. If it fails, the whole batch is rolled back and every op in it
// gets the error: callers then answer with a temporary failure.
type Op func(ctx context.Context, tx *sql.Tx) error

type request struct {
	op      Op
	syncKey string       // what must be durable before the batch commits
	sync    func() error // makes it so
	done    chan error
}

// Committer runs Ops in batched transactions: one goroutine takes whatever
// requests have queued up, runs them in one transaction and commits once.
// With SQLite synchronous=FULL, that is one fsync for the whole batch.
type Committer struct {
	s        *Store
	reqs     chan request
	maxBatch int
	wg       sync.WaitGroup
	stop     chan struct{}
	once     sync.Once

	// Sync runs a request's sync function; tests replace it to inject
	// failures.
	Sync func(key string, sync func() error) error
}

// ErrClosed is returned for ops submitted after Close.
var ErrClosed = errors.New("store: committer closed")

// NewCommitter starts a committer on s.
func NewCommitter(s *Store, maxBatch int) *Committer {
	c := &Committer{s: s, reqs: make(chan request, 4*maxBatch), maxBatch: maxBatch, stop: make(chan struct{}), Sync: func(_ string, f func() error) error { return f() }}
	c.wg.Add(1)
	go c.run()
	return c
}

// Do runs op in the next batch and waits for its commit. sync, if not nil,
// must succeed before the batch commits (a spool segment or directory
// fsync); requests with the same syncKey share one call per batch.
func (c *Committer) Do(ctx context.Context, op Op, syncKey string, sync func() error) error {
	r := request{op: op, syncKey: syncKey, sync: sync, done: make(chan error, 1)}
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stop:
		return ErrClosed
	}
	// Once queued, the op will be committed or failed; wait for it even if ctx
	// ends, so the caller never reports a state it does not know.
	return <-r.done
}

func (c *Committer) run() {
	defer c.wg.Done()
	batch := make([]request, 0, c.maxBatch)
	for {
		select {
		case r := <-c.reqs:
			batch = append(batch[:0], r)
		case <-c.stop:
			// Fail whatever is still queued; nothing new can arrive.
			for {
				select {
				case r := <-c.reqs:
					r.done <- ErrClosed
				default:
					return
				}
			}
		}
	gather:
		for len(batch) < c.maxBatch {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		err := c.commit(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (c *Committer) commit(batch []request) error {
	synced := map[string]bool{}
	for _, r := range batch {
		if r.sync != nil && !synced[r.syncKey] {
			synced[r.syncKey] = true
			if err := c.Sync(r.syncKey, r.sync); err != nil {
				return err
			}
		}
	}
	ctx, audit := withAuditBatch(context.Background())
	tx, err := c.s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, r := range batch {
		if err := r.op(ctx, tx); err != nil {
			tx.Rollback()
			return err
		}
	}
	// The ops' audit events go in with their rows or not at all.
	if err := c.s.flushAudit(ctx, audit); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close stops the committer after the batch in progress.
func (c *Committer) Close() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}
