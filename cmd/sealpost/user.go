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
	"sealpost/internal/config"
	"sealpost/internal/store"
)

var roles = map[string]bool{"admin": true, "auditor": true, "sender": true}

func userCmd(g *globalFlags) *cobra.Command {
	u := groupCmd("user", "Console users and SMTP AUTH users: add, list, disable")
	var role string
	var pwStdin bool
	var addresses []string
	add := newCmd("add NAME", "Add a user (the password is read from stdin with --password-stdin, else generated and printed once); --address: what its SMTP AUTH sessions may send as", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
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
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		addrs := addresses
		if len(addrs) == 0 {
			addrs = []string{auth.DefaultAddress(name, cfg.Org.Domains)}
		}
		for i, a := range addrs {
			if addrs[i], err = senderAddress(cfg, a); err != nil {
				return err
			}
		}
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			h, err := auth.HashPassword(pw)
			if err != nil {
				return err
			}
			if err := st.AddUser(ctx, &store.User{Name: name, PasswordHash: h, Role: role, Addresses: addrs}); err != nil {
				if errors.Is(err, store.ErrExists) {
					return fmt.Errorf("user %s exists", name)
				}
				return err
			}
			if err := recordCLI(ctx, g, st, &store.AuditEvent{At: time.Now(), Actor: operatorName(), Action: "user.added", Object: name, Detail: role + "; may send as " + strings.Join(addrs, ", ")}); err != nil {
				// An account nobody can account for must not work.
				st.SetUserDisabled(ctx, name, true)
				return fmt.Errorf("user %s added but disabled again: %w", name, err)
			}
			fmt.Printf("Added %s (%s), who may send as %s.\n", name, role, strings.Join(addrs, ", "))
			if generated {
				fmt.Printf("Password (shown once): %s\n", pw)
			}
			return nil
		})
	})
	add.Flags().StringVar(&role, "role", "sender", "admin, auditor or sender")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input")
	add.Flags().StringArrayVar(&addresses, "address", nil, "an address the user may send as over SMTP AUTH (repeatable; default NAME@ the first of org.domains)")

	var asJSON bool
	list := newCmd("list", "List users and the addresses each may send as", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			users, err := st.Users(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				type uj struct {
					Name      string   `json:"name"`
					Role      string   `json:"role"`
					Disabled  bool     `json:"disabled"`
					Created   string   `json:"created_at"`
					Addresses []string `json:"addresses"`
				}
				out := struct {
					Users []uj `json:"users"`
				}{Users: []uj{}}
				for _, u := range users {
					out.Users = append(out.Users, uj{u.Name, u.Role, u.Disabled, u.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"), sendAs(cfg, u)})
				}
				return json.NewEncoder(os.Stdout).Encode(out)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tSTATE\tCREATED\tMAY SEND AS")
			for _, u := range users {
				state := "active"
				if u.Disabled {
					state = "disabled"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, state, u.CreatedAt.UTC().Format("2006-01-02"), strings.Join(sendAs(cfg, u), ", "))
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
	u.AddCommand(add, list, disable, userAddressCmd(g))
	return u
}

// sendAs is what u's SMTP AUTH sessions may send as (the default address
// for a user stored before addresses existed).
func sendAs(cfg *config.Config, u store.User) []string {
	return auth.SenderAddresses(u.Name, u.Addresses, cfg.Org.Domains)
}

// senderAddress checks an address given to a user: its syntax, and that
// its domain is the org's (mail from other domains is refused anyway).
func senderAddress(cfg *config.Config, a string) (string, error) {
	a = strings.ToLower(strings.TrimSpace(a))
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || strings.ContainsAny(a, " \t<>\"") || len(a) > 254 {
		return "", usagef("--address %q: want an address like name@%s", a, firstDomain(cfg))
	}
	if !cfg.IsOrgDomain(a[at+1:]) {
		return "", usagef("--address %q: its domain is not one of org.domains (%s)", a, strings.Join(cfg.Org.Domains, ", "))
	}
	return a, nil
}

func firstDomain(cfg *config.Config) string {
	if len(cfg.Org.Domains) > 0 {
		return cfg.Org.Domains[0]
	}
	return "example.gov.uk"
}

// userAddressCmd: the operator grants or withdraws addresses (aliases,
// shared mailboxes) after a user exists.
func userAddressCmd(g *globalFlags) *cobra.Command {
	a := groupCmd("address", "The addresses a user may send as: add, remove")
	change := func(grant bool) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			addr, err := senderAddress(cfg, args[1])
			if err != nil {
				return err
			}
			return withStore(g, func(ctx context.Context, st *store.Store) error {
				have, err := st.UserAddresses(ctx, args[0])
				if err != nil {
					return err
				}
				action := "user.address_added"
				if grant {
					// A user stored before addresses existed had the
					// default one implicitly: keep it when granting more.
					if len(have) == 0 {
						_, err = st.AddUserAddress(ctx, args[0], auth.DefaultAddress(args[0], cfg.Org.Domains))
					}
					if err == nil {
						_, err = st.AddUserAddress(ctx, args[0], addr)
					}
				} else {
					if len(have) == 1 && have[0] == addr {
						return fmt.Errorf("%s is the only address of %s; add another first, or disable the user", addr, args[0])
					}
					action = "user.address_removed"
					err = st.RemoveUserAddress(ctx, args[0], addr)
				}
				if errors.Is(err, store.ErrNotFound) {
					if grant {
						return fmt.Errorf("no user %s", args[0])
					}
					return fmt.Errorf("user %s may not send as %s (nothing to remove)", args[0], addr)
				}
				if err != nil {
					return err
				}
				st.AppendAudit(ctx, &store.AuditEvent{At: time.Now(), Actor: operatorName(), Action: action, Object: args[0], Detail: addr})
				if grant {
					fmt.Printf("%s may now send as %s.\n", args[0], addr)
				} else {
					fmt.Printf("%s may no longer send as %s.\n", args[0], addr)
				}
				return nil
			})
		}
	}
	a.AddCommand(
		newCmd("add NAME ADDRESS", "Let a user send as one more address (an alias or shared mailbox)", cobra.ExactArgs(2), change(true)),
		newCmd("remove NAME ADDRESS", "Withdraw an address from a user", cobra.ExactArgs(2), change(false)))
	return a
}
