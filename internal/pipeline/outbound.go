package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"strings"

	"sealpost/internal/dlp"
	"sealpost/internal/policy"
)

// Threads says which recipients a message answers in a secure portal
// conversation (verified thread tokens in In-Reply-To/References). A nil
// *portal.Answered satisfies it and answers "none".
type Threads interface {
	Any() bool
	Thread(rcpt string) string
}

// Outbound is the outbound data check: the DLP scan of the message as it
// streams in, then the policy's decision per recipient. SMTP, `policy
// test`, the API and the console all decide through Evaluate, so what a
// test shows is what the listener does.
type Outbound struct {
	DLP      *dlp.Engine
	Policy   *policy.Engine
	Keywords []string                                                  // sender keywords ("[secure]")
	Known    func(domain string) bool                                  // delivered to before (first contact)
	Answers  func(ctx context.Context, h mail.Header) (Threads, error) // nil: no portal conversations
	// TLS gives, per message, how outbound TLS to a recipient domain is
	// verified now (recipient.tls); nil, or a nil result: not known.
	TLS func(ctx context.Context) func(domain string) string
	// Saw, if set, is shown each scanned message's header (the inbound
	// impersonation check learns staff display names from outbound mail).
	Saw func(h mail.Header)
	// Keys, if set, checks the recipients the policy wants encrypted for
	// a usable key and changes the action of those without one (to the
	// portal, or a hold), adding why to their reasons; an error is a
	// temporary failure.
	Keys func(ctx context.Context, d *policy.Decision) error
	Log  *slog.Logger
}

// Name is the check's name in logs and verdicts.
func (o *Outbound) Name() string { return "outbound-policy" }

// Start begins the scan of one message in the background: the bytes
// written to the run are read by the scanner through a pipe.
func (o *Outbound) Start(in *Input) DataRun {
	pr, pw := io.Pipe()
	r := &outboundRun{o: o, pw: pw, done: make(chan struct{})}
	go r.scan(pr)
	return r
}

type outboundRun struct {
	o    *Outbound
	pw   *io.PipeWriter
	done chan struct{}
	res  *dlp.Result
	err  error
	size int64 // bytes written: message.size for the policy
}

func (r *outboundRun) scan(pr *io.PipeReader) {
	defer close(r.done)
	defer func() {
		if p := recover(); p != nil {
			// A scanner bug must not take the gateway down, nor let the
			// message through uninspected.
			if r.o.Log != nil {
				r.o.Log.Error("DLP scanner panicked; message treated as unscannable", "panic", fmt.Sprint(p))
			}
			r.res, r.err = nil, fmt.Errorf("scanner failure")
			pr.CloseWithError(fmt.Errorf("scanner failure"))
		}
	}()
	r.res, r.err = r.o.DLP.ScanMessage(pr)
	io.Copy(io.Discard, pr) // the scanner may stop early; the writer must not block
	pr.Close()
}

func (r *outboundRun) Write(p []byte) (int, error) {
	r.size += int64(len(p))
	r.pw.Write(p) // fails only after a scanner failure, which Finish reports
	return len(p), nil
}

func (r *outboundRun) Abort() {
	r.pw.CloseWithError(io.ErrUnexpectedEOF)
	<-r.done
}

func (r *outboundRun) Finish(ctx context.Context, in *Input) Verdict {
	r.pw.Close()
	select {
	case <-r.done:
	case <-ctx.Done():
		return Failed(r.o.Name(), "inspection timed out")
	}
	in.Size = r.size
	return r.o.Evaluate(ctx, r.res, r.err, in)
}

// Evaluate decides on a scanned message: res and err are what the DLP scan
// returned. A message the scanner could not read (res nil) is decided on
// as "unscannable", never as clean. in gives the envelope (MailFrom,
// AuthUser, Rcpts), the header's From and Subject as captured, and Size.
func (o *Outbound) Evaluate(ctx context.Context, res *dlp.Result, err error, in *Input) Verdict {
	if res == nil {
		// Not a message we could parse, or the scanner failed: say so.
		why := "malformed message"
		if err != nil && !strings.HasPrefix(err.Error(), "not a message") {
			why = err.Error()
		}
		res = &dlp.Result{Findings: []dlp.Finding{{Detector: dlp.Unscannable, Count: 1, Confidence: "high", Where: "body (" + why + ")"}}}
	}
	if o.Saw != nil && res.Header != nil {
		o.Saw(res.Header)
	}
	subject := res.Subject
	if subject == "" {
		subject = in.Header.Subject
	}
	// An answer to a secure portal conversation: the policy sees it as
	// message.portal_thread and recipient.portal_thread. Not knowing is a
	// temporary failure, never "not an answer".
	var answered Threads = noThreads{}
	if o.Answers != nil {
		a, err := o.Answers(ctx, res.Header)
		if err != nil {
			return Failed(o.Name(), "checking for portal conversations: "+err.Error())
		}
		answered = a
	}
	var tls func(string) string
	if o.TLS != nil {
		tls = o.TLS(ctx)
	}
	d := o.Policy.Decide(&policy.Input{
		MailFrom: in.MailFrom, HeaderFrom: in.Header.From, AuthUser: in.AuthUser, Subject: subject,
		Keyword: HasKeyword(subject, o.Keywords), Size: in.Size, Visible: Visible(res.Header),
		Classification: res.Classification, Findings: res.Findings, Recipients: in.Rcpts, Known: o.Known,
		PortalThread: answered.Any(), ThreadParty: func(rcpt string) bool { return answered.Thread(rcpt) != "" },
		TLS: tls,
	})
	if o.Keys != nil {
		if err := o.Keys(ctx, d); err != nil {
			return Failed(o.Name(), "looking up recipient keys: "+err.Error())
		}
	}
	v := Verdict{Decision: d, Plan: PlanOf(d, in.Rcpts), Check: o.Name()}
	switch d.Most() {
	case policy.Reject:
		v.Outcome, v.Reply, v.Reason = Reject, nil, "policy"
	case policy.Quarantine:
		v.Outcome, v.Reason = Quarantine, "policy"
	}
	return v
}

type noThreads struct{}

func (noThreads) Any() bool            { return false }
func (noThreads) Thread(string) string { return "" }

// RewriteHeader removes the sender keywords from the Subject of a header
// section before it is spooled; nil if there is nothing to change.
func (o *Outbound) RewriteHeader(h []byte) []byte { return RewriteSubject(h, o.Keywords) }
