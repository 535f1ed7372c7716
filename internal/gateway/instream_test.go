package gateway

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"sealpost/internal/config"
)

// nxDNS answers every question with NXDOMAIN, on UDP and TCP at one
// loopback port: SPF, DKIM and DMARC then find nothing (none), which the
// inbound authentication accepts.
func nxDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeNameError)
		w.WriteMsg(m)
	})
	for _, s := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// authOn turns inbound authentication on with the ARC seal (an RSA key).
func authOn(t *testing.T, then func(*config.Config)) func(*config.Config) {
	dnsAddr := nxDNS(t)
	return func(cfg *config.Config) {
		cfg.Inbound.Authenticate, cfg.Inbound.ARCSeal = true, true
		cfg.DKIM.Algorithm = "rsa-2048"
		cfg.Outbound.Resolver = dnsAddr
		cfg.SMTP.MaxMessageBytes = 64 << 20
		if then != nil {
			then(cfg)
		}
	}
}

// TestInboundAuthFieldsCarried: the Authentication-Results and ARC set
// the inbound authentication (a data check) adds reach the mail host on
// top of the message, above our Received field, and a forged
// Authentication-Results claiming our authserv-id does not.
func TestInboundAuthFieldsCarried(t *testing.T) {
	t.Parallel()
	e := start(t, authOn(t, nil))
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	msg := "From: a@outside.example\r\nTo: b@example.gov.uk\r\nSubject: hi\r\n" +
		"Authentication-Results: gw.example.gov.uk; dmarc=pass header.from=outside.example\r\n\r\nhello\r\n"
	if code, text := c.send("a@outside.example", []string{"b@example.gov.uk"}, msg); code != 250 {
		t.Fatalf("DATA: %s", text)
	}
	got := string(e.sink.Wait(t, 1, 20*time.Second)[0].Data)
	if !strings.HasPrefix(got, "ARC-Seal: ") || !strings.Contains(got, "ARC-Message-Signature: ") {
		t.Errorf("delivered message does not start with our ARC-Seal:\n%s", got)
	}
	ar := strings.Index(got, "Authentication-Results: gw.example.gov.uk;")
	rcv := strings.Index(got, "Received: ")
	if ar < 0 || rcv < ar {
		t.Errorf("our Authentication-Results missing or below our Received:\n%s", got)
	}
	if strings.Contains(got, "dmarc=pass header.from=outside.example") {
		t.Errorf("the forged Authentication-Results was delivered:\n%s", got)
	}
}

// TestInboundStreamedMemory: a 40 MB inbound message with the
// authentication on is accepted while the heap in use grows by far less
// than the message: the message streams to the spool and through the
// checks, never held (issue 11). The mail host is unreachable so that
// nothing is delivered while the heap is watched.
func TestInboundStreamedMemory(t *testing.T) {
	e := start(t, authOn(t, func(cfg *config.Config) {
		cfg.Org.MailHost = "127.0.0.1:1"
		// The inbound content checks hold one part up to this bound
		// (their own, dlp.max_attachment_bytes): at its smallest here, so
		// that what is measured is the streaming of the message.
		cfg.DLP.MaxAttachmentBytes = 1 << 20
	}))
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	c.expect("MAIL FROM:<a@outside.example>", 250)
	c.expect("RCPT TO:<b@example.gov.uk>", 250)
	c.expect("DATA", 354)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	const size = 40 << 20
	w := bufio.NewWriterSize(c.conn, 64<<10)
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Minute))
	fmt.Fprintf(w, "From: a@outside.example\r\nTo: b@example.gov.uk\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n" // 66 bytes
	for n := 0; n < size; n += len(line) {
		io.WriteString(w, line)
	}
	io.WriteString(w, ".\r\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
	code, text := c.reply()
	close(stop)
	wg.Wait()
	if code != 250 {
		t.Fatalf("40 MB message: %s", text)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap in use grew by %d KiB for a %d MiB message", grew>>10, size>>20)
	if limit := int64(8 << 20); grew > limit {
		t.Errorf("heap in use grew by %d MiB while a %d MiB message was accepted (bound %d MiB): it is held in memory", grew>>20, size>>20, limit>>20)
	}
}

// TestQuarantineViewShowsDataHeaders: the console's view of a quarantined
// inbound message reads it as delivered, with the authentication's fields
// on top (queue.OpenDelivered).
func TestQuarantineViewShowsDataHeaders(t *testing.T) {
	t.Parallel()
	e := start(t, authOn(t, nil))
	c := dial(t, e.gw.InboundAddr)
	c.expect("EHLO client.example", 250)
	body := "From: Sender <someone@outside.example>\r\nTo: staff@example.gov.uk\r\nSubject: view2\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nthe invoice\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(testPE()) + "\r\n--b1--\r\n"
	code, msg := c.send("someone@outside.example", []string{"staff@example.gov.uk"}, body)
	if code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	id := queuedID(t, msg)
	b := consoleSignIn(t, e, "root", "admin")
	b.get("/console/held")
	st, page := b.post("/console/held/"+id+"/view", url.Values{"reason": {"checking the authentication"}})
	if st != 200 || !strings.Contains(page, "Authentication-Results") || !strings.Contains(page, "Arc-Seal") {
		t.Fatalf("view without the authentication's fields: %d\n%s", st, page)
	}
}
