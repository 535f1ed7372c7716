package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sendOne sends one message in its own session and reports whether the
// server answered 250 to the end of DATA. Any other outcome (refused
// connection, reset, 4xx) means the message was not accepted.
func sendOne(addr, subject, body string) bool {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	reply := func() int {
		code := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return 0
			}
			if len(line) >= 4 && line[3] != '-' {
				fmt.Sscanf(line, "%d", &code)
				return code
			}
		}
	}
	step := func(cmd string, want int) bool {
		if _, err := conn.Write([]byte(cmd)); err != nil {
			return false
		}
		return reply() == want
	}
	return reply() == 220 &&
		step("EHLO crash.test\r\n", 250) &&
		step("MAIL FROM:<staff@example.gov.uk>\r\n", 250) &&
		step("RCPT TO:<someone@partner.example>\r\n", 250) &&
		step("DATA\r\n", 354) &&
		step("From: staff@example.gov.uk\r\nTo: someone@partner.example\r\nSubject: "+subject+"\r\n\r\n"+body+"END-"+subject+"\r\n.\r\n", 250)
}

// spoolGauges reads sealpost_spool_bytes_live and _total from /metrics.
func spoolGauges(t *testing.T, web string) (live, total float64) {
	t.Helper()
	resp, err := http.Get("http://" + web + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	got := 0
	for _, l := range strings.Split(string(b), "\n") {
		if _, err := fmt.Sscanf(l, "sealpost_spool_bytes_live %g", &live); err == nil {
			got++
		}
		if _, err := fmt.Sscanf(l, "sealpost_spool_bytes_total %g", &total); err == nil {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("the spool gauges are missing from /metrics")
	}
	return live, total
}

// TestKill9LosesNoAcceptedMessage kills sealpost with SIGKILL several times
// while clients send (our tracked sessions and smtp-source as background
// load), restarts it each time, and then checks that every message that got
// a 250 reached the sink, and that every message at the sink is whole. Two
// of the tracked senders send messages of ~310 KB, over the spool's 256 KiB
// inline limit, so the large-message path (a file of its own, O_TMPFILE and
// link) is killed in the middle too.
func TestKill9LosesNoAcceptedMessage(t *testing.T) {
	need(t, "smtp-source", "smtp-sink")
	s := startSink(t)
	g := newGW(t, gwOptions{mailHost: s.addr, smarthost: s.addr})
	g.start()

	const line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
	const smallLines, largeLines = 60, 4200
	body := strings.Repeat(line, smallLines)  // ~4.4 KB
	large := strings.Repeat(line, largeLines) // ~310 KB: a spool file of its own
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		tried    atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && i < 5000; i++ {
				subj, b := fmt.Sprintf("crash-%d-%d", w, i), body
				if w < 2 {
					subj, b = fmt.Sprintf("crash-L-%d-%d", w, i), large
				}
				tried.Add(1)
				if sendOne(g.outbound, subj, b) {
					mu.Lock()
					accepted[subj] = true
					mu.Unlock()
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	// Background load from Postfix's smtp-source; restarted when a kill
	// makes it give up. Bounded by count and time.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load() && i < 50; i++ {
			exec.Command("timeout", "20", "smtp-source", "-s", "5", "-m", "300", "-l", "8000", "-f", "staff@example.gov.uk", "-t", "load@partner.example", g.outbound).Run()
		}
	}()

	const kills = 4
	for k := 0; k < kills; k++ {
		time.Sleep(1500 * time.Millisecond)
		g.kill9()
		time.Sleep(200 * time.Millisecond)
		g.start()
	}
	time.Sleep(1 * time.Second)
	stop.Store(true)
	wg.Wait()

	mu.Lock()
	n := len(accepted)
	mu.Unlock()
	if n < 100 {
		t.Fatalf("only %d messages accepted of %d tried: the test did not load the gateway", n, tried.Load())
	}
	// Every accepted message arrives.
	subjRe := regexp.MustCompile(`(?m)^Subject: (crash-(?:L-)?\d+-\d+)$`)
	count := func() map[string]int {
		seen := map[string]int{}
		for _, m := range s.messages() {
			if sm := subjRe.FindStringSubmatch(m); sm != nil {
				seen[sm[1]]++
			}
		}
		return seen
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		seen := count()
		missing := 0
		for subj := range accepted {
			if seen[subj] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted messages never reached the sink", missing, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Then, once the queue is idle and the sink has finished writing, every
	// message at the sink is whole: nothing half-written was delivered.
	time.Sleep(2 * time.Second)
	total, dups, nLarge := 0, 0, 0
	seen := map[string]int{}
	for _, m := range s.messages() {
		total++
		sm := subjRe.FindStringSubmatch(m)
		if sm == nil {
			// smtp-source's messages end in a line of X's (LF in the dump).
			if !strings.Contains(m, "Message-Id:") || !strings.HasSuffix(strings.TrimRight(m, "\n"), "X") {
				t.Errorf("a half-written or unexpected message reached the sink (%d bytes):\n%s\n...\n%q", len(m), m[:min(len(m), 600)], m[max(0, len(m)-200):])
			}
			continue
		}
		want := 2 * smallLines
		if strings.HasPrefix(sm[1], "crash-L-") {
			want = 2 * largeLines
			nLarge++
		}
		if !strings.Contains(m, "END-"+sm[1]) || strings.Count(m, "0123456789abcdef") != want {
			t.Errorf("message %s reached the sink incomplete", sm[1])
		}
		if seen[sm[1]]++; seen[sm[1]] == 2 {
			dups++
		}
	}
	if nLarge == 0 {
		t.Fatal("no message over 256 KiB was accepted: the large-message path was not tested")
	}
	// Everything delivered: the spool, by its gauges, holds nothing live and
	// stays within its bound (live + 3 segments of 64 MiB).
	var live, files float64
	for end := time.Now().Add(30 * time.Second); ; {
		live, files = spoolGauges(t, g.web)
		if live == 0 || time.Now().After(end) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if live != 0 || files > 3*64<<20 {
		t.Fatalf("after delivering everything the spool reports %v bytes live, %v in its files", live, files)
	}
	t.Logf("kill -9 x%d: %d tracked messages tried, %d accepted (250), all %d delivered (%d over 256 KiB); %d duplicates (at-least-once); %d messages at the sink in all (with smtp-source load)",
		kills, tried.Load(), n, n, nLarge, dups, total)
}
