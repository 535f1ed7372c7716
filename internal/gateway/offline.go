package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"sealpost/internal/config"
	"sealpost/internal/datadir"
	"sealpost/internal/metrics"
	"sealpost/internal/ops"
	"sealpost/internal/queue"
	"sealpost/internal/store"
)

// Offline is the data directory opened by a command-line tool while no
// gateway runs: the directory's lock, the store and the spool, and the
// same ops.Service the gateway uses, so that a release or delete from the
// command line is audited and frees spool bytes exactly as one from the
// console. Nothing is delivered: a released message goes out when the
// gateway next starts.
type Offline struct {
	Ops   *ops.Service
	Store *store.Store

	lock      *datadir.Lock
	committer *store.Committer
	spool     *queue.Spool
	cfg       *config.Config
	log       *slog.Logger
}

// OpenOffline takes the data directory's lock and opens it. While a
// gateway runs it returns a *datadir.InUseError: ask that gateway through
// its control socket instead (ops.Client).
func OpenOffline(cfg *config.Config, log *slog.Logger) (*Offline, error) {
	o := &Offline{}
	if err := o.open(cfg, log); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

func (o *Offline) open(cfg *config.Config, log *slog.Logger) (err error) {
	o.cfg, o.log = cfg, log
	if o.lock, err = datadir.Acquire(cfg.DataDir); err != nil {
		var inUse *datadir.InUseError
		if errors.As(err, &inUse) {
			return err
		}
		return cfg.KeyError("data_dir", fmt.Sprintf("%s: %v", cfg.DataDir, err))
	}
	if _, err := os.Stat(cfg.MasterKeyPath()); err != nil {
		return fmt.Errorf("the installation's key: %w (has `sealpost serve` run on this data directory?)", err)
	}
	key, err := LoadOrCreateMasterKey(cfg.MasterKeyPath())
	if err != nil {
		return fmt.Errorf("the installation's key: %w", err)
	}
	if o.Store, err = OpenStore(cfg); err != nil {
		return err
	}
	o.committer = store.NewCommitter(o.Store, 16)
	if o.spool, err = queue.OpenSpool(cfg.Path("spool"), key); err != nil {
		return err
	}
	// With the lock held this is what a starting gateway does: open the
	// segments that queued messages use, so that freeing one counts.
	keep, err := o.Store.QueuedSpool(context.Background())
	if err != nil {
		return err
	}
	if _, err := o.spool.Recover(keep); err != nil {
		return err
	}
	m := metrics.New()
	q := queue.New(queue.Options{Hostname: cfg.SMTP.Hostname, Workers: 1, PollInterval: cfg.Queue.PollInterval.Duration},
		o.Store, o.committer, o.spool, func(string) string { return queue.RouteOutbound }, map[string]queue.Transport{}, log, m)
	o.Ops = &ops.Service{Queue: q, Decisions: o.Store, Audit: o.Store.AppendAudit, Log: log}
	return nil
}

// Close signs what the operations appended to the audit log (no gateway
// runs to do it), closes the store and gives up the lock.
func (o *Offline) Close() {
	if o.Store != nil && o.cfg != nil {
		if err := SignAudit(o.cfg, o.Store); err != nil && o.log != nil {
			o.log.Error("audit events recorded but not signed; the gateway signs them when it starts", "err", err)
		}
	}
	if o.spool != nil {
		o.spool.Close()
	}
	if o.committer != nil {
		o.committer.Close()
	}
	if o.Store != nil {
		o.Store.Close()
	}
	o.lock.Release()
}
