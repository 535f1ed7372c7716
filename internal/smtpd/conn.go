package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Errors of the DATA reader.
var (
	errBareLF   = errors.New("bare LF")
	errBareCR   = errors.New("bare CR")
	errNUL      = errors.New("NUL byte")
	errTooBig   = errors.New("message too big")
	errLongLine = errors.New("line too long")
)

// conn is one SMTP session on the wire (RFC 5321). It owns parsing, the
// command sequence and replies; the backend's Session holds the policy.
type conn struct {
	srv     *Server
	nc      net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	role    string
	info    *ConnInfo
	opts    *Options // as at connect
	sess    Session
	helo    string
	tls     bool
	badCmds int

	// The transaction as smtpd sees it: the backend keeps its own.
	hasFrom  bool
	rcpts    int
	commands int
}

// maxTransactionCommands bounds the commands of a session, so that one
// connection cannot keep the server busy for ever below the time limits.
const maxTransactionCommands = 10000

func (c *conn) reject(reason string) { c.srv.metrics.Rejected.WithLabelValues(c.role, reason).Inc() }

// reset ends the transaction on both sides.
func (c *conn) reset() {
	c.hasFrom, c.rcpts = false, 0
	c.sess.Reset()
}

const maxCommandLine = 2048 // RFC 5321 §4.5.3.1.4 says 512; extensions need more

func (c *conn) write(r *Reply) {
	if r.Enh != "" {
		fmt.Fprintf(c.bw, "%d %s %s\r\n", r.Code, r.Enh, r.Text)
	} else {
		fmt.Fprintf(c.bw, "%d %s\r\n", r.Code, r.Text)
	}
}

// flush sends the replies written so far unless more pipelined commands
// are already waiting (RFC 2920: replies to a group may go out together).
func (c *conn) flush(force bool) error {
	if !force && c.br.Buffered() > 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.opts.CommandTimeout))
	return c.bw.Flush()
}

func (c *conn) readLine(max int) (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(c.opts.CommandTimeout))
	line, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > max {
		// Skip the rest of the over-long line.
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = c.br.ReadSlice('\n')
		}
		if err != nil {
			return "", err
		}
		return "", errLongLine
	}
	if err != nil {
		return "", err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", errBareLF
	}
	return string(line[:len(line)-2]), nil
}

// serve runs the session until QUIT, an error or a time-out.
func (c *conn) serve() {
	defer c.nc.Close()
	defer c.sess.Logout()
	greeting := c.opts.Hostname + " ESMTP"
	if b := c.opts.Banner; b != "" {
		greeting += " " + b
	}
	c.write(reply(220, "", greeting))
	if c.flush(true) != nil {
		return
	}
	for {
		line, err := c.readLine(maxCommandLine)
		switch {
		case errors.Is(err, errLongLine):
			c.write(reply(500, "5.5.2", "Line too long"))
		case errors.Is(err, errBareLF):
			c.write(reply(500, "5.5.2", "Commands must end with CRLF"))
		case err != nil:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.write(reply(421, "4.4.2", "Timeout; closing the connection"))
				c.flush(true)
			}
			return
		default:
			if !c.command(line) {
				c.flush(true)
				return
			}
		}
		if err != nil {
			if c.badCmds++; c.badCmds > 10 {
				c.write(reply(421, "4.7.0", "Too many errors; closing the connection"))
				c.flush(true)
				return
			}
		}
		if c.flush(false) != nil {
			return
		}
	}
}

// command runs one command line; false ends the session.
func (c *conn) command(line string) bool {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	if c.commands++; c.commands > maxTransactionCommands {
		c.write(reply(421, "4.7.0", "Too many commands in one session; please reconnect"))
		return false
	}
	bad := func(r *Reply) bool {
		c.write(r)
		if c.badCmds++; c.badCmds > 10 {
			c.write(reply(421, "4.7.0", "Too many errors; closing the connection"))
			return false
		}
		return true
	}
	switch verb {
	case "EHLO", "HELO":
		arg = strings.TrimSpace(arg)
		if arg == "" || strings.ContainsAny(arg, " \t\x00") {
			return bad(reply(501, "5.5.4", "Syntax: "+verb+" hostname"))
		}
		c.helo, c.info.Helo = arg, arg
		c.reset()
		if verb == "HELO" {
			c.write(reply(250, "", c.opts.Hostname))
			return true
		}
		c.ehloReply()
	case "STARTTLS":
		if c.tls || c.srv.tls == nil {
			return bad(reply(502, "5.5.1", "STARTTLS not available"))
		}
		if arg != "" {
			return bad(reply(501, "5.5.4", "Syntax: STARTTLS"))
		}
		c.write(reply(220, "2.0.0", "Ready to start TLS"))
		if c.flush(true) != nil {
			return false
		}
		// RFC 3207 §4.2, CVE-2011-0411: commands pipelined after STARTTLS
		// were sent in clear and must not run inside the TLS session.
		if c.br.Buffered() > 0 {
			return false
		}
		tc := tls.Server(c.nc, c.srv.tls)
		tc.SetDeadline(time.Now().Add(c.opts.CommandTimeout))
		if err := tc.Handshake(); err != nil {
			return false
		}
		st := tc.ConnectionState()
		c.nc, c.tls, c.info.TLS = tc, true, &st
		c.br.Reset(tc)
		c.bw.Reset(tc)
		c.helo, c.info.Helo = "", "" // RFC 3207 §4.2: the client must say EHLO again
		c.reset()
	case "AUTH":
		return c.auth(arg, bad)
	case "MAIL":
		if c.helo == "" {
			return bad(reply(503, "5.5.1", "Say EHLO first"))
		}
		if c.hasFrom {
			return bad(reply(503, "5.5.1", "Nested MAIL command"))
		}
		addr, params, ok := parsePath(arg, "FROM:")
		if !ok {
			return bad(reply(501, "5.5.4", "Syntax: MAIL FROM:<address>"))
		}
		var mo MailOptions
		for _, p := range params {
			k, v, _ := strings.Cut(p, "=")
			switch strings.ToUpper(k) {
			case "SIZE":
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 {
					return bad(reply(501, "5.5.4", "Bad SIZE parameter"))
				}
				mo.Size = n
			case "BODY":
				if u := strings.ToUpper(v); u != "7BIT" && u != "8BITMIME" {
					return bad(reply(555, "5.5.4", "Unsupported BODY parameter"))
				} else {
					mo.Body = u
				}
			case "SMTPUTF8":
				mo.SMTPUTF8 = true
			case "AUTH":
				// RFC 4954 §5: only where AUTH is offered; the value is
				// ignored (a server may).
				if !c.authOffered() {
					return bad(reply(555, "5.5.4", "Unsupported MAIL parameter AUTH"))
				}
			default:
				// RFC 5321 §4.1.1.11: a parameter of an extension not
				// advertised in EHLO (DSN's RET and ENVID among them) is
				// refused, not silently dropped.
				return bad(reply(555, "5.5.4", "Unsupported MAIL parameter "+k))
			}
		}
		if addr != "" && !ValidAddress(addr) {
			c.reject("bad_sender")
			return bad(reply(553, "5.1.7", "Sender address is not valid"))
		}
		if mo.Size > c.opts.MaxMessageBytes {
			c.reject("size")
			return bad(TooBig(c.opts.MaxMessageBytes))
		}
		if r := c.sess.Mail(addr, mo); r != nil {
			return bad(r)
		}
		c.hasFrom, c.rcpts = true, 0
		c.write(reply(250, "2.1.0", "OK"))
	case "RCPT":
		if !c.hasFrom {
			return bad(reply(503, "5.5.1", "MAIL first"))
		}
		addr, params, ok := parsePath(arg, "TO:")
		if !ok || addr == "" {
			return bad(reply(501, "5.5.4", "Syntax: RCPT TO:<address>"))
		}
		// No RCPT parameter is advertised (DSN's NOTIFY and ORCPT are
		// not offered): RFC 5321 §4.1.1.11, 555 for each.
		if len(params) > 0 {
			k, _, _ := strings.Cut(params[0], "=")
			return bad(reply(555, "5.5.4", "Unsupported RCPT parameter "+k))
		}
		if c.rcpts >= c.opts.MaxRecipients {
			return bad(reply(452, "4.5.3", "Too many recipients"))
		}
		if r := c.rcpt(addr); r != nil {
			return bad(r)
		}
		c.rcpts++
		c.write(reply(250, "2.1.5", "OK"))
	case "DATA":
		if arg != "" {
			return bad(reply(501, "5.5.4", "Syntax: DATA"))
		}
		if !c.hasFrom || c.rcpts == 0 {
			return bad(reply(503, "5.5.1", "No valid recipients"))
		}
		c.write(reply(354, "", "End data with <CR><LF>.<CR><LF>"))
		if c.flush(true) != nil {
			return false
		}
		// The read deadline moves forward as data comes, but not on every
		// line (that costs more than the line): when the next read may
		// block (nothing buffered) or a quarter of the wait has passed.
		var last time.Time
		wait := c.opts.DataTimeout
		dr := &dataReader{br: c.br, max: c.opts.MaxMessageBytes, deadline: func() {
			now := time.Now()
			if c.br.Buffered() == 0 || now.Sub(last) > wait/4 {
				c.nc.SetReadDeadline(now.Add(wait))
				last = now
			}
		}}
		r := c.sess.Data(dr)
		if err := dr.drain(); err != nil {
			return false // the connection broke: nobody to answer
		}
		if dr.err != nil {
			// The data was refused (or cut): smtpd's answer, whatever
			// the backend said, so no refused byte is ever acknowledged.
			r = c.dataError(dr.err)
		} else if r == nil {
			r = ReplyTempFail // a backend must answer a complete message
		}
		c.write(r)
		c.reset()
	case "BDAT":
		return bad(reply(502, "5.5.1", "CHUNKING is not offered"))
	case "RSET":
		c.reset()
		c.write(reply(250, "2.0.0", "OK"))
	case "NOOP":
		c.write(reply(250, "2.0.0", "OK"))
	case "VRFY":
		c.write(reply(252, "2.5.0", "Cannot verify the user; send mail and it will be tried"))
	case "HELP":
		c.write(reply(214, "2.0.0", "See RFC 5321"))
	case "QUIT":
		c.write(reply(221, "2.0.0", "Bye"))
		return false
	default:
		return bad(reply(500, "5.5.2", "Command not recognised"))
	}
	return true
}

func (c *conn) ehloReply() {
	o := c.srv.opts.Load()
	lines := []string{o.Hostname, "PIPELINING", "SIZE " + strconv.FormatInt(o.MaxMessageBytes, 10), "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"}
	if !c.tls && c.srv.tls != nil {
		lines = append(lines, "STARTTLS")
	}
	if c.authOffered() && c.info.AuthUser == "" {
		lines = append(lines, "AUTH PLAIN LOGIN")
	}
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		c.bw.WriteString("250" + sep + l + "\r\n")
	}
}

// authOffered: AUTH is offered where the session can check a login, over
// TLS only (RFC 4954 §4: no password in clear).
func (c *conn) authOffered() bool {
	_, ok := c.sess.(AuthSession)
	return c.tls && ok
}

func (c *conn) auth(arg string, bad func(*Reply) bool) bool {
	as, ok := c.sess.(AuthSession)
	if !ok {
		return bad(reply(502, "5.5.1", "Authentication is not offered here"))
	}
	if !c.tls {
		return bad(reply(538, "5.7.11", "Encryption required for authentication"))
	}
	if c.helo == "" {
		return bad(reply(503, "5.5.1", "Say EHLO first"))
	}
	if c.info.AuthUser != "" {
		return bad(reply(503, "5.5.1", "Already authenticated"))
	}
	if c.hasFrom {
		return bad(reply(503, "5.5.1", "AUTH not allowed during a mail transaction"))
	}
	mech, initial, _ := strings.Cut(arg, " ")
	// challenge sends a 334 and reads the client's base64 answer.
	challenge := func(prompt string) (string, *Reply) {
		c.write(reply(334, "", base64.StdEncoding.EncodeToString([]byte(prompt))))
		if c.flush(true) != nil {
			return "", reply(421, "4.4.2", "Connection problem")
		}
		line, err := c.readLine(maxCommandLine)
		if err != nil {
			return "", reply(501, "5.5.2", "Bad response")
		}
		if line == "*" {
			return "", reply(501, "5.0.0", "Authentication cancelled")
		}
		b, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return "", reply(501, "5.5.2", "Bad base64")
		}
		return string(b), nil
	}
	decode := func(s string) (string, *Reply) {
		if s == "=" {
			return "", nil
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return "", reply(501, "5.5.2", "Bad base64")
		}
		return string(b), nil
	}
	var user, pass string
	switch strings.ToUpper(mech) {
	case "PLAIN":
		var resp string
		var r *Reply
		if initial != "" {
			resp, r = decode(initial)
		} else {
			resp, r = challenge("")
		}
		if r != nil {
			return bad(r)
		}
		parts := strings.Split(resp, "\x00")
		if len(parts) != 3 || (parts[0] != "" && parts[0] != parts[1]) {
			return bad(reply(501, "5.5.2", "Bad PLAIN response"))
		}
		user, pass = parts[1], parts[2]
	case "LOGIN":
		var r *Reply
		if initial != "" {
			user, r = decode(initial)
		} else {
			user, r = challenge("Username:")
		}
		if r != nil {
			return bad(r)
		}
		if pass, r = challenge("Password:"); r != nil {
			return bad(r)
		}
	default:
		return bad(reply(504, "5.5.4", "Unsupported authentication mechanism"))
	}
	if r := as.Auth(user, pass); r != nil {
		return bad(r)
	}
	c.info.AuthUser = user
	c.write(reply(235, "2.7.0", "Authentication succeeded"))
	return true
}

// parsePath parses "FROM:<addr> params" (RFC 5321 §4.1.2), tolerating a
// space after the colon.
func parsePath(arg, prefix string) (addr string, params []string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", nil, false
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(rest, "<") {
		return "", nil, false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", nil, false
	}
	addr = rest[1:end]
	if i := strings.IndexByte(addr, ':'); i >= 0 && strings.HasPrefix(addr, "@") {
		addr = addr[i+1:] // source route (RFC 5321 §4.1.2: accept and ignore)
	}
	return addr, strings.Fields(rest[end+1:]), true
}

// dataReader reads the DATA stream (RFC 5321 §4.1.1.4) a line at a time:
// it removes dot-stuffing, stops at the line ".", and refuses bare CR, bare
// LF and NUL (strict CRLF: no SMTP smuggling, RFC 5321 §2.3.8) and
// anything over the size limit. After an error it keeps reading to the end
// of the data, so that the session stays in step.
type dataReader struct {
	br       *bufio.Reader
	deadline func() // before each read: the connection's read deadline
	max      int64
	n        int64
	line     []byte
	err      error // first error
	eof      bool
	cont     bool // the next read continues an over-long line
	bare     bool // the previous line did not end in CRLF
}

func (d *dataReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(d.line) == 0 {
			if d.eof || d.err != nil {
				break
			}
			d.next()
			continue
		}
		m := copy(p[n:], d.line)
		d.line = d.line[m:]
		n += m
	}
	if n > 0 {
		return n, nil
	}
	if d.err != nil {
		return 0, d.err
	}
	return 0, io.EOF
}

// next reads one line into d.line, or sets eof/err.
func (d *dataReader) next() {
	d.deadline()
	line, err := d.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			d.fail(errLongLine)
			d.line, d.cont = nil, true
			return
		}
		d.err = err // connection error: fatal
		return
	}
	if d.cont {
		// The tail of an over-long line: never a line of its own (so never
		// the end of data), and already refused.
		d.cont = false
		return
	}
	// The end of data is CRLF "." CRLF: the "." line counts only after a
	// line that itself ended in CRLF. After "\n" alone it is data, or a
	// lax server before us and we would disagree on where the message ends
	// (SMTP smuggling).
	if len(line) == 3 && line[0] == '.' && line[1] == '\r' && !d.bare {
		d.eof = true
		return
	}
	body := line[:len(line)-1]
	d.bare = len(body) == 0 || body[len(body)-1] != '\r'
	if d.bare {
		d.fail(errBareLF)
	} else if bytes.IndexByte(body[:len(body)-1], '\r') >= 0 {
		d.fail(errBareCR)
	} else if bytes.IndexByte(line, 0) >= 0 {
		d.fail(errNUL)
	}
	if line[0] == '.' {
		line = line[1:] // dot-unstuffing
	}
	d.n += int64(len(line))
	if d.n > d.max {
		d.fail(errTooBig)
	}
	if d.err == nil {
		d.line = line
	}
}

func (d *dataReader) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// drain reads to the end of the data; it returns an error only if the
// connection failed.
func (d *dataReader) drain() error {
	d.line = nil
	for !d.eof {
		if d.err != nil && !isDataErr(d.err) {
			return d.err
		}
		d.next()
	}
	return nil
}

func isDataErr(err error) bool {
	return errors.Is(err, errBareLF) || errors.Is(err, errBareCR) || errors.Is(err, errNUL) || errors.Is(err, errTooBig) || errors.Is(err, errLongLine)
}

// dataError is the answer to a DATA stream the reader refused.
func (c *conn) dataError(err error) *Reply {
	switch {
	case errors.Is(err, errBareLF), errors.Is(err, errBareCR):
		c.reject("bare_newline")
		c.srv.log.Info("refused message with bare CR or LF", "ip", c.info.RemoteIP.String(), "kind", err.Error())
		return reply(550, "5.5.2", "Message refused: line endings must be CRLF (bare CR or LF found)")
	case errors.Is(err, errNUL):
		c.reject("nul")
		return reply(550, "5.6.0", "Message refused: it contains a NUL byte")
	case errors.Is(err, errTooBig):
		c.reject("size")
		return TooBig(c.opts.MaxMessageBytes)
	case errors.Is(err, errLongLine):
		c.reject("long_line")
		return reply(500, "5.5.2", fmt.Sprintf("Message refused: a line is longer than %d bytes", c.opts.MaxLineLength))
	default:
		// The connection broke or timed out: no reply will be read.
		c.reject("aborted")
		return reply(451, "4.4.2", "Connection problem while receiving data")
	}
}

// rcpt applies the recipient syntax rules, then asks the backend.
func (c *conn) rcpt(to string) *Reply {
	// RFC 5321 §4.5.1: "postmaster" without a domain must be accepted.
	if strings.EqualFold(to, "postmaster") && c.opts.PostmasterDomain != "" {
		to = "postmaster@" + c.opts.PostmasterDomain
	}
	if r := routingForm(to); r != nil {
		c.reject("bad_recipient")
		return r
	}
	if !ValidAddress(to) {
		c.reject("bad_recipient")
		return reply(553, "5.1.3", "Recipient address is not valid")
	}
	return c.sess.Rcpt(to)
}
