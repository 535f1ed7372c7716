package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/config"
	"sealpost/internal/dns"
	"sealpost/internal/gateway"
	"sealpost/internal/store"
	"sealpost/internal/tlspolicy"
)

// tlsEvaluator builds the policy as the gateway would, with the gateway's
// MTA-STS cache when the data directory has a database.
func tlsEvaluator(cfg *config.Config, resolver string) (*tlspolicy.Evaluator, func(), error) {
	if resolver == "" {
		resolver = cfg.Outbound.Resolver
	}
	res, err := dns.FromConfig(resolver, cfg.Outbound.DNSSECTrust)
	if err != nil {
		return nil, nil, fmt.Errorf("outbound.resolver: %v", err)
	}
	var st *store.Store
	done := func() {}
	if _, err := os.Stat(cfg.DataDir); err == nil {
		if st, err = gateway.OpenStore(cfg); err != nil {
			return nil, nil, err
		}
		done = func() { st.Close() }
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := gateway.NewTLSPolicy(cfg, res, st, nil, log)
	if err != nil {
		done()
		return nil, nil, err
	}
	return e, done, nil
}

func tlsCmd(g *globalFlags) *cobra.Command {
	t := groupCmd("tls", "Outbound TLS policy: DANE, MTA-STS, the require-TLS list")
	var asJSON bool
	var resolver string
	show := func(r *tlspolicy.Result) error {
		rep := r.Report()
		if asJSON {
			return json.NewEncoder(os.Stdout).Encode(rep)
		}
		fmt.Printf("%s: %s\n  why: %s\n", rep.Domain, rep.Mode, rep.Why)
		if rep.Policy != nil {
			fmt.Printf("  MTA-STS: id %s, mode %s\n", rep.Policy.ID, rep.Policy.Mode)
		}
		if rep.ListEntry != "" {
			fmt.Printf("  require_tls_domains: %s\n", rep.ListEntry)
		}
		if rep.Failure != "" {
			fmt.Printf("  problem (RFC 8460): %s\n", rep.Failure)
		}
		if rep.Fail != "" {
			fmt.Printf("  mail now gets: %s\n", rep.Fail)
		}
		fmt.Printf("  MX answer DNSSEC-authentic: %v\n", rep.MXAuthentic)
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  HOST\tPREF\tCONTACTED\tMODE\tWHY")
		for _, m := range rep.MX {
			fmt.Fprintf(tw, "  %s\t%d\t%v\t%s\t%s\n", m.Host, m.Pref, m.Allowed, m.Mode, m.Why)
		}
		return tw.Flush()
	}
	run := func(drop bool) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			domain := dns.Normalise(args[0])
			if domain == "" || strings.ContainsAny(domain, " /@") {
				return usagef("%q is not a domain", args[0])
			}
			e, done, err := tlsEvaluator(cfg, resolver)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if drop {
				if e.STS == nil {
					return fmt.Errorf("outbound.mta_sts is false: there is no MTA-STS cache to refresh")
				}
				if err := e.STS.Cache.Delete(ctx, domain); err != nil {
					return fmt.Errorf("dropping the cached policy of %s: %v", domain, err)
				}
				if !asJSON {
					fmt.Printf("dropped the cached MTA-STS policy of %s; fetched again:\n", domain)
				}
			}
			r := e.Plan(ctx, domain, false)
			if err := show(r); err != nil {
				return err
			}
			if r.Fail != "" {
				// Exit 1: mail to the domain would not go now.
				// (The reply itself is in the output above; repeating it here
				// could read as a usage error to main's cobra matcher.)
				return fmt.Errorf("%s: mail would not be sent now (see above)", domain)
			}
			return nil
		}
	}
	check := newCmd("check DOMAIN", "What outbound TLS mail to DOMAIN gets now, and why", cobra.ExactArgs(1), run(false))
	refresh := newCmd("refresh DOMAIN", "Drop DOMAIN's cached MTA-STS policy (and fetch it again)", cobra.ExactArgs(1), run(true))
	for _, c := range []*cobra.Command{check, refresh} {
		c.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
		c.Flags().StringVar(&resolver, "resolver", "", `DNS server "host:port" (default outbound.resolver)`)
	}
	t.AddCommand(check, refresh)
	return t
}
