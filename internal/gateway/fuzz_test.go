package gateway

import (
	"bufio"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
)

var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

// FuzzSMTPSession sends arbitrary bytes after EHLO to a running inbound
// listener. Whatever arrives, every line the server writes is a well-formed
// reply, and the server ends the session within its time limit.
func FuzzSMTPSession(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<a@b.example>\r\nRCPT TO:<staff@example.gov.uk>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n",
		"MAIL FROM:<a@b.example> SIZE=99999999999999999999\r\n",
		"RCPT TO:<x>\r\nDATA\r\n",
		"BDAT 10 LAST\r\n0123456789",
		"BDAT 99999999999\r\n",
		"AUTH PLAIN\r\n*\r\n",
		"MAIL FROM:<\x00>\r\nHELP\r\nVRFY root\r\nEXPN all\r\n",
		"STARTTLS\r\n\x16\x03\x01garbage",
		strings.Repeat("A", 5000) + "\r\n",
	} {
		f.Add([]byte(s))
	}
	e := start(f, func(c *config.Config) { c.SMTP.CommandTimeout.Duration = time.Second })
	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.Dial("tcp", e.gw.InboundAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(8 * time.Second))
		go func() {
			conn.Write([]byte("EHLO fuzz.example\r\n"))
			conn.Write(in)
			conn.Write([]byte("\r\nQUIT\r\n"))
		}()
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("session not ended by the server within 8s")
				}
				return // closed
			}
			if !replyLine.MatchString(line) {
				t.Fatalf("malformed reply line %q", line)
			}
		}
	})
}
