// Package clamd is a client for the ClamAV daemon's INSTREAM command.
//
// clamd (clamav-daemon) listens on a unix socket or a TCP port. A scan
// sends "zINSTREAM\0", then the content in chunks, each a 4-byte
// big-endian length and that many bytes, then a zero-length chunk; clamd
// answers with one NUL-terminated line: "stream: OK", "stream: NAME
// FOUND" or "... ERROR" (clamd(8), "INSTREAM"). The "z" prefix asks for
// NUL-terminated replies, which cannot be confused with a signature name
// containing a newline. clamd refuses streams over its StreamMaxLength
// with "INSTREAM size limit exceeded": that, like any failure to reach or
// understand clamd, is an error wrapping ErrUnavailable, never "clean".
package clamd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// ErrUnavailable marks every failure to get a verdict from clamd.
var ErrUnavailable = errors.New("clamd unavailable")

// Client talks to one clamd. The zero Timeout means 2 minutes per scan.
type Client struct {
	Network string // "unix" or "tcp"
	Addr    string
	Timeout time.Duration
}

// Parse reads an address as the inbound.clamd key gives it:
// "unix:/run/clamav/clamd.ctl", "/run/clamav/clamd.ctl" or "host:port".
func Parse(addr string) (*Client, error) {
	addr = strings.TrimSpace(addr)
	switch {
	case addr == "":
		return nil, errors.New("empty clamd address")
	case strings.HasPrefix(addr, "unix:"):
		p := strings.TrimPrefix(addr, "unix:")
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("clamd socket %q: not an absolute path", p)
		}
		return &Client{Network: "unix", Addr: p}, nil
	case strings.HasPrefix(addr, "/"):
		return &Client{Network: "unix", Addr: addr}, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("clamd address %q: want unix:/path/to/socket or host:port", addr)
	}
	return &Client{Network: "tcp", Addr: addr}, nil
}

// Result is clamd's verdict on one stream.
type Result struct {
	Infected  bool
	Signature string // the signature's name when infected
}

// chunkSize is the size of the INSTREAM chunks sent (clamd reads up to
// StreamMaxLength in any chunking).
const chunkSize = 64 << 10

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.Network, c.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	return conn, nil
}

// Ping checks that clamd answers.
func (c *Client) Ping(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("%w: unexpected reply to PING", ErrUnavailable)
	}
	return nil
}

// Scan streams r to clamd and returns its verdict.
func (c *Client) Scan(ctx context.Context, r io.Reader) (Result, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	fail := func(err error) (Result, error) { return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err) }
	if _, err := conn.Write([]byte("zINSTREAM\x00")); err != nil {
		return fail(err)
	}
	buf := make([]byte, 4+chunkSize)
	for {
		n, rerr := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf, uint32(n))
			if _, err := conn.Write(buf[:4+n]); err != nil {
				// clamd closes the connection once a stream is over its
				// limit; its reply says so.
				if reply, rerr := readReply(conn); rerr == nil {
					return parseScan(reply)
				}
				return fail(err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return Result{}, fmt.Errorf("reading the content to scan: %w", rerr)
		}
	}
	if _, err := conn.Write([]byte{0, 0, 0, 0}); err != nil {
		return fail(err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return Result{}, err
	}
	return parseScan(reply)
}

// readReply reads one NUL-terminated reply (at most 4 KiB).
func readReply(conn net.Conn) (string, error) {
	b, err := io.ReadAll(io.LimitReader(conn, 4096))
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i]), nil
	}
	if err == nil {
		err = errors.New("reply not terminated")
	}
	return "", fmt.Errorf("%w: reading the reply: %v", ErrUnavailable, err)
}

// parseScan reads "stream: OK", "stream: NAME FOUND" or an error.
func parseScan(reply string) (Result, error) {
	reply = strings.TrimSpace(reply)
	rest, ok := strings.CutPrefix(reply, "stream: ")
	switch {
	case ok && rest == "OK":
		return Result{}, nil
	case ok && strings.HasSuffix(rest, " FOUND"):
		return Result{Infected: true, Signature: strings.TrimSuffix(rest, " FOUND")}, nil
	}
	return Result{}, fmt.Errorf("%w: clamd answered %q", ErrUnavailable, trim(reply))
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}
