package queue

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"sealpost/internal/store"
)

// recordingTransport keeps what it delivered per message id and fails
// recipients starting with "bad" permanently.
type recordingTransport struct {
	mu   sync.Mutex
	got  map[string][]byte
	byTo map[string][]byte
}

func (rt *recordingTransport) Deliver(_ context.Context, d *Delivery) Attempt {
	b, err := io.ReadAll(io.NewSectionReader(d.Body, 0, d.Size))
	var att Attempt
	for _, r := range d.Rcpts {
		switch {
		case err != nil:
			att.Rcpts = append(att.Rcpts, RcptResult{Text: "451 read failed"})
		case strings.HasPrefix(r, "bad"):
			att.Rcpts = append(att.Rcpts, RcptResult{Permanent: true, Text: "550 5.1.1 no such user"})
		default:
			att.Rcpts = append(att.Rcpts, RcptResult{OK: true, Text: "250 ok"})
		}
	}
	rt.mu.Lock()
	rt.got[d.Msg.ID] = b
	for _, r := range d.Rcpts {
		rt.byTo[r] = b
	}
	rt.mu.Unlock()
	return att
}

func (rt *recordingTransport) to(rcpt string) []byte {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.byTo[rcpt]
}

// TestDataHeadersEveryReader: the header fields a data check added (kept
// in the message's row) are above the spooled bytes for every reader:
// delivery, the original's header quoted in a DSN, and OpenDelivered
// itself (the console's quarantine view and the portal's sealing read
// through it).
func TestDataHeadersEveryReader(t *testing.T) {
	t.Parallel()
	rt := &recordingTransport{got: map[string][]byte{}, byTo: map[string][]byte{}}
	tq := newTestQueue(t, t.TempDir(), SpoolOptions{}, 2, func(q *Queue) { q.transports[RouteMailHost] = rt })
	defer tq.stop()
	const fields = "ARC-Seal: i=1; cv=none\r\nAuthentication-Results: gw.test; spf=pass smtp.mailfrom=ext.example\r\n"
	body := []byte("Received: from x by gw.test\r\nFrom: a@ext.example\r\nSubject: hi\r\n\r\nhello\r\n")
	accept := func(id, rcpt string) {
		t.Helper()
		w, err := tq.sp.Create(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := tq.Accept(context.Background(), &Envelope{ID: id, Direction: "in", MailFrom: "a@ext.example",
			Rcpts: []string{rcpt}, DataHeaders: fields}, w); err != nil {
			t.Fatal(err)
		}
	}
	accept(NewID(), "ok@org.example")
	accept(NewID(), "bad@org.example")

	want := fields + string(body)
	waitFor(t, 10*time.Second, "delivery and the DSN", func() bool {
		return rt.to("ok@org.example") != nil && rt.to("a@ext.example") != nil
	})
	if got := rt.to("ok@org.example"); string(got) != want {
		t.Errorf("delivered %q, want the fields above the spooled bytes %q", got, want)
	}
	if dsn := rt.to("a@ext.example"); !bytes.Contains(dsn, []byte("Authentication-Results: gw.test")) || !bytes.Contains(dsn, []byte("ARC-Seal: i=1")) {
		t.Errorf("the DSN's copy of the original header lacks the data-stage fields:\n%s", dsn)
	}
}

// TestOpenDelivered: the stored fields, then the spooled bytes, as one
// io.ReaderAt of the right size, whatever the reads' offsets.
func TestOpenDelivered(t *testing.T) {
	t.Parallel()
	sp, err := OpenSpool(t.TempDir(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	const fields = "Authentication-Results: gw.test; spf=pass\r\n"
	body := "From: a@ext.example\r\n\r\nhello\r\n"
	id := NewID()
	w, err := sp.Create(id)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, body)
	loc, _, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"", fields} {
		d, err := sp.OpenDelivered(&store.Message{ID: id, Spool: loc, DataHeaders: f})
		if err != nil {
			t.Fatal(err)
		}
		want := f + body
		all, _ := io.ReadAll(d.Reader())
		if string(all) != want || d.Size() != int64(len(want)) {
			t.Errorf("OpenDelivered gave %d bytes %q, want %q", d.Size(), all, want)
		}
		for off := int64(0); off < int64(len(want)); off++ {
			for _, n := range []int{1, 5, 11, 64} {
				p := make([]byte, n)
				k, _ := d.ReadAt(p, off)
				if string(p[:k]) != want[off:min(off+int64(n), int64(len(want)))] {
					t.Fatalf("ReadAt(len %d, off %d) = %q", n, off, p[:k])
				}
			}
		}
		d.Close()
	}
}
