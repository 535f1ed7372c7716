package queue

import (
	"bytes"
	"io"

	"sealpost/internal/store"
)

// Delivered is a queued message as it is delivered: the header fields the
// data checks added at the end of DATA (the message row's DataHeaders),
// then the bytes the spool holds. Every reader of a message's bytes
// (delivery, DSN originals, the portal's sealing, quarantine view and
// release) reads it through OpenDelivered, so that none can drop them.
//
// The audit log's SHA-256 (Envelope.SHA256) stays the hash of the
// spooled bytes as accepted, without the fields: it is computed while the
// message streams in, before the checks' verdict exists, and the fields
// are recorded beside it in the message's row.
type Delivered struct {
	io.ReaderAt
	size int64
	m    *Message
}

// Size is the length of the message as delivered.
func (d *Delivered) Size() int64 { return d.size }

// Reader reads the message as delivered from the start.
func (d *Delivered) Reader() io.Reader { return io.NewSectionReader(d, 0, d.size) }

// Close releases the spooled message.
func (d *Delivered) Close() error { return d.m.Close() }

// OpenDelivered opens message m as delivered.
func (q *Queue) OpenDelivered(m *store.Message) (*Delivered, error) {
	return q.spool.OpenDelivered(m)
}

// OpenDelivered opens message m as delivered (see Queue.OpenDelivered).
func (s *Spool) OpenDelivered(m *store.Message) (*Delivered, error) {
	sm, err := s.Open(m.ID, m.Spool)
	if err != nil {
		return nil, err
	}
	if m.DataHeaders == "" {
		return &Delivered{ReaderAt: sm, size: sm.Size(), m: sm}, nil
	}
	h := bytes.NewReader([]byte(m.DataHeaders))
	return &Delivered{ReaderAt: &prefixed{head: h, n: h.Size(), rest: sm}, size: h.Size() + sm.Size(), m: sm}, nil
}

// prefixed reads head then rest as one.
type prefixed struct {
	head io.ReaderAt
	n    int64
	rest io.ReaderAt
}

func (p *prefixed) ReadAt(b []byte, off int64) (int, error) {
	total := 0
	if off < p.n {
		k, err := p.head.ReadAt(b[:min(int64(len(b)), p.n-off)], off)
		total += k
		if err != nil && err != io.EOF {
			return total, err
		}
		b = b[k:]
		off += int64(k)
		if len(b) == 0 {
			return total, nil
		}
	}
	k, err := p.rest.ReadAt(b, off-p.n)
	return total + k, err
}
