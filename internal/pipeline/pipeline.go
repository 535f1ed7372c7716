package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime/debug"
)

// Stage is where in the SMTP transaction a check runs.
type Stage int

const (
	StageConnection Stage = iota // the client connected (address known)
	StageSender                  // MAIL FROM
	StageRecipient               // each RCPT TO
	StageData                    // the whole message (see DataCheck)
)

var stageNames = [...]string{"connection", "sender", "recipient", "data"}

func (s Stage) String() string {
	if s < 0 || int(s) >= len(stageNames) {
		return "stage(?)"
	}
	return stageNames[s]
}

// Input is what the checks know of the message so far. Fields fill in as
// the stages pass: Rcpt at StageRecipient only; Rcpts, Header and Size at
// StageData.
type Input struct {
	Direction string // "in" (MX) or "out" (from the organisation)
	RemoteIP  netip.Addr
	Helo      string
	AuthUser  string
	MailFrom  string
	Rcpt      string   // the recipient being added (StageRecipient)
	Rcpts     []string // every accepted recipient (StageData)
	ID        string   // the message id (StageData)
	Header    HeaderInfo
	Size      int64 // bytes of the message as received (StageData)
}

// Check is a check of an envelope stage (connection, sender, recipient).
type Check interface {
	Name() string
	Stage() Stage
	Check(ctx context.Context, in *Input) Verdict
}

// DataCheck checks the message itself. It reads the bytes as they arrive
// (never the whole message in memory unless it must) and decides at the
// end of data.
type DataCheck interface {
	Name() string
	// Start begins the check of one message; nil: nothing to check in it.
	Start(in *Input) DataRun
}

// DataRun is one DataCheck on one message.
type DataRun interface {
	io.Writer
	// Finish is called once every byte is written: the verdict.
	Finish(ctx context.Context, in *Input) Verdict
	// Abort ends a run whose message will not be accepted.
	Abort()
}

// Pipeline is the list of checks of one listener (inbound or outbound).
// The gateway builds one per configuration and direction; it is not
// modified after.
type Pipeline struct {
	Checks []Check
	Data   []DataCheck
	Log    *slog.Logger
}

// Run runs the checks of stage in order and returns their merged verdict.
// It stops at the first check that stops the message. A check that panics
// gives a temporary failure (451 4.3.0) and is logged with its stack: a
// bug in one check neither takes the gateway down nor lets the message
// through unchecked.
func (p *Pipeline) Run(ctx context.Context, stage Stage, in *Input) Verdict {
	var v Verdict
	if p == nil {
		return v
	}
	for _, c := range p.Checks {
		if c.Stage() != stage {
			continue
		}
		v.merge(p.check(ctx, c, in))
		if v.Stops() {
			break
		}
	}
	return v
}

// The calls into checks, each turning a panic into a logged temporary
// failure (recovered, by a deferred p.recovered, without a closure on
// the per-message path).

func (p *Pipeline) check(ctx context.Context, c Check, in *Input) (v Verdict) {
	defer p.recovered(c.Name(), &v)
	return named(c.Check(ctx, in), c.Name())
}

func (p *Pipeline) start(c DataCheck, in *Input) (r DataRun, failed bool) {
	var v Verdict
	defer func() { failed = v.Stops() }()
	defer p.recovered(c.Name(), &v)
	return c.Start(in), false
}

func (p *Pipeline) finish(ctx context.Context, r *dataRun, in *Input) (v Verdict) {
	defer p.recovered(r.name, &v)
	return named(r.run.Finish(ctx, in), r.name)
}

func (p *Pipeline) abort(r *dataRun) {
	var v Verdict
	defer p.recovered(r.name, &v)
	r.run.Abort()
}

func (p *Pipeline) write(r *dataRun, b []byte) {
	var v Verdict
	defer func() { r.failed = r.failed || v.Stops() }()
	defer p.recovered(r.name, &v)
	r.run.Write(b)
}

// recovered, deferred, turns a panic of check name into a failure in *v.
func (p *Pipeline) recovered(name string, v *Verdict) {
	if x := recover(); x != nil {
		p.log().Error("check panicked; message refused for now", "check", name, "panic", fmt.Sprint(x), "stack", string(debug.Stack()))
		*v = Failed(name, "check failed")
	}
}

func named(v Verdict, name string) Verdict {
	if v.Stops() && v.Check == "" {
		v.Check = name
	}
	return v
}

func (p *Pipeline) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Message is the data stage of one message: write its bytes, then Finish.
type Message struct {
	p    *Pipeline
	runs []dataRun
	buf  [2]dataRun // runs' storage for the usual one or two checks
}

type dataRun struct {
	name   string
	run    DataRun
	failed bool // it panicked: its verdict is a temporary failure
}

// StartData starts every data check on one message; nil when there is
// none (the hot path of a relay without checks allocates nothing more).
func (p *Pipeline) StartData(in *Input) *Message {
	if p == nil || len(p.Data) == 0 {
		return nil
	}
	m := &Message{p: p}
	m.runs = m.buf[:0]
	for _, c := range p.Data {
		r, failed := p.start(c, in)
		if r != nil || failed {
			m.runs = append(m.runs, dataRun{name: c.Name(), run: r, failed: failed})
		}
	}
	return m
}

// Write gives the next bytes of the message to every run. It never fails:
// a run that fails gives its verdict at Finish.
func (m *Message) Write(b []byte) (int, error) {
	for i := range m.runs {
		r := &m.runs[i]
		if !r.failed {
			m.p.write(r, b)
		}
	}
	return len(b), nil
}

// Finish returns the merged verdict of every run. Every run is finished
// (or aborted after a panic) even when an earlier one stops the message.
func (m *Message) Finish(ctx context.Context, in *Input) Verdict {
	var v Verdict
	for i := range m.runs {
		r := &m.runs[i]
		if r.failed {
			if r.run != nil {
				m.p.abort(r)
			}
			v.merge(Failed(r.name, "check failed"))
			continue
		}
		v.merge(m.p.finish(ctx, r, in))
	}
	return v
}

// Abort ends every run of a message that will not be accepted.
func (m *Message) Abort() {
	for i := range m.runs {
		r := &m.runs[i]
		if r.run != nil {
			m.p.abort(r)
		}
	}
}
