package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/gateway"
	"sealpost/internal/keyring"
	"sealpost/internal/store"
)

func keysCmd(g *globalFlags) *cobra.Command {
	k := groupCmd("keys", "Recipients' OpenPGP keys and S/MIME certificates: add, list, remove, lookup")
	var staff, asJSON, offline bool
	withKeyring := func(f func(ctx context.Context, kr *keyring.Keyring, st *store.Store) error) error {
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			return f(ctx, gateway.NewKeyring(cfg, st), st)
		})
	}
	add := newCmd("add FILE...", "Add OpenPGP certificates (armoured or binary) and X.509 certificates (PEM or DER; addresses from SAN rfc822Name) as the operator's; --staff: the organisation's own, published by sealpost's Web Key Directory", cobra.MinimumNArgs(1), func(cmd *cobra.Command, args []string) error {
		// Read and parse every file first: nothing is added unless all are keys.
		var datas [][]byte
		for _, f := range args {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if _, err := keyring.Parse(b); err != nil {
				return fmt.Errorf("%s: %v", f, err)
			}
			datas = append(datas, b)
		}
		if staff {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			for i, b := range datas {
				keys, _ := keyring.Parse(b)
				for _, key := range keys {
					for _, a := range key.Addresses {
						if !cfg.IsOrgDomain(a[strings.LastIndexByte(a, '@')+1:]) {
							return usagef("%s: --staff: %s is not in org.domains", args[i], a)
						}
					}
				}
			}
		}
		return withKeyring(func(ctx context.Context, kr *keyring.Keyring, st *store.Store) error {
			for i, b := range datas {
				keys, err := kr.Add(ctx, b, staff)
				if err != nil {
					return fmt.Errorf("%s: %v", args[i], err)
				}
				for _, key := range keys {
					if err := recordCLI(ctx, g, st, &store.AuditEvent{At: time.Now(), Actor: operatorName(), Action: "key.added", Object: key.Fingerprint,
						Addrs: key.Addresses, Detail: fmt.Sprintf("kind=%s alg=%s staff=%t", key.Kind, key.Algorithm, staff)}); err != nil {
						kr.Remove(ctx, key.Fingerprint)
						return fmt.Errorf("key %s added but removed again: %w", key.Fingerprint, err)
					}
					fmt.Printf("Added %s key %s for %s.\n", kindName(key.Kind), key.Fingerprint, strings.Join(key.Addresses, ", "))
				}
			}
			return nil
		})
	})
	add.Flags().BoolVar(&staff, "staff", false, "the keys are staff's (addresses in org.domains), served by the Web Key Directory")
	list := newCmd("list", "Every stored key: fingerprint, kind, addresses, source, fetched, expiry, trust", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		return withKeyring(func(ctx context.Context, kr *keyring.Keyring, _ *store.Store) error {
			keys, err := kr.List(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(map[string]any{"keys": keys})
			}
			tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINGERPRINT\tKIND\tADDRESSES\tSOURCE\tFETCHED\tEXPIRES\tTRUST")
			for _, key := range keys {
				exp := "never"
				if !key.Expires.IsZero() {
					exp = key.Expires.UTC().Format(time.DateOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", key.Fingerprint, key.Kind, strings.Join(key.Addresses, ","), key.Source,
					key.Fetched.UTC().Format(time.RFC3339), exp, key.Trust)
			}
			return tw.Flush()
		})
	})
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON document")
	remove := newCmd("remove FINGERPRINT", "Remove a key", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		return withKeyring(func(ctx context.Context, kr *keyring.Keyring, st *store.Store) error {
			fpr := strings.ToUpper(strings.ReplaceAll(args[0], " ", ""))
			if err := kr.Remove(ctx, fpr); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no key %s (see sealpost keys list)", fpr)
				}
				return err
			}
			if err := recordCLI(ctx, g, st, &store.AuditEvent{At: time.Now(), Actor: operatorName(), Action: "key.removed", Object: fpr}); err != nil {
				return fmt.Errorf("key %s removed, but the audit log could not record it: %w", fpr, err)
			}
			fmt.Printf("Removed key %s.\n", fpr)
			return nil
		})
	})
	lookup := newCmd("lookup ADDRESS", "The whole discovery ladder for an address (operator store, Web Key Directory, harvested) and its answer", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		if !strings.Contains(args[0], "@") {
			return usagef("%q is not an address", args[0])
		}
		return withKeyring(func(ctx context.Context, kr *keyring.Keyring, _ *store.Store) error {
			ans, err := kr.Lookup(ctx, args[0], keyring.Options{All: true, Offline: offline})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(ans)
			}
			for i, st := range ans.Ladder {
				fmt.Printf("%d. %-9s %s", i+1, st.Source, st.Result)
				if st.Detail != "" {
					fmt.Printf(" (%s)", st.Detail)
				}
				fmt.Println()
				for _, a := range st.WKD {
					fmt.Printf("     %s %s: %s\n", a.Method, a.URL, a.Result)
				}
				for _, key := range st.Keys {
					fmt.Printf("     usable: %s %s %s, trust %s\n", kindName(key.Kind), key.Fingerprint, key.Algorithm, key.Trust)
				}
				for _, p := range st.Passed {
					fmt.Printf("     not used: %s %s: %s\n", kindName(p.Kind), p.Fingerprint, p.Why)
				}
			}
			if len(ans.Keys) == 0 {
				fmt.Printf("Answer: none; mail the policy wants encrypted goes to the portal.\n")
				return nil
			}
			fmt.Printf("Answer: %d key(s) from %s.\n", len(ans.Keys), ans.Source)
			return nil
		})
	})
	lookup.Flags().BoolVar(&asJSON, "json", false, "one JSON document")
	lookup.Flags().BoolVar(&offline, "offline", false, "do not ask the network (cached Web Key Directory answers only)")
	k.AddCommand(add, list, remove, lookup)
	return k
}

func kindName(kind string) string {
	if kind == keyring.KindX509 {
		return "X.509"
	}
	return "OpenPGP"
}
