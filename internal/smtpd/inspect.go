package smtpd

import (
	"bytes"
	"context"
	"io"

	"sealpost/internal/queue"
)

// Inspector checks outbound messages before they are accepted: data-loss
// prevention and policy. It is what lets the gateway refuse a message with
// a 550 at the end of DATA, hold it, or mark recipients for protection.
type Inspector interface {
	// Start begins the inspection of one message. Its bytes, as the client
	// sent them, are written to the Inspection as they arrive.
	Start() Inspection
	// RewriteHeader may change the header section (up to and including
	// the CRLF that ends its last field) before it is spooled; nil keeps it.
	RewriteHeader(header []byte) []byte
}

// Inspection is the inspection of one message.
type Inspection interface {
	io.Writer
	// Decide ends the inspection once every byte is written: it fills in
	// env's plan and notices, or returns a rejection.
	Decide(ctx context.Context, env *queue.Envelope) (*Rejection, error)
	// Abort ends an inspection whose message was not accepted.
	Abort()
}

// Rejection refuses a message for policy reasons.
type Rejection struct {
	Text string // for the client, with the reference the operator can look up
	// Temporary asks the client to try again later (451 4.7.1, RFC 3463
	// "security or policy status") instead of refusing (550 5.7.1).
	Temporary bool
}

// SetInspector sets the inspector of the outbound listener (nil: none).
func (s *Server) SetInspector(i Inspector) { s.inspector.Store(&i) }

// SetInboundInspector sets the inspector of the inbound listener (nil:
// none).
func (s *Server) SetInboundInspector(i Inspector) { s.inboundInspector.Store(&i) }

// inspectorFor returns the inspector of a listener role.
func (s *Server) inspectorFor(role string) Inspector {
	if role == RoleInbound {
		if p := s.inboundInspector.Load(); p != nil {
			return *p
		}
		return nil
	}
	return s.getInspector()
}

func (s *Server) getInspector() Inspector {
	if p := s.inspector.Load(); p != nil {
		return *p
	}
	return nil
}

// headerFilter holds back the header section of a message until it is
// complete, passes it through rewrite, then streams the rest unchanged. A
// header longer than max passes unchanged.
type headerFilter struct {
	w       io.Writer
	rewrite func([]byte) []byte
	buf     []byte
	max     int
	done    bool
}

func (h *headerFilter) Write(p []byte) (int, error) {
	if h.done {
		return h.w.Write(p)
	}
	h.buf = append(h.buf, p...)
	if bytes.HasPrefix(h.buf, []byte("\r\n")) {
		return len(p), h.flush(0)
	}
	if i := bytes.Index(h.buf, []byte("\r\n\r\n")); i >= 0 {
		return len(p), h.flush(i + 2)
	}
	if len(h.buf) > h.max {
		return len(p), h.flush(0)
	}
	return len(p), nil
}

// flush writes the held bytes; the first n of them are the header.
func (h *headerFilter) flush(n int) error {
	h.done = true
	head, rest := h.buf[:n], h.buf[n:]
	if n > 0 {
		if nh := h.rewrite(head); nh != nil {
			head = nh
		}
	}
	if _, err := h.w.Write(head); err != nil {
		return err
	}
	_, err := h.w.Write(rest)
	h.buf = nil
	return err
}

// Close writes what is still held (a message that is all header).
func (h *headerFilter) Close() error {
	if h.done {
		return nil
	}
	n := len(h.buf)
	if !bytes.HasSuffix(h.buf, []byte("\r\n")) {
		n = 0
	}
	return h.flush(n)
}
