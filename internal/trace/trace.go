// Package trace assembles what happened to one message, from receipt
// through the policy's decision, delivery attempts (with the TLS used) and
// the portal's accesses, for the console and the API.
package trace

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"sealpost/internal/dlp"
	"sealpost/internal/policy"
	"sealpost/internal/store"
)

// Event is one step in a message's life.
type Event struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
	Text string    `json:"text"`
}

// Trace is a message and its timeline.
type Trace struct {
	Message    *store.Message    `json:"-"`
	Recipients []store.Recipient `json:"-"`
	Decision   *policy.Decision  `json:"decision,omitempty"`
	Findings   []dlp.Finding     `json:"findings"`
	Events     []Event           `json:"events"`
}

// Build traces message id.
func Build(ctx context.Context, st *store.Store, id string) (*Trace, error) {
	m, err := st.Message(ctx, id)
	if err != nil {
		return nil, err
	}
	t := &Trace{Message: m, Findings: []dlp.Finding{}}
	t.Events = append(t.Events, Event{m.ReceivedAt, "received", fmt.Sprintf("from %s (client %s, HELO %s), %d bytes, %s", m.MailFrom, m.RemoteIP, m.Helo, m.Size, m.Direction)})
	if d, err := st.GetDecision(ctx, id); err == nil {
		var pd policy.Decision
		if json.Unmarshal([]byte(d.Detail), &pd) == nil {
			t.Decision = &pd
			t.Findings = pd.Findings
		}
		var why []string
		if t.Decision != nil {
			for _, rd := range t.Decision.Recipients {
				why = append(why, rd.Address+": "+rd.Action+" ("+strings.Join(rd.Rules, ", ")+")")
			}
		}
		t.Events = append(t.Events, Event{d.CreatedAt, "policy: " + d.Outcome, strings.Join(why, "; ")})
		if !d.ResolvedAt.IsZero() {
			t.Events = append(t.Events, Event{d.ResolvedAt, d.State, "by " + d.ResolvedBy + ": " + d.Resolution})
		}
	}
	rs, err := st.Recipients(ctx, id)
	if err != nil {
		return nil, err
	}
	t.Recipients = rs
	for _, rc := range rs {
		txt := rc.Rcpt + ": " + rc.Status
		if rc.Relay != "" {
			txt += " via " + rc.Relay
		}
		if rc.TLS != "" {
			txt += ", " + rc.TLS
		} else if rc.Route == "outbound" && rc.Status == "delivered" {
			txt += ", without TLS"
		}
		if rc.LastError != "" {
			txt += " (" + rc.LastError + ")"
		}
		txt += fmt.Sprintf(", %d attempt(s)", rc.Attempts)
		t.Events = append(t.Events, Event{rc.UpdatedAt, "delivery", txt})
	}
	objects := []string{id}
	if sealed, err := st.SealedByMsg(ctx, id); err == nil {
		objects = append(objects, sealed.ID)
	}
	for _, o := range objects {
		evs, err := st.AuditEvents(ctx, o, 1000)
		if err != nil {
			return nil, err
		}
		for _, a := range evs {
			txt := a.Actor
			if a.IP != "" {
				txt += " from " + a.IP
			}
			if a.Detail != "" {
				txt += ": " + a.Detail
			}
			t.Events = append(t.Events, Event{a.At, a.Action, txt})
		}
	}
	sort.SliceStable(t.Events, func(i, j int) bool { return t.Events[i].At.Before(t.Events[j].At) })
	return t, nil
}
