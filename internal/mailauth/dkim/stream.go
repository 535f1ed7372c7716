package dkim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	mdkim "github.com/mjl-/mox/dkim"

	"sealpost/internal/mailauth/moxdns"
)

// BodyHasher hashes a body as it streams, canonicalised per RFC 6376
// §3.4.3 (simple) or §3.4.4 (relaxed), with memory that does not grow with
// the body: trailing empty lines are counted, not kept. It gives the same
// hash as mox's for every body that ends in CRLF (every body received
// over SMTP).
type BodyHasher struct {
	h       hash.Hash
	relaxed bool
	limit   int64 // l=, or -1
	written int64

	cr      bool  // a CR is pending (it may start a CRLF)
	wsp     bool  // relaxed: whitespace is pending within the line
	content bool  // relaxed: the current line has content
	empty   int64 // CRLFs (empty lines) not yet written
	one     [1]byte
}

// NewBodyHasher hashes with SHA-256 (rsa-sha1 is refused, RFC 8301);
// limit is an l= (RFC 6376 §3.5), or -1 for the whole body.
func NewBodyHasher(relaxed bool, limit int64) *BodyHasher {
	return &BodyHasher{h: sha256.New(), relaxed: relaxed, limit: limit}
}

var crlf = []byte("\r\n")

func (b *BodyHasher) out(p []byte) {
	if b.limit >= 0 {
		if b.written >= b.limit {
			return
		}
		p = p[:min(int64(len(p)), b.limit-b.written)]
	}
	b.written += int64(len(p))
	b.h.Write(p)
}

func (b *BodyHasher) flushEmpty() {
	for ; b.empty > 0; b.empty-- {
		b.out(crlf)
	}
}

// Write hashes the next bytes of the body.
func (b *BodyHasher) Write(p []byte) (int, error) {
	for _, c := range p {
		if b.cr {
			b.cr = false
			if c == '\n' {
				b.endLine()
				continue
			}
			b.char('\r')
		}
		if c == '\r' {
			b.cr = true
			continue
		}
		b.char(c)
	}
	return len(p), nil
}

func (b *BodyHasher) endLine() {
	if !b.relaxed {
		b.empty++
		return
	}
	b.wsp = false // RFC 6376 §3.4.4: whitespace at the end of a line is ignored
	if b.content {
		b.out(crlf)
	} else {
		b.empty++
	}
	b.content = false
}

func (b *BodyHasher) char(c byte) {
	if b.relaxed {
		if c == ' ' || c == '\t' {
			b.wsp = true
			return
		}
		if !b.content {
			b.flushEmpty()
			b.content = true
		}
		if b.wsp {
			b.wsp = false
			b.one[0] = ' '
			b.out(b.one[:])
		}
	} else {
		b.flushEmpty()
	}
	b.one[0] = c
	b.out(b.one[:])
}

// Sum ends the body and returns its hash.
func (b *BodyHasher) Sum() []byte {
	if b.cr {
		b.cr = false
		b.char('\r')
	}
	if b.relaxed {
		// A last line without CRLF gets one (RFC 6376 §3.4.4); an empty
		// body stays empty.
		if b.content {
			b.out(crlf)
		}
	} else {
		// Simple: exactly one CRLF at the end, also for an empty body.
		b.out(crlf)
	}
	return b.h.Sum(nil)
}

// BodyHashes gives a body's SHA-256 per body canonicalisation (relaxed
// or simple); nil when it was not computed.
type BodyHashes func(relaxed bool) []byte

// VerifyHeader is Verify for a message streamed in: header is its header
// section, body its body hashes. mox checks each signature over the
// header fields with the key from DNS before it looks at the body (RFC
// 6376 §6.1.3 steps), so it is given the header with an empty body: a
// signature it finds valid except for the body hash is then decided by
// the hash computed as the body streamed.
func (v *Verifier) VerifyHeader(ctx context.Context, header []byte, smtputf8 bool, body BodyHashes) []Result {
	if !bytes.HasSuffix(header, []byte("\r\n\r\n")) {
		header = append(append([]byte(nil), header...), crlf...)
	}
	rs, err := mdkim.Verify(ctx, v.logger(), moxdns.Adapt(v.Resolver), smtputf8, SignaturePolicy, bytes.NewReader(header), false)
	if err != nil {
		return []Result{{Status: Permerror, Reason: "message header cannot be parsed: " + err.Error()}}
	}
	for i := range rs {
		r := &rs[i]
		if r.Sig == nil || !(r.Status == mdkim.StatusPass || (r.Status == mdkim.StatusFail && errors.Is(r.Err, mdkim.ErrBodyhashMismatch))) {
			continue
		}
		got := body(bodyRelaxed(r.Sig.Canonicalization))
		if got != nil && bytes.Equal(got, r.Sig.BodyHash) {
			r.Status, r.Err = mdkim.StatusPass, nil
		} else {
			r.Status, r.Err = mdkim.StatusFail, fmt.Errorf("%w: the body does not hash to bh=", mdkim.ErrBodyhashMismatch)
		}
	}
	return v.results(rs)
}

// bodyRelaxed reads the body half of c= (RFC 6376 §3.5: "header/body",
// the body simple when not given).
func bodyRelaxed(c string) bool {
	_, body, ok := strings.Cut(strings.ToLower(c), "/")
	return ok && body == "relaxed"
}

// WholeBody computes the body hashes of a body held in memory.
func WholeBody(body []byte) BodyHashes {
	return func(relaxed bool) []byte {
		h := NewBodyHasher(relaxed, -1)
		io.Copy(h, bytes.NewReader(body))
		return h.Sum()
	}
}
