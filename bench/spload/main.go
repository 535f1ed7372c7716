// Command spload measures sealpost's memory under two loads, on loopback
// only, bounded in count and time:
//
//	spload idle -addr 127.0.0.1:2600 -pid PID -n 1000 -hold 10s
//	    opens n SMTP sessions (greeting + EHLO), holds them idle, and reports
//	    the server's RSS before and while they are open.
//	spload big -addr 127.0.0.1:2600 -pid PID -mb 100
//	    sends one message of mb MiB, generated as it is sent, and reports the
//	    server's RSS before and its peak while the message is received and
//	    relayed.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: spload idle|big [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:2600", "sealpost SMTP listener (loopback only)")
	pid := fs.Int("pid", 0, "sealpost's process id")
	n := fs.Int("n", 1000, "idle: sessions")
	hold := fs.Duration("hold", 10*time.Second, "idle: how long to hold them")
	mb := fs.Int("mb", 100, "big: message size in MiB")
	from := fs.String("from", "sender@loadgen.bench.example", "envelope sender")
	to := fs.String("to", "rcpt@dest.bench.example", "recipient")
	fs.Parse(os.Args[2:])
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !(strings.HasPrefix(host, "127.") || host == "::1" || host == "localhost") {
		fmt.Fprintln(os.Stderr, "spload: the target must be on loopback")
		os.Exit(2)
	}
	if *pid == 0 {
		fmt.Fprintln(os.Stderr, "spload: -pid is required")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "idle":
		idle(*addr, *pid, min(*n, 20000), min(*hold, 5*time.Minute))
	case "big":
		big(*addr, *pid, min(*mb, 2048), *from, *to)
	default:
		fmt.Fprintln(os.Stderr, "spload: idle or big")
		os.Exit(2)
	}
}

func rssKB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.Atoi(strings.Fields(l)[1])
			return v
		}
	}
	return -1
}

func idle(addr string, pid, n int, hold time.Duration) {
	before := rssKB(pid)
	var ok atomic.Int64
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "220") {
				c.Close()
				return
			}
			fmt.Fprintf(c, "EHLO idle%d.bench.example\r\n", i)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					c.Close()
					return
				}
				if len(line) > 3 && line[3] == ' ' {
					break
				}
			}
			conns[i] = c
			ok.Add(1)
		}()
	}
	wg.Wait()
	time.Sleep(hold / 2)
	during := rssKB(pid)
	time.Sleep(hold / 2)
	for _, c := range conns {
		if c != nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Write([]byte("QUIT\r\n"))
			c.Close()
		}
	}
	fmt.Printf("idle sessions=%d open=%d rss_before_mb=%.1f rss_with_sessions_mb=%.1f\n", n, ok.Load(), float64(before)/1024, float64(during)/1024)
}

func big(addr string, pid, mb int, from, to string) {
	before := rssKB(pid)
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v := int64(rssKB(pid)); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReader(c)
	w := bufio.NewWriterSize(c, 64<<10)
	expect := func(prefix string) {
		for {
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, prefix) {
				fmt.Fprintf(os.Stderr, "spload: want %s, got %q %v\n", prefix, line, err)
				os.Exit(1)
			}
			if line[3] == ' ' {
				return
			}
		}
	}
	cmd := func(s, want string) {
		w.WriteString(s + "\r\n")
		w.Flush()
		expect(want)
	}
	expect("220")
	cmd("EHLO big.bench.example", "250")
	cmd("MAIL FROM:<"+from+">", "250")
	cmd("RCPT TO:<"+to+">", "250")
	cmd("DATA", "354")
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: %d MiB\r\n\r\n", from, to, mb)
	line := strings.Repeat("0123456789", 7) + "012345678\r\n" // 81 bytes
	total := int64(mb) << 20
	for sent := int64(0); sent < total; sent += int64(len(line)) {
		io.WriteString(w, line)
	}
	cmd(".", "250")
	accepted := time.Since(start)
	cmd("QUIT", "221")
	// Wait for the relay to finish: RSS settles when the queue has sent it.
	time.Sleep(3 * time.Second)
	close(stop)
	<-done
	fmt.Printf("big size_mib=%d accept_s=%.2f rss_before_mb=%.1f rss_peak_mb=%.1f growth_mb=%.1f\n", mb, accepted.Seconds(), float64(before)/1024, float64(peak.Load())/1024, float64(peak.Load()-int64(before))/1024)
}
