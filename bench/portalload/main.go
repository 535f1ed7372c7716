// Command portalload measures the secure portal of a sealpost it starts
// itself, on loopback only, bounded in count and time:
//
//		portalload -bin /tmp/bench-bin/sealpost -mb 1024 -c 32 -n 20000 -d 30s
//
//	 1. starts an SMTP sink (the next hop) and sealpost (portal on, every
//	    outbound message with [secure] sealed), in a temporary directory;
//	 2. sends one message with an attachment of -mb MiB of random bytes,
//	    generated as it is sent, and waits for the notification;
//	 3. signs in as the recipient (asks for a code, reads it from the sink);
//	 4. page load: -c clients request the message page, at most -n requests
//	    or -d, whichever ends first; reports requests/s, p50 and p99;
//	 5. downloads the attachment 3 times (median MB/s), checking its hash;
//	 6. samples sealpost's RSS throughout.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

var discardOnly bool

func main() {
	bin := flag.String("bin", "/tmp/bench-bin/sealpost", "sealpost binary")
	mb := flag.Int("mb", 1024, "attachment size in MiB")
	conc := flag.Int("c", 32, "concurrent page clients")
	n := flag.Int("n", 20000, "at most this many page requests")
	dur := flag.Duration("d", 30*time.Second, "at most this long for page requests")
	flag.BoolVar(&discardOnly, "nohash", false, "a fourth download without hashing (the server's rate with less client work)")
	flag.Parse()
	if err := run(*bin, min(*mb, 4096), min(*conc, 512), min(*n, 1000000), min(*dur, 5*time.Minute)); err != nil {
		fmt.Fprintln(os.Stderr, "portalload:", err)
		os.Exit(1)
	}
}

// sink records messages in memory (notifications and codes are small; the
// big message never reaches it: it is sealed).
type sink struct {
	mu   sync.Mutex
	msgs []string
}

type backend struct{ s *sink }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct{ s *sink }

func (ss *session) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *session) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	io.Copy(io.Discard, r)
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, string(b))
	ss.s.mu.Unlock()
	return err
}
func (ss *session) Reset()        {}
func (ss *session) Logout() error { return nil }

func (s *sink) wait(re *regexp.Regexp, after int, d time.Duration) (string, int, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		msgs := append([]string(nil), s.msgs...)
		s.mu.Unlock()
		for i := after; i < len(msgs); i++ {
			text := strings.NewReplacer("=\r\n", "", "=3D", "=").Replace(msgs[i])
			if m := re.FindStringSubmatch(text); m != nil {
				return m[1], len(msgs), nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", 0, fmt.Errorf("nothing matching %s arrived", re)
}

func freePort() string {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().String()
}

func rss(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func run(bin string, mb, conc, maxReq int, dur time.Duration) error {
	dir, err := os.MkdirTemp("", "portalload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sk := &sink{}
	srv := smtp.NewServer(backend{sk})
	srv.Domain = "sink.bench"
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = 1 << 40
	sinkAddr := freePort()
	l, err := net.Listen("tcp", sinkAddr)
	if err != nil {
		return err
	}
	go srv.Serve(l)
	defer srv.Close()
	smtpAddr, webAddr := freePort(), freePort()
	cfg := fmt.Sprintf(`data_dir = %q
[org]
name = "Bench Council"
domains = ["bench.gov.uk"]
mail_host = %q
[smtp]
hostname = "gw.bench.gov.uk"
inbound_listen = ""
outbound_listen = %q
max_message_bytes = %d
data_timeout = "30m"
[outbound]
smarthost = %q
[dkim]
algorithm = "ed25519"
[web]
listen = %q
public_url = "http://%s"
[policy]
disable = ["first-contact-sensitive"]
[portal]
codes_per_hour = 60
[log]
level = "warn"
`, filepath.Join(dir, "data"), sinkAddr, smtpAddr, int64(mb+64)<<20*4/3, sinkAddr, webAddr, webAddr)
	cfgPath := filepath.Join(dir, "sealpost.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	args := []string{"serve", "--config", cfgPath}
	if p := os.Getenv("PORTALLOAD_CPUPROFILE"); p != "" {
		args = append(args, "--cpuprofile", p)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	pid := cmd.Process.Pid
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", smtpAddr); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			return fmt.Errorf("sealpost did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			if v := int64(rss(pid) * 10); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer close(stop)
	base := rss(pid)

	// 2. The message: a text part and mb MiB of random bytes, base64.
	h := sha256.New()
	start := time.Now()
	if err := send(smtpAddr, mb, h); err != nil {
		return err
	}
	want := h.Sum(nil)
	sent := time.Since(start)
	link, seen, err := sk.wait(regexp.MustCompile(`(http://[^\s"<>]+/m/[0-9a-z]{32})`), 0, 10*time.Minute)
	if err != nil {
		return err
	}
	sealedIn := time.Since(start)
	fmt.Printf("message: %d MiB attachment sent in %.1fs, sealed and notified after %.1fs; RSS before %.1f MB, peak %.1f MB\n",
		mb, sent.Seconds(), sealedIn.Seconds(), base, float64(peak.Load())/10)

	// 3. Sign in.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Minute}
	page, err := get(hc, link)
	if err != nil {
		return err
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	cm := csrf.FindStringSubmatch(page)
	if cm == nil {
		return fmt.Errorf("no form on the landing page")
	}
	if _, err := post(hc, link+"/code", url.Values{"csrf": {cm[1]}}); err != nil {
		return err
	}
	code, _, err := sk.wait(regexp.MustCompile(`code is:\s+(\d{4} \d{4})`), seen, time.Minute)
	if err != nil {
		return err
	}
	if page, err = post(hc, link+"/verify", url.Values{"csrf": {cm[1]}, "code": {code}}); err != nil || !strings.Contains(page, "Attachments") {
		return fmt.Errorf("sign-in failed: %v", err)
	}
	att := regexp.MustCompile(`href="(/m/[0-9a-z]{32}/a/\d+)"`).FindStringSubmatch(page)
	if att == nil {
		return fmt.Errorf("no attachment link")
	}
	u, _ := url.Parse(link)
	attURL := u.Scheme + "://" + u.Host + att[1]

	// 4. Page load.
	peak.Store(0)
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var issued atomic.Int64
	lat := make([][]time.Duration, conc)
	var fails atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for ctx.Err() == nil && issued.Add(1) <= int64(maxReq) {
				s := time.Now()
				resp, err := hc.Get(link)
				if err != nil {
					fails.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fails.Add(1)
				}
				lat[i] = append(lat[i], time.Since(s))
			}
		}(i)
	}
	wg.Wait()
	el := time.Since(t0)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		return fmt.Errorf("no page was served")
	}
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	fmt.Printf("message page: %d requests, %d clients, %.1fs: %.0f req/s, p50 %.2f ms, p99 %.2f ms, failures %d, peak RSS %.1f MB\n",
		len(all), conc, el.Seconds(), float64(len(all))/el.Seconds(), pct(0.5), pct(0.99), fails.Load(), float64(peak.Load())/10)

	// 5. Download, three times.
	var rates []float64
	for i := 0; i < 3; i++ {
		peak.Store(0)
		before := rss(pid)
		s := time.Now()
		resp, err := hc.Get(attURL)
		if err != nil {
			return err
		}
		dh := sha256.New()
		nb, err := io.Copy(dh, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		d := time.Since(s)
		if string(dh.Sum(nil)) != string(want) {
			return fmt.Errorf("downloaded attachment differs (%d bytes)", nb)
		}
		rates = append(rates, float64(nb)/1e6/d.Seconds())
		fmt.Printf("download %d: %d MB in %.2fs = %.0f MB/s; RSS before %.1f MB, peak %.1f MB\n", i+1, nb/1e6, d.Seconds(), rates[i], before, float64(peak.Load())/10)
	}
	sort.Float64s(rates)
	fmt.Printf("download median: %.0f MB/s\n", rates[1])
	if discardOnly {
		// The ceiling: the same bytes, unencrypted, from a file through Go's
		// HTTP server on loopback, read the same way.
		if rate, err := plainHTTP(int64(mb) << 20); err == nil {
			fmt.Printf("plain HTTP ceiling (no crypto, same client, same machine): %.0f MB/s\n", rate)
		}
		s := time.Now()
		resp, err := hc.Get(attURL)
		if err != nil {
			return err
		}
		nb, _ := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 1<<20))
		resp.Body.Close()
		fmt.Printf("download without hashing: %d MB in %.2fs = %.0f MB/s\n", nb/1e6, time.Since(s).Seconds(), float64(nb)/1e6/time.Since(s).Seconds())
	}
	return nil
}

func get(c *http.Client, u string) (string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func post(c *http.Client, u string, form url.Values) (string, error) {
	resp, err := c.PostForm(u, form)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// send writes the message over SMTP, generating the attachment as it goes.
func send(addr string, mb int, h io.Writer) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriterSize(c, 1<<20)
	expect := func(code string) error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("want %s, got %q", code, line)
			}
			if len(line) < 4 || line[3] != '-' {
				return nil
			}
		}
	}
	cmd := func(line, code string) error {
		w.WriteString(line + "\r\n")
		w.Flush()
		return expect(code)
	}
	if err := expect("220"); err != nil {
		return err
	}
	for _, s := range [][2]string{{"EHLO load.bench", "250"}, {"MAIL FROM:<staff@bench.gov.uk>", "250"}, {"RCPT TO:<reader@citizen.example>", "250"}, {"DATA", "354"}} {
		if err := cmd(s[0], s[1]); err != nil {
			return err
		}
	}
	w.WriteString("From: Staff <staff@bench.gov.uk>\r\nTo: reader@citizen.example\r\nSubject: [secure] big file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThe file is attached.\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, 57*1024)
	line := make([]byte, 0, 80)
	for left := int64(mb) << 20; left > 0; {
		chunk := raw[:min(int64(len(raw)), left)]
		rand.Read(chunk)
		h.Write(chunk)
		for i := 0; i < len(chunk); i += 57 {
			line = base64.StdEncoding.AppendEncode(line[:0], chunk[i:min(len(chunk), i+57)])
			line = append(line, '\r', '\n')
			w.Write(line)
		}
		left -= int64(len(chunk))
	}
	w.WriteString("--b--\r\n.\r\n")
	w.Flush()
	if err := expect("250"); err != nil {
		return err
	}
	return cmd("QUIT", "221")
}

func plainHTTP(size int64) (float64, error) {
	f, err := os.CreateTemp("", "portalload-plain")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		f.Write(buf[:min(int64(len(buf)), left)])
	}
	f.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fh, err := os.Open(f.Name())
		if err != nil {
			return
		}
		defer fh.Close()
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{fh}, make([]byte, 256<<10))
	})}
	go srv.Serve(l)
	defer srv.Close()
	var best float64
	for i := 0; i < 3; i++ {
		s := time.Now()
		resp, err := http.Get("http://" + l.Addr().String())
		if err != nil {
			return 0, err
		}
		n, _ := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 1<<20))
		resp.Body.Close()
		best = max(best, float64(n)/1e6/time.Since(s).Seconds())
	}
	return best, nil
}
