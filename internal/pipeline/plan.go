package pipeline

import (
	"strings"

	"sealpost/internal/policy"
)

// RcptPlan is how one recipient's copy is handled: a typed action and its
// options, where the queue used to get "require-tls,split" strings.
type RcptPlan struct {
	// Action is the policy action for the recipient: Deliver, RequireTLS,
	// EncryptSMIME, EncryptPGP, Portal (sent by the transport registered
	// for it), or Hold, Quarantine (kept until released).
	Action policy.Action
	// Then is, for Hold and Quarantine, the action a release gives.
	Then policy.Action
	// Split: the copy goes on its own, its To: showing only this recipient.
	Split bool
	// Rules are the policy rules that gave the action (for the audit log).
	Rules []string
}

// Plan is the per-recipient plan of one message, keyed by the address as
// in the envelope.
type Plan map[string]RcptPlan

// The recipient states and action flags as the queue and the store keep
// them (store.Recipient.Status and .Action): written here only.
const (
	StatusQueued      = "queued"
	StatusHeld        = "held"
	StatusQuarantined = "quarantined"

	flagRequireTLS = "require-tls"   // only over verified TLS
	flagSplit      = ",split"        // a copy of its own
	flagPortal     = "portal"        // sealed into the portal (route portal)
	flagSMIME      = "encrypt-smime" // encrypted to S/MIME certificates (route smime)
	flagPGP        = "encrypt-pgp"   // encrypted to OpenPGP keys (route encrypt-pgp)
	flagEncrypt    = "encrypt"       // OpenPGP or S/MIME, whichever the recipient has (route encrypt)
)

// Encode returns the queue's form of p: the recipient's status, its
// action flags and, for a kept recipient, the action a release gives.
func (p RcptPlan) Encode() (status, action, then string) {
	split := ""
	if p.Split {
		split = flagSplit
	}
	switch p.Action {
	case policy.Hold:
		return StatusHeld, split, p.Then.String()
	case policy.Quarantine:
		return StatusQuarantined, split, p.Then.String()
	case policy.RequireTLS:
		return StatusQueued, flagRequireTLS + split, ""
	case policy.Portal:
		return StatusQueued, flagPortal, ""
	case policy.EncryptSMIME:
		return StatusQueued, flagSMIME, ""
	case policy.EncryptPGP:
		return StatusQueued, flagPGP, ""
	case policy.Encrypt:
		return StatusQueued, flagEncrypt, ""
	}
	return StatusQueued, split, ""
}

// Decode reads the queue's form back (a released or retried recipient).
func Decode(status, action, then string) RcptPlan {
	p := RcptPlan{Split: strings.Contains(action, flagSplit)}
	switch {
	case status == StatusHeld:
		p.Action = policy.Hold
	case status == StatusQuarantined:
		p.Action = policy.Quarantine
	case strings.HasPrefix(action, flagRequireTLS):
		p.Action = policy.RequireTLS
	case action == flagPortal:
		p.Action = policy.Portal
	case action == flagSMIME:
		p.Action = policy.EncryptSMIME
	case action == flagPGP:
		p.Action = policy.EncryptPGP
	case action == flagEncrypt:
		p.Action = policy.Encrypt
	}
	if a, ok := policy.ParseAction(then); ok {
		p.Then = a
	}
	return p
}

// PlanOf turns the policy's decision into a plan for the envelope's
// recipients (the policy lower-cases addresses; the plan uses rcpts as
// given). One message, one reviewer: when any recipient is quarantined,
// held recipients are quarantined too.
func PlanOf(d *policy.Decision, rcpts []string) Plan {
	most := d.Most()
	plan := make(Plan, len(rcpts))
	rcptPlan := func(r *policy.RecipientDecision) RcptPlan {
		a, _ := policy.ParseAction(r.Action)
		if most == policy.Quarantine && a == policy.Hold {
			a = policy.Quarantine
		}
		p := RcptPlan{Action: a, Split: r.Split, Rules: r.Rules}
		if t, ok := policy.ParseAction(r.Then); ok {
			p.Then = t
		}
		return p
	}
	if len(d.Recipients) <= 16 {
		// The usual message: a few recipients, no index needed.
		for _, rc := range rcpts {
			for i := range d.Recipients {
				if a := d.Recipients[i].Address; a == rc || a == strings.ToLower(rc) {
					plan[rc] = rcptPlan(&d.Recipients[i])
					break
				}
			}
		}
		return plan
	}
	byAddr := make(map[string]*policy.RecipientDecision, len(d.Recipients))
	for i := range d.Recipients {
		byAddr[d.Recipients[i].Address] = &d.Recipients[i]
	}
	for _, rc := range rcpts {
		if r, ok := byAddr[rc]; ok {
			plan[rc] = rcptPlan(r)
		} else if r, ok := byAddr[strings.ToLower(rc)]; ok {
			plan[rc] = rcptPlan(r)
		}
	}
	return plan
}
