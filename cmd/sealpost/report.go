package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/report"
	"sealpost/internal/store"
)

func reportCmd(g *globalFlags) *cobra.Command {
	r := groupCmd("report", "Reports from the gateway's records")
	var from, to string
	var asCSV, asJSON bool
	usage := newCmd("usage", "Protected messages by action and month, licensed senders, DLP incidents, top outside domains", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		f, t, err := parsePeriod(from, to)
		if err != nil {
			return err
		}
		switch {
		case t.IsZero():
			t = time.Now()
		case len(to) == len("2006-01-02"):
			t = t.Add(24 * time.Hour) // a day given is included, as in the console and the API
		}
		if f.IsZero() {
			f = report.DefaultFrom(t)
		}
		if !f.Before(t) {
			return usagef("--from must be before --to")
		}
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			u, err := report.Build(ctx, st, f, t)
			if err != nil {
				return err
			}
			switch {
			case asCSV:
				return u.CSV(os.Stdout)
			case asJSON:
				return json.NewEncoder(os.Stdout).Encode(u)
			}
			fmt.Printf("Usage %s to %s (both included): %d licensed senders (staff who sent protected mail)\n", u.From, report.LastDay(t), u.LicensedSenders)
			if len(u.Months) == 0 {
				fmt.Println("no outbound mail recorded in this period")
			}
			for _, m := range u.Months {
				var prot []string
				for _, k := range []string{"portal", "require-tls", "encrypt", "encrypt-pgp", "encrypt-smime", "hold", "quarantine", "reject"} {
					if n := m.Protected[k]; n > 0 {
						prot = append(prot, fmt.Sprintf("%s %d", k, n))
					}
				}
				fmt.Printf("\n%s: %d protected messages (%s); %d sealed into the portal; %d licensed senders; %d outside deliveries\n",
					m.Month, m.ProtectedTotal, strings.Join(prot, ", "), m.Sealed, m.LicensedSenders, m.OutsideDelivered)
				if len(m.Incidents) > 0 {
					var inc []string
					for k, n := range m.Incidents {
						inc = append(inc, fmt.Sprintf("%s %d", k, n))
					}
					fmt.Printf("  DLP incidents (messages): %s\n", strings.Join(inc, ", "))
				}
				for i, d := range m.TopDomains {
					if i == 5 {
						break
					}
					fmt.Printf("  %-30s %d\n", d.Domain, d.Deliveries)
				}
			}
			return nil
		})
	})
	usage.Flags().StringVar(&from, "from", "", "first day (default: the 1st of the month 11 months before --to: that month and the 11 before it)")
	usage.Flags().StringVar(&to, "to", "", "last day, included, or an RFC 3339 time, excluded (default: now)")
	usage.Flags().BoolVar(&asCSV, "csv", false, "CSV: month, measure, key, value")
	usage.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
	r.AddCommand(usage)
	return r
}
