package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/store"
)

func tokenCmd(g *globalFlags) *cobra.Command {
	t := groupCmd("token", "REST API tokens: add, list, revoke")
	var scope string
	add := newCmd("add NAME", "Make an API token (printed once; keep it secret)", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		if scope != "read" && scope != "admin" {
			return usagef("--scope: want read or admin")
		}
		b := make([]byte, 32)
		rand.Read(b)
		// The prefix tells a secret scanner what this is without naming the
		// product. A token is looked up by the hash of all of it, so those
		// made with the old "sp_" prefix keep working.
		tok := "api_" + base64.RawURLEncoding.EncodeToString(b)
		h := sha256.Sum256([]byte(tok))
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			err := st.AddAPIToken(ctx, &store.APIToken{Name: args[0], Hash: h[:], Scope: scope})
			if errors.Is(err, store.ErrExists) {
				return fmt.Errorf("a token named %q exists; revoke it or choose another name", args[0])
			}
			if err != nil {
				return err
			}
			if err := recordCLI(ctx, g, st, &store.AuditEvent{At: time.Now(), Actor: operatorName(), Action: "api.token_added", Object: args[0], Detail: scope}); err != nil {
				// A token nobody can account for must not work.
				st.RevokeAPIToken(ctx, args[0])
				return fmt.Errorf("token %q not added: %w", args[0], err)
			}
			fmt.Println(tok)
			fmt.Fprintf(os.Stderr, "token %q (%s): use it as \"Authorization: Bearer TOKEN\"; it is shown only now\n", args[0], scope)
			return nil
		})
	})
	add.Flags().StringVar(&scope, "scope", "read", "read (GET only) or admin (everything)")
	var asJSON bool
	list := newCmd("list", "API tokens (names and scopes; never the tokens)", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			ts, err := st.APITokens(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				type tj struct {
					Name     string `json:"name"`
					Scope    string `json:"scope"`
					Created  string `json:"created_at"`
					LastUsed string `json:"last_used,omitempty"`
					Revoked  bool   `json:"revoked"`
				}
				out := []tj{}
				for _, x := range ts {
					j := tj{Name: x.Name, Scope: x.Scope, Created: x.CreatedAt.UTC().Format(time.RFC3339), Revoked: x.Disabled}
					if !x.LastUsed.IsZero() {
						j.LastUsed = x.LastUsed.UTC().Format(time.RFC3339)
					}
					out = append(out, j)
				}
				return json.NewEncoder(os.Stdout).Encode(map[string]any{"tokens": out})
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPE\tCREATED\tLAST USED\tREVOKED")
			for _, x := range ts {
				last := "never"
				if !x.LastUsed.IsZero() {
					last = x.LastUsed.UTC().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", x.Name, x.Scope, x.CreatedAt.UTC().Format("2006-01-02"), last, x.Disabled)
			}
			return tw.Flush()
		})
	})
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
	revoke := newCmd("revoke NAME", "Revoke an API token", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			ok, err := st.RevokeAPIToken(ctx, args[0])
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no token named %q", args[0])
			}
			if err := recordCLI(ctx, g, st, &store.AuditEvent{At: time.Now(), Actor: operatorName(), Action: "api.token_revoked", Object: args[0]}); err != nil {
				return fmt.Errorf("token %q is revoked, but %w", args[0], err)
			}
			fmt.Printf("token %q revoked\n", args[0])
			return nil
		})
	})
	t.AddCommand(add, list, revoke)
	return t
}
