package gateway

import (
	"context"
	"strings"
	"testing"

	"sealpost/internal/pipeline"
	"sealpost/internal/queue"
)

// BenchmarkInspect10KB: the inspection of one 10 KB outbound message, as
// the SMTP session does it (stream in, decide).
func BenchmarkInspect10KB(b *testing.B) {
	e := start(b, nil)
	var body strings.Builder
	for body.Len() < 10<<10 {
		body.WriteString("The quarterly report is attached; please review the figures before the meeting.\r\n")
	}
	msg := []byte(message("Staff <staff@example.gov.uk>", "rcpt@dest.bench.example", "bench", body.String()))
	p := e.gw.rules.Load().pipelineFor("out")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		env := &queue.Envelope{ID: queue.NewID(), MailFrom: "staff@example.gov.uk", Rcpts: []string{"rcpt@dest.bench.example"}}
		in := &pipeline.Input{Direction: "out", MailFrom: env.MailFrom, Rcpts: env.Rcpts, ID: env.ID}
		m := p.StartData(in)
		for off := 0; off < len(msg); off += 4096 {
			m.Write(msg[off:min(len(msg), off+4096)])
		}
		v := m.Finish(context.Background(), in)
		if _, err := e.gw.apply(context.Background(), env, &v); err != nil {
			b.Fatal(err)
		}
	}
}
