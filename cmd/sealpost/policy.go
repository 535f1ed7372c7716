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

	"sealpost/internal/config"
	"sealpost/internal/gateway"
)

// policyConfig is the configuration for policy commands: the operator's, or
// the dev defaults when there is none.
func policyConfig(g *globalFlags) (*config.Config, bool, error) {
	cfg, err := g.loadConfig()
	var ue usageError
	if errors.As(err, &ue) && g.config == "" {
		cfg = config.Dev(absPath(devDataDir))
		return cfg, false, cfg.Validate()
	}
	return cfg, err == nil, err
}

func policyCmd(g *globalFlags) *cobra.Command {
	p := groupCmd("policy", "The outbound policy: test a message, list the rules")
	var asJSON bool
	var from string
	var to []string
	test := newCmd("test MESSAGE.eml", "What the policy would do with a message, per recipient, and why", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		cfg, fromFile, err := policyConfig(g)
		if err != nil {
			return err
		}
		if !fromFile {
			fmt.Fprintf(os.Stderr, "sealpost: no configuration found: using the built-in policy with org domain %s\n", cfg.Org.Domains[0])
		}
		data, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		scanner, err := gateway.DLPEngine(cfg)
		if err != nil {
			return err
		}
		pol, err := gateway.PolicyEngine(cfg)
		if err != nil {
			return err
		}
		known := map[string]bool{}
		history := false
		if fromFile {
			if _, err := os.Stat(cfg.Path("sealpost.db")); err == nil {
				if st, err := gateway.OpenStore(cfg); err == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					known, err = st.KnownDomains(ctx)
					cancel()
					st.Close()
					history = err == nil
				}
			}
		}
		d, err := gateway.TestMessage(cfg, scanner, pol, data, from, to, func(d string) bool { return known[d] })
		if err != nil {
			return usagef("%s: %v (give recipients with --to ADDR)", args[0], err)
		}
		// Recipients the policy wants encrypted: is there a usable key, and
		// if not, the portal, and why (as the running gateway decides).
		if _, err := os.Stat(cfg.Path("sealpost.db")); err == nil && fromFile {
			st, err := gateway.OpenStore(cfg)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err = gateway.ResolveKeys(ctx, gateway.NewKeyring(cfg, st), cfg, d)
			cancel()
			st.Close()
			if err != nil {
				return err
			}
		}
		if asJSON {
			return json.NewEncoder(os.Stdout).Encode(d)
		}
		mark := d.Classification
		if mark == "" {
			mark = "no marking"
		}
		fmt.Printf("%s: %s\n", args[0], mark)
		if len(d.Findings) == 0 {
			fmt.Println("findings: none")
		} else {
			fmt.Println("findings:")
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			for _, f := range d.Findings {
				fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", f.Detector, f.Count, f.Confidence, f.Where)
			}
			tw.Flush()
		}
		fmt.Println("recipients:")
		for _, r := range d.Recipients {
			then := ""
			if r.Then != "" {
				then = " (once released: " + r.Then + ")"
			}
			fmt.Printf("  %s: %s%s\n", r.Address, strings.ToUpper(r.Action), then)
			for _, why := range r.Reasons {
				fmt.Printf("    - %s\n", why)
			}
		}
		if !history {
			fmt.Println("note: no delivery history was read, so every external domain counts as a first contact")
		}
		return nil
	})
	test.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
	test.Flags().StringVar(&from, "from", "", "envelope sender (default: the From: address)")
	test.Flags().StringArrayVar(&to, "to", nil, "recipient (repeat; default: To, Cc and Bcc of the message)")
	var rulesJSON bool
	rules := newCmd("rules", "The active rules, in order", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		cfg, _, err := policyConfig(g)
		if err != nil {
			return err
		}
		pol, err := gateway.PolicyEngine(cfg)
		if err != nil {
			return err
		}
		rs := pol.Rules()
		if rulesJSON {
			type ruleJSON struct {
				Name   string `json:"name"`
				When   string `json:"when"`
				Action string `json:"action"`
				Reason string `json:"reason"`
			}
			out := struct {
				Rules []ruleJSON `json:"rules"`
			}{Rules: []ruleJSON{}}
			for _, r := range rs {
				out.Rules = append(out.Rules, ruleJSON{r.Name, r.When, r.Action, r.Reason})
			}
			return json.NewEncoder(os.Stdout).Encode(out)
		}
		for _, r := range rs {
			fmt.Printf("%s → %s\n  when %s\n", r.Name, r.Action, r.When)
			if r.Reason != "" {
				fmt.Printf("  why: %s\n", r.Reason)
			}
		}
		return nil
	})
	rules.Flags().BoolVar(&rulesJSON, "json", false, "one JSON document on stdout")
	p.AddCommand(test, rules)
	return p
}
