package inbound

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

// streamIn writes msg to a Stream in pieces of n bytes.
func streamIn(e *Evaluator, c Conn, msg []byte, n, maxHeader int) *Verdict {
	s := e.Start(c, maxHeader)
	for off := 0; off < len(msg); off += n {
		s.Write(msg[off:min(off+n, len(msg))])
	}
	return s.Finish(context.Background())
}

// TestStreamMatchesWhole: a signed message written in small pieces gets
// the verdict of the same message written at once (the header found
// across writes, the body hashed across them), and a body changed after
// signing fails DKIM on the streamed path too.
func TestStreamMatchesWhole(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	e := w.eval(t, nil)
	c := Conn{IP: net.ParseIP("233.252.0.1"), HELO: "h.example", MailFrom: "list@fwd.example"}
	msg := w.sign(t, message("sender.example"), "sender.example")
	whole := e.Evaluate(context.Background(), c, msg)
	for _, n := range []int{1, 2, 3, 7, 64, 1 << 20} {
		v := streamIn(e, c, msg, n, 0)
		if v.Action != whole.Action || len(v.DKIM) != len(whole.DKIM) || v.DKIM[0].Status != whole.DKIM[0].Status {
			t.Errorf("pieces of %d: %s dkim=%v, whole: %s dkim=%v", n, v.Action, v.DKIM, whole.Action, whole.DKIM)
		}
	}
	if whole.DKIM[0].Status != "pass" {
		t.Fatalf("signed message: dkim %v", whole.DKIM)
	}
	tampered := bytes.Replace(msg, []byte("Hello there."), []byte("Hello thxre."), 1)
	if v := streamIn(e, c, tampered, 5, 0); v.DKIM[0].Status != "fail" {
		t.Errorf("body changed after signing: dkim %v", v.DKIM)
	}
}

// TestStreamHeaderBound: a header section longer than the bound is
// refused (552 5.3.4), never authenticated on a part of it.
func TestStreamHeaderBound(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	e := w.eval(t, nil)
	long := "X-Pad: " + strings.Repeat("a", 2000) + "\r\n"
	msg := append([]byte(strings.Repeat(long, 40)), message("bank.example")...)
	v := streamIn(e, Conn{IP: net.ParseIP("192.0.2.1"), MailFrom: "a@bank.example"}, msg, 999, 64<<10)
	if v.Action != Reject || v.Reply == nil || v.Reply.Code != 552 || v.Prepend != "" {
		t.Fatalf("80 KB header: %s %+v", v.Action, v.Reply)
	}
}

// FuzzStream: any split of a message into writes gives the verdict of the
// message written at once.
func FuzzStream(f *testing.F) {
	f.Add([]byte("From: a@bank.example\r\n\r\nb \t\r\n\r\n"), uint8(2))
	f.Add([]byte("\r\n\r\nFrom: a@b.example\r\n"), uint8(1))
	f.Add([]byte("From: a@b.example\r\nSubject: x\r\n\r"), uint8(3))
	w := newWorld(f)
	e := w.eval(f, func(c *Config) { c.Seal = nil })
	f.Fuzz(func(t *testing.T, msg []byte, step uint8) {
		c := Conn{IP: net.ParseIP("192.0.2.1"), HELO: "h.example", MailFrom: "a@b.example"}
		one := streamIn(e, c, msg, len(msg)+1, 4096)
		parts := streamIn(e, c, msg, int(step)%9+1, 4096)
		if one.Action != parts.Action || one.Why != parts.Why || one.Prepend != parts.Prepend {
			t.Fatalf("split writes: %s %q, whole: %s %q", parts.Action, parts.Why, one.Action, one.Why)
		}
	})
}
