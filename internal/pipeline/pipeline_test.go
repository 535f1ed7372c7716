package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"sealpost/internal/dlp"
	"sealpost/internal/policy"
	"sealpost/internal/smtpd"
)

type fnCheck struct {
	name  string
	stage Stage
	f     func(*Input) Verdict
}

func (c fnCheck) Name() string                               { return c.name }
func (c fnCheck) Stage() Stage                               { return c.stage }
func (c fnCheck) Check(_ context.Context, in *Input) Verdict { return c.f(in) }

// TestPanicInCheckIsTempFail: a check that panics gives 451 4.3.0 and is
// logged with its name; the checks after it do not run, and the message
// is never accepted on the strength of the checks before it.
func TestPanicInCheckIsTempFail(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	ran := false
	p := &Pipeline{Log: slog.New(slog.NewTextHandler(&logs, nil)), Checks: []Check{
		fnCheck{"fine", StageSender, func(*Input) Verdict { return Accepted() }},
		fnCheck{"buggy", StageSender, func(*Input) Verdict { panic("index out of range") }},
		fnCheck{"after", StageSender, func(*Input) Verdict { ran = true; return Accepted() }},
	}}
	v := p.Run(context.Background(), StageSender, &Input{})
	r := v.SMTPReply()
	if v.Outcome != TempFail || r == nil || r.Code != 451 || r.Enh != "4.3.0" || v.Check != "buggy" {
		t.Fatalf("verdict %+v reply %v, want tempfail 451 4.3.0 by buggy", v, r)
	}
	if ran {
		t.Fatal("a check ran after the message was stopped")
	}
	if !strings.Contains(logs.String(), "check=buggy") || !strings.Contains(logs.String(), "index out of range") {
		t.Fatalf("panic not logged with the check's name: %s", logs.String())
	}
}

// TestStagesAndMerge: only the stage's checks run; the strongest outcome
// wins with its reply; headers add up.
func TestStagesAndMerge(t *testing.T) {
	t.Parallel()
	deny := smtpd.NewReply(550, "5.7.1", "no")
	p := &Pipeline{Checks: []Check{
		fnCheck{"tag", StageRecipient, func(*Input) Verdict {
			return Verdict{Headers: []Header{{"X-Tag", "1"}}}
		}},
		fnCheck{"quarantine", StageRecipient, func(*Input) Verdict { return Verdict{Outcome: Quarantine} }},
		fnCheck{"deny", StageRecipient, func(in *Input) Verdict {
			if in.Rcpt == "bad@x.example" {
				return Refused("", "listed", deny)
			}
			return Accepted()
		}},
		fnCheck{"sender", StageSender, func(*Input) Verdict { return Refused("", "x", deny) }},
	}}
	v := p.Run(context.Background(), StageRecipient, &Input{Rcpt: "ok@x.example"})
	if v.Outcome != Quarantine || len(v.Headers) != 1 || v.SMTPReply() != nil {
		t.Fatalf("good recipient: %+v", v)
	}
	v = p.Run(context.Background(), StageRecipient, &Input{Rcpt: "bad@x.example"})
	if v.Outcome != Reject || v.SMTPReply() != deny || v.Check != "deny" {
		t.Fatalf("bad recipient: %+v", v)
	}
	if v := (&Pipeline{}).Run(context.Background(), StageConnection, &Input{}); v.Outcome != Accept {
		t.Fatalf("no checks: %+v", v)
	}
}

type panicData struct{ where string }

func (p panicData) Name() string { return "panicky-" + p.where }
func (p panicData) Start(*Input) DataRun {
	if p.where == "start" {
		panic("start")
	}
	return &panicRun{where: p.where}
}

type panicRun struct {
	where   string
	aborted bool
}

func (r *panicRun) Write(b []byte) (int, error) {
	if r.where == "write" {
		panic("write")
	}
	return len(b), nil
}
func (r *panicRun) Finish(context.Context, *Input) Verdict {
	if r.where == "finish" {
		panic("finish")
	}
	return Accepted()
}
func (r *panicRun) Abort() { r.aborted = true }

// TestPanicInDataCheck: a data check that panics in Start, Write or
// Finish makes the message a temporary failure, never an accept.
func TestPanicInDataCheck(t *testing.T) {
	t.Parallel()
	for _, where := range []string{"start", "write", "finish"} {
		p := &Pipeline{Data: []DataCheck{panicData{"none"}, panicData{where}}}
		m := p.StartData(&Input{})
		m.Write([]byte("Subject: x\r\n\r\nbody\r\n"))
		v := m.Finish(context.Background(), &Input{})
		if r := v.SMTPReply(); v.Outcome != TempFail || r == nil || r.Code != 451 || r.Enh != "4.3.0" {
			t.Errorf("panic in %s: %+v, want 451 4.3.0", where, v)
		}
	}
	if m := (&Pipeline{}).StartData(&Input{}); m != nil {
		t.Fatal("a pipeline without data checks started a message")
	}
}

// TestPlanEncoding: the typed plan is written in the queue's and store's
// form exactly as the string plans were, and read back.
func TestPlanEncoding(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p                    RcptPlan
		status, action, then string
	}{
		{RcptPlan{Action: policy.Deliver}, "queued", "", ""},
		{RcptPlan{Action: policy.Deliver, Split: true}, "queued", ",split", ""},
		{RcptPlan{Action: policy.RequireTLS}, "queued", "require-tls", ""},
		{RcptPlan{Action: policy.RequireTLS, Split: true}, "queued", "require-tls,split", ""},
		{RcptPlan{Action: policy.Portal}, "queued", "portal", ""},
		{RcptPlan{Action: policy.EncryptSMIME}, "queued", "encrypt-smime", ""},
		{RcptPlan{Action: policy.Hold, Then: policy.Portal}, "held", "", "portal"},
		{RcptPlan{Action: policy.Quarantine, Then: policy.RequireTLS, Split: true}, "quarantined", ",split", "require-tls"},
	} {
		s, a, th := c.p.Encode()
		if s != c.status || a != c.action || th != c.then {
			t.Errorf("%+v: %q %q %q, want %q %q %q", c.p, s, a, th, c.status, c.action, c.then)
		}
		if back := Decode(s, a, th); back.Action != c.p.Action || back.Split != c.p.Split || (th != "" && back.Then != c.p.Then) {
			t.Errorf("%+v read back as %+v", c.p, back)
		}
	}
}

// TestPlanOf: the envelope's spelling of addresses is kept, and one
// message has one reviewer: held recipients are quarantined when another
// is.
func TestPlanOf(t *testing.T) {
	t.Parallel()
	d := &policy.Decision{Recipients: []policy.RecipientDecision{
		{Address: "a@x.example", Action: "hold", Then: "deliver"},
		{Address: "b@y.example", Action: "quarantine", Then: "portal"},
		{Address: "c@z.example", Action: "require-tls", Split: true},
	}}
	p := PlanOf(d, []string{"A@X.example", "b@y.example", "c@z.example", "unknown@w.example"})
	if p["A@X.example"].Action != policy.Quarantine || p["b@y.example"].Then != policy.Portal ||
		p["c@z.example"].Action != policy.RequireTLS || !p["c@z.example"].Split {
		t.Fatalf("plan %+v", p)
	}
	if _, ok := p["unknown@w.example"]; ok {
		t.Fatal("a recipient the policy did not see got a plan")
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := NewRegistry[string]()
	if err := r.Register(policy.Deliver, "outbound", "smtp"); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(policy.Deliver, "outbound", "smtp"); err == nil {
		t.Fatal("an action registered twice")
	}
	if err := r.Register(policy.Hold, "x", "y"); err == nil {
		t.Fatal("hold registered as a transport")
	}
	if !r.Available(policy.Deliver) || !r.Available(policy.Hold) || r.Available(policy.EncryptPGP) || r.Available(policy.Portal) {
		t.Fatal("availability is not 'a transport is registered'")
	}
	if rt, ok := r.Route(policy.Deliver); !ok || rt != "outbound" || r.Routes()["outbound"] != "smtp" {
		t.Fatal("routes")
	}
}

// TestOutboundFailsClosed: a message the scanner cannot read is decided
// on as unscannable, never as clean.
func TestOutboundFailsClosed(t *testing.T) {
	t.Parallel()
	scanner, err := dlp.NewEngine(nil, dlp.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(policy.Options{Builtin: true, OrgDomains: []string{"example.gov.uk"}})
	if err != nil {
		t.Fatal(err)
	}
	o := &Outbound{DLP: scanner, Policy: pol}
	in := &Input{Direction: "out", MailFrom: "a@example.gov.uk", Rcpts: []string{"b@outside.example"}}
	v := o.Evaluate(context.Background(), nil, nil, in)
	if v.Decision == nil || len(v.Decision.Findings) == 0 || v.Decision.Findings[0].Detector != dlp.Unscannable {
		t.Fatalf("unreadable message decided without an unscannable finding: %+v", v.Decision)
	}
	if v.Decision.Most() == policy.Deliver {
		t.Fatal("an unscannable message is delivered as usual")
	}
	// The same through a streamed run: bytes that are no message.
	run := o.Start(in)
	run.Write([]byte("\x00\x01 not a header\r\n"))
	v = run.Finish(context.Background(), in)
	if v.Decision == nil || v.Decision.Most() == policy.Deliver {
		t.Fatalf("streamed garbage: %+v", v.Decision)
	}
}

// TestHeaderField: a check's header cannot inject fields or lines.
func TestHeaderField(t *testing.T) {
	t.Parallel()
	for h, ok := range map[Header]bool{
		{"Authentication-Results", "gw.example; spf=pass"}: true,
		{"X-Tag", "folded\r\n\tline"}:                      true,
		{"X-Tag", "a\r\nBcc: victim@x.example"}:            false,
		{"X-Tag", "a\nb"}:                                  false,
		{"X-Tag", "a\r"}:                                   false,
		{"Bad Name", "x"}:                                  false,
		{"", "x"}:                                          false,
		{"X:Y", "x"}:                                       false,
	} {
		if _, got := h.Field(); got != ok {
			t.Errorf("%q: ok=%v, want %v", h, got, ok)
		}
	}
}
