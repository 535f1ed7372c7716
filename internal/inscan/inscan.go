// Package inscan runs the content checks of an inbound message in one
// pass of the MIME walk: dangerous attachments (internal/attach) and
// antivirus (internal/clamd, each decoded part streamed to clamd as the
// walk reaches it), and turns their findings into one verdict.
//
// Verdicts, most severe first: tempfail (451 4.7.1: clamd gave no verdict
// and the operator chose to have the sender retry), reject (550 5.7.1: a
// virus, or a dangerous attachment where the operator chose to refuse
// them), quarantine (held for an administrator; the sender is not told,
// since inbound senders are easily forged: no backscatter), deliver.
// Refusing in the SMTP session is the only way to tell a real sender
// without mailing a forged one.
package inscan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"sealpost/internal/attach"
	"sealpost/internal/clamd"
	"sealpost/internal/dlp"
)

// Verdicts.
const (
	Deliver    = "deliver"
	Quarantine = "quarantine"
	Reject     = "reject"
	Tempfail   = "tempfail"
)

// severity orders verdicts.
func severity(v string) int {
	switch v {
	case Tempfail:
		return 3
	case Reject:
		return 2
	case Quarantine:
		return 1
	}
	return 0
}

// Most returns the more severe of two verdicts.
func Most(a, b string) string {
	if severity(b) > severity(a) {
		return b
	}
	return a
}

// Check is one check's result (INTERFACE.md, `inbound test --json`
// "checks").
type Check struct {
	Name   string `json:"name"`
	Result string `json:"result"`
	Reason string `json:"reason"`
}

// Verdict is the outcome of the content checks.
type Verdict struct {
	Action string  `json:"verdict"`
	Checks []Check `json:"checks"`
	// Attachments are the dangerous-attachment findings.
	Attachments []attach.Finding `json:"attachments,omitempty"`
	// Virus is the signature clamd found, "" for none.
	Virus string `json:"virus,omitempty"`
}

// Scanner holds the checks' setup; safe for concurrent use.
type Scanner struct {
	Attach *attach.Checker
	// AV is the clamd client; nil: no antivirus.
	AV *clamd.Client
	// AVUnavailable is Tempfail, Quarantine or Deliver.
	AVUnavailable string
	// Dangerous is Quarantine or Reject.
	Dangerous string
	Log       *slog.Logger
	// OnFile, when set, is shown every decoded file too (the reports
	// addressed to the organisation are collected this way).
	OnFile func(dlp.File)
}

// maxAVFiles bounds the parts streamed to clamd for one message.
const maxAVFiles = 1000

// Scan reads the whole message from r. It never returns Deliver for a
// message it could not read.
func (s *Scanner) Scan(ctx context.Context, r io.Reader) *Verdict {
	v := &Verdict{Action: Deliver}
	var avErr error
	avFiles := 0
	seen := map[[32]byte]bool{}
	onFile := func(f dlp.File) {
		if s.OnFile != nil {
			s.OnFile(f)
		}
		if s.AV == nil || avErr != nil || v.Virus != "" || len(f.Data) == 0 {
			return
		}
		sum := sha256.Sum256(f.Data)
		if seen[sum] {
			return // the same bytes from another reading of the part
		}
		seen[sum] = true
		if avFiles++; avFiles > maxAVFiles {
			avErr = fmt.Errorf("%w: more than %d parts", clamd.ErrUnavailable, maxAVFiles)
			return
		}
		res, err := s.AV.Scan(ctx, bytes.NewReader(f.Data))
		if err != nil {
			avErr = err
			return
		}
		if res.Infected {
			v.Virus = res.Signature
			v.Checks = append(v.Checks, Check{Name: "antivirus", Result: "infected", Reason: res.Signature + " in " + f.Where})
		}
	}
	scan := s.Attach.Start(onFile)
	if err := s.Attach.Walk(r, scan); err != nil {
		v.Attachments = []attach.Finding{{Kind: attach.Unreadable, Where: "message", Reason: err.Error()}}
	} else {
		v.Attachments = scan.Findings()
	}
	if len(v.Attachments) > 0 {
		first := v.Attachments[0]
		reason := fmt.Sprintf("%s at %s: %s", first.Kind, first.Where, first.Reason)
		if n := len(v.Attachments) - 1; n > 0 {
			reason += fmt.Sprintf(" (and %d more)", n)
		}
		v.Checks = append(v.Checks, Check{Name: "attachments", Result: "dangerous", Reason: reason})
		v.Action = Most(v.Action, s.Dangerous)
	} else {
		v.Checks = append(v.Checks, Check{Name: "attachments", Result: "pass", Reason: "no dangerous attachment"})
	}
	switch {
	case s.AV == nil:
		v.Checks = append(v.Checks, Check{Name: "antivirus", Result: "none", Reason: "inbound.clamd is not set"})
	case v.Virus != "":
		v.Action = Most(v.Action, Reject)
	case avErr != nil:
		if s.Log != nil {
			s.Log.Warn("antivirus gave no verdict", "err", avErr, "then", s.AVUnavailable)
		}
		reason := "clamd gave no verdict"
		if !errors.Is(avErr, clamd.ErrUnavailable) {
			reason = "the message could not be streamed to clamd"
		}
		v.Checks = append(v.Checks, Check{Name: "antivirus", Result: "temperror", Reason: reason + "; inbound.clamd_unavailable = " + s.AVUnavailable})
		v.Action = Most(v.Action, s.AVUnavailable)
	default:
		v.Checks = append(v.Checks, Check{Name: "antivirus", Result: "pass", Reason: "clamd found nothing"})
	}
	return v
}
