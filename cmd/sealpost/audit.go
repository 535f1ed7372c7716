package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/audit"
	"sealpost/internal/config"
	"sealpost/internal/gateway"
	"sealpost/internal/seal"
	"sealpost/internal/store"
)

// parseTime accepts RFC 3339 times and plain dates (UTC midnight).
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("%q is not a time: want 2026-11-26 or 2026-11-26T10:00:00Z", s)
}

// parsePeriod parses --from and --to.
func parsePeriod(from, to string) (time.Time, time.Time, error) {
	f, err := parseTime(from)
	if err != nil {
		return f, f, err
	}
	t, err := parseTime(to)
	return f, t, err
}

func auditCmd(g *globalFlags) *cobra.Command {
	a := groupCmd("audit", "The tamper-evident audit log: verify, export, evidence bundles")
	var asJSON bool
	var bundle, pinKey string
	verify := newCmd("verify", "Check the audit chain, its signed checkpoints and the witness file; exit 1 naming the first bad event", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		if bundle != "" {
			return verifyBundle(bundle, pinKey, asJSON)
		}
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		keys, err := auditKeys(cfg)
		if err != nil {
			return err
		}
		pub := base64.StdEncoding.EncodeToString(keys.Public())
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			v := &audit.Verifier{Keys: keys, WitnessFile: cfg.AuditWitnessPath(), Retention: cfg.Audit.Retention.Duration}
			r, err := v.Verify(ctx, st)
			if err != nil {
				return err
			}
			if asJSON {
				json.NewEncoder(os.Stdout).Encode(map[string]any{"ok": r.OK(), "events": r.Events, "checkpoints": r.Checkpoints, "witnessed": r.Witnessed,
					"last_signed": r.LastSigned, "first_bad": r.BadSeq, "problem": r.Why, "public_key": pub})
			} else if r.OK() {
				fmt.Printf("audit log intact: %d events, %d signed checkpoints, signed up to event %d\nwitness: %s (%d checkpoints)\ncheckpoint key (Ed25519): %s\n",
					r.Events, r.Checkpoints, r.LastSigned, cfg.AuditWitnessPath(), r.Witnessed, pub)
			}
			if !r.OK() {
				return fmt.Errorf("audit log NOT intact: first bad event %d: %s", r.BadSeq, r.Why)
			}
			return nil
		})
	})
	verify.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
	verify.Flags().StringVar(&bundle, "bundle", "", "check an evidence bundle instead (needs no configuration or data directory)")
	verify.Flags().StringVar(&pinKey, "public-key", "", "with --bundle: the installation's checkpoint key (base64, as `audit verify` prints it); the bundle must be signed with it")
	var from, to string
	export := newCmd("export", "Write audit events as JSON lines, oldest first", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		f, t, err := parsePeriod(from, to)
		if err != nil {
			return err
		}
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			w := bufio.NewWriter(os.Stdout)
			enc := json.NewEncoder(w)
			err := st.EachAuditEvent(ctx, f, t, func(e *store.AuditEvent) error {
				addrs := e.Addrs
				if addrs == nil {
					addrs = []string{}
				}
				return enc.Encode(map[string]any{"seq": e.Seq, "at": e.At.UTC().Format(time.RFC3339Nano), "actor": e.Actor, "action": e.Action,
					"object": e.Object, "ip": e.IP, "user_agent": e.UA, "detail": e.Detail, "addresses": addrs,
					"prev": hex.EncodeToString(e.Prev), "hash": hex.EncodeToString(e.Hash), "mac": hex.EncodeToString(e.MAC)})
			})
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("export took too long: narrow it with --from and --to")
			}
			return err
		})
	})
	export.Flags().StringVar(&from, "from", "", "first time (2026-11-01 or RFC 3339), inclusive")
	export.Flags().StringVar(&to, "to", "", "last time, exclusive")
	a.AddCommand(verify, export, evidenceCmd(g))
	return a
}

// auditKeys derives the audit keys from the installation key of cfg.
func auditKeys(cfg *config.Config) (*audit.Keys, error) {
	master, err := os.ReadFile(cfg.MasterKeyPath())
	if err != nil || len(master) != seal.KeyLen {
		return nil, fmt.Errorf("cannot read the installation key %s (needed to check the audit log): %v", cfg.MasterKeyPath(), err)
	}
	return audit.DeriveKeys(master)
}

// recordCLI appends an event a command writes and signs it at once (the
// gateway may not be running to do it). The error must fail the command.
func recordCLI(ctx context.Context, g *globalFlags, st *store.Store, e *store.AuditEvent) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	err = st.AppendAudit(ctx, e)
	if errors.Is(err, store.ErrNoAuditKey) {
		// Before the first start: make the installation key, as serve
		// would, so that the first events are linked like every other.
		master, kerr := gateway.LoadOrCreateMasterKey(cfg.MasterKeyPath())
		if kerr != nil {
			return fmt.Errorf("the audit log could not record it: %w", kerr)
		}
		k, kerr := audit.DeriveKeys(master)
		if kerr != nil {
			return kerr
		}
		st.SetAuditChain(audit.Chain{Keys: k})
		err = st.AppendAudit(ctx, e)
	}
	if err != nil {
		return fmt.Errorf("the audit log could not record it: %w", err)
	}
	if err := gateway.SignAudit(cfg, st); err != nil {
		return fmt.Errorf("recorded in the audit log, but not signed (the gateway signs it when it runs): %w", err)
	}
	return nil
}
