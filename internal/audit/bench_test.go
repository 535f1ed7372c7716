package audit

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
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

// BenchmarkMessageRows is the store work of one relayed message (queue rows
// at acceptance, the result at delivery), through the Committer in rounds of 50
// concurrent ops, as group commit batches them, without and with its audit events.
func BenchmarkMessageRows(b *testing.B) {
	for _, audited := range []bool{false, true} {
		name := "without-audit"
		if audited {
			name = "with-audit"
		}
		b.Run(name, func(b *testing.B) {
			st, err := store.OpenSQLite(filepath.Join(b.TempDir(), "db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			k, _ := DeriveKeys(make([]byte, 32))
			st.SetAuditChain(Chain{Keys: k})
			ctx := context.Background()
			now := time.Now()
			// The Committer, as the accept and delivery paths use it:
			// concurrent ops share one transaction.
			com := store.NewCommitter(st, 50)
			defer com.Close()
			batch := func(n, base int, f func(ctx context.Context, tx *sql.Tx, i int) error) {
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						errs <- com.Do(ctx, func(ctx context.Context, tx *sql.Tx) error { return f(ctx, tx, i) }, "", nil)
					}(base + i)
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") }()
			for i := 0; i < b.N; i += 50 {
				n := min(50, b.N-i)
				batch(n, i, func(ctx context.Context, tx *sql.Tx, j int) error {
					id := fmt.Sprintf("m%025d", j)
					m := &store.Message{ID: id, Direction: "out", MailFrom: "staff@example.gov.uk", ReceivedAt: now, Size: 10240, RemoteIP: "127.0.0.1"}
					rc := []store.Recipient{{Rcpt: "citizen@gmail.example", Route: "outbound", NextAttempt: now}}
					if err := st.InsertMessage(ctx, tx, m, rc); err != nil {
						return err
					}
					if !audited {
						return nil
					}
					return st.AppendAuditTx(ctx, tx,
						&store.AuditEvent{At: now, Actor: m.MailFrom, Action: "message.received", Object: id, IP: m.RemoteIP, Addrs: []string{rc[0].Rcpt},
							Detail: "direction=out size=10240 sha256=3f2a9c0d3f2a9c0d3f2a9c0d3f2a9c0d3f2a9c0d3f2a9c0d3f2a9c0d3f2a9c0d via=connector helo=exchange.example"},
						&store.AuditEvent{At: now, Actor: "gateway", Action: "message.decision", Object: id, Addrs: []string{rc[0].Rcpt}, Detail: "route=outbound status=queued policy=deliver rules="})
				})
				batch(n, i, func(ctx context.Context, tx *sql.Tx, j int) error {
					id := fmt.Sprintf("m%025d", j)
					res := []store.Result{{MsgID: id, Rcpt: "citizen@gmail.example", Status: "delivered", Error: "250 accepted", Relay: "127.0.0.1:2526"}}
					if _, err := st.ApplyResults(ctx, tx, now, res); err != nil {
						return err
					}
					if !audited {
						return nil
					}
					return st.AppendAuditTx(ctx, tx, &store.AuditEvent{At: now, Actor: "gateway", Action: "delivery.attempt", Object: id, Addrs: []string{"citizen@gmail.example"},
						Detail: "result=delivered attempt=1 route=outbound relay=127.0.0.1:2526 tls=none reply=\"250 accepted\""})
				})
			}
		})
	}
}

// cpuTime is the process's user+system CPU so far: on a shared machine the
// wall time of a benchmark that fsyncs says little, its CPU more.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
