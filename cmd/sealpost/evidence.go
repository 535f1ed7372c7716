package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/audit"
	"sealpost/internal/store"
)

func evidenceCmd(g *globalFlags) *cobra.Command {
	var msg, addr, from, to, out string
	c := newCmd("evidence", "Write a self-contained, verifiable evidence bundle: every event about a message, or about an address (others' addresses redacted)", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		if (msg == "") == (addr == "") {
			return usagef("give --message ID or --address ADDR")
		}
		if msg != "" && (from != "" || to != "") {
			return usagef("--from and --to go with --address")
		}
		if out == "" {
			return usagef("--out FILE is required")
		}
		f, t, err := parsePeriod(from, to)
		if err != nil {
			return err
		}
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		keys, err := auditKeys(cfg)
		if err != nil {
			return err
		}
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			// Sign what is unsigned, so that every event can be proven, then
			// refuse to prove anything from a log that does not verify.
			w := audit.OpenWitness(cfg.AuditWitnessPath(), nil)
			defer w.Close()
			if err := audit.Checkpoint(ctx, st, keys, w, time.Now()); err != nil {
				return fmt.Errorf("signing a checkpoint: %w", err)
			}
			v := &audit.Verifier{Keys: keys, WitnessFile: cfg.AuditWitnessPath(), Retention: cfg.Audit.Retention.Duration}
			r, err := v.Verify(ctx, st)
			if err != nil {
				return err
			}
			if !r.OK() {
				return fmt.Errorf("the audit log is NOT intact (first bad event %d: %s): a bundle from it would prove nothing", r.BadSeq, r.Why)
			}
			sel := audit.Selection{Message: msg, Address: addr, From: f, To: t}
			if msg != "" {
				if s, err := st.SealedByMsg(ctx, msg); err == nil {
					sel.Objects = append(sel.Objects, s.ID)
				}
			}
			b, err := audit.BuildBundle(ctx, st, keys, sel, time.Now())
			if err != nil {
				return err
			}
			data, err := json.MarshalIndent(b, "", " ")
			if err != nil {
				return err
			}
			if err := writeFileSync(out, append(data, '\n')); err != nil {
				return err
			}
			n := 0
			for _, s := range b.Segments {
				for _, e := range s.Events {
					if len(e.Fields) > 0 {
						n++
					}
				}
			}
			fmt.Printf("evidence bundle %s: %d events proven by %d signed checkpoints\ncheck it anywhere with: sealpost audit verify --bundle %s --public-key %s\n",
				out, n, len(b.Segments), out, b.PublicKey)
			return nil
		})
	})
	c.Flags().StringVar(&msg, "message", "", "a message id (as in the trace, the queue, the console)")
	c.Flags().StringVar(&addr, "address", "", "an address: every event about it (a subject-access or breach-report bundle)")
	c.Flags().StringVar(&from, "from", "", "with --address: first time (2026-11-01 or RFC 3339), inclusive")
	c.Flags().StringVar(&to, "to", "", "with --address: last time, exclusive")
	c.Flags().StringVar(&out, "out", "", "the bundle file to write (JSON)")
	return c
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// verifyBundle checks an evidence bundle with nothing but the file (and,
// if given, the installation's published key).
func verifyBundle(path, pinKey string, asJSON bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var pin ed25519.PublicKey
	if pinKey != "" {
		k, err := base64.StdEncoding.DecodeString(pinKey)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return usagef("--public-key: want the base64 Ed25519 key `audit verify` prints")
		}
		pin = k
	}
	var b audit.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return fmt.Errorf("evidence bundle %s NOT intact: it is not a bundle: %v", path, err)
	}
	rep, err := audit.VerifyBundle(&b, pin)
	if asJSON {
		out := map[string]any{"ok": err == nil, "public_key": b.PublicKey}
		if err != nil {
			out["problem"] = err.Error()
		} else {
			out["events"], out["checkpoints"] = len(rep.Events), rep.Checkpoints
		}
		json.NewEncoder(os.Stdout).Encode(out)
	}
	if err != nil {
		return fmt.Errorf("evidence bundle %s NOT intact: %v", path, err)
	}
	if !asJSON {
		fmt.Printf("evidence bundle intact: %d events proven by %d signed checkpoints\nsigned with key (Ed25519): %s\n", len(rep.Events), rep.Checkpoints, rep.PublicKey)
		if pin == nil {
			fmt.Println("compare that key with the one the installation publishes (`sealpost audit verify` prints it), or pass --public-key")
		}
		for _, e := range rep.Events {
			fmt.Printf("%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Get("at"), e.Get("action"), e.Get("actor"), e.Get("object"), e.Get("detail"))
		}
	}
	return nil
}
