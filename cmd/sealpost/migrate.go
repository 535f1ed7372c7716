package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/datadir"
	"sealpost/internal/gateway"
	"sealpost/internal/store"
)

// migrateCmd applies the store's schema migrations under the data
// directory's lock (serve does the same at start), or with --status lists
// them without changing anything.
func migrateCmd(g *globalFlags) *cobra.Command {
	var status, asJSON bool
	c := newCmd("migrate", "Apply the database's schema migrations (serve also does at start); --status lists them", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		path := cfg.Path("sealpost.db")
		if status {
			states, err := store.SQLiteMigrationStatus(ctx, path)
			if err != nil {
				return fmt.Errorf("reading the migrations of %s: %w", path, err)
			}
			return printMigrations(states, asJSON)
		}
		lock, err := datadir.Acquire(cfg.DataDir)
		var inUse *datadir.InUseError
		switch {
		case errors.As(err, &inUse):
			return fmt.Errorf("%v: the running gateway applied the migrations when it started; stop it to migrate with a newer sealpost (`sealpost migrate --status` lists them)", inUse)
		case err != nil:
			return cfg.KeyError("data_dir", fmt.Sprintf("%s: %v", cfg.DataDir, err))
		}
		defer lock.Release()
		st, err := gateway.OpenStore(cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		applied := st.Migrated()
		if asJSON {
			return printMigrations(applied, true)
		}
		if len(applied) == 0 {
			fmt.Println("the schema is up to date")
			return nil
		}
		for _, m := range applied {
			fmt.Printf("applied %d %s\n", m.Version, m.Name)
		}
		return nil
	})
	c.Flags().BoolVar(&status, "status", false, "list every migration and when it was applied; change nothing")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

type migrationJSON struct {
	Version   int    `json:"version"`
	Name      string `json:"name"`
	Applied   bool   `json:"applied"`
	AppliedAt string `json:"applied_at,omitempty"`
}

func printMigrations(states []store.MigrationState, asJSON bool) error {
	if asJSON {
		out := struct {
			Migrations []migrationJSON `json:"migrations"`
		}{Migrations: []migrationJSON{}}
		for _, m := range states {
			j := migrationJSON{Version: m.Version, Name: m.Name, Applied: !m.AppliedAt.IsZero()}
			if j.Applied {
				j.AppliedAt = m.AppliedAt.UTC().Format(time.RFC3339)
			}
			out.Migrations = append(out.Migrations, j)
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
	for _, m := range states {
		at := "pending"
		if !m.AppliedAt.IsZero() {
			at = m.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Version, m.Name, at)
	}
	return tw.Flush()
}
