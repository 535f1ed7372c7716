package audit

import (
	"testing"
	"time"

	"sealpost/internal/store"
)

// BenchmarkLink is the CPU an event costs to link (three per relayed
// message with one recipient).
func BenchmarkLink(b *testing.B) {
	k, _ := DeriveKeys(make([]byte, 32))
	c := Chain{Keys: k}
	e := &store.AuditEvent{At: time.Now(), Actor: "staff@example.gov.uk", Action: "message.received", Object: "01jd5x0000000000000000000",
		IP: "192.0.2.1", Addrs: []string{"citizen@gmail.example"}, Detail: "direction=out size=10240 sha256=3f2a9c0d3f2a9c0d3f2a9c0d3f2a9c0d3f2a9c0d3f2a9c0d3f2a9c0d3f2a9c0d via=connector helo=exchange.example"}
	var head store.AuditHead
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.Seq = int64(i + 1)
		c.Link(head, e)
		head = store.AuditHead{Seq: e.Seq, Hash: e.Hash, MAC: e.MAC}
	}
}
