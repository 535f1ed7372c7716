package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/auth"
	"sealpost/internal/store"
)

var roles = map[string]bool{"admin": true, "auditor": true, "sender": true}

func userCmd(g *globalFlags) *cobra.Command {
	u := groupCmd("user", "Console users and SMTP AUTH users: add, list, disable")
	var role string
	var pwStdin bool
	add := newCmd("add NAME", "Add a user (the password is read from stdin with --password-stdin, else generated and printed once)", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		if !roles[role] {
			return usagef("--role must be admin, auditor or sender")
		}
		name := strings.TrimSpace(args[0])
		if name == "" || len(name) > 254 || strings.ContainsAny(name, " \t\r\n") {
			return usagef("user name %q: no spaces, at most 254 characters", args[0])
		}
		pw := ""
		if pwStdin {
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil && line == "" {
				return usagef("--password-stdin: no password on standard input")
			}
			pw = strings.TrimRight(line, "\r\n")
			if len(pw) < 12 {
				return usagef("the password must have at least 12 characters")
			}
		}
		generated := pw == ""
		if generated {
			pw = randomPassword()
		}
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			h, err := auth.HashPassword(pw)
			if err != nil {
				return err
			}
			if err := st.AddUser(ctx, &store.User{Name: name, PasswordHash: h, Role: role}); err != nil {
				if errors.Is(err, store.ErrExists) {
					return fmt.Errorf("user %s exists", name)
				}
				return err
			}
			if err := recordCLI(ctx, g, st, &store.AuditEvent{At: time.Now(), Actor: operatorName(), Action: "user.added", Object: name, Detail: role}); err != nil {
				// An account nobody can account for must not work.
				st.SetUserDisabled(ctx, name, true)
				return fmt.Errorf("user %s added but disabled again: %w", name, err)
			}
			fmt.Printf("Added %s (%s).\n", name, role)
			if generated {
				fmt.Printf("Password (shown once): %s\n", pw)
			}
			return nil
		})
	})
	add.Flags().StringVar(&role, "role", "sender", "admin, auditor or sender")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input")

	var asJSON bool
	list := newCmd("list", "List users", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			users, err := st.Users(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				type uj struct {
					Name     string `json:"name"`
					Role     string `json:"role"`
					Disabled bool   `json:"disabled"`
					Created  string `json:"created_at"`
				}
				out := struct {
					Users []uj `json:"users"`
				}{Users: []uj{}}
				for _, u := range users {
					out.Users = append(out.Users, uj{u.Name, u.Role, u.Disabled, u.CreatedAt.UTC().Format("2006-01-02T15:04:05Z")})
				}
				return json.NewEncoder(os.Stdout).Encode(out)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tSTATE\tCREATED")
			for _, u := range users {
				state := "active"
				if u.Disabled {
					state = "disabled"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, state, u.CreatedAt.UTC().Format("2006-01-02"))
			}
			return tw.Flush()
		})
	})
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
	disable := newCmd("disable NAME", "Disable a user: no login, no SMTP AUTH", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			if err := st.SetUserDisabled(ctx, args[0], true); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no user %s", args[0])
				}
				return err
			}
			if err := recordCLI(ctx, g, st, &store.AuditEvent{At: time.Now(), Actor: operatorName(), Action: "user.disabled", Object: args[0]}); err != nil {
				return fmt.Errorf("user %s is disabled, but %w", args[0], err)
			}
			fmt.Printf("Disabled %s.\n", args[0])
			return nil
		})
	})
	u.AddCommand(add, list, disable)
	return u
}
