package main

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/config"
	"sealpost/internal/dns"
	"sealpost/internal/inbound"
	"sealpost/internal/mailauth"
	"sealpost/internal/mailauth/arc"
)

func inboundCmd(g *globalFlags) *cobra.Command {
	c := groupCmd("inbound", "Inbound mail: what the gateway would do with a message from the Internet")
	var asJSON bool
	var ip, helo, mailFrom string
	test := newCmd("test MESSAGE.eml", "The inbound verdict for a message (SPF, DKIM, ARC, DMARC) with each result and why", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		cfg, fromFile, err := policyConfig(g)
		if err != nil {
			return err
		}
		if !fromFile {
			fmt.Fprintf(os.Stderr, "sealpost: no configuration found: org domain %s, smtp.hostname %s\n", cfg.Org.Domains[0], cfg.SMTP.Hostname)
		}
		addr := net.ParseIP(ip)
		if addr == nil {
			return usagef("--ip %q: give the sending server's IP address", ip)
		}
		if helo == "" {
			return usagef("--helo: give the name the sending server said in EHLO")
		}
		if mailFrom != "" && !strings.Contains(mailFrom, "@") {
			return usagef("--mail-from %q: give an address (or \"\" for the null sender)", mailFrom)
		}
		data, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		res, err := dns.FromConfig(cfg.Outbound.Resolver, false)
		if err != nil {
			return &config.Error{File: cfg.File, Key: "outbound.resolver", Msg: err.Error()}
		}
		ic := inbound.Config{Resolver: res, AuthServID: cfg.SMTP.Hostname, OrgDomains: cfg.Org.Domains,
			DMARCMode: cfg.Inbound.DMARCMode, RejectAction: inbound.Action(cfg.Inbound.DMARCRejectAction)}
		note := ""
		if cfg.Inbound.ARCSeal {
			ic.Seal, note = sealer(cfg)
		}
		ev, err := inbound.New(ic)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		v := ev.Evaluate(ctx, inbound.Conn{IP: addr, HELO: helo, MailFrom: mailFrom}, inbound.CRLF(data))
		if note != "" {
			v.Checks = append(v.Checks, inbound.Check{Method: "arc-seal", Result: "skipped", Why: note})
		}
		rep := v.Report()
		if asJSON {
			return json.NewEncoder(os.Stdout).Encode(rep)
		}
		line := rep.Verdict
		if rep.Tagged {
			line += " (tagged: the results say it failed)"
		}
		if rep.Reply != "" {
			line += ": " + rep.Reply
		}
		fmt.Printf("%s: %s\n  why: %s\n", args[0], line, rep.Why)
		for _, c := range rep.Checks {
			fmt.Printf("  %-22s %-10s %s\n", c.Method, c.Result, c.Why)
		}
		if rep.Prepend != "" {
			fmt.Printf("Header fields added above the message:\n%s", strings.ReplaceAll(rep.Prepend, "\r\n", "\n"))
		}
		return nil
	})
	f := test.Flags()
	f.BoolVar(&asJSON, "json", false, "print the verdict as JSON")
	f.StringVar(&ip, "ip", "", "the sending server's IP address")
	f.StringVar(&helo, "helo", "", "the name it gave in EHLO/HELO")
	f.StringVar(&mailFrom, "mail-from", "", "the envelope sender (MAIL FROM; empty for the null sender)")
	c.AddCommand(test)
	return c
}

// sealer loads the RSA DKIM key from the data directory, without creating
// keys: a test must not change the installation.
func sealer(cfg *config.Config) (*arc.Sealer, string) {
	dir := cfg.Path("keys")
	if _, err := os.Stat(dir); err != nil {
		return nil, "no DKIM keys in " + dir + " (run the gateway once); the verdict is shown without our seal"
	}
	s, err := mailauth.LoadOrCreate(dir, cfg.DKIM.Algorithm, cfg.DKIM.Selector, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, "cannot read the DKIM keys: " + err.Error()
	}
	var sels []string
	var keys []crypto.Signer
	for _, k := range s.Keys() {
		sels = append(sels, k.Selector)
		keys = append(keys, k.Signer)
	}
	sel, key, ok := inbound.SealKey(sels, keys)
	if !ok {
		return nil, "no RSA DKIM key to seal with (dkim.algorithm " + cfg.DKIM.Algorithm + ")"
	}
	return &arc.Sealer{Domain: cfg.Org.Domains[0], Selector: sel, Key: key, AuthServID: cfg.SMTP.Hostname}, ""
}
