package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/config"
	"sealpost/internal/dnscheck"
	"sealpost/internal/gateway"
	"sealpost/internal/mailauth"
)

func dnsSettings(cfg *config.Config, domain string) (dnscheck.Settings, error) {
	signer, err := mailauth.LoadOrCreate(cfg.Path("keys"), cfg.DKIM.Algorithm, cfg.DKIM.Selector, nil)
	if err != nil {
		return dnscheck.Settings{}, err
	}
	return gateway.DNSSettings(cfg, signer, domain)
}

func dnsCmd(g *globalFlags) *cobra.Command {
	d := groupCmd("dns", "DNS posture: the records to publish, and what is published")
	var asJSON bool
	records := newCmd("records", "The records to publish for each org domain (SPF, DKIM, DMARC, MTA-STS, TLS-RPT, MX)", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		var all []dnscheck.Record
		for _, dom := range cfg.Org.Domains {
			s, err := dnsSettings(cfg, dom)
			if err != nil {
				return err
			}
			all = append(all, dnscheck.Records(s)...)
		}
		if asJSON {
			return json.NewEncoder(os.Stdout).Encode(map[string]any{"records": all, "mta_sts_policy": gateway.MTASTSPolicy(cfg)})
		}
		for _, r := range all {
			fmt.Printf("; %s\n%s\t%s\t%q\n\n", r.Why, r.Name, r.Type, r.Value)
		}
		fmt.Printf("; The MTA-STS policy file, served by sealpost at /.well-known/mta-sts.txt:\n%s", gateway.MTASTSPolicy(cfg))
		return nil
	})
	records.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
	var resolver string
	var checkJSON bool
	check := newCmd("check DOMAIN", "Compare what DOMAIN publishes with what it should, and say what to fix", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		domain := strings.ToLower(strings.TrimSuffix(args[0], "."))
		s, err := dnsSettings(cfg, domain)
		if err != nil {
			return err
		}
		if resolver == "" {
			resolver = cfg.Outbound.Resolver
		}
		var r dnscheck.Resolver = net.DefaultResolver
		if resolver != "" {
			r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				dl := net.Dialer{Timeout: 5 * time.Second}
				return dl.DialContext(ctx, network, resolver)
			}}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		fs := dnscheck.Check(ctx, r, s)
		bad, unqueried := 0, 0
		for _, f := range fs {
			if f.Status != "ok" {
				bad++
			}
			if f.Status == dnscheck.StatusError {
				unqueried++
			}
		}
		if checkJSON {
			json.NewEncoder(os.Stdout).Encode(map[string]any{"domain": domain, "findings": fs, "problems": bad})
		} else {
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			for _, f := range fs {
				status := strings.ToUpper(f.Status)
				if f.Status == dnscheck.StatusError {
					status = "COULD NOT QUERY"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", status, f.Name, f.Found)
				if f.Fix != "" {
					fmt.Fprintf(tw, "\t  fix:\t%s\n", f.Fix)
				}
			}
			tw.Flush()
		}
		switch {
		case unqueried == len(fs):
			return fmt.Errorf("%s: could not query any record: the resolver failed (see above); nothing is known about what is published", domain)
		case unqueried > 0:
			return fmt.Errorf("%s: %d of %d records need attention, %d of them could not be queried", domain, bad, len(fs), unqueried)
		case bad > 0:
			return fmt.Errorf("%s: %d of %d records need attention", domain, bad, len(fs))
		}
		return nil
	})
	check.Flags().StringVar(&resolver, "resolver", "", "DNS server host:port (default: outbound.resolver, else the system's)")
	check.Flags().BoolVar(&checkJSON, "json", false, "one JSON document on stdout")
	d.AddCommand(records, check)
	return d
}
