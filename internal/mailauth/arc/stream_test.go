package arc

import (
	"bytes"
	"context"

	"sealpost/internal/dns"
	"sealpost/internal/mailauth/dkim"
)

// streamedVerify verifies msg as a message streamed in is verified: the
// header section kept, the body only hashed as it passes (dkim's
// BodyHasher), so the suite checks the streamed path against the whole one.
func streamedVerify(ctx context.Context, r dns.Resolver, msg []byte) Result {
	msg = toCRLF(msg)
	header, body := msg, []byte(nil)
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		header, body = msg[:i+4], msg[i+4:]
	}
	return VerifyHeader(ctx, r, header, func(relaxed bool, l int64) []byte {
		h := dkim.NewBodyHasher(relaxed, l)
		for off := 0; off < len(body); off += 5 {
			h.Write(body[off:min(off+5, len(body))])
		}
		return h.Sum()
	})
}
