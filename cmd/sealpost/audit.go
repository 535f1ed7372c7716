package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/audit"
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
	a := groupCmd("audit", "The tamper-evident audit log: verify, export")
	var asJSON bool
	verify := newCmd("verify", "Check the audit chain and its signed checkpoints; exit 1 naming the first bad event", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		master, err := os.ReadFile(cfg.MasterKeyPath())
		if err != nil || len(master) != seal.KeyLen {
			return fmt.Errorf("cannot read the installation key %s (needed to check the signatures): %v", cfg.MasterKeyPath(), err)
		}
		key, err := audit.Key(master)
		if err != nil {
			return err
		}
		pub := key.Public().(ed25519.PublicKey)
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			r, err := audit.Verify(ctx, st, pub)
			if err != nil {
				return err
			}
			if asJSON {
				json.NewEncoder(os.Stdout).Encode(map[string]any{"ok": r.OK(), "events": r.Events, "checkpoints": r.Checkpoints,
					"last_signed": r.LastSigned, "first_bad": r.BadSeq, "problem": r.Why, "public_key": base64.StdEncoding.EncodeToString(pub)})
			} else if r.OK() {
				fmt.Printf("audit log intact: %d events, %d signed checkpoints, signed up to event %d\ncheckpoint key (Ed25519): %s\n",
					r.Events, r.Checkpoints, r.LastSigned, base64.StdEncoding.EncodeToString(pub))
			}
			if !r.OK() {
				return fmt.Errorf("audit log NOT intact: first bad event %d: %s", r.BadSeq, r.Why)
			}
			return nil
		})
	})
	verify.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
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
				return enc.Encode(map[string]any{"seq": e.Seq, "at": e.At.UTC().Format(time.RFC3339Nano), "actor": e.Actor, "action": e.Action,
					"object": e.Object, "ip": e.IP, "user_agent": e.UA, "detail": e.Detail, "prev": hex.EncodeToString(e.Prev), "hash": hex.EncodeToString(e.Hash)})
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
	a.AddCommand(verify, export)
	return a
}
