// Command sealpost is a secure email gateway: see README.md.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"sealpost/internal/config"
)

// usageError is bad usage: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

type globalFlags struct {
	config string
	data   string
	dev    bool
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "sealpost",
		Short:         "A self-hosted secure email gateway",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.config, "config", "", "configuration file (default: $SEALPOST_CONFIG, else /etc/sealpost/sealpost.toml, else the dev data in ./sealpost-data)")
	root.PersistentFlags().BoolVar(&g.dev, "dev", false, "development mode: no config, data in ./sealpost-data, loopback listeners, outbound mail captured in the dev outbox")
	root.PersistentFlags().StringVar(&g.data, "data", "", "data directory (overrides data_dir; with --dev default ./sealpost-data)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err.Error()} })
	// --version prints what `sealpost version` does.
	root.Version = "set"
	root.SetVersionTemplate(versionString())
	root.AddCommand(versionCmd(), serveCmd(g), initCmd(), queueCmd(g), quarantineCmd(g), policyCmd(g), auditCmd(g), reportCmd(g), dnsCmd(g), tlsCmd(g), tokenCmd(g), userCmd(g), dlpCmd(g), migrateCmd(g), inboundCmd(g), keysCmd(g))
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "sealpost:", err)
	var ue usageError
	var ce *config.Error
	var se startupError
	switch {
	case errors.As(err, &ue), errors.As(err, &ce), errors.As(err, &se):
		return 2
	case isCobraUsage(err):
		return 2
	}
	return 1
}

// isCobraUsage recognises cobra's own errors for unknown commands and
// wrong argument counts.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "unknown flag", "unknown shorthand"} {
		if len(s) >= len(p) && contains(s, p) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

const devDataDir = "sealpost-data"

// loadConfig finds the configuration as the flags say.
func (g *globalFlags) loadConfig() (*config.Config, error) {
	path := g.config
	if path == "" && !g.dev {
		path = os.Getenv("SEALPOST_CONFIG")
	}
	if path == "" && !g.dev {
		if _, err := os.Stat("/etc/sealpost/sealpost.toml"); err == nil {
			path = "/etc/sealpost/sealpost.toml"
		}
	}
	if path == "" {
		dir := g.data
		if dir == "" {
			dir = devDataDir
		}
		if !g.dev {
			if _, err := os.Stat(dir); err != nil {
				return nil, usagef("no configuration: pass --config FILE (make one with `sealpost init`), or --dev")
			}
		}
		cfg := config.Dev(absPath(dir))
		return cfg, cfg.Validate()
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if g.data != "" {
		cfg.DataDir = absPath(g.data)
	}
	return cfg, nil
}

func absPath(p string) string {
	if wd, err := os.Getwd(); err == nil && len(p) > 0 && p[0] != '/' {
		return wd + "/" + p
	}
	return p
}

// groupCmd is a command that only holds subcommands: an unknown or missing
// subcommand is a usage error (exit 2), not help with exit 0.
func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
		}
		return usagef("%s needs a subcommand (see %s --help)", cmd.CommandPath(), cmd.CommandPath())
	}}
}

func newCmd(use, short string, args cobra.PositionalArgs, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: args, RunE: run}
}
