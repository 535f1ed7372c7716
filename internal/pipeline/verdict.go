package pipeline

import (
	"sealpost/internal/policy"
	"sealpost/internal/smtpd"
)

// Outcome is what a verdict does with the message (or, at the envelope
// stages, with the command).
type Outcome int

// Outcomes, weakest first: when checks disagree the strongest wins.
const (
	Accept     Outcome = iota // go on; with the plan and headers of the verdict
	Quarantine                // accept, and keep for the operator instead of delivering
	TempFail                  // 4xx: the client keeps the message and tries again
	Reject                    // 5xx: refused
)

var outcomeNames = [...]string{"accept", "quarantine", "tempfail", "reject"}

func (o Outcome) String() string {
	if o < 0 || int(o) >= len(outcomeNames) {
		return "outcome(?)"
	}
	return outcomeNames[o]
}

// Header is a header field a check adds to the message (an
// Authentication-Results, a tag), in the order given, above the others.
type Header struct {
	Name, Value string
}

// Verdict is the one answer of every check at every stage.
type Verdict struct {
	Outcome Outcome
	// Reply is what the SMTP client is told for TempFail and Reject (nil:
	// the named reply for the outcome, smtpd.ReplyTempFail or
	// smtpd.ReplyPolicyReject).
	Reply *smtpd.Reply
	// Check names the check that gave the outcome; Reason says why, for
	// the log and the audit event (never for the client).
	Check, Reason string
	// Plan is the check's plan per recipient (data stage); recipients not
	// in it are delivered as usual.
	Plan Plan
	// Headers are added to the message when it is accepted. From the
	// envelope stages they are written above the message; from the data
	// stage (the spool holds the header by then) the queue keeps them with
	// the message and every reader writes them above it
	// (queue.OpenDelivered).
	Headers []Header
	// Decision is the policy's decision when the outbound policy ran,
	// kept for the record and "explain".
	Decision *policy.Decision
}

// Accepted is the verdict of a check with nothing to say.
func Accepted() Verdict { return Verdict{} }

// Failed is a temporary failure of check: what could not be checked is
// never passed (fail closed), and the client tries again.
func Failed(check, reason string) Verdict {
	return Verdict{Outcome: TempFail, Reply: smtpd.ReplyTempFail, Check: check, Reason: reason}
}

// Refused is a permanent refusal by check with reply.
func Refused(check, reason string, reply *smtpd.Reply) Verdict {
	return Verdict{Outcome: Reject, Reply: reply, Check: check, Reason: reason}
}

// SMTPReply is the reply for a verdict that stops the message; nil for
// Accept and Quarantine.
func (v *Verdict) SMTPReply() *smtpd.Reply {
	switch v.Outcome {
	case TempFail:
		if v.Reply != nil {
			return v.Reply
		}
		return smtpd.ReplyTempFail
	case Reject:
		if v.Reply != nil {
			return v.Reply
		}
		return smtpd.ReplyPolicyReject
	}
	return nil
}

// Stops reports whether the verdict ends the message (tempfail or reject).
func (v *Verdict) Stops() bool { return v.Outcome >= TempFail }

// merge folds w (a later check's verdict) into v: the strongest outcome
// wins, with its reply and reason; headers add up; the plans merge with
// the more protective action per recipient.
func (v *Verdict) merge(w Verdict) {
	if w.Outcome > v.Outcome {
		v.Outcome, v.Reply, v.Check, v.Reason = w.Outcome, w.Reply, w.Check, w.Reason
	}
	v.Headers = append(v.Headers, w.Headers...)
	if w.Decision != nil {
		v.Decision = w.Decision
	}
	if v.Plan == nil {
		v.Plan = w.Plan // the usual case: one check plans
		return
	}
	for rcpt, p := range w.Plan {
		if old, ok := v.Plan[rcpt]; !ok || p.Action > old.Action {
			v.Plan[rcpt] = p
		}
	}
}

// Field returns h as a header field ready to write ("Name: Value\r\n"),
// or false if it is not one: a name outside RFC 5322 §3.6.8's printable
// characters, or a value with CR or LF other than folding (CRLF then
// space or tab), which would let a check's input inject fields.
func (h Header) Field() (string, bool) {
	if h.Name == "" {
		return "", false
	}
	for i := 0; i < len(h.Name); i++ {
		if c := h.Name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return "", false
		}
	}
	v := h.Value
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\r':
			if i+2 >= len(v) || v[i+1] != '\n' || (v[i+2] != ' ' && v[i+2] != '\t') {
				return "", false
			}
			i++
		case '\n', 0:
			return "", false
		}
	}
	return h.Name + ": " + v + "\r\n", true
}
