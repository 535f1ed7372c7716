// Package policy decides, for each recipient of an outbound message, how the
// message leaves: delivered, delivered only over verified TLS, encrypted,
// sealed into the portal, held for the sender, quarantined or rejected.
//
// A policy is a list of rules. Each rule has a condition written in CEL, the
// Common Expression Language (https://cel.dev), an action and a reason. The
// condition sees what the inspection found and who the message is for:
//
//	message.subject, message.from, message.sender, message.size,
//	message.keyword (the sender asked for protection in the subject),
//	message.external_visible (external addresses in To/Cc), message.bulk,
//	message.recipients, message.portal_thread (it answers a secure
//	portal conversation: a verified thread token in In-Reply-To/References)
//	classification  "OFFICIAL", "OFFICIAL-SENSITIVE" or ""
//	findings        map of detector name to the number of matches
//	confidence      map of detector name to its best confidence ("low", "medium", "high")
//	personal        matches of personal-data detectors at medium or high confidence
//	sensitive       personal > 0
//	sender.address, sender.domain, sender.user
//	recipient.address, recipient.domain, recipient.external,
//	recipient.tls_assured, recipient.tls (dane, mta-sts, required,
//	opportunistic), recipient.first_contact, recipient.lookalike,
//	recipient.portal_thread (the conversation answered is this recipient's)
//
// Every rule whose condition holds contributes its action and its reason;
// the most protective action wins (see Action) and all reasons are kept, so
// that "policy test" and the console can explain the decision. A rule that
// cannot be evaluated (say, a map key that is missing) counts as matching:
// a policy error must never let mail out unprotected.
//
// Actions the gateway cannot carry out yet (see Options.Available) fall back
// to hold, never to delivery: the sender confirms, and the message then goes
// over verified TLS.
package policy

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/ext"

	"sealpost/internal/dlp"
)

// Rule is one policy rule.
type Rule struct {
	Name   string
	When   string // CEL condition, a bool expression
	Action string
	Reason string // shown to the sender and the operator; {recipient.domain}, {recipient.lookalike} and {message.external_visible} are filled in
	Line   int    // line of the rule in the config file, for errors
}

// Options configure an Engine.
type Options struct {
	Rules          []Rule
	Builtin        bool     // include the built-in rules (Builtin) before Rules
	Disable        []string // names of built-in rules to leave out
	OrgDomains     []string // the organisation's domains: recipients there are internal
	PartnerDomains []string // known partners, for look-alike checks
	TLSAssured     []string // domains ("nhs.net") or suffixes (".gov.uk") whose servers enforce TLS
	BulkThreshold  int      // more external addresses than this in To/Cc make a message bulk
	// BulkSplit: a bulk message is split into one copy per outside
	// recipient (To: only them, no Cc) instead of held.
	BulkSplit bool
	// Available says whether the gateway can carry out an action; actions
	// it cannot fall back to hold. Nil means every action is available.
	Available func(Action) bool
}

// RuleError is an invalid rule.
type RuleError struct {
	Rule string
	Line int
	Err  string
}

func (e *RuleError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: policy rule %q: %s", e.Line, e.Rule, e.Err)
	}
	return fmt.Sprintf("policy rule %q: %s", e.Rule, e.Err)
}

// MessageFacts is what CEL sees as "message".
type MessageFacts struct {
	Subject         string `cel:"subject"`
	From            string `cel:"from"`
	Sender          string `cel:"sender"`
	Size            int64  `cel:"size"`
	Keyword         bool   `cel:"keyword"`
	ExternalVisible int    `cel:"external_visible"`
	Bulk            bool   `cel:"bulk"`
	Recipients      int    `cel:"recipients"`
	PortalThread    bool   `cel:"portal_thread"`
}

// SenderFacts is what CEL sees as "sender".
type SenderFacts struct {
	Address string `cel:"address"`
	Domain  string `cel:"domain"`
	User    string `cel:"user"`
}

// RecipientFacts is what CEL sees as "recipient".
type RecipientFacts struct {
	Address    string `cel:"address"`
	Domain     string `cel:"domain"`
	External   bool   `cel:"external"`
	TLSAssured bool   `cel:"tls_assured"`
	// TLS is how outbound TLS to the domain is verified now: dane,
	// mta-sts, required (the operator's list) or opportunistic
	// (internal/tlspolicy); "" when not known (internal recipients).
	TLS          string `cel:"tls"`
	FirstContact bool   `cel:"first_contact"`
	Lookalike    string `cel:"lookalike"`
	PortalThread bool   `cel:"portal_thread"`
}

type compiled struct {
	Rule
	action Action
	prg    cel.Program
}

// Engine evaluates a policy. It is safe for concurrent use.
type Engine struct {
	opt   Options
	rules []compiled
	known []string // org + partner domains, for look-alikes
}

// Builtin is the default policy for a UK public body. Operators add their
// own rules after these, or switch them off (policy.builtin_rules = false,
// or policy.disable = ["name"]).
var Builtin = []Rule{
	{Name: "private-key", When: `"private-key" in findings`, Action: "reject",
		Reason: "the message contains a private key; keys must never be sent by mail"},
	{Name: "mass-personal-data", When: `recipient.external && personal >= 100`, Action: "quarantine",
		Reason: "100 or more personal identifiers are going outside the organisation"},
	{Name: "bulk-visible-recipients", When: `message.bulk && recipient.external`, Action: "hold",
		Reason: "{message.external_visible} external addresses are visible to every recipient in To/Cc; put them in Bcc or use a mailing tool"},
	{Name: "lookalike-domain", When: `recipient.lookalike != ""`, Action: "hold",
		Reason: "{recipient.domain} looks like {recipient.lookalike} but is not: check the address"},
	{Name: "first-contact-sensitive", When: `recipient.external && recipient.first_contact && (sensitive || classification == "OFFICIAL-SENSITIVE")`, Action: "hold",
		Reason: "this is the first message to {recipient.domain} and it carries sensitive content: check the address"},
	{Name: "unscannable-content", When: `recipient.external && "unscannable" in findings`, Action: "hold",
		Reason: "part of the message could not be inspected (encrypted, corrupt or over a limit)"},
	{Name: "portal-thread", When: `recipient.portal_thread`, Action: "portal",
		Reason: "answers the secure conversation {recipient.address} has in the portal: it stays in that conversation"},
	{Name: "portal-thread-quoted", When: `recipient.external && message.portal_thread && !recipient.portal_thread`, Action: "portal",
		Reason: "answers a secure portal conversation and may quote it, but {recipient.address} is not part of it: sealed into the portal on its own"},
	{Name: "official-sensitive", When: `recipient.external && classification == "OFFICIAL-SENSITIVE" && !recipient.tls_assured`, Action: "portal",
		Reason: "marked OFFICIAL-SENSITIVE and {recipient.domain} is not known to enforce TLS"},
	{Name: "official-sensitive-tls", When: `recipient.external && classification == "OFFICIAL-SENSITIVE" && recipient.tls_assured`, Action: "require-tls",
		Reason: "marked OFFICIAL-SENSITIVE; {recipient.domain} enforces TLS"},
	{Name: "personal-data", When: `recipient.external && sensitive && !recipient.tls_assured`, Action: "portal",
		Reason: "contains personal data and {recipient.domain} is not known to enforce TLS"},
	{Name: "personal-data-tls", When: `recipient.external && sensitive && recipient.tls_assured`, Action: "require-tls",
		Reason: "contains personal data; {recipient.domain} enforces TLS"},
	{Name: "sender-asked", When: `recipient.external && message.keyword`, Action: "portal",
		Reason: "the sender asked for protection in the subject"},
}

// personalDetectors are the detectors of personal data about people.
var personalDetectors = map[string]bool{
	"uk-nino": true, "uk-nhs-number": true, "payment-card": true, "iban": true, "uk-sort-code-account": true,
	"uk-passport": true, "uk-driving-licence": true,
}

func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeOf(MessageFacts{}), reflect.TypeOf(SenderFacts{}), reflect.TypeOf(RecipientFacts{}), ext.ParseStructTags(true)),
		cel.Variable("message", cel.ObjectType("policy.MessageFacts")),
		cel.Variable("sender", cel.ObjectType("policy.SenderFacts")),
		cel.Variable("recipient", cel.ObjectType("policy.RecipientFacts")),
		cel.Variable("classification", cel.StringType),
		cel.Variable("findings", cel.MapType(cel.StringType, cel.IntType)),
		cel.Variable("confidence", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("personal", cel.IntType),
		cel.Variable("sensitive", cel.BoolType),
		ext.Strings(),
	)
}

// New compiles a policy.
func New(opt Options) (*Engine, error) {
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	e := &Engine{opt: opt}
	for _, d := range append(append([]string(nil), opt.OrgDomains...), opt.PartnerDomains...) {
		e.known = append(e.known, strings.ToLower(d))
	}
	var rules []Rule
	if opt.Builtin {
		off := map[string]bool{}
		if opt.BulkSplit {
			off["bulk-visible-recipients"] = true
		}
		for _, n := range opt.Disable {
			off[n] = true
		}
		for _, r := range Builtin {
			if !off[r.Name] {
				rules = append(rules, r)
			}
		}
	}
	rules = append(rules, opt.Rules...)
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Name == "" {
			return nil, &RuleError{Rule: r.Name, Line: r.Line, Err: "a rule needs a name"}
		}
		if seen[r.Name] {
			return nil, &RuleError{Rule: r.Name, Line: r.Line, Err: "two rules have this name"}
		}
		seen[r.Name] = true
		a, ok := ParseAction(r.Action)
		if !ok {
			return nil, &RuleError{Rule: r.Name, Line: r.Line, Err: fmt.Sprintf("action %q is not one of %s", r.Action, strings.Join(actionNames[:], ", "))}
		}
		if strings.TrimSpace(r.When) == "" {
			return nil, &RuleError{Rule: r.Name, Line: r.Line, Err: `"when" is empty (write "true" for a rule that always applies)`}
		}
		ast, iss := env.Compile(r.When)
		if iss != nil && iss.Err() != nil {
			return nil, &RuleError{Rule: r.Name, Line: r.Line, Err: "when: " + oneLine(iss.Err().Error())}
		}
		if ast.OutputType() != cel.BoolType {
			return nil, &RuleError{Rule: r.Name, Line: r.Line, Err: "when: the condition is a " + ast.OutputType().String() + ", not a bool"}
		}
		// No cost tracking: it doubles evaluation time, and a condition over
		// these few small values cannot run long.
		prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return nil, &RuleError{Rule: r.Name, Line: r.Line, Err: "when: " + oneLine(err.Error())}
		}
		e.rules = append(e.rules, compiled{Rule: r, action: a, prg: prg})
	}
	return e, nil
}

func oneLine(s string) string {
	s = strings.TrimPrefix(s, "ERROR: <input>:")
	return strings.Join(strings.Fields(s), " ")
}

// Rules returns the active rules in order.
func (e *Engine) Rules() []Rule {
	out := make([]Rule, len(e.rules))
	for i, r := range e.rules {
		out[i] = r.Rule
	}
	return out
}

// Input is what the policy decides on.
type Input struct {
	MailFrom       string   // envelope sender
	HeaderFrom     string   // From: address
	AuthUser       string   // SMTP AUTH user, "" for connector mail
	Subject        string   // as the sender wrote it
	Keyword        bool     // the subject carried a protection keyword
	Size           int64    //
	Visible        []string // addresses in To and Cc
	Classification string
	Findings       []dlp.Finding
	Recipients     []string
	// Known says whether mail has been delivered to a domain before; nil
	// means never.
	Known func(domain string) bool
	// PortalThread: In-Reply-To or References carry a thread token of the
	// portal that verifies (the message answers a secure conversation).
	PortalThread bool
	// ThreadParty says whether rcpt is the party a verified thread token
	// was issued to and may still read that conversation. Nil: nobody.
	ThreadParty func(rcpt string) bool
	// TLS returns the outbound TLS mode of a recipient domain (dane,
	// mta-sts, required, opportunistic); nil: opportunistic for all.
	// recipient.tls_assured is true for the verified modes, so the
	// built-in rules send personal data by mail (require-tls) to a domain
	// whose DANE or MTA-STS proves its TLS, instead of to the portal.
	TLS func(domain string) string
}

// Decision is the policy's answer (INTERFACE.md: policy test --json).
type Decision struct {
	Classification string              `json:"classification"`
	Findings       []dlp.Finding       `json:"findings"`
	Recipients     []RecipientDecision `json:"recipients"`
}

// RecipientDecision is the action for one recipient and why.
type RecipientDecision struct {
	Address string   `json:"address"`
	Action  string   `json:"action"`
	Then    string   `json:"then,omitempty"`  // for hold and quarantine: what a release does
	Split   bool     `json:"split,omitempty"` // sent on its own, To: showing only this recipient
	Rules   []string `json:"rules"`           // the rules that matched
	Reasons []string `json:"reasons"`
}

// Most returns the most protective action among the decision's recipients.
func (d *Decision) Most() Action {
	m := Deliver
	for _, r := range d.Recipients {
		if a, _ := ParseAction(r.Action); a > m {
			m = a
		}
	}
	return m
}

// External reports whether addr is outside the organisation.
func (e *Engine) External(addr string) bool {
	d := domainOf(addr)
	for _, o := range e.opt.OrgDomains {
		if strings.EqualFold(d, o) {
			return false
		}
	}
	return true
}

func (e *Engine) tlsAssured(domain string) bool {
	for _, a := range e.opt.TLSAssured {
		a = strings.ToLower(a)
		if strings.HasPrefix(a, ".") && strings.HasSuffix(domain, a) || domain == a {
			return true
		}
	}
	return false
}

// Decide evaluates the policy for every recipient.
func (e *Engine) Decide(in *Input) *Decision {
	findings := map[string]int64{}
	confidence := map[string]string{}
	personal := int64(0)
	for _, f := range in.Findings {
		findings[f.Detector] += int64(f.Count)
		if rank(f.Confidence) > rank(confidence[f.Detector]) {
			confidence[f.Detector] = f.Confidence
		}
		if personalDetectors[f.Detector] && rank(f.Confidence) >= rank("medium") {
			personal += int64(f.Count)
		}
	}
	external := 0
	for _, v := range in.Visible {
		if e.External(v) {
			external++
		}
	}
	msg := &MessageFacts{Subject: in.Subject, From: in.HeaderFrom, Sender: in.MailFrom, Size: in.Size, Keyword: in.Keyword,
		ExternalVisible: external, Bulk: e.opt.BulkThreshold > 0 && external > e.opt.BulkThreshold, Recipients: len(in.Recipients),
		PortalThread: in.PortalThread}
	from := in.HeaderFrom
	if from == "" {
		from = in.MailFrom
	}
	sender := &SenderFacts{Address: strings.ToLower(from), Domain: strings.ToLower(domainOf(from)), User: in.AuthUser}
	act := map[string]any{
		"message": msg, "sender": sender, "classification": in.Classification,
		"findings": findings, "confidence": confidence, "personal": personal, "sensitive": personal > 0,
	}
	d := &Decision{Classification: in.Classification, Findings: in.Findings}
	if d.Findings == nil {
		d.Findings = []dlp.Finding{}
	}
	for _, rcpt := range in.Recipients {
		dom := strings.ToLower(domainOf(rcpt))
		rf := &RecipientFacts{Address: strings.ToLower(rcpt), Domain: dom, External: e.External(rcpt),
			PortalThread: in.PortalThread && in.ThreadParty != nil && in.ThreadParty(rcpt)}
		if rf.External {
			rf.TLS = "opportunistic"
			if in.TLS != nil {
				rf.TLS = in.TLS(dom)
			}
			rf.TLSAssured = e.tlsAssured(dom) || rf.TLS == "dane" || rf.TLS == "mta-sts" || rf.TLS == "required"
			rf.FirstContact = in.Known == nil || !in.Known(dom)
			rf.Lookalike = lookalike(dom, e.known)
		}
		act["recipient"] = rf
		rd := e.decide(act, msg, rf)
		if e.opt.BulkSplit && msg.Bulk && rf.External {
			rd.Split = true
			rd.Reasons = append(rd.Reasons, fmt.Sprintf("bulk: %d external addresses are visible in To/Cc, so each outside recipient gets a copy addressed to them alone", msg.ExternalVisible))
		}
		d.Recipients = append(d.Recipients, rd)
	}
	return d
}

func rank(c string) int {
	switch c {
	case "low":
		return 1
	case "medium":
		return 2
	case "high":
		return 3
	}
	return 0
}

func (e *Engine) decide(act map[string]any, msg *MessageFacts, rf *RecipientFacts) RecipientDecision {
	rd := RecipientDecision{Address: rf.Address, Rules: []string{}, Reasons: []string{}}
	best, then := Deliver, Deliver
	for _, r := range e.rules {
		out, _, err := r.prg.Eval(act)
		matched := false
		var reason string
		if err != nil {
			matched = true
			reason = "the rule could not be evaluated (" + oneLine(err.Error()) + "), so it counts as matching"
		} else if b, ok := out.Value().(bool); ok && b {
			matched = true
		}
		if !matched {
			continue
		}
		if err == nil {
			reason = fill(r.Reason, msg, rf)
		}
		rd.Rules = append(rd.Rules, r.Name)
		if reason == "" {
			reason = "rule " + r.Name
		}
		rd.Reasons = append(rd.Reasons, r.Name+": "+reason)
		if r.action > best {
			best = r.action
		}
		if !r.action.Stops() && r.action > then {
			then = r.action
		}
	}
	avail := func(a Action) bool { return e.opt.Available == nil || e.opt.Available(a) }
	if !avail(then) {
		if then != Portal && avail(Portal) {
			// Recipient-key encryption is not available: the portal is
			// the next best protection.
			rd.Reasons = append(rd.Reasons, fmt.Sprintf("%s is not available on this gateway: sealed into the portal instead", then))
			then = Portal
			if best < Portal {
				best = Portal
			}
		} else {
			// Not possible here: the message waits for the sender, and
			// goes over verified TLS if they confirm.
			rd.Reasons = append(rd.Reasons, fmt.Sprintf("%s is not available on this gateway: held for the sender to confirm; once confirmed it is delivered only over verified TLS", then))
			then = RequireTLS
			if best < Hold {
				best = Hold
			}
		}
	}
	if !avail(best) && best < Hold {
		best = Hold
	}
	rd.Action = best.String()
	if best == Hold || best == Quarantine {
		rd.Then = then.String()
	}
	if len(rd.Reasons) == 0 {
		rd.Reasons = append(rd.Reasons, "no rule applies: delivered as usual")
	}
	return rd
}

// fill replaces the placeholders of a reason.
func fill(s string, msg *MessageFacts, rf *RecipientFacts) string {
	if !strings.Contains(s, "{") {
		return s
	}
	for _, kv := range [...][2]string{
		{"{recipient.domain}", rf.Domain},
		{"{recipient.address}", rf.Address},
		{"{recipient.lookalike}", rf.Lookalike},
		{"{message.external_visible}", strconv.Itoa(msg.ExternalVisible)},
	} {
		s = strings.ReplaceAll(s, kv[0], kv[1])
	}
	return s
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.TrimSuffix(addr[i+1:], ">")
	}
	return ""
}

// Summary returns the distinct actions of d with their counts, most
// protective first, e.g. "portal ×2, deliver ×1".
func (d *Decision) Summary() string {
	n := map[string]int{}
	for _, r := range d.Recipients {
		n[r.Action]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, _ := ParseAction(keys[i])
		b, _ := ParseAction(keys[j])
		return a > b
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, n[k]))
	}
	return strings.Join(parts, ", ")
}
