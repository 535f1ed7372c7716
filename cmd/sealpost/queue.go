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

	"sealpost/internal/gateway"
	"sealpost/internal/ops"
	"sealpost/internal/store"
)

type queueRcptJSON struct {
	Address     string `json:"address"`
	Route       string `json:"route"`
	Status      string `json:"status"`
	Attempts    int    `json:"attempts"`
	NextAttempt string `json:"next_attempt,omitempty"`
	LastError   string `json:"last_error,omitempty"`
	TLS         string `json:"tls,omitempty"`
	Relay       string `json:"relay,omitempty"`
}

type queueMsgJSON struct {
	ID         string          `json:"id"`
	Direction  string          `json:"direction"`
	From       string          `json:"from"`
	ReceivedAt string          `json:"received_at"`
	Size       int64           `json:"size"`
	State      string          `json:"state"`
	Subject    string          `json:"subject,omitempty"`
	Recipients []queueRcptJSON `json:"recipients"`
}

func toJSON(m *store.Message, rs []store.Recipient) queueMsgJSON {
	out := queueMsgJSON{ID: m.ID, Direction: m.Direction, From: m.MailFrom, ReceivedAt: m.ReceivedAt.UTC().Format(time.RFC3339), Size: m.Size, State: m.State, Subject: m.Subject, Recipients: []queueRcptJSON{}}
	for _, r := range rs {
		j := queueRcptJSON{Address: r.Rcpt, Route: r.Route, Status: r.Status, Attempts: r.Attempts, LastError: r.LastError, TLS: r.TLS, Relay: r.Relay}
		if r.Status == "queued" && !r.NextAttempt.IsZero() {
			j.NextAttempt = r.NextAttempt.UTC().Format(time.RFC3339)
		}
		out.Recipients = append(out.Recipients, j)
	}
	return out
}

func withStore(g *globalFlags, f func(ctx context.Context, st *store.Store) error) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	st, err := gateway.OpenStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return f(ctx, st)
}

func queueCmd(g *globalFlags) *cobra.Command {
	q := groupCmd("queue", "The delivery queue: list, show, retry, delete")
	var asJSON bool
	var limit int
	list := newCmd("list", "Messages waiting for delivery, oldest first", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			msgs, err := st.QueuedMessages(ctx, limit)
			if err != nil {
				return err
			}
			if asJSON {
				out := struct {
					Messages []queueMsgJSON `json:"messages"`
				}{Messages: []queueMsgJSON{}}
				for _, m := range msgs {
					rs, err := st.Recipients(ctx, m.ID)
					if err != nil {
						return err
					}
					out.Messages = append(out.Messages, toJSON(m, rs))
				}
				return json.NewEncoder(os.Stdout).Encode(out)
			}
			if len(msgs) == 0 {
				fmt.Println("The queue is empty.")
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tRECEIVED\tFROM\tSIZE\tWAITING\tNEXT ATTEMPT\tLAST ERROR")
			for _, m := range msgs {
				rs, err := st.Recipients(ctx, m.ID)
				if err != nil {
					return err
				}
				waiting, next, lastErr := 0, time.Time{}, ""
				for _, r := range rs {
					if r.Status == "queued" {
						waiting++
						if next.IsZero() || r.NextAttempt.Before(next) {
							next = r.NextAttempt
						}
						if r.LastError != "" {
							lastErr = r.LastError
						}
					}
				}
				from := m.MailFrom
				if from == "" {
					from = "<>"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", m.ID, m.ReceivedAt.UTC().Format("2006-01-02 15:04"), from, m.Size, waiting, next.UTC().Format("15:04:05"), short(lastErr, 60))
			}
			return tw.Flush()
		})
	})
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON document on stdout")
	list.Flags().IntVar(&limit, "limit", 1000, "at most this many messages")

	var showJSON bool
	show := newCmd("show ID", "One message and the state of each recipient", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		return withStore(g, func(ctx context.Context, st *store.Store) error {
			m, err := st.Message(ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no message %s in the queue (finished messages are kept for queue.keep_delivered)", args[0])
			}
			if err != nil {
				return err
			}
			rs, err := st.Recipients(ctx, m.ID)
			if err != nil {
				return err
			}
			j := toJSON(m, rs)
			if showJSON {
				return json.NewEncoder(os.Stdout).Encode(j)
			}
			fmt.Printf("ID:        %s\nDirection: %s\nFrom:      %s\nReceived:  %s\nSize:      %d bytes\nState:     %s\n", j.ID, j.Direction, j.From, j.ReceivedAt, j.Size, j.State)
			if m.RemoteIP != "" {
				fmt.Printf("Client:    %s (%s)\n", m.RemoteIP, m.Helo)
			}
			fmt.Println("Recipients:")
			for _, r := range j.Recipients {
				fmt.Printf("  %s  %s via %s, %d attempt(s)", r.Address, r.Status, r.Route, r.Attempts)
				if r.NextAttempt != "" {
					fmt.Printf(", next %s", r.NextAttempt)
				}
				if r.Relay != "" {
					fmt.Printf(", relay %s", r.Relay)
				}
				if r.TLS != "" {
					fmt.Printf(", %s", r.TLS)
				}
				fmt.Println()
				if r.LastError != "" {
					fmt.Printf("    %s\n", r.LastError)
				}
			}
			return nil
		})
	})
	show.Flags().BoolVar(&showJSON, "json", false, "one JSON document on stdout")

	each := func(verb, done string, do func(op ops.Operator) func(context.Context, ops.Actor, string) error) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			return withOps(g, func(ctx context.Context, op ops.Operator, a ops.Actor, running bool) error {
				failed := 0
				for _, id := range args {
					err := do(op)(ctx, a, id)
					if errors.Is(err, ops.ErrNothingQueued) {
						fmt.Fprintf(os.Stderr, "%s: nothing waiting for delivery\n", id)
						failed++
						continue
					}
					if err != nil {
						return err
					}
					fmt.Printf("%s: %s\n", id, done)
				}
				if failed > 0 {
					return fmt.Errorf("%d of %d not %s", failed, len(args), verb)
				}
				return nil
			})
		}
	}
	retry := newCmd("retry ID...", "Try waiting recipients now", cobra.MinimumNArgs(1),
		each("retried", "will be tried within the queue's poll interval", func(op ops.Operator) func(context.Context, ops.Actor, string) error { return op.Retry }))
	del := newCmd("delete ID...", "Stop delivering messages (no bounce is sent)", cobra.MinimumNArgs(1),
		each("deleted", "deleted from the queue", func(op ops.Operator) func(context.Context, ops.Actor, string) error { return op.DeleteQueued }))
	q.AddCommand(list, show, retry, del)
	return q
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
