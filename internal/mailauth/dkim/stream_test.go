package dkim

import (
	"bytes"
	"context"
	"testing"
)

// streamed verifies msg as the gateway does when it streams: the header
// section kept, the body only hashed, fed in small uneven pieces.
func streamed(v *Verifier, msg []byte) []Result {
	header, body := msg, []byte(nil)
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		header, body = msg[:i+4], msg[i+4:]
	}
	hs := [2]*BodyHasher{NewBodyHasher(false, -1), NewBodyHasher(true, -1)}
	for off, n := 0, 1; off < len(body); off, n = off+n, n%13+1 {
		end := min(off+n, len(body))
		hs[0].Write(body[off:end])
		hs[1].Write(body[off:end])
	}
	sums := [2][]byte{hs[0].Sum(), hs[1].Sum()}
	return v.VerifyHeader(context.Background(), header, false, func(relaxed bool) []byte {
		if relaxed {
			return sums[1]
		}
		return sums[0]
	})
}

// sameStreamed: the streamed verification gives every signature the
// status the whole-message one gives (the corpora of others: Mail::DKIM,
// dkimpy, MimeKit, RFC 8463).
func sameStreamed(t *testing.T, v *Verifier, msg []byte, want []Result) {
	t.Helper()
	got := streamed(v, msg)
	if len(got) != len(want) {
		t.Errorf("streamed: %d results, whole message %d", len(got), len(want))
		return
	}
	for i := range got {
		if got[i].Status != want[i].Status {
			t.Errorf("streamed signature %d: %s (%s), whole message: %s (%s)", i, got[i].Status, got[i].Reason, want[i].Status, want[i].Reason)
		}
	}
}

// TestBodyHasherCanonical: RFC 6376 §3.4.5's examples and the edge cases
// of trailing lines, against the hash of the canonical form written out.
func TestBodyHasherCanonical(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, simple, relaxed string
	}{
		{" C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n", " C\r\nD E\r\n"},
		{"", "\r\n", ""},
		{"\r\n\r\n", "\r\n", ""},
		{"a\r\n \t \r\n\r\nb  \r\n\r\n", "a\r\n \t \r\n\r\nb  \r\n", "a\r\n\r\n\r\nb\r\n"},
		{"a\rb\r\n", "a\rb\r\n", "a\rb\r\n"},
		{"x", "x\r\n", "x\r\n"},
	} {
		for _, relaxed := range []bool{false, true} {
			want := c.simple
			if relaxed {
				want = c.relaxed
			}
			h := NewBodyHasher(relaxed, -1)
			h.Write([]byte(c.in))
			ref := NewBodyHasher(false, -1)
			ref.h.Write([]byte(want))
			if got, exp := h.Sum(), ref.h.Sum(nil); !bytes.Equal(got, exp) {
				t.Errorf("%q relaxed=%v: hash is not that of %q", c.in, relaxed, want)
			}
		}
	}
}

// FuzzBodyHasher: any split of the body into writes gives the same hash.
func FuzzBodyHasher(f *testing.F) {
	f.Add([]byte(" C \r\nD \t E\r\n\r\n\r\n"), uint8(3))
	f.Add([]byte("a\r\r\n\r\n \r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, step uint8) {
		n := int(step)%17 + 1
		for _, relaxed := range []bool{false, true} {
			whole := NewBodyHasher(relaxed, -1)
			whole.Write(body)
			parts := NewBodyHasher(relaxed, -1)
			for off := 0; off < len(body); off += n {
				parts.Write(body[off:min(off+n, len(body))])
			}
			if !bytes.Equal(whole.Sum(), parts.Sum()) {
				t.Fatalf("relaxed=%v: split writes of %q hash differently", relaxed, body)
			}
		}
	})
}
