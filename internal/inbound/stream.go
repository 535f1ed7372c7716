package inbound

import (
	"bytes"
	"context"
	"fmt"

	"sealpost/internal/mailauth/dkim"
)

// DefaultMaxHeader bounds the header section a Stream keeps: the header
// is all that authentication needs whole (the body is only hashed), and a
// header past this bound is refused rather than checked in part.
const DefaultMaxHeader = 64 << 10

// Stream authenticates one message as it arrives: the header section is
// captured (up to a bound), the body only hashed as it streams (DKIM's
// and ARC's body hashes, RFC 6376 §3.4, simple and relaxed), so memory
// does not grow with the message. Write the message, then Finish.
type Stream struct {
	e    *Evaluator
	c    Conn
	max  int
	head []byte
	body bool // the blank line was seen: bytes go to the hashers
	over bool // the header section is longer than max
	hs   [2]*dkim.BodyHasher
}

// Start begins the authentication of one message from c; maxHeader <= 0
// is DefaultMaxHeader.
func (e *Evaluator) Start(c Conn, maxHeader int) *Stream {
	if maxHeader <= 0 {
		maxHeader = DefaultMaxHeader
	}
	return &Stream{e: e, c: c, max: maxHeader, hs: [2]*dkim.BodyHasher{dkim.NewBodyHasher(false, -1), dkim.NewBodyHasher(true, -1)}}
}

// Write takes the next bytes of the message (CRLF line ends, as received).
func (s *Stream) Write(p []byte) (int, error) {
	n := len(p)
	if !s.body {
		if s.over {
			return n, nil
		}
		from := max(0, len(s.head)-3)
		s.head = append(s.head, p...)
		end := -1
		if bytes.HasPrefix(s.head, []byte("\r\n")) {
			end = 2
		} else if i := bytes.Index(s.head[from:], []byte("\r\n\r\n")); i >= 0 {
			end = from + i + 4
		}
		if end < 0 {
			if len(s.head) > s.max {
				s.over, s.head = true, nil
			}
			return n, nil
		}
		if end > s.max {
			s.over, s.head = true, nil
			return n, nil
		}
		p = s.head[end:]
		s.head, s.body = s.head[:end:end], true
	}
	s.hs[0].Write(p)
	s.hs[1].Write(p)
	return n, nil
}

// Finish ends the message and returns the verdict. Its Message is nil:
// the caller has the bytes (and removes forged Authentication-Results
// from them with StripForgedResults on the header section).
func (s *Stream) Finish(ctx context.Context) *Verdict {
	if s.over {
		why := fmt.Sprintf("the header section is longer than %d bytes and cannot be authenticated", s.max)
		v := &Verdict{Checks: []Check{{"header", "permerror", why}}}
		return s.e.finish(v, nil, Reject, &Reply{552, "5.3.4", "Message header too large"}, why, timeNow())
	}
	sums := [2][]byte{s.hs[0].Sum(), s.hs[1].Sum()}
	pick := func(relaxed bool) []byte {
		if relaxed {
			return sums[1]
		}
		return sums[0]
	}
	// An AMS with l= (a body length limit) would need a hash of its own;
	// none is computed, so it cannot validate (fail, never pass).
	arcBody := func(relaxed bool, l int64) []byte {
		if l >= 0 {
			return nil
		}
		return pick(relaxed)
	}
	return s.e.evaluate(ctx, s.c, s.head, pick, arcBody)
}
