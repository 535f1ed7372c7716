package deliver

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"sealpost/internal/queue"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

func TestDotWriter(t *testing.T) {
	for in, want := range map[string]string{
		"a\r\n.b\r\n":    "a\r\n..b\r\n",
		".\r\n":          "..\r\n",
		"x.\r\n..\r\n.":  "x.\r\n...\r\n..",
		"no dots\r\n":    "no dots\r\n",
		"\r\n.\r\n.\r\n": "\r\n..\r\n..\r\n",
	} {
		for _, step := range []int{1, 2, 100} {
			var b bytes.Buffer
			bw := bufio.NewWriter(&b)
			dw := &dotWriter{w: bw, bol: true}
			for i := 0; i < len(in); i += step {
				dw.Write([]byte(in[i:min(i+step, len(in))]))
			}
			bw.Flush()
			if b.String() != want {
				t.Errorf("%q (step %d): %q, want %q", in, step, b.String(), want)
			}
		}
	}
}

func TestHosts(t *testing.T) {
	res := &testutil.Resolver{MX: map[string][]*net.MX{
		"multi.example": {{Host: "b.multi.example.", Pref: 20}, {Host: "a.multi.example.", Pref: 10}},
		"null.example":  {{Host: ".", Pref: 0}},
	}}
	tr := &Transport{Port: "25", Resolver: res}
	hosts, herr := tr.hosts(context.Background(), "multi.example")
	if herr != nil || strings.Join(hosts, ",") != "a.multi.example:25,b.multi.example:25" {
		t.Fatalf("%v %v", hosts, herr)
	}
	hosts, herr = tr.hosts(context.Background(), "nomx.example")
	if herr != nil || strings.Join(hosts, ",") != "nomx.example:25" {
		t.Fatalf("implicit MX: %v %v", hosts, herr)
	}
	if _, herr = tr.hosts(context.Background(), "null.example"); herr == nil || !herr.permanent || !strings.Contains(herr.text, "5.1.10") {
		t.Fatalf("null MX: %+v", herr)
	}
}

// TestRequiredTLSRefusesPlainHost: with TLS required, a next hop that does
// not offer STARTTLS gets nothing, and the failure is temporary.
func TestRequiredTLSRefusesPlainHost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		io.WriteString(c, "220 plain.example ESMTP\r\n")
		var seen []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			seen = append(seen, strings.TrimSpace(line))
			switch {
			case strings.HasPrefix(line, "EHLO"):
				io.WriteString(c, "250-plain.example\r\n250 PIPELINING\r\n")
			case strings.HasPrefix(line, "QUIT"):
				io.WriteString(c, "221 bye\r\n")
				got <- strings.Join(seen, "|")
				return
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
		got <- strings.Join(seen, "|")
	}()
	pool := NewPool(4, time.Minute)
	defer pool.Close()
	tr := &Transport{Hello: "gw.example", FixedHost: l.Addr().String(), TLSMode: TLSRequired, ConnectTimeout: time.Second, CommandTimeout: 5 * time.Second, Log: slog.Default(), Pool: pool}
	msg := "From: a@b.example\r\n\r\nsecret\r\n"
	att := tr.Deliver(context.Background(), &queue.Delivery{Msg: &store.Message{ID: "x", MailFrom: "a@b.example"}, Rcpts: []string{"r@c.example"}, Body: strings.NewReader(msg), Size: int64(len(msg))})
	if att.Rcpts[0].OK || att.Rcpts[0].Permanent || !strings.Contains(att.Rcpts[0].Text, "4.7.4") {
		t.Fatalf("result %+v", att.Rcpts[0])
	}
	if s := <-got; strings.Contains(s, "MAIL") {
		t.Fatalf("the envelope went to a host without TLS: %s", s)
	}
}

// TestDeadPooledSessionsAreSkipped: after the next hop restarts, every
// pooled session is dead; delivery still succeeds at once on a new one.
func TestDeadPooledSessionsAreSkipped(t *testing.T) {
	sink := testutil.NewSink(t)
	pool := NewPool(8, time.Minute)
	defer pool.Close()
	tr := &Transport{Hello: "gw.example", FixedHost: sink.Addr, TLSMode: TLSNone, ConnectTimeout: time.Second, CommandTimeout: 5 * time.Second, Log: slog.Default(), Pool: pool}
	msg := "From: a@b.example\r\n\r\nhello\r\n"
	send := func() queue.Attempt {
		return tr.Deliver(context.Background(), &queue.Delivery{Msg: &store.Message{ID: "x", MailFrom: "a@b.example"}, Rcpts: []string{"r@c.example"}, Body: strings.NewReader(msg), Size: int64(len(msg))})
	}
	// Fill the pool with several idle sessions.
	var conns []*pooledConn
	for i := 0; i < 4; i++ {
		pc, _, herr := tr.conn(context.Background(), sink.Addr, sink.Addr+"|"+tr.TLSMode, tr.TLSMode, nil)
		if herr != nil {
			t.Fatal(herr.text)
		}
		conns = append(conns, pc)
	}
	for _, pc := range conns {
		pool.put(sink.Addr+"|"+tr.TLSMode, pc)
		pc.c.conn.Close() // the server side went away
	}
	if att := send(); !att.Rcpts[0].OK {
		t.Fatalf("delivery after dead pooled sessions: %+v", att.Rcpts[0])
	}
	sink.Wait(t, 1, 5*time.Second)
}

// brokenTLSServer offers STARTTLS, then answers the handshake with garbage;
// without STARTTLS it takes mail. It reports each DATA it completes.
func brokenTLSServer(t *testing.T) (string, chan string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan string, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(c)
				io.WriteString(c, "220 broken.example ESMTP\r\n")
				inData := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch {
					case inData && line == ".\r\n":
						inData = false
						io.WriteString(c, "250 ok\r\n")
						got <- "delivered"
					case inData:
					case strings.HasPrefix(line, "EHLO"):
						io.WriteString(c, "250-broken.example\r\n250 STARTTLS\r\n")
					case strings.HasPrefix(line, "STARTTLS"):
						io.WriteString(c, "220 go ahead\r\nthis is not TLS\r\n")
						return
					case strings.HasPrefix(line, "DATA"):
						inData = true
						io.WriteString(c, "354 go\r\n")
					case strings.HasPrefix(line, "QUIT"):
						io.WriteString(c, "221 bye\r\n")
						return
					default:
						io.WriteString(c, "250 ok\r\n")
					}
				}
			}()
		}
	}()
	return l.Addr().String(), got
}

// TestOpportunisticTLSFallsBack: a host whose STARTTLS fails still gets
// the mail in clear when TLS is opportunistic, never when it is required.
func TestOpportunisticTLSFallsBack(t *testing.T) {
	msg := "From: a@b.example\r\n\r\nhello\r\n"
	for _, mode := range []string{TLSOpportunistic, TLSRequired} {
		addr, got := brokenTLSServer(t)
		pool := NewPool(4, time.Minute)
		tr := &Transport{Hello: "gw.example", FixedHost: addr, TLSMode: mode, ConnectTimeout: time.Second, CommandTimeout: 2 * time.Second, Log: slog.Default(), Pool: pool}
		att := tr.Deliver(context.Background(), &queue.Delivery{Msg: &store.Message{ID: "x", MailFrom: "a@b.example"}, Rcpts: []string{"r@c.example"}, Body: strings.NewReader(msg), Size: int64(len(msg))})
		pool.Close()
		switch mode {
		case TLSOpportunistic:
			if !att.Rcpts[0].OK || att.TLS != "" {
				t.Fatalf("opportunistic: %+v tls %q", att.Rcpts[0], att.TLS)
			}
			<-got
		case TLSRequired:
			if att.Rcpts[0].OK || att.Rcpts[0].Permanent || !strings.Contains(att.Rcpts[0].Text, "4.7.5") {
				t.Fatalf("required: %+v", att.Rcpts[0])
			}
			select {
			case <-got:
				t.Fatal("delivered in clear although TLS is required")
			default:
			}
		}
	}
}
