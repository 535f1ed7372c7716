package deliver

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// replyError is an SMTP reply other than the one a command expected.
type replyError struct {
	code int
	text string // enhanced code and text, lines joined by spaces
}

func (e *replyError) Error() string { return strconv.Itoa(e.code) + " " + e.text }

// client is an SMTP client session (RFC 5321) that pipelines the envelope
// (RFC 2920) when the server offers PIPELINING: MAIL, every RCPT and DATA go
// out in one write, and their replies are read in order. The message goes
// out through a 64 KiB buffer with dot-stuffing, so a 10 KB message is one
// write.
type client struct {
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	ext     map[string]string
	timeout time.Duration
}

func newClient(conn net.Conn, timeout time.Duration) *client {
	return &client{conn: conn, br: bufio.NewReaderSize(conn, 4096), bw: bufio.NewWriterSize(conn, 64<<10), timeout: timeout}
}

func (c *client) deadline(d time.Duration) { c.conn.SetDeadline(time.Now().Add(d)) }

// reply reads one (possibly multi-line) reply.
func (c *client) reply() (int, string, error) {
	var text []string
	code := 0
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return 0, "", errors.New("reply line too long")
			}
			return 0, "", err
		}
		l := strings.TrimRight(string(line), "\r\n")
		if len(l) < 3 {
			return 0, "", fmt.Errorf("malformed reply %q", l)
		}
		n, err := strconv.Atoi(l[:3])
		if err != nil || n < 200 || n > 599 {
			return 0, "", fmt.Errorf("malformed reply %q", l)
		}
		if code != 0 && n != code {
			return 0, "", fmt.Errorf("reply code changed within a reply: %q", l)
		}
		code = n
		if len(l) > 4 {
			text = append(text, l[4:])
		}
		if len(l) == 3 || l[3] == ' ' {
			break
		}
		if l[3] != '-' || len(text) > 100 {
			return 0, "", fmt.Errorf("malformed reply %q", l)
		}
	}
	return code, strings.Join(text, " "), nil
}

// expect reads a reply and turns anything but want (2xx/3xx class) into a
// replyError.
func (c *client) expect(want int) (string, error) {
	code, text, err := c.reply()
	if err != nil {
		return "", err
	}
	if code/100 != want/100 {
		return text, &replyError{code: code, text: text}
	}
	return text, nil
}

func (c *client) cmd(want int, line string) (string, error) {
	c.deadline(c.timeout)
	if _, err := c.bw.WriteString(line + "\r\n"); err != nil {
		return "", err
	}
	if err := c.bw.Flush(); err != nil {
		return "", err
	}
	return c.expect(want)
}

// greet reads the greeting and sends EHLO (HELO if EHLO is refused).
func (c *client) greet(hello string) error {
	c.deadline(c.timeout)
	if _, err := c.expect(220); err != nil {
		return err
	}
	return c.ehlo(hello)
}

func (c *client) ehlo(hello string) error {
	c.deadline(c.timeout)
	c.bw.WriteString("EHLO " + hello + "\r\n")
	if err := c.bw.Flush(); err != nil {
		return err
	}
	var lines []string
	code := 0
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return err
		}
		l := strings.TrimRight(line, "\r\n")
		if len(l) < 3 {
			return fmt.Errorf("malformed EHLO reply %q", l)
		}
		code, _ = strconv.Atoi(l[:3])
		if len(l) > 4 {
			lines = append(lines, l[4:])
		}
		if len(l) == 3 || l[3] != '-' || len(lines) > 100 {
			break
		}
	}
	c.ext = map[string]string{}
	if code/100 != 2 {
		if _, err := c.cmd(250, "HELO "+hello); err != nil {
			return err
		}
		return nil
	}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		c.ext[strings.ToUpper(k)] = v
	}
	return nil
}

func (c *client) has(ext string) bool {
	_, ok := c.ext[ext]
	return ok
}

// startTLS upgrades the session and says EHLO again (RFC 3207 §4.2).
func (c *client) startTLS(cfg *tls.Config, hello string) (tls.ConnectionState, error) {
	if _, err := c.cmd(220, "STARTTLS"); err != nil {
		return tls.ConnectionState{}, err
	}
	tc := tls.Client(c.conn, cfg)
	c.deadline(c.timeout)
	if err := tc.Handshake(); err != nil {
		return tls.ConnectionState{}, err
	}
	c.conn = tc
	c.br.Reset(tc)
	c.bw.Reset(tc)
	return tc.ConnectionState(), c.ehlo(hello)
}

// rcptReply is the server's answer to one RCPT.
type rcptReply struct {
	ok  bool
	err error // *replyError for a refusal
}

// send runs one mail transaction. It returns the reply per recipient and
// the reply to the end of data (for the accepted recipients). A non-reply
// error means the session is unusable.
func (c *client) send(from string, requireTLS bool, rcpts []string, prefix string, body io.Reader, size int64) ([]rcptReply, error) {
	mail := "MAIL FROM:<" + from + ">"
	if requireTLS {
		mail += " REQUIRETLS" // RFC 8689 §4.2.1: passed on to every hop
	}
	if c.has("8BITMIME") {
		mail += " BODY=8BITMIME"
	}
	if c.has("SIZE") {
		mail += " SIZE=" + strconv.FormatInt(size, 10)
	}
	replies := make([]rcptReply, len(rcpts))
	c.deadline(c.timeout)
	if c.has("PIPELINING") {
		c.bw.WriteString(mail + "\r\n")
		for _, r := range rcpts {
			c.bw.WriteString("RCPT TO:<" + r + ">\r\n")
		}
		c.bw.WriteString("DATA\r\n")
		if err := c.bw.Flush(); err != nil {
			return nil, err
		}
		_, mailErr := c.expect(250)
		accepted := 0
		for i := range rcpts {
			_, err := c.expect(250)
			if err != nil && !isReply(err) {
				return nil, err
			}
			replies[i] = rcptReply{ok: err == nil && mailErr == nil, err: err}
			if replies[i].ok {
				accepted++
			}
		}
		_, dataErr := c.expect(354)
		if dataErr != nil && !isReply(dataErr) {
			return nil, dataErr
		}
		if mailErr != nil {
			if !isReply(mailErr) {
				return nil, mailErr
			}
			if dataErr == nil {
				c.abortData()
			}
			return nil, mailErr
		}
		if accepted == 0 {
			if dataErr == nil {
				// RFC 2920 §3.1: a server may accept DATA with no valid
				// recipient; send an empty message it will refuse.
				c.abortData()
			}
			return replies, nil
		}
		if dataErr != nil {
			return nil, dataErr
		}
	} else {
		if _, err := c.cmd(250, mail); err != nil {
			return nil, err
		}
		accepted := 0
		for i, r := range rcpts {
			_, err := c.cmd(250, "RCPT TO:<"+r+">")
			if err != nil && !isReply(err) {
				return nil, err
			}
			replies[i] = rcptReply{ok: err == nil, err: err}
			if err == nil {
				accepted++
			}
		}
		if accepted == 0 {
			_, err := c.cmd(250, "RSET")
			return replies, err
		}
		if _, err := c.cmd(354, "DATA"); err != nil {
			return nil, err
		}
	}
	// RFC 5321 §4.5.3.2.6: up to 10 minutes for the reply to the end of data.
	c.deadline(2 * c.timeout)
	if _, err := io.WriteString(c.bw, prefix); err != nil {
		return nil, err
	}
	dw := &dotWriter{w: c.bw, bol: true}
	if _, err := io.Copy(dw, body); err != nil {
		return nil, err
	}
	if !dw.bol {
		c.bw.WriteString("\r\n")
	}
	c.bw.WriteString(".\r\n")
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	if _, err := c.expect(250); err != nil {
		return nil, err
	}
	return replies, nil
}

// abortData ends a DATA the server accepted without recipients.
func (c *client) abortData() {
	c.bw.WriteString(".\r\n")
	c.bw.Flush()
	c.expect(250)
}

func (c *client) quit() {
	c.deadline(5 * time.Second)
	c.bw.WriteString("QUIT\r\n")
	if c.bw.Flush() == nil {
		c.reply()
	}
	c.conn.Close()
}

// dotWriter dot-stuffs CRLF text (RFC 5321 §4.5.2): a line that starts with
// "." gets another. Input is the strict CRLF text of the spool.
type dotWriter struct {
	w   *bufio.Writer
	bol bool // at the beginning of a line
}

func (d *dotWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if d.bol && p[0] == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return n, err
			}
		}
		i := indexLF(p)
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		m, err := d.w.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		d.bol = i >= 0
		p = p[len(chunk):]
	}
	return n, nil
}

func indexLF(p []byte) int { return bytes.IndexByte(p, '\n') }
