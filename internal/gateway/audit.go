package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"sealpost/internal/audit"
	"sealpost/internal/config"
	"sealpost/internal/seal"
	"sealpost/internal/store"
)

// auditState is the gateway's audit log: its keys, the witness and the
// recorder the surfaces append through.
type auditState struct {
	keys     *audit.Keys
	witness  *audit.Witness
	recorder *audit.Recorder
}

// setupAudit links the store's audit appends with the installation's keys,
// appends what an earlier run could not, and signs whatever is unsigned
// (the tail of a run that crashed, events the CLI wrote).
func (g *Gateway) setupAudit(cfg *config.Config, master []byte) error {
	k, err := audit.DeriveKeys(master)
	if err != nil {
		return err
	}
	g.Store.SetAuditChain(audit.Chain{Keys: k})
	g.audit = &auditState{keys: k, witness: audit.OpenWitness(cfg.AuditWitnessPath(), g.Log),
		recorder: &audit.Recorder{Store: g.Store, PendingFile: cfg.Path("audit-pending.log"), Log: g.Log}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.audit.recorder.Flush(ctx); err != nil {
		return fmt.Errorf("audit: appending the events kept in %s: %w", g.audit.recorder.PendingFile, err)
	}
	if err := audit.Checkpoint(ctx, g.Store, k, g.audit.witness, time.Now()); err != nil {
		return fmt.Errorf("audit: signing a checkpoint: %w", err)
	}
	return nil
}

// Recorder is the audit recorder of the running gateway, for surfaces that
// record events (console, API, portal, operations).
func (g *Gateway) Recorder() *audit.Recorder { return g.audit.recorder }

// verifier checks the audit log as `sealpost audit verify` does.
func (g *Gateway) verifier(ctx context.Context) (*audit.Report, error) {
	cfg := g.Config()
	v := &audit.Verifier{Keys: g.audit.keys, WitnessFile: cfg.AuditWitnessPath(), Retention: cfg.Audit.Retention.Duration}
	return v.Verify(ctx, g.Store)
}

// checkpoints signs the audit log's newest event every audit.Interval,
// appends pending events and removes events past retention. The last
// checkpoint is signed in closeAudit, once nothing writes any more.
func (g *Gateway) checkpoints(ctx context.Context) {
	t := time.NewTicker(audit.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := g.audit.recorder.Flush(ctx); err != nil && ctx.Err() == nil {
			g.Log.Error("appending pending audit events failed; tried again in a minute", "err", err)
		}
		if err := audit.Checkpoint(ctx, g.Store, g.audit.keys, g.audit.witness, time.Now()); err != nil && ctx.Err() == nil {
			g.Log.Error("audit checkpoint failed", "err", err)
		}
		if n, err := g.Store.PruneAudit(ctx, time.Now().Add(-g.Config().Audit.Retention.Duration)); err != nil && ctx.Err() == nil {
			g.Log.Error("audit retention failed", "err", err)
		} else if n > 0 {
			g.Log.Info("audit events past retention removed", "count", n)
		}
	}
}

func (g *Gateway) closeAudit() {
	if g.audit == nil || g.Store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.audit.recorder.Flush(ctx)
	if err := audit.Checkpoint(ctx, g.Store, g.audit.keys, g.audit.witness, time.Now()); err != nil {
		g.Log.Error("audit checkpoint at shutdown failed; signed at the next start", "err", err)
	}
	g.audit.witness.Close()
}

// Audit records an event (holds, policy outcomes). The error must fail
// what it records.
func (g *Gateway) Audit(ctx context.Context, actor, action, object, detail string) error {
	return g.audit.recorder.Record(ctx, &store.AuditEvent{At: time.Now(), Actor: actor, Action: action, Object: object, Detail: detail})
}

// messageEvidence writes a message's evidence bundle (for the console):
// whatever is unsigned is signed first, so that every event can be proven.
func (g *Gateway) messageEvidence(ctx context.Context, id string) ([]byte, error) {
	if err := audit.Checkpoint(ctx, g.Store, g.audit.keys, g.audit.witness, time.Now()); err != nil {
		return nil, err
	}
	sel := audit.Selection{Message: id}
	if s, err := g.Store.SealedByMsg(ctx, id); err == nil {
		sel.Objects = append(sel.Objects, s.ID)
	}
	b, err := audit.BuildBundle(ctx, g.Store, g.audit.keys, sel, time.Now())
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(b, "", " ")
}

// SignAudit signs the events a CLI command appended to st (the gateway
// may not be running to do it); the witness is cfg's.
func SignAudit(cfg *config.Config, st *store.Store) error {
	master, err := readMasterKey(cfg)
	if err != nil {
		return err
	}
	k, err := audit.DeriveKeys(master)
	if err != nil {
		return err
	}
	w := audit.OpenWitness(cfg.AuditWitnessPath(), nil)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return audit.Checkpoint(ctx, st, k, w, time.Now())
}

// readMasterKey reads the installation key without creating one.
func readMasterKey(cfg *config.Config) ([]byte, error) {
	b, err := os.ReadFile(cfg.MasterKeyPath())
	if err != nil {
		return nil, fmt.Errorf("cannot read the installation key %s (the audit log needs it): %w", cfg.MasterKeyPath(), err)
	}
	if len(b) != seal.KeyLen {
		return nil, fmt.Errorf("the installation key %s is %d bytes, want %d", cfg.MasterKeyPath(), len(b), seal.KeyLen)
	}
	return b, nil
}
