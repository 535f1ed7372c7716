package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"sealpost/internal/ops"
	"sealpost/internal/policy"
	"sealpost/internal/store"
)

type decisionJSON struct {
	ID             string                     `json:"id"`
	State          string                     `json:"state"`
	Outcome        string                     `json:"outcome"`
	From           string                     `json:"from"`
	Subject        string                     `json:"subject"`
	Classification string                     `json:"classification"`
	CreatedAt      string                     `json:"created_at"`
	ExpiresAt      string                     `json:"expires_at,omitempty"`
	ResolvedAt     string                     `json:"resolved_at,omitempty"`
	ResolvedBy     string                     `json:"resolved_by,omitempty"`
	Resolution     string                     `json:"resolution,omitempty"`
	Findings       []any                      `json:"findings"`
	Recipients     []policy.RecipientDecision `json:"recipients"`
}

func decisionToJSON(d *store.Decision) decisionJSON {
	out := decisionJSON{ID: d.MsgID, State: d.State, Outcome: d.Outcome, From: d.MailFrom, Subject: d.Subject, Classification: d.Classification,
		CreatedAt: d.CreatedAt.UTC().Format(time.RFC3339), ResolvedBy: d.ResolvedBy, Resolution: d.Resolution, Findings: []any{}, Recipients: []policy.RecipientDecision{}}
	if !d.ExpiresAt.IsZero() {
		out.ExpiresAt = d.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if !d.ResolvedAt.IsZero() {
		out.ResolvedAt = d.ResolvedAt.UTC().Format(time.RFC3339)
	}
	var pd policy.Decision
	if json.Unmarshal([]byte(d.Detail), &pd) == nil {
		for _, f := range pd.Findings {
			out.Findings = append(out.Findings, f)
		}
		out.Recipients = pd.Recipients
	}
	return out
}

func operatorName() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

func quarantineCmd(g *globalFlags) *cobra.Command {
	q := groupCmd("quarantine", "Held and quarantined mail: list, show, release, delete")
	var asJSON, all bool
	var limit int
	list := newCmd("list", "Held and quarantined messages, newest first", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			states := []string{"held", "quarantined"}
			if all {
				states = nil
			}
			ds, err := st.Decisions(ctx, states, limit)
			if err != nil {
				return err
			}
			if asJSON {
				out := struct {
					Messages []decisionJSON `json:"messages"`
				}{Messages: []decisionJSON{}}
				for _, d := range ds {
					out.Messages = append(out.Messages, decisionToJSON(d))
				}
				return json.NewEncoder(os.Stdout).Encode(out)
			}
			if len(ds) == 0 {
				fmt.Println("nothing is held or quarantined")
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tRECEIVED\tFROM\tSUBJECT")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.MsgID, d.State, d.CreatedAt.UTC().Format("2006-01-02 15:04"), d.MailFrom, truncate(d.Subject, 50))
			}
			return tw.Flush()
		})
	})
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
	list.Flags().BoolVar(&all, "all", false, "every recorded decision (also rejected, released, passed)")
	list.Flags().IntVar(&limit, "limit", 1000, "at most this many")
	var showJSON bool
	show := newCmd("show ID", "Why a message was held, quarantined or rejected (ID: the message id or a rejection's reference)", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			d, err := st.GetDecision(ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no held, quarantined or rejected message %s", args[0])
			}
			if err != nil {
				return err
			}
			j := decisionToJSON(d)
			if showJSON {
				return json.NewEncoder(os.Stdout).Encode(j)
			}
			fmt.Printf("%s: %s\n  from:     %s\n  subject:  %s\n  received: %s\n", j.ID, j.State, j.From, j.Subject, j.CreatedAt)
			if j.Classification != "" {
				fmt.Printf("  marking:  %s\n", j.Classification)
			}
			if j.ExpiresAt != "" && (j.State == "held" || j.State == "quarantined") {
				fmt.Printf("  deleted:  %s unless released\n", j.ExpiresAt)
			}
			if j.ResolvedAt != "" {
				fmt.Printf("  resolved: %s by %s: %s\n", j.ResolvedAt, j.ResolvedBy, j.Resolution)
			}
			if len(j.Findings) > 0 {
				fmt.Println("findings:")
				for _, f := range j.Findings {
					b, _ := json.Marshal(f)
					var fd struct {
						Detector, Confidence, Where string
						Count                       int
					}
					json.Unmarshal(b, &fd)
					fmt.Printf("  %s ×%d (%s) in %s\n", fd.Detector, fd.Count, fd.Confidence, fd.Where)
				}
			}
			fmt.Println("recipients:")
			for _, r := range j.Recipients {
				fmt.Printf("  %s: %s\n", r.Address, r.Action)
				for _, why := range r.Reasons {
					fmt.Printf("    - %s\n", why)
				}
			}
			return nil
		})
	})
	show.Flags().BoolVar(&showJSON, "json", false, "one JSON document on stdout")
	var reason string
	resolve := func(release bool) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				reason = "from the command line, no reason given"
			}
			return withOps(g, func(ctx context.Context, op ops.Operator, a ops.Actor, running bool) error {
				do := op.Delete
				if release {
					do = op.Release
				}
				res, err := do(ctx, a, args[0], reason)
				switch {
				case errors.Is(err, ops.ErrNotFound):
					return fmt.Errorf("no held or quarantined message %s", args[0])
				case errors.Is(err, ops.ErrResolved):
					return fmt.Errorf("%s was already released, deleted or expired (see quarantine show)", args[0])
				case err != nil:
					return err
				}
				switch {
				case !release:
					fmt.Printf("%s deleted for %d recipients\n", args[0], len(res.Recipients))
				case running:
					fmt.Printf("%s released for %d recipients; the running gateway delivers it within queue.poll_interval\n", args[0], len(res.Recipients))
				default:
					fmt.Printf("%s released for %d recipients; the gateway delivers it when it starts (none runs now)\n", args[0], len(res.Recipients))
				}
				return nil
			})
		}
	}
	release := newCmd("release ID [--reason TEXT]", "Send a held or quarantined message", cobra.ExactArgs(1), resolve(true))
	release.Flags().StringVar(&reason, "reason", "", "why (kept in the record; please give one)")
	del := newCmd("delete ID [--reason TEXT]", "Drop a held or quarantined message", cobra.ExactArgs(1), resolve(false))
	del.Flags().StringVar(&reason, "reason", "", "why (kept in the record; please give one)")
	q.AddCommand(list, show, release, del)
	return q
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
