package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"sealpost/internal/config"
	"sealpost/internal/gateway"
	"sealpost/internal/mailauth"
)

func initCmd() *cobra.Command {
	var data, domain, org, hostname string
	var force bool
	c := newCmd("init", "Write a documented configuration, keys and a self-signed certificate", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		if data == "" || domain == "" {
			return usagef("init needs --data DIR and --domain DOMAIN")
		}
		domain = strings.ToLower(strings.TrimSuffix(domain, "."))
		dir, err := filepath.Abs(data)
		if err != nil {
			return err
		}
		if hostname == "" {
			hostname = "gw." + domain
		}
		if org == "" {
			org = domain
		}
		path := filepath.Join(dir, "sealpost.toml")
		if _, err := os.Stat(path); err == nil && !force {
			return fmt.Errorf("%s exists; pass --force to overwrite it", path)
		}
		b, err := config.Render(config.TemplateData{DataDir: dir, OrgName: org, Domain: domain, Hostname: hostname})
		if err != nil {
			return err
		}
		cfg, err := config.Parse(path, b)
		if err != nil {
			return err // a domain or name init cannot use: exit 2 with the key
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
		if _, err := gateway.LoadOrCreateMasterKey(cfg.MasterKeyPath()); err != nil {
			return err
		}
		if _, err := gateway.LoadOrCreateTLS(cfg.Path("keys", "tls-cert.pem"), cfg.Path("keys", "tls-key.pem"), hostname, true); err != nil {
			return err
		}
		signer, err := mailauth.LoadOrCreate(cfg.Path("keys"), cfg.DKIM.Algorithm, cfg.DKIM.Selector, nil)
		if err != nil {
			return err
		}
		fmt.Printf("Wrote %s\nKeys and a self-signed certificate are in %s\n\n", path, cfg.Path("keys"))
		recs, err := signer.Records(domain)
		if err == nil {
			fmt.Println("Publish this DKIM record:")
			for _, r := range recs {
				fmt.Printf("  %s TXT \"%s\"\n", r.Name, r.Value)
			}
		}
		fmt.Printf("\nEdit %s (org.mail_host, the listeners), then make the first console admin\n"+
			"(its password is printed once) and start:\n  sealpost user add admin --role admin --config %s\n  sealpost serve --config %s\n", path, path, path)
		return nil
	})
	c.Flags().StringVar(&data, "data", "", "data directory to create (required)")
	c.Flags().StringVar(&domain, "domain", "", "the organisation's mail domain (required)")
	c.Flags().StringVar(&org, "org", "", "organisation name (default: the domain)")
	c.Flags().StringVar(&hostname, "hostname", "", "the gateway's host name (default gw.DOMAIN)")
	c.Flags().BoolVar(&force, "force", false, "overwrite an existing configuration")
	return c
}
