package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"sealpost/internal/pipeline"
	"sealpost/internal/testutil"
)

type testCheck struct {
	stage pipeline.Stage
	f     func(*pipeline.Input) pipeline.Verdict
}

func (c testCheck) Name() string          { return "test-" + c.stage.String() }
func (c testCheck) Stage() pipeline.Stage { return c.stage }
func (c testCheck) Check(_ context.Context, in *pipeline.Input) pipeline.Verdict {
	return c.f(in)
}

// withInbound gives the running gateway's MX listener these checks, as
// inboundChecks will for the inbound authentication and threat checks.
func withInbound(e *env, checks ...pipeline.Check) {
	old := e.gw.rules.Load()
	rs := *old
	rs.inbound = &pipeline.Pipeline{Log: e.gw.Log, Checks: checks}
	e.gw.rules.Store(&rs)
}

// TestInboundChecksOnTheListener: a check on the MX listener's sender
// stage adds a header field to the relayed message; a recipient check
// that panics answers 451 4.3.0 (the client retries; nothing accepted)
// and the session goes on.
func TestInboundChecksOnTheListener(t *testing.T) {
	e := start(t, nil)
	withInbound(e,
		testCheck{pipeline.StageSender, func(in *pipeline.Input) pipeline.Verdict {
			return pipeline.Verdict{Headers: []pipeline.Header{{Name: "X-Checked", Value: "sender " + in.MailFrom}}}
		}},
		testCheck{pipeline.StageRecipient, func(in *pipeline.Input) pipeline.Verdict {
			if strings.HasPrefix(in.Rcpt, "crash@") {
				var m map[string]int
				m["x"]++ // a nil map: a check's bug
			}
			return pipeline.Accepted()
		}})
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	c.expect("MAIL FROM:<someone@outside.example>", 250)
	if code, msg := c.cmd("RCPT TO:<crash@example.gov.uk>"); code != 451 || !strings.Contains(msg, "4.3.0") {
		t.Fatalf("RCPT with a panicking check: %s, want 451 4.3.0", msg)
	}
	c.expect("RCPT TO:<staff@example.gov.uk>", 250)
	c.expect("DATA", 354)
	c.expect(strings.TrimSuffix(message("someone@outside.example", "staff@example.gov.uk", "checked", "hello"), "\r\n")+"\r\n.", 250)
	m := e.sink.Wait(t, 1, 10*time.Second)[0]
	if got := testutil.Header(m.Data, "X-Checked"); got != "sender someone@outside.example" {
		t.Fatalf("X-Checked %q in\n%s", got, m.Data)
	}
	if len(m.Rcpts) != 1 || m.Rcpts[0] != "staff@example.gov.uk" {
		t.Fatalf("recipients %v", m.Rcpts)
	}
}

type tagData struct{}

func (tagData) Name() string                           { return "test-tag" }
func (tagData) Start(*pipeline.Input) pipeline.DataRun { return &tagRun{} }

type tagRun struct{}

func (*tagRun) Write(b []byte) (int, error) { return len(b), nil }
func (*tagRun) Abort()                      {}
func (*tagRun) Finish(context.Context, *pipeline.Input) pipeline.Verdict {
	return pipeline.Verdict{Headers: []pipeline.Header{{Name: "X-Tag", Value: "1"}}}
}

// TestDataCheckHeadersCarried: header fields a data check adds, once the
// spool holds the header section, are kept by the queue with the message
// and delivered on top of it (above our Received), never dropped.
func TestDataCheckHeadersCarried(t *testing.T) {
	e := start(t, nil)
	old := e.gw.rules.Load()
	rs := *old
	rs.inbound = &pipeline.Pipeline{Log: e.gw.Log, Data: []pipeline.DataCheck{tagData{}}}
	e.gw.rules.Store(&rs)
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	if code, msg := c.send("someone@outside.example", []string{"staff@example.gov.uk"}, message("someone@outside.example", "staff@example.gov.uk", "tagged", "hello")); code != 250 {
		t.Fatalf("end of data: %s, want 250", msg)
	}
	m := e.sink.Wait(t, 1, 10*time.Second)[0]
	if !strings.HasPrefix(string(m.Data), "X-Tag: 1\r\nReceived: ") {
		t.Fatalf("delivered without the check's field on top:\n%s", m.Data)
	}
}
